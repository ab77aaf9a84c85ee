"""The results-root layout: where a sweep keeps its plan, its Parquet, its Tune state; run statuses.

    python -m tune_jobs status results/main_grid_smoke     # reads this layout, nothing else

    from initmem.layout import experiment_root, read_plan, tune_dir
    root = experiment_root("results", "main_grid_smoke")     # resolved once: an absolute path or a URI
    read_plan(root)["packs"]                                 # the packs of the first invocation

One experiment of a sweep lives in one folder, its *results root* (docs/results.md):

    <storage>/<experiment>/runs/<pack_id>.parquet           one row per run (initmem.results)
    <storage>/<experiment>/epochs/<pack_id>/e*-*.parquet    one row per run per epoch
    <storage>/<experiment>/plan.json                        the packs of the first invocation
    <storage>/<experiment>/tune/                            Ray Tune's experiment (state, checkpoints)
    <storage>/<experiment>/replanned/<pack_id>/             a pack's files set aside when it was split

`<experiment>` is the experiment's name for its full preset and `<name>_<preset>` for the others
(initmem.study.Experiment.label), so presets never mix. `python -m initmem train --out ROOT`
writes runs/ and epochs/ only. Every floor (the trainer, the sweeps, status, the analysis) reads
these names from here; none of them spells a folder name of its own.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any, Sequence

import pyarrow.fs as pafs

from initmem.config import RunConfig

RUNS_DIR = "runs"
EPOCHS_DIR = "epochs"
PLAN_FILE = "plan.json"
TUNE_DIR = "tune"
REPORT_FILE = "report.html"
REPLANNED_DIR = "replanned"  # the files of packs replaced by smaller ones after running out of memory (not read)

# A run's status in the runs table: running until its pack ends it; the others are final.
STATUSES = ("running", "completed", "early_stopped", "diverged")
FINAL_STATUSES = ("completed", "early_stopped", "diverged")


def is_final(status: str | None) -> bool:
    """A run with a final status is never trained again (its pack finished it)."""
    return status in FINAL_STATUSES


def resolve(root: str) -> tuple[pafs.FileSystem, str]:
    """A results root (local path or URI) -> (pyarrow filesystem, path inside it)."""
    if "://" in root:
        return pafs.FileSystem.from_uri(root)
    return pafs.LocalFileSystem(), os.path.abspath(root)


def experiment_root(storage: str, label: str) -> str:
    """The results root of one experiment under a storage, resolved once: a URI stays a URI (without
    a trailing slash), a local path becomes absolute (~ expanded). Everything of the sweep sits in it."""
    if "://" in storage:
        return storage.rstrip("/") + "/" + label
    return os.path.join(os.path.abspath(os.path.expanduser(storage)), label)


def join(root: str, *parts: str) -> str:
    """A path under a root, for local roots and URIs alike (both use '/')."""
    return posixpath.join(root, *parts)


def tune_dir(root: str) -> str:
    """Ray Tune's experiment folder of a sweep."""
    return join(root, TUNE_DIR)


def write_text(uri: str, text: str) -> None:
    """Write a small text file atomically (temporary name, then rename) on any pyarrow filesystem."""
    fs, path = resolve(uri)
    tmp = f"{path}.tmp-{os.getpid()}"
    with fs.open_output_stream(tmp) as f:
        f.write(text.encode())
    fs.move(tmp, path)


def write_plan(root: str, experiment: str, preset: str, description: str,
               packs: Sequence[Sequence[dict[str, Any]]], replaced: dict[str, list[str]] | None = None) -> None:
    """<root>/plan.json: the experiment label, its preset and description, the packs as lists of
    RunConfig dicts, and the packs replaced by smaller ones (old pack id -> new ids; docs/results.md)."""
    write_text(join(root, PLAN_FILE), json.dumps({
        "experiment": experiment, "preset": preset, "description": description,
        "packs": [[dict(r) for r in p] for p in packs], "replaced": dict(replaced or {})}))


def read_plan(root: str) -> dict | None:
    """<root>/plan.json as write_plan stored it, or None where there is none. The one reader of the
    file (the runner, status, the analysis)."""
    fs, path = resolve(root)
    plan_path = posixpath.join(path, PLAN_FILE)
    if fs.get_file_info(plan_path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(plan_path) as f:
        return json.loads(f.read().decode())


def plan_packs(stored: dict) -> list[list[RunConfig]]:
    """The packs of a stored plan as RunConfigs."""
    return [[RunConfig.from_dict(d) for d in p] for p in stored["packs"]]


def planned_runs(root: str) -> int | None:
    """How many runs the sweep writing `root` planned (its plan.json), or None without one."""
    try:
        plan = read_plan(root)
    except (OSError, ValueError):
        return None
    return sum(len(p) for p in plan.get("packs", [])) if plan is not None else None
