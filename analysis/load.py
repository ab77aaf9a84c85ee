"""Parquet results -> the two DataFrames every analysis function takes (the I/O edge of analysis/).

    python -m analysis.load RESULTS [RESULTS ...]        # print what is there: runs per experiment/status

    from analysis.load import load
    runs, epochs = load("results/main_grid")                           # local folder or URI
    runs, epochs = load(["results/main_grid", "results/lr_l2"],        # several experiments at once
                        filters=[("optimizer", "in", ["sgd", "adam"])])

`runs` is the contract's runs table (docs/results.md) plus two integer keys:
    run        row number of the run in `runs` (0..n-1): the join key of `epochs`
    procedure  id of the run's procedure: every config column except sigma_w, seed and the
               execution fields (device, channels_last, compile); `experiment` is kept, so the
               same recipe measured in two experiments (on two sigma grids) is two procedures.
`epochs` is the contract's epochs table without `kernel_norms` (ask for it with
`epoch_columns=`), plus the integer `run`. A diverged run's rows from its `diverged_epoch` on
are dropped here, once for every consumer (tables, figures, beta(t)): that row holds the non-finite
loss and accuracies computed from frozen weights and possibly corrupted norm statistics; the
trainer's summaries already leave it out. It was joined to `runs` on run_id per results root,
so two roots holding the same run_id stay apart. Config columns are put onto epoch rows with
`attach(epochs, runs, columns)`, a positional take (no hash join over millions of rows).

A path that holds no results raises NoResults with require_results=True (load_or_exit, used by
every command line, which then exits with status 2 before writing anything). `progress(roots)` says how far each root's sweep is: finished runs, the
planned total from the runner's plan.json (None when there is none, e.g. `python -m initmem
train` output) and the status counts.

Accuracies stay fractions here; tables and figures convert to percentage points.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from initmem.config import RunConfig
from initmem.layout import EPOCHS_DIR, RUNS_DIR, is_final, planned_runs, read_plan, resolve
from initmem.results import EPOCHS_SCHEMA, ResultsError, read_epochs, read_runs
from initmem.registry import parse_with_plugins

CONFIG_COLUMNS = [f.name for f in dataclasses.fields(RunConfig)]
# Not part of a procedure: the two swept axes, and where/how fast a run was computed.
NOT_PROCEDURE = ("sigma_w", "seed", "device", "channels_last", "compile")
PROCEDURE_COLUMNS = [c for c in CONFIG_COLUMNS if c not in NOT_PROCEDURE]
# Every epochs column but the per-kernel list (about half the bytes, unused by the report).
DEFAULT_EPOCH_COLUMNS = [f.name for f in EPOCHS_SCHEMA if f.name != "kernel_norms"]


class NoResults(ResultsError):
    """A results root holds no runs/ or epochs/ Parquet (a typo, or the wrong folder)."""


def _parquet_files(fs, folder: str) -> int:
    import pyarrow.fs as pafs
    if fs.get_file_info(folder).type == pafs.FileType.NotFound:
        return 0
    return sum(1 for i in fs.get_file_info(pafs.FileSelector(folder, recursive=True))
               if i.type == pafs.FileType.File and i.path.endswith(".parquet"))


def check_roots(roots: str | Sequence[str]) -> None:
    """Raise NoResults naming every root that holds no results (before anything is computed)."""
    roots = [roots] if isinstance(roots, str) else list(roots)
    bad = []
    for root in roots:
        try:
            fs, path = resolve(root)
            n = _parquet_files(fs, f"{path}/{RUNS_DIR}") + _parquet_files(fs, f"{path}/{EPOCHS_DIR}")
        except Exception as e:  # noqa: BLE001 - an unreachable URI is a root without results
            bad.append(f"{root} ({e})")
            continue
        if n == 0:
            bad.append(root)
    if bad:
        raise NoResults(f"no results under {', '.join(bad)}: expected a results root holding runs/ and epochs/ "
                        f"Parquet folders (docs/results.md), e.g. <storage>/<experiment> of a sweep or the --out "
                        f"folder of `python -m initmem train`")


def progress(roots: str | Sequence[str], runs: pd.DataFrame | None = None) -> list[dict]:
    """Per root: root, finished (runs with a final status), planned (None without plan.json),
    preset (plan.json's "preset": full, smoke, mini, ...; None without plan.json), status counts.
    `runs` (from load) saves reading the runs tables again."""
    roots = [roots] if isinstance(roots, str) else list(roots)
    out = []
    for i, root in enumerate(roots):
        r = runs[runs["root"] == i] if runs is not None and "root" in runs else read_runs(root, columns=["status"])
        counts = {k: int(v) for k, v in r["status"].value_counts().sort_index().items()}
        out.append({"root": root, "finished": int(is_finished(r).sum()), "planned": planned_runs(root),
                    "preset": _preset(root), "status": counts})
    return out


def _preset(root: str) -> str | None:
    """plan.json's preset, or None where there is no (readable) plan.json."""
    try:
        plan = read_plan(root)
    except (OSError, ValueError):
        return None
    return plan.get("preset") if plan else None


def is_finished(runs: pd.DataFrame) -> np.ndarray:
    """Per run, whether its status is final (initmem.layout.is_final): runs still running are left
    out of every table, figure and check (their summaries are not there yet)."""
    return runs["status"].map(is_final).to_numpy(dtype=bool) if len(runs) else np.zeros(0, dtype=bool)


def finished(runs: pd.DataFrame, epochs: pd.DataFrame | None = None):
    """`runs` without the runs still running (and `epochs` without their rows, when given)."""
    keep = is_finished(runs)
    if keep.all():
        return runs if epochs is None else (runs, epochs)
    runs = runs[keep].reset_index(drop=True)
    if epochs is None:
        return runs
    return runs, epochs[epochs["run"].isin(runs["run"])].reset_index(drop=True)


def drop_diverged(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """`epochs` without the rows of diverged runs from their diverged_epoch on."""
    if "diverged_epoch" not in runs or not len(epochs):
        return epochs
    de = runs["diverged_epoch"].astype("float64").to_numpy(na_value=np.nan)
    if not np.isfinite(de).any():
        return epochs
    keys = runs["run"].to_numpy(np.int64)
    er = epochs["run"].to_numpy(np.int64)
    first_bad = np.full(max(int(keys.max()), int(er.max())) + 1, np.inf)
    first_bad[keys] = np.where(np.isfinite(de), de, np.inf)
    keep = epochs["epoch"].to_numpy(np.int64) < first_bad[er]
    return epochs if keep.all() else epochs.loc[keep].reset_index(drop=True)


def procedure_columns(df: pd.DataFrame) -> list[str]:
    """The procedure columns present in `df`, in RunConfig order."""
    return [c for c in PROCEDURE_COLUMNS if c in df.columns]


def add_procedure(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with an integer `procedure` column (ids in sorted order of the procedure columns)."""
    cols = procedure_columns(runs)
    out = runs.copy()
    if len(out) == 0:
        out["procedure"] = pd.Series([], dtype=np.int64)
        return out
    out["procedure"] = out.groupby(cols, sort=True, dropna=False).ngroup().to_numpy(np.int64)
    return out


def procedures(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per procedure: `procedure` and its config columns (needs add_procedure first)."""
    cols = ["procedure"] + procedure_columns(runs)
    return runs[cols].drop_duplicates("procedure").sort_values("procedure").reset_index(drop=True)


def attach(epochs: pd.DataFrame, runs: pd.DataFrame, columns: Iterable[str]) -> pd.DataFrame:
    """`epochs` with run-level `columns` (config, procedure, summaries) added by the `run` key:
    an array lookup, not a hash join (subsets of runs and epochs from load() are fine)."""
    out = epochs.copy()
    keys = runs["run"].to_numpy(np.int64)
    pos = np.full(int(keys.max()) + 1 if len(keys) else 0, -1, dtype=np.int64)
    pos[keys] = np.arange(len(keys))
    er = epochs["run"].to_numpy(np.int64)
    idx = pos[er] if len(pos) and (er.max(initial=-1) < len(pos)) else np.full(len(er), -1)
    if len(idx) and (idx < 0).any():
        raise ValueError(f"{int((idx < 0).sum())} epoch rows belong to runs that are not in `runs`")
    for c in columns:
        col = runs[c]
        out[c] = col.to_numpy()[idx] if not isinstance(col.dtype, pd.CategoricalDtype) \
            else pd.Categorical.from_codes(col.cat.codes.to_numpy()[idx], dtype=col.dtype)
    return out


def _one_root(root: str, filters, epoch_columns: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = read_runs(root, filters)
    cols = list(dict.fromkeys(["run_id", "epoch", *epoch_columns]))
    efilt = None
    if filters:
        ids = runs["run_id"].tolist()
        efilt = [("run_id", "in", ids)] if ids else [("run_id", "==", "")]
    # uniqueness is checked below on integer keys (cheaper than the reader's check on strings)
    epochs = read_epochs(root, filters=efilt, columns=cols, check_unique=False)
    return runs, epochs


def _run_index(epoch_ids: pd.Series, run_ids: pd.Series) -> np.ndarray:
    """Position of each epoch row's run_id in `run_ids` (-1 if absent): an Arrow hash lookup."""
    arr = pa.array(epoch_ids.to_numpy(dtype=object)) if not hasattr(epoch_ids.array, "_pa_array") \
        else epoch_ids.array._pa_array
    pos = pc.index_in(arr, value_set=pa.array(run_ids.astype(object).tolist(), type=pa.string()))
    return pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def load(roots: str | Sequence[str], filters: list | None = None,
         epoch_columns: Sequence[str] = DEFAULT_EPOCH_COLUMNS,
         require_results: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read one or more results roots -> (runs, epochs) with `run` and `procedure` keys.

    `filters` are pyarrow DNF filters on runs columns, e.g. [("experiment", "==", "main_grid")];
    the epochs are restricted to the selected runs. Epoch rows of run_ids missing from the runs
    table (a pack that wrote epochs but no runs file yet) are dropped. Raises ResultsError if a
    (run_id, epoch) appears twice in one root; with require_results, NoResults if a root holds
    no results (before any reading; the command lines use load_or_exit, which requires them; a
    library caller gets empty frames for an empty root). Diverged runs lose their rows from diverged_epoch on (drop_diverged). `runs.root`
    is the position of the run's root in `roots`.
    """
    roots = [roots] if isinstance(roots, str) else list(roots)
    if require_results:
        check_roots(roots)
    all_runs, all_epochs, offsets = [], [], [0]
    for i_root, root in enumerate(roots):
        runs, epochs = _one_root(root, filters, epoch_columns)
        runs = runs.reset_index(drop=True)
        if runs["run_id"].duplicated().any():
            dup = runs.loc[runs["run_id"].duplicated(), "run_id"].head(5).tolist()
            raise ResultsError(f"run_id appears twice in the runs table of {root}: {dup}")
        runs["run"] = np.arange(offsets[-1], offsets[-1] + len(runs), dtype=np.int64)
        runs["root"] = np.int16(i_root)
        pos = _run_index(epochs["run_id"], runs["run_id"]) if len(epochs) else np.zeros(0, np.int64)
        keep = pos >= 0
        if not keep.all():
            epochs = epochs.loc[keep].reset_index(drop=True)
            pos = pos[keep]
        epochs["run"] = pos + offsets[-1]
        epochs["epoch"] = epochs["epoch"].to_numpy(np.int32)  # never null: plain int32, not Int32
        all_runs.append(runs)
        all_epochs.append(epochs)
        offsets.append(offsets[-1] + len(runs))
    runs = pd.concat(all_runs, ignore_index=True) if len(all_runs) > 1 else all_runs[0]
    epochs = pd.concat(all_epochs, ignore_index=True) if len(all_epochs) > 1 else all_epochs[0]
    runs = add_procedure(runs)
    # one sort by (run, epoch) both orders the rows and finds duplicates (adjacent equal keys);
    # `run` is unique across roots, so a duplicate lies within one root
    run, epoch = epochs["run"].to_numpy(), epochs["epoch"].to_numpy(np.int64)
    order = np.lexsort((epoch, run))
    run, epoch = run[order], epoch[order]
    dup = np.flatnonzero((run[1:] == run[:-1]) & (epoch[1:] == epoch[:-1]))
    if dup.size:
        root = roots[np.searchsorted(offsets, run[dup[0]], side="right") - 1]
        raise ResultsError(f"{dup.size} duplicated (run_id, epoch) rows under {root}")
    if not (order == np.arange(len(order))).all():
        epochs = epochs.take(order).reset_index(drop=True)
    return runs, drop_diverged(runs, epochs)


def load_or_exit(roots: str | Sequence[str], **kw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """load() for command lines: a root without results prints the reason and exits with status 2."""
    try:
        return load(roots, require_results=True, **kw)
    except NoResults as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m analysis.load", description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", help="results root(s): local folder or URI")
    args = parse_with_plugins(ap, argv)
    runs, epochs = load_or_exit(args.roots)
    print(f"{len(runs)} runs, {len(epochs)} epoch rows, {runs['procedure'].nunique()} procedures")
    if len(runs):
        print(runs.groupby(["experiment", "status"]).size().rename("runs").to_string())


if __name__ == "__main__":
    main()
