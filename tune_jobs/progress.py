"""What the sweep's driver prints while Tune runs: an event line per trial event and one progress
line (runs done / total, elapsed, ETA).

    python -m tune_jobs.main_grid --preset smoke      # on a terminal the progress line updates in place

On a terminal (stdout a tty, output through print) the progress line is redrawn in place with
\\r after every event and at most once a second in between; the event lines scroll above it. Into
a log (a pipe, `ray job logs`, a test's list) the event lines are written as before and the
progress line follows each finished trial as an ordinary line.

ETA = elapsed * remaining run-epochs / run-epochs done since this driver started, where a pack's
run-epochs done are its runs x the last epoch it reported (at the start: what the storage holds,
tune_jobs.status.scan), so a resumed pack counts only the epochs it trains now.
"""

from __future__ import annotations

import posixpath
import sys
import time
from typing import Callable, Mapping

from tune_jobs.status import fmt_duration

REDRAW_S = 1.0  # seconds between redraws of the live line without an event


class ProgressLine:
    """Runs done / total, elapsed, ETA of one driver session."""

    def __init__(self, results: str, sizes: Mapping[str, int], epochs: Mapping[str, int]):
        self.results, self.sizes, self.epochs = results, dict(sizes), dict(epochs)
        self.total_runs = sum(self.sizes.values())
        self.total_work = sum(self.sizes[p] * self.epochs[p] for p in self.sizes)
        self.rebase()
        self.fresh = True   # scanned just now: Tune's first setup need not read the storage again

    def rebase(self) -> None:
        """Start the clock and take what the storage holds as this session's starting point (called
        again by Tune's setup, also when Tuner.restore brings the callback back from the first run)."""
        from tune_jobs.status import scan
        try:
            st = scan(self.results)
            pack_done, finished = st.pack_done, st.finished_packs & set(self.sizes)
        except (FileNotFoundError, OSError, ValueError):  # nothing readable yet: nothing done
            pack_done, finished = {}, set()
        self.finished = set(finished)
        self.runs_finished = sum(self.sizes[p] for p in self.finished)
        self.base = {p: (self.sizes[p] * self.epochs[p] if p in self.finished else int(pack_done.get(p, 0)))
                     for p in self.sizes}
        self.now = dict(self.base)
        self.t0 = time.time()

    def epoch(self, pid: str, epoch: int) -> None:
        if pid in self.now:
            self.now[pid] = max(self.now[pid], self.sizes[pid] * int(epoch))

    def pack_finished(self, pid: str) -> None:
        if pid in self.sizes and pid not in self.finished:
            self.finished.add(pid)
            self.runs_finished += self.sizes[pid]
            self.now[pid] = self.sizes[pid] * self.epochs[pid]  # early stops end a pack before its last epoch

    def eta_s(self) -> float | None:
        done_now = sum(self.now.values()) - sum(self.base.values())
        left = self.total_work - sum(self.now.values())
        if left <= 0:
            return 0.0
        return (time.time() - self.t0) * left / done_now if done_now > 0 else None

    def text(self) -> str:
        return (f"progress    {self.runs_finished:,}/{self.total_runs:,} runs done, "
                f"{fmt_duration(time.time() - self.t0)} elapsed, ETA {fmt_duration(self.eta_s())}")


def progress_callback(labels: dict[str, str], line: ProgressLine, out: Callable[[str], None]):
    """A Tune callback printing the event lines and the progress line (live on a terminal)."""
    from ray import tune

    live = out is print and sys.stdout.isatty()

    class Progress(tune.Callback):
        """One line per trial event (start, checkpoint, done, retry, error) instead of Tune's tables."""

        def __init__(self):
            self.drawn = 0.0

        def setup(self, **info):
            if not line.fresh:   # Tuner.restore brought this callback (and its old line) back from its state
                line.rebase()
            line.fresh = False

        def _say(self, text: str) -> None:
            if live:
                sys.stdout.write("\r\033[K" + text + "\n")
                self._draw()
            else:
                out(text)

        def _draw(self) -> None:
            sys.stdout.write("\r\033[K" + line.text())
            sys.stdout.flush()
            self.drawn = time.time()

        def _head(self, trials) -> str:
            done = sum(t.status == "TERMINATED" for t in trials)
            return f"[{time.time() - line.t0:6.0f}s {done}/{len(trials)} done]"

        def _name(self, trial) -> str:
            pid = trial.config.get("pack_id", "?")
            return f"{labels.get(pid, pid)} ({line.sizes.get(pid, '?')} runs)"

        def on_step_end(self, iteration, trials, **info):
            if live and time.time() - self.drawn >= REDRAW_S:
                self._draw()

        def on_trial_start(self, iteration, trials, trial, **info):
            self._say(f"{self._head(trials)} start   {self._name(trial)}")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "epoch" in result:
                line.epoch(trial.config.get("pack_id"), result["epoch"])
            if "elapsed_s" in result and not any(k.startswith("n_") for k in result):
                self._say(f"{self._head(trials)} epoch {result['epoch']}/{result['epochs']}  "
                          f"{self._name(trial)} {result['elapsed_s']:.0f}s")

        def on_trial_complete(self, iteration, trials, trial, **info):
            r = trial.last_result or {}
            if r.get("out_of_memory") or r.get("replanned"):   # not finished: its runs train in smaller packs
                what = "out of memory" if r.get("out_of_memory") else "replaced (split into smaller packs)"
                self._say(f"{self._head(trials)} {what} {self._name(trial)}")
                return
            line.pack_finished(trial.config.get("pack_id"))
            counts = " ".join(f"{k[2:]}={v}" for k, v in r.items() if k.startswith("n_"))
            what = "skipped (already finished)" if r.get("skipped") else "done   "
            self._say(f"{self._head(trials)} {what} {self._name(trial)} {counts}")
            if not live:
                out(line.text())

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._say(f"{self._head(trials)} retry   {self._name(trial)}: its process failed; resuming from "
                      "its last checkpoint")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._say(f"{self._head(trials)} FAILED  {self._name(trial)} after {trial.num_failures} failure(s); "
                      f"traceback: {posixpath.join(trial.path, 'error.txt') if trial.path else trial.error_file}")

        def on_experiment_end(self, trials, **info):
            if live:
                self._draw()
                sys.stdout.write("\n")
                sys.stdout.flush()

    return Progress()
