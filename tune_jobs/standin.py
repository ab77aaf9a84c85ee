"""Test doubles for the runner: an instant train_pack and a one-time crash after a checkpoint.

    python bench/bench_tune_scale.py          # the full main grid through Tune with instant_train_pack

instant_train_pack honours train_pack's contract (initmem/train.py) without training: it skips a
pack already finished in the Parquet; resumes from checkpoint_dir (state.json) after deleting its
epochs files written after that checkpoint; every `checkpoint_every` epochs (and at the last) it
writes the epochs rows since the last checkpoint as one file, then the checkpoint (temp file +
rename), then calls on_checkpoint(epoch, checkpoint_dir); at the end it writes the runs rows
(status completed) and returns them. Its metrics are a deterministic function of (run_id, epoch),
so an interrupted and resumed pack writes exactly the rows of an uninterrupted one.

CrashOnce wraps a train function (this one or the real train_pack) and kills the trial's process
with os._exit right after the checkpoint of a given epoch, the first time only (a marker file
remembers): Tune must retry the trial from that checkpoint.

OutOfMemoryAbove wraps a train function as a device that holds `max_runs` runs: a bigger pack raises
torch.OutOfMemoryError (CUDA's), before training or at the checkpoint of a given epoch (after its
epochs file: partial results the re-plan must set aside). tests/test_tune_ray.py and
bench/gpu_checks.py --cpu inject it; the runner must re-plan the pack into smaller ones.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from initmem.config import RunConfig, check_pack, checkpoint_interval, pack_id
from initmem.metrics import summarize
from initmem.results import ResultsWriter

STATE_FILE = "state.json"
SUMMARY_INPUTS = ("val_loss", "train_acc", "val_acc", "test_acc", "test_loss", "w_norm")  # what summarize reads


def _noise(run_id: str, epoch: int) -> float:
    """A deterministic number in [0, 1) for (run, epoch)."""
    h = hashlib.blake2b(f"{run_id}:{epoch}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2**64


def fake_epoch_row(cfg: RunConfig, run_id: str, epoch: int) -> dict:
    """A schema-correct epochs row whose values depend only on (run, epoch)."""
    u = _noise(run_id, epoch)
    progress = 1.0 - math.exp(-epoch / max(1.0, cfg.epochs / 5))
    acc = 0.1 + 0.8 * progress / (1.0 + 0.2 * cfg.sigma_w) + 0.01 * u
    loss = 2.3 * (1.0 - 0.8 * progress) + 0.05 * u
    step = epoch * cfg.steps_per_epoch
    w = 10.0 * cfg.sigma_w * (1.0 + 0.1 * progress)
    return {"run_id": run_id, "epoch": epoch, "step": step, "train_loss": loss, "train_acc": min(1.0, acc + 0.05),
            "val_loss": loss + 0.1, "val_loss_raw": loss + 0.1, "val_acc": acc, "test_loss": loss + 0.12,
            "test_acc": acc - 0.01, "lr": cfg.lr0, "t_sgd": cfg.lr0 ** 2 * step / cfg.batch_size,
            "t_l2": cfg.l2 * cfg.lr0 * step, "t_adapt": cfg.lr0 * step, "w_norm": w,
            "kernel_norms": [w / 3.0] * 9, "wall_time": 0.0}


def _run_row(cfg: RunConfig, pid: str, status: str, rows: Sequence[dict]) -> dict:
    """The runs-table row of one run from its epochs rows 0..last, summarised as train_pack does
    (initmem.metrics.summarize; summary columns null while no epoch >= 1 exists)."""
    history = {k: [row[k] for row in rows] for k in SUMMARY_INPUTS}
    last = rows[-1]
    return {**cfg.to_dict(), "run_id": last["run_id"], "pack_id": pid, "status": status,
            "epochs_done": last["epoch"], "diverged_epoch": None, "stopped_epoch": None,
            **(summarize(history) if len(rows) > 1 else {}),
            "t_sgd": last["t_sgd"], "t_l2": last["t_l2"], "t_adapt": last["t_adapt"], "n_params": 0,
            "wall_time_s": 0.0, "initmem_version": "standin", "code_version": "standin", "code_dirty": False,
            "data_id": "standin", "torch_version": "", "device_name": "standin",
            "updated_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def instant_train_pack(runs: Sequence[RunConfig], data=None, results: str | ResultsWriter | None = None,
                       checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int | None = None,
                       on_checkpoint: Callable[[int, Path], None] | None = None,
                       log: Callable[[str], None] | None = print, stop_after_epoch: int | None = None,
                       epoch_seconds: float = 0.0) -> list[dict]:
    """train_pack's contract with fake metrics; `epoch_seconds` of sleep per epoch (tests)."""
    check_pack(runs)
    log = log or (lambda _msg: None)
    pid, cfg = pack_id(runs), runs[0]
    every = checkpoint_interval(checkpoint_every, cfg.epochs)
    ids = [r.run_id for r in runs]
    writer = ResultsWriter(results) if isinstance(results, (str, os.PathLike)) else results
    if writer is not None:
        done = writer.finished_rows(pid)
        if done:
            log(f"[{pid}] already finished: not retrained")
            return done
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    written = -1
    if ckpt is not None and (ckpt / STATE_FILE).exists():
        written = json.loads((ckpt / STATE_FILE).read_text())["epoch"]
        log(f"[{pid}] resumed at epoch {written}")
    epoch = max(written, 0)
    # each run's epochs rows so far (recomputed on resume: they depend only on (run, epoch))
    history = [[fake_epoch_row(r, i, e) for e in range(epoch + 1)] for r, i in zip(runs, ids)]
    if writer is not None:
        writer.drop_epochs_after(pid, written)
        if written < 0:
            writer.write_runs(pid, [_run_row(r, pid, "running", h) for r, h in zip(runs, history)])
    last = cfg.epochs if stop_after_epoch is None else min(cfg.epochs, stop_after_epoch)
    pending = list(range(written + 1, epoch + 1))  # epoch 0 when starting fresh
    while epoch < last:
        epoch += 1
        if epoch_seconds:
            time.sleep(epoch_seconds)
        for r, i, h in zip(runs, ids, history):
            h.append(fake_epoch_row(r, i, epoch))
        pending.append(epoch)
        if epoch % every == 0 or epoch == last:
            if writer is not None:
                writer.write_epochs(pid, [h[e] for e in pending for h in history])
            pending = []
            if ckpt is not None:
                ckpt.mkdir(parents=True, exist_ok=True)
                tmp = ckpt / f"{STATE_FILE}.tmp"
                tmp.write_text(json.dumps({"epoch": epoch, "pack_id": pid}))
                tmp.replace(ckpt / STATE_FILE)
            if on_checkpoint is not None:
                on_checkpoint(epoch, ckpt)
    status = "completed" if epoch == cfg.epochs else "running"
    rows = [_run_row(r, pid, status, h) for r, h in zip(runs, history)]
    if writer is not None:
        writer.write_runs(pid, rows)
    return rows


class CrashOnce:
    """Wrap a train function: kill the process once, in the epoch after the checkpoint of `after_epoch`.

    The checkpoint of `after_epoch` is reported and the marker file (shared by all attempts) is
    created; at the next epoch's checkpoint, after its epochs file is written but before Tune hears
    of it, the process exits without cleanup, like a worker killed mid-epoch. (Exiting in the
    instant after a report can lose the report itself in flight to the driver, and the retry then
    starts from scratch.) The marker (it starts with the pack id) makes later attempts train normally. Picklable, so Tune can
    ship it to a worker.
    """

    def __init__(self, train_fn: Callable, marker: str, after_epoch: int = 1):
        self.train_fn, self.marker, self.after_epoch = train_fn, str(marker), after_epoch

    def __call__(self, runs, data, *args, on_checkpoint=None, **kwargs):
        armed = []  # this attempt wrote the marker

        def hook(epoch, directory):
            if armed and epoch > self.after_epoch:
                os._exit(17)  # no cleanup, no exception: like a killed worker
            if on_checkpoint is not None:
                on_checkpoint(epoch, directory)
            if epoch == self.after_epoch and not os.path.exists(self.marker):
                Path(self.marker).write_text(f"{pack_id(runs)} crashed after the checkpoint of epoch {epoch}\n")
                armed.append(True)
        return self.train_fn(runs, data, *args, on_checkpoint=hook, **kwargs)


class OutOfMemoryAbove:
    """Wrap a train function: a pack of more than `max_runs` runs raises torch.OutOfMemoryError, as on a
    device that holds max_runs runs; at the checkpoint of `at_epoch` (its epochs file written, like an
    out-of-memory error in the middle of training), or before training when at_epoch is None.
    Picklable, so Tune can ship it to a worker."""

    def __init__(self, train_fn: Callable, max_runs: int, at_epoch: int | None = None):
        self.train_fn, self.max_runs, self.at_epoch = train_fn, max_runs, at_epoch

    def __call__(self, runs, data, *args, on_checkpoint=None, **kwargs):
        import torch
        if len(runs) <= self.max_runs:
            return self.train_fn(runs, data, *args, on_checkpoint=on_checkpoint, **kwargs)
        msg = (f"CUDA out of memory. (injected by tune_jobs.standin.OutOfMemoryAbove: a pack of {len(runs)} runs, "
               f"the device holds {self.max_runs})")
        if self.at_epoch is None:
            raise torch.OutOfMemoryError(msg)

        def hook(epoch, directory):
            if epoch >= self.at_epoch:
                raise torch.OutOfMemoryError(msg)
            if on_checkpoint is not None:
                on_checkpoint(epoch, directory)
        return self.train_fn(runs, data, *args, on_checkpoint=hook, **kwargs)
