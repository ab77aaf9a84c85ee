"""Where a sweep stands, read from its storage alone (no Ray): python -m tune_jobs status ROOT.

    python -m tune_jobs status results/main_grid_smoke            # one experiment folder
    python -m tune_jobs status results                            # every experiment under a storage
    python -m tune_jobs status s3://bucket/initmem/main_grid --watch 30   # refresh every 30 s

Works while the sweep runs, from any machine that can read the storage (a folder or a pyarrow
URI). Inputs: plan.json (the packs and their runs), runs/<pack>.parquet (each run's status),
epochs/<pack>/*.parquet (the epochs written so far, and `wall_time`: seconds since the pack
started, cumulative over resumes) and tune/*/error.txt (Tune's traceback of a failed attempt).

Per pack group (packs sharing everything but sigma_w, seed, lr0, l2, weight_decay; named as in
the plan): runs finished (completed), early-stopped, diverged, running, not started; run-epochs
done of the total (a run that stopped early or diverged counts as all its epochs done); and
run-epochs per trial-hour = run-epochs written / pack wall hours (the packs' recorded wall times).
ETA of the sweep = sum over groups of remaining run-epochs / that group's rate (groups without
data at the mean rate of the others), divided by the number of packs running now (at least 1).
The time of the last write is the newest modification time of a results file.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import posixpath
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from initmem.config import RunConfig, pack_id
from initmem.registry import parse_with_plugins
from initmem.layout import (EPOCHS_DIR, FINAL_STATUSES, PLAN_FILE, RUNS_DIR, TUNE_DIR, is_final, plan_packs,
                            read_plan, resolve)
from tune_jobs.planner import group_names


@dataclass
class Group:
    name: str
    packs: int = 0
    runs: int = 0
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # status -> runs ("not_started" too)
    run_epochs_total: int = 0
    run_epochs_done: int = 0
    run_epochs_timed: int = 0          # run-epochs of packs with a recorded wall time
    wall_s: float = 0.0                # sum of those packs' wall times (trial-seconds)

    @property
    def rate_per_h(self) -> float | None:
        """run-epochs per trial-hour, from the packs' recorded wall times."""
        return self.run_epochs_timed / (self.wall_s / 3600) if self.wall_s > 0 and self.run_epochs_timed else None


@dataclass
class Failure:
    trial: str
    pack_id: str
    error_file: str
    finished: bool  # the pack finished later (Tune retried it): a recovered failure


@dataclass
class SweepStatus:
    root: str
    experiment: str
    groups: list[Group]
    packs_running: int
    last_write: float | None           # seconds since the epoch (UTC), None when nothing was written
    failures: list[Failure]
    pack_done: dict[str, int] = field(default_factory=dict)  # pack_id -> run-epochs done
    finished_packs: set[str] = field(default_factory=set)
    versions: dict[str, Counter] = field(default_factory=dict)  # "code" / "data" -> runs rows per version

    @property
    def runs(self) -> int:
        return sum(g.runs for g in self.groups)

    @property
    def finished(self) -> int:
        return sum(g.counts.get(s, 0) for g in self.groups for s in FINAL_STATUSES)

    @property
    def run_epochs_total(self) -> int:
        return sum(g.run_epochs_total for g in self.groups)

    @property
    def run_epochs_done(self) -> int:
        return sum(g.run_epochs_done for g in self.groups)

    def eta_s(self) -> float | None:
        """Seconds to the end at the recorded per-trial rates and the current parallelism; None
        when no rate is known yet, 0 when everything is done."""
        rates = [g.rate_per_h for g in self.groups if g.rate_per_h]
        if self.run_epochs_done >= self.run_epochs_total:
            return 0.0
        if not rates:
            return None
        mean = sum(rates) / len(rates)
        hours = sum((g.run_epochs_total - g.run_epochs_done) / (g.rate_per_h or mean) for g in self.groups)
        return 3600 * hours / max(1, self.packs_running)


# --- reading the storage --------------------------------------------------------------------------

def _files(fs: pafs.FileSystem, folder: str) -> list[pafs.FileInfo]:
    if fs.get_file_info(folder).type == pafs.FileType.NotFound:
        return []
    return [i for i in fs.get_file_info(pafs.FileSelector(folder, recursive=True)) if i.type == pafs.FileType.File]


def _mtime(info: pafs.FileInfo) -> float | None:
    return info.mtime.replace(tzinfo=_dt.timezone.utc).timestamp() if info.mtime is not None else None


def scan(root: str) -> SweepStatus:
    """Read one experiment folder (<storage>/<experiment>, the one holding plan.json)."""
    fs, path = resolve(root)
    stored = read_plan(root)
    if stored is None:
        raise FileNotFoundError(f"{root} holds no sweep: no {PLAN_FILE} (the folder a sweep writes is "
                                "<storage>/<experiment>, e.g. results/main_grid_smoke)")
    packs = plan_packs(stored)
    pids = [pack_id(p) for p in packs]
    names = group_names(packs)

    run_files = {posixpath.basename(i.path)[:-len(".parquet")]: i for i in _files(fs, posixpath.join(path, RUNS_DIR))
                 if i.path.endswith(".parquet")}
    epoch_files = defaultdict(list)
    for i in _files(fs, posixpath.join(path, EPOCHS_DIR)):
        if i.path.endswith(".parquet") and ".tmp-" not in i.path:
            epoch_files[posixpath.basename(posixpath.dirname(i.path))].append(i)
    times = [t for i in list(run_files.values()) + [i for v in epoch_files.values() for i in v]
             if (t := _mtime(i)) is not None]

    by_pack, versions = _runs_rows(fs, [i.path for i in run_files.values()])
    groups: dict[str, Group] = {}
    running_packs, finished_packs, pack_done = 0, set(), {}
    for pid, pack, name in zip(pids, packs, names):
        g = groups.setdefault(name, Group(name))
        g.packs += 1
        g.runs += len(pack)
        g.run_epochs_total += sum(r.epochs for r in pack)
        rows = by_pack.get(pid, {})
        statuses = [rows[r.run_id]["status"] if r.run_id in rows else "not_started" for r in pack]
        for s in statuses:
            g.counts[s] += 1
        if rows and all(is_final(s) for s in statuses):
            finished_packs.add(pid)
            done = sum(r.epochs if rows[r.run_id]["status"] != "completed" else int(rows[r.run_id]["epochs_done"] or 0)
                       for r in pack)
            wall = max(float(rows[r.run_id]["wall_time_s"] or 0.0) for r in pack)
            written = sum(int(rows[r.run_id]["epochs_done"] or 0) for r in pack)
        elif rows:
            running_packs += 1
            done, written, wall = _progress_of_running(fs, epoch_files.get(pid, []), pack, rows)
        else:
            done, written, wall = 0, 0, 0.0
        g.run_epochs_done += done
        pack_done[pid] = done
        if wall > 0:
            g.run_epochs_timed += written
            g.wall_s += wall

    failures = _failures(fs, posixpath.join(path, TUNE_DIR), pids, finished_packs)
    return SweepStatus(root, stored.get("experiment", "?"), list(groups.values()), running_packs,
                       max(times) if times else None, failures, pack_done, finished_packs, versions)


RUN_COLUMNS = ["pack_id", "run_id", "status", "epochs_done", "wall_time_s", "code_version", "code_dirty", "data_id"]


def _runs_rows(fs, paths: Sequence[str]) -> tuple[dict[str, dict[str, dict]], dict[str, Counter]]:
    """Every runs file in one dataset read: pack_id -> run_id -> row, and the runs per code version
    and per data id. A file replaced during the read makes it fall back to one read per file, which
    then skips that file (read as not started; the next refresh sees it)."""
    import pyarrow.dataset as ds
    from initmem.results import RUNS_SCHEMA
    try:
        table = ds.dataset(list(paths), schema=RUNS_SCHEMA, format="parquet", filesystem=fs).to_table(columns=RUN_COLUMNS)
        rows = table.to_pylist()
    except Exception:  # noqa: BLE001 - a file replaced between listing and reading
        rows = []
        for p in paths:
            try:
                rows += pq.read_table(p, filesystem=fs, schema=RUNS_SCHEMA, columns=RUN_COLUMNS).to_pylist()
            except Exception:  # noqa: BLE001
                continue
    by_pack: dict[str, dict[str, dict]] = defaultdict(dict)
    versions = {"code": Counter(), "data": Counter()}
    for r in rows:
        by_pack[r["pack_id"]][r["run_id"]] = r
        code = r["code_version"] or "unknown (written before initmem recorded it)"
        versions["code"][code + (" with uncommitted changes" if r["code_dirty"] else "")] += 1
        versions["data"][r["data_id"] or "unknown (written before initmem recorded it)"] += 1
    return by_pack, versions


def _progress_of_running(fs, files: list[pafs.FileInfo], pack: Sequence[RunConfig], rows: dict):
    """(run-epochs done, run-epochs written, pack wall seconds) of a pack still running, from its epochs
    files: the last epoch of each run and the largest wall_time."""
    last: dict[str, int] = {}
    wall = 0.0
    for info in files:
        try:
            t = pq.read_table(info.path, filesystem=fs, columns=["run_id", "epoch", "wall_time"])
        except Exception:  # noqa: BLE001 - deleted by a resuming attempt while listed
            continue
        for rid, ep, w in zip(*(t.column(c).to_pylist() for c in ("run_id", "epoch", "wall_time"))):
            last[rid] = max(last.get(rid, 0), int(ep))
            wall = max(wall, float(w or 0.0))
    written = sum(last.values())
    done = sum(r.epochs if rows.get(r.run_id, {}).get("status") in ("early_stopped", "diverged")
               else last.get(r.run_id, 0) for r in pack)
    return done, written, wall


def _failures(fs, tune_dir: str, pids: Sequence[str], finished: set[str]) -> list[Failure]:
    """Tune trial folders with an error.txt (<label>_<pack id prefix>), newest attempt's file."""
    out = []
    by_prefix = {pid[:8]: pid for pid in pids}
    for info in _files(fs, tune_dir):
        if posixpath.basename(info.path) != "error.txt":
            continue
        trial = posixpath.basename(posixpath.dirname(info.path))
        pid = by_prefix.get(trial.rsplit("_", 1)[-1], "?")
        out.append(Failure(trial, pid, info.path, pid in finished))
    return sorted(out, key=lambda f: (f.finished, f.trial))


# --- printing -------------------------------------------------------------------------------------

def fmt_duration(s: float | None) -> str:
    if s is None:
        return "unknown"
    s = int(round(s))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s")


def format_status(st: SweepStatus, now: float | None = None) -> str:
    now = time.time() if now is None else now
    cols = ("completed", "early_stopped", "diverged", "running", "not_started")
    head = f"{'group':<22} {'packs':>5} {'runs':>5} {'finished':>8} {'early':>5} {'diverged':>8} {'running':>7} " \
           f"{'not started':>11} {'run-epochs':>15} {'/trial-h':>9}"
    lines = [f"sweep       {st.experiment} in {st.root}", head]
    for g in st.groups:
        c = [g.counts.get(k, 0) for k in cols]
        rate = f"{g.rate_per_h:,.0f}" if g.rate_per_h else "-"
        lines.append(f"{g.name[:22]:<22} {g.packs:>5} {g.runs:>5} {c[0]:>8} {c[1]:>5} {c[2]:>8} {c[3]:>7} {c[4]:>11} "
                     f"{f'{g.run_epochs_done:,}/{g.run_epochs_total:,}':>15} {rate:>9}")
    tot = [sum(g.counts.get(k, 0) for g in st.groups) for k in cols]
    lines.append(f"{'all':<22} {sum(g.packs for g in st.groups):>5} {st.runs:>5} {tot[0]:>8} {tot[1]:>5} {tot[2]:>8} "
                 f"{tot[3]:>7} {tot[4]:>11} {f'{st.run_epochs_done:,}/{st.run_epochs_total:,}':>15}")
    eta = st.eta_s()
    rates = [g.rate_per_h for g in st.groups if g.rate_per_h]
    lines.append(f"progress    {st.finished:,}/{st.runs:,} runs finished, {st.run_epochs_done:,}/{st.run_epochs_total:,} "
                 f"run-epochs ({100 * st.run_epochs_done / max(1, st.run_epochs_total):.0f}%)")
    if eta == 0.0:
        lines.append("eta         done")
    else:
        lines.append(f"eta         {fmt_duration(eta)} at {max(1, st.packs_running)} trial(s) at once"
                     + (f", {sum(rates) / len(rates):,.0f} run-epochs per trial-hour" if rates else
                        " (no epoch with a wall time written yet)"))
    for kind in ("code", "data"):
        seen = st.versions.get(kind) or {}
        if seen:
            lines.append(f"{kind:<11} " + "; ".join(f"{v} ({n} runs)" for v, n in sorted(seen.items()))
                         + ("   <- MIXED: rows of different versions in one experiment" if len(seen) > 1 else ""))
    if st.last_write is None:
        lines.append("last write  never (nothing written yet)")
    else:
        when = _dt.datetime.fromtimestamp(st.last_write, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"last write  {when} ({fmt_duration(max(0.0, now - st.last_write))} ago)")
    failed = [f for f in st.failures if not f.finished]
    recovered = len(st.failures) - len(failed)
    for f in failed:
        lines.append(f"failed      {f.trial} (pack {f.pack_id[:8]}): {f.error_file}")
    if recovered:
        lines.append(f"recovered   {recovered} trial(s) failed once and finished after a retry")
    return "\n".join(lines)


def experiment_roots(root: str) -> list[str]:
    """root itself if it holds plan.json, else its subfolders that do (a --storage with several sweeps)."""
    fs, path = resolve(root)
    if fs.get_file_info(posixpath.join(path, PLAN_FILE)).type == pafs.FileType.File:
        return [root]
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{root} does not exist or is not a folder")
    subs = sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(path)) if i.type == pafs.FileType.Directory)
    found = [posixpath.join(root.rstrip("/"), s) for s in subs
             if fs.get_file_info(posixpath.join(path, s, PLAN_FILE)).type == pafs.FileType.File]
    if not found:
        raise FileNotFoundError(f"{root} holds no sweep: no {PLAN_FILE} in it or its subfolders")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tune_jobs status",
                                description="Where a sweep stands, from its storage alone (no Ray).")
    p.add_argument("root", help="an experiment folder (<storage>/<experiment>) or a storage holding several")
    p.add_argument("--watch", nargs="?", type=float, const=10.0, default=None, metavar="SECONDS",
                   help="refresh every SECONDS (default 10) until interrupted")
    args = parse_with_plugins(p, argv)
    if args.watch is not None and args.watch <= 0:
        p.error(f"--watch {args.watch:g} is not allowed: seconds > 0")
    try:
        while True:
            text = "\n\n".join(format_status(scan(r)) for r in experiment_roots(args.root))
            if args.watch is None:
                print(text)
                return 0
            if sys.stdout.isatty():
                sys.stdout.write("\033[H\033[J")  # clear the screen, like `watch`
            print(text + f"\n(refreshing every {args.watch:g}s; Ctrl-C to stop)", flush=True)
            time.sleep(args.watch)
    except (FileNotFoundError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
