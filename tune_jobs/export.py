"""python -m tune_jobs export ROOT... --to mlflow|tensorboard: a sweep's storage, in the tracker you watch.

    python -m tune_jobs export results/main_grid_smoke --to mlflow --tracking-uri http://127.0.0.1:5000
    python -m tune_jobs export results/main_grid --to tensorboard --logdir tb --watch 60   # follow a running sweep
    tensorboard --logdir tb          # or: wandb sync --sync-tensorboard tb/main_grid (W&B imports TensorBoard logs)

The storage (the Parquet under ROOT) stays the truth; the export reads it, never the training, so it
never blocks or slows a sweep, and it can start, stop and start again at any time. In both trackers
the experiment is the parent and each run_id a child: its config (every RunConfig field, pack_id,
code_version, data_id) as params, its per-epoch metrics (losses, accuracies, lr, the clocks t_sgd,
t_l2, t_adapt, w_norm, one kernel_norm/NN per kernel, wall_time) with the epoch as step, its status
and summary (test_acc at tau_best, tau_best, ...) as tags (MLflow) or a text card (TensorBoard).

Idempotent, keyed on (run_id, epoch): MLflow children are found by their tag initmem.run_id under
the parent, and each log_batch carries the tag initmem.epochs_exported with its points (one request,
so the tag never runs ahead of the points); TensorBoard reads the steps already in a run's event
files before it appends. Exporting again, or while the sweep runs, adds only epochs not yet there.
Run one exporter per tracker and experiment at a time.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Callable, Iterable

import pandas as pd

from initmem.layout import is_final, planned_runs
from initmem.results import CONFIG_FIELDS, EPOCHS_SCHEMA, read_epochs, read_runs

SCALARS = [n for n in EPOCHS_SCHEMA.names if n not in ("run_id", "epoch", "kernel_norms")]
PARAMS = [name for name, _ in CONFIG_FIELDS] + ["pack_id", "code_version", "code_dirty", "data_id"]
SUMMARY = ["status", "epochs_done", "tau_best", "tau_interp", "test_acc", "test_loss", "val_acc_best",
           "val_loss_best", "train_acc_best", "diverged_epoch", "stopped_epoch", "device_name"]
MLFLOW_BATCH = 1000   # metrics per log_batch request (MLflow's limit); params and tags: 100


def points(epochs: pd.DataFrame) -> dict[str, list[tuple[int, dict[str, float]]]]:
    """run_id -> [(epoch, {metric: value}), ...] in epoch order; NaN and null values are left out
    (a tracker stores numbers; a missing value is no point)."""
    out: dict[str, list[tuple[int, dict[str, float]]]] = {}
    for row in epochs.sort_values(["run_id", "epoch"]).itertuples(index=False):
        values = {n: float(getattr(row, n)) for n in SCALARS if _number(getattr(row, n))}
        norms = row.kernel_norms if row.kernel_norms is not None else []
        values.update({f"kernel_norm/{i:02d}": float(v) for i, v in enumerate(norms) if _number(v)})
        out.setdefault(row.run_id, []).append((int(row.epoch), values))
    return out


def _number(v) -> bool:
    return v is not None and v is not pd.NA and not (isinstance(v, float) and math.isnan(v))


def _text(v) -> str:
    return "" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else str(v)


def experiment_name(root: str) -> str:
    return os.path.basename(root.rstrip("/")) or root


# --- MLflow --------------------------------------------------------------------------------------------

class MlflowSink:
    """The experiment as a parent run, each run_id a nested child (tag mlflow.parentRunId)."""

    def __init__(self, tracking_uri: str | None, mlflow_experiment: str):
        try:
            from mlflow.tracking import MlflowClient
        except ImportError as e:  # the trackers extra
            raise SystemExit(f"--to mlflow needs MLflow: pip install 'initmem[trackers]' ({e})")
        self.client = MlflowClient(tracking_uri=tracking_uri)
        got = self.client.get_experiment_by_name(mlflow_experiment)
        self.exp_id = got.experiment_id if got else self.client.create_experiment(mlflow_experiment)

    def _runs(self, filter_string: str):
        found, token = [], None
        while True:
            page = self.client.search_runs([self.exp_id], filter_string, max_results=5000, page_token=token)
            found += list(page)
            token = page.token
            if not token:
                return found

    def export(self, name: str, root: str, runs: pd.DataFrame, pts: dict, done: bool) -> tuple[int, int]:
        from mlflow.entities import Metric, Param, RunTag
        parents = self._runs(f"tags.`initmem.experiment` = '{name}' and tags.`initmem.role` = 'experiment'")
        if parents:
            parent = parents[0].info.run_id
        else:
            parent = self.client.create_run(self.exp_id, run_name=name, tags={
                "initmem.experiment": name, "initmem.role": "experiment", "initmem.root": root}).info.run_id
        children = {r.data.tags["initmem.run_id"]: r for r in self._runs(f"tags.mlflow.parentRunId = '{parent}'")}
        new_runs = new_points = 0
        for row in runs.itertuples(index=False):
            child = children.get(row.run_id)
            if child is None:
                info = self.client.create_run(self.exp_id, run_name=row.run_id, tags={
                    "mlflow.parentRunId": parent, "initmem.run_id": row.run_id, "initmem.experiment": name}).info
                run_id, tags, new_runs = info.run_id, {}, new_runs + 1
            else:
                run_id, tags = child.info.run_id, child.data.tags
            if tags.get("initmem.params") != "logged":
                params = [Param(p, _text(getattr(row, p))[:6000]) for p in PARAMS]
                for i in range(0, len(params), 100):
                    last = i + 100 >= len(params)
                    self.client.log_batch(run_id, params=params[i:i + 100],
                                          tags=[RunTag("initmem.params", "logged")] if last else [])
            have = int(tags.get("initmem.epochs_exported", -1))
            todo = [(e, v) for e, v in pts.get(row.run_id, []) if e > have]
            batch: list = []
            for k, (epoch, values) in enumerate(todo):
                batch += [Metric(m, v, 0, epoch) for m, v in values.items()]
                nxt = len(todo[k + 1][1]) if k + 1 < len(todo) else 0
                if k + 1 == len(todo) or len(batch) + nxt > MLFLOW_BATCH:
                    self.client.log_batch(run_id, metrics=batch, tags=[RunTag("initmem.epochs_exported", str(epoch))])
                    new_points, batch = new_points + len(batch), []
            summary = [RunTag(f"initmem.{s}", _text(getattr(row, s))) for s in SUMMARY]
            self.client.log_batch(run_id, tags=summary)
            if is_final(row.status) and (child is None or child.info.status != "FINISHED"):
                self.client.set_terminated(run_id, "FINISHED")
        if done:
            self.client.set_terminated(parent, "FINISHED")
        return new_runs, new_points


# --- TensorBoard -----------------------------------------------------------------------------------------

class TensorBoardSink:
    """LOGDIR/<experiment>/<run_id>/: one TensorBoard run per run_id, grouped under the experiment."""

    def __init__(self, logdir: str):
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (needs the tensorboard package)
        except ImportError as e:
            raise SystemExit(f"--to tensorboard needs TensorBoard: pip install 'initmem[trackers]' ({e})")
        self.logdir = logdir
        self.have: dict[str, set[int]] = {}  # run dir -> epochs written: each run's event files are read once

    @staticmethod
    def steps(run_dir: str) -> set[int]:
        """The epochs already in a run's event files (read with TensorBoard's own loader)."""
        if not os.path.isdir(run_dir):
            return set()
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        acc = EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        tags = acc.Tags()
        if "val_loss" in tags.get("scalars", []):
            return {e.step for e in acc.Scalars("val_loss")}
        return {e.step for e in acc.Tensors("val_loss")} if "val_loss" in tags.get("tensors", []) else set()

    def export(self, name: str, root: str, runs: pd.DataFrame, pts: dict, done: bool) -> tuple[int, int]:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams
        new_runs = new_points = 0
        for row in runs.itertuples(index=False):
            run_dir = os.path.join(self.logdir, name, row.run_id)
            fresh = not os.path.isdir(run_dir)
            if run_dir not in self.have:   # a later --watch refresh knows what it wrote
                self.have[run_dir] = set() if fresh else self.steps(run_dir)
            have = self.have[run_dir]
            todo = [(e, v) for e, v in pts.get(row.run_id, []) if e not in have]
            if not todo and not fresh:
                continue
            with SummaryWriter(log_dir=run_dir) as w:
                if fresh:
                    config = {p: _hparam(getattr(row, p)) for p in PARAMS}
                    for summary in hparams(config, {"test_acc": 0.0, "val_loss": 0.0}):
                        w.file_writer.add_summary(summary)
                    w.add_text("config", "\n".join(f"    {p} = {_text(getattr(row, p))}" for p in PARAMS), 0)
                    new_runs += 1
                for epoch, values in todo:
                    for m, v in values.items():
                        w.add_scalar(m, v, epoch)
                    new_points += len(values)
                    have.add(epoch)
                if is_final(row.status):
                    w.add_text("summary", "\n".join(f"    {s} = {_text(getattr(row, s))}" for s in SUMMARY),
                               int(row.epochs_done or 0))
        return new_runs, new_points


def _hparam(v):
    """TensorBoard's hparams take bool, int, float or str."""
    if isinstance(v, (bool, int, float, str)):
        return v
    return _text(v)


# --- the command -----------------------------------------------------------------------------------------

def export_once(roots: Iterable[str], sink, out: Callable[[str], None] = print) -> bool:
    """Every root once; True when every planned run of every root has a final status."""
    all_done = True
    for root in roots:
        runs = read_runs(root)
        name = experiment_name(root)
        if runs.empty:
            out(f"export      {name}: no runs yet under {root}")
            all_done = False
            continue
        pts = points(read_epochs(root))
        planned = planned_runs(root)
        final = sum(is_final(s) for s in runs["status"])
        done = final == (planned if planned is not None else len(runs))
        new_runs, new_points = sink.export(name, root, runs, pts, done)
        out(f"export      {name}: {len(runs)} runs ({final} final), {new_runs} new runs, {new_points} new points")
        all_done &= done
    return all_done


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tune_jobs export",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("roots", nargs="+", metavar="ROOT", help="an experiment's results root (local or URI)")
    p.add_argument("--to", required=True, choices=["mlflow", "tensorboard"], help="the tracker")
    p.add_argument("--tracking-uri", default=None, help="MLflow: the tracking server or store "
                   "(default: $MLFLOW_TRACKING_URI, else MLflow's local ./mlruns)")
    p.add_argument("--mlflow-experiment", default="initmem", help="MLflow: the MLflow experiment holding the "
                   "parent runs (default: initmem)")
    p.add_argument("--logdir", default="tensorboard", help="TensorBoard: the log folder (default: ./tensorboard)")
    p.add_argument("--watch", type=float, default=None, metavar="SECONDS",
                   help="export again every SECONDS until every planned run is final (Ctrl-C stops)")
    args = p.parse_args(argv)
    if args.watch is not None and not args.watch > 0:
        p.error(f"--watch: {args.watch} is not allowed: a number of seconds > 0")
    missing = [r for r in args.roots if "://" not in r and not os.path.isdir(r)]
    if missing:
        p.error(f"ROOT: {missing[0]!r} is not a folder: give an experiment's results root, "
                "e.g. results/main_grid_smoke")
    sink = MlflowSink(args.tracking_uri, args.mlflow_experiment) if args.to == "mlflow" \
        else TensorBoardSink(args.logdir)
    try:
        while True:
            done = export_once(args.roots, sink)
            if args.watch is None or done:
                return 0
            time.sleep(args.watch)
    except KeyboardInterrupt:
        print("export      stopped (run it again to go on: nothing is exported twice)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
