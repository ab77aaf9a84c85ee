"""The Parquet results contract (docs/results.md): schemas, an exactly-once writer, a reader.

    from initmem.results import read_results
    runs, epochs = read_results("results/main_grid")        # local folder or URI (s3://, gs://, ...)

Layout under a results root:
    runs/<pack_id>.parquet                    one row per run of the pack, replaced whole
    epochs/<pack_id>/e<first>-<last>.parquet  one row per run per epoch for epochs first..last
    replanned/<pack_id>/                      a pack replaced by smaller packs (set_aside; not read)

Every file is written to a temporary name and renamed, so a reader never sees half a file. A pack
writes the epochs since its last checkpoint, then the checkpoint; on resume from epoch k it calls
`drop_epochs_after(pack_id, k)` so an attempt that died between the two leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import uuid
from typing import Any, Mapping, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from initmem.config import LATER_FIELDS, PARQUET_TYPES, RunConfig
from initmem.layout import EPOCHS_DIR, REPLANNED_DIR, RUNS_DIR, is_final, resolve

_CONFIG_TYPES = {k: pa.type_for_alias(v) for k, v in PARQUET_TYPES.items()}  # one table, in config.py
CONFIG_FIELDS = [(f.name, _CONFIG_TYPES[f.type]) for f in dataclasses.fields(RunConfig)]
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(RunConfig)}

EPOCHS_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("epoch", pa.int32()),
    ("step", pa.int64()),
    ("train_loss", pa.float64()),
    ("train_acc", pa.float64()),
    ("val_loss", pa.float64()),
    ("val_loss_raw", pa.float64()),
    ("val_acc", pa.float64()),
    ("test_loss", pa.float64()),
    ("test_acc", pa.float64()),
    ("lr", pa.float64()),
    ("t_sgd", pa.float64()),
    ("t_l2", pa.float64()),
    ("t_adapt", pa.float64()),
    ("w_norm", pa.float64()),
    ("kernel_norms", pa.list_(pa.float64())),
    ("wall_time", pa.float64()),
])

SUMMARY_FIELDS = [
    ("run_id", pa.string()),
    ("pack_id", pa.string()),
    ("status", pa.string()),
    ("epochs_done", pa.int32()),
    ("diverged_epoch", pa.int32()),
    ("stopped_epoch", pa.int32()),
    ("tau_best", pa.int32()),
    ("tau_interp", pa.int32()),
    ("test_acc", pa.float64()),
    ("test_loss", pa.float64()),
    ("val_acc_best", pa.float64()),
    ("val_loss_best", pa.float64()),
    ("val_acc_interp", pa.float64()),
    ("repair_gap", pa.float64()),
    ("train_acc_final", pa.float64()),
    ("train_acc_best", pa.float64()),
    ("w_norm_init", pa.float64()),
    ("w_norm_best", pa.float64()),
    ("w_norm_final", pa.float64()),
    ("t_sgd", pa.float64()),
    ("t_l2", pa.float64()),
    ("t_adapt", pa.float64()),
    ("n_params", pa.int64()),
    ("wall_time_s", pa.float64()),
    ("initmem_version", pa.string()),
    ("code_version", pa.string()),
    ("code_dirty", pa.bool_()),
    ("data_id", pa.string()),
    ("torch_version", pa.string()),
    ("device_name", pa.string()),
    ("updated_at", pa.string()),
]
RUNS_SCHEMA = pa.schema(SUMMARY_FIELDS[:1] + CONFIG_FIELDS + SUMMARY_FIELDS[1:])


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas as every reader of the contract sees it: int32 columns (epochs, tau_*) can
    be null, so they become pandas' nullable Int32, not float."""
    return table.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype()}.get)


class ResultsError(RuntimeError):
    """The results folder is unreadable or breaks the contract (e.g. a duplicated (run_id, epoch))."""


class ResultsWriter:
    """Writes one experiment's Parquet files; every write is atomic and idempotent per file name."""

    def __init__(self, root: str):
        self.root_uri = root
        self.fs, self.root = resolve(root)
        self.fs.create_dir(self.root, recursive=True)

    def _atomic_write(self, table: pa.Table, path: str) -> None:
        self.fs.create_dir(posixpath.dirname(path), recursive=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        pq.write_table(table, tmp, filesystem=self.fs)
        self.fs.move(tmp, path)  # atomic rename on local disks; object stores have no partial objects

    def write_epochs(self, pack: str, rows: Sequence[Mapping[str, Any]]) -> str | None:
        """Write the epoch rows of one pack since its last write as one file named by epoch range."""
        if not rows:
            return None
        table = pa.Table.from_pylist([dict(r) for r in rows], schema=EPOCHS_SCHEMA)
        first, last = min(r["epoch"] for r in rows), max(r["epoch"] for r in rows)
        path = f"{self.root}/{EPOCHS_DIR}/{pack}/e{first:05d}-{last:05d}.parquet"
        self._atomic_write(table, path)
        return path

    def write_runs(self, pack: str, rows: Sequence[Mapping[str, Any]]) -> str:
        """Replace the runs file of one pack (one row per run)."""
        table = pa.Table.from_pylist([dict(r) for r in rows], schema=RUNS_SCHEMA)
        path = f"{self.root}/{RUNS_DIR}/{pack}.parquet"
        self._atomic_write(table, path)
        return path

    def pack_rows(self, pack: str) -> list[dict[str, Any]]:
        """The runs rows this pack wrote last ([] if none)."""
        path = f"{self.root}/{RUNS_DIR}/{pack}.parquet"
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return []
        return pq.read_table(path, filesystem=self.fs, schema=RUNS_SCHEMA).to_pylist()

    def finished_rows(self, pack: str) -> list[dict[str, Any]]:
        """The runs rows of a pack whose every run has a final status ([] otherwise): such a pack
        is never trained again."""
        rows = self.pack_rows(pack)
        return rows if rows and all(is_final(r["status"]) for r in rows) else []

    def drop_epochs_after(self, pack: str, epoch: int) -> list[str]:
        """Delete this pack's epochs files that start after `epoch` (left by a dead attempt)."""
        folder = f"{self.root}/{EPOCHS_DIR}/{pack}"
        dropped = []
        for info in self._list(folder):
            name = posixpath.basename(info.path)
            if name.endswith(".parquet") and int(name[1:6]) > epoch:
                self.fs.delete_file(info.path)
                dropped.append(info.path)
            elif ".tmp-" in name:
                self.fs.delete_file(info.path)
        return dropped

    def set_aside(self, pack: str) -> list[str]:
        """Move a pack's runs file and epochs files to replanned/<pack>/ (runs.parquet, epochs/...), out of
        what the readers read: for a pack replaced by smaller packs, which recompute its epochs.
        Returns the new paths."""
        dest = f"{self.root}/{REPLANNED_DIR}/{pack}"
        moves = [(f"{self.root}/runs/{pack}.parquet", f"{dest}/runs.parquet")]
        moves += [(i.path, f"{dest}/epochs/{posixpath.basename(i.path)}") for i in self._list(f"{self.root}/epochs/{pack}")]
        moved = []
        for src, dst in moves:
            if self.fs.get_file_info(src).type == pafs.FileType.NotFound:
                continue
            self.fs.create_dir(posixpath.dirname(dst), recursive=True)
            self.fs.move(src, dst)
            moved.append(dst)
        if self.fs.get_file_info(f"{self.root}/epochs/{pack}").type == pafs.FileType.Directory:
            self.fs.delete_dir(f"{self.root}/epochs/{pack}")
        return moved

    def _list(self, folder: str) -> list[pafs.FileInfo]:
        info = self.fs.get_file_info(folder)
        if info.type == pafs.FileType.NotFound:
            return []
        return [i for i in self.fs.get_file_info(pafs.FileSelector(folder, recursive=False))
                if i.type == pafs.FileType.File]


def _read_folder(fs: pafs.FileSystem, folder: str, schema: pa.Schema,
                 filters: list | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    info = fs.get_file_info(folder)
    files = []
    if info.type != pafs.FileType.NotFound:
        files = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(folder, recursive=True))
                       if i.type == pafs.FileType.File and i.path.endswith(".parquet"))
    if not files:
        empty = schema.empty_table()
        if columns:
            empty = empty.select(columns)
        return to_pandas(empty)
    import pyarrow.dataset as ds
    dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=fs)
    expr = pq.filters_to_expression(filters) if filters else None
    return to_pandas(dataset.to_table(columns=columns, filter=expr))


def read_runs(root: str, filters: list | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """The runs table. `filters` use pyarrow's DNF form, e.g. [("optimizer", "==", "sgd")]. Files
    written before a config field existed (config.LATER_FIELDS) read it as its default, the value
    those runs were trained with; other columns they lack read as null (unknown)."""
    fs, path = resolve(root)
    df = _read_folder(fs, f"{path}/{RUNS_DIR}", RUNS_SCHEMA, filters, columns)
    for name in LATER_FIELDS:
        if name in df.columns and df[name].isna().any():
            df[name] = df[name].fillna(_DEFAULTS[name])
    return df


def read_epochs(root: str, filters: list | None = None, columns: list[str] | None = None,
                check_unique: bool = True) -> pd.DataFrame:
    """The epochs table; raises ResultsError if a (run_id, epoch) appears twice."""
    fs, path = resolve(root)
    df = _read_folder(fs, f"{path}/{EPOCHS_DIR}", EPOCHS_SCHEMA, filters, columns)
    if check_unique and {"run_id", "epoch"} <= set(df.columns) and len(df):
        dup = df.duplicated(["run_id", "epoch"])
        if dup.any():
            bad = df.loc[dup, ["run_id", "epoch"]].head(5).to_dict("records")
            raise ResultsError(f"{int(dup.sum())} duplicated (run_id, epoch) rows under {root}, e.g. {bad}")
    return df


def read_results(root: str, filters: list | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, epochs) of one results root. Filters on config columns select runs, and the epochs
    table is restricted to those runs."""
    runs = read_runs(root, filters)
    epochs = read_epochs(root)
    if filters:
        epochs = epochs[epochs["run_id"].isin(runs["run_id"])].reset_index(drop=True)
    return runs, epochs


def completed_run_ids(root: str) -> set[str]:
    """run_ids whose pack has finished (any final status): these are never trained again."""
    runs = read_runs(root, columns=["run_id", "status"])
    return set(runs.loc[runs["status"].map(is_final).astype(bool), "run_id"])

