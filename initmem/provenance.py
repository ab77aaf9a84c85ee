"""What produced a result: the code's version (git commit, dirty or not) and the data's content id.

    python -m tune_jobs status results/main_grid_smoke     # lists the code versions and data ids per experiment

    from initmem.provenance import code_version, data_id
    code_version()          # ("3f2a9c1d0e4b", False): the checkout's commit and whether it has local changes
    data_id("../shared/data/cifar10-jpeg75.npz")   # "sha256:5d1c...": the file's content hash (16 hex)

Every runs row records code_version, code_dirty and data_id (docs/results.md), taken at the pack's
start. code_version is the git commit of the checkout initmem is imported from (12 hex), or
"initmem <version>" when it is installed without git; code_dirty says whether that checkout had
uncommitted changes to tracked files (None without git). data_id is a content hash of what the run
read: the .npz file, or every file under the dataset's folder (names and bytes), or
"synthetic:<seed>" for a set built in memory. Hashes are cached per process by (path, size, mtime).
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from pathlib import Path

import initmem

PACKAGE_DIR = Path(initmem.__file__).resolve().parent


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(PACKAGE_DIR.parent), *args], capture_output=True, text=True,
                             timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def code_version() -> tuple[str, bool | None]:
    """(version, dirty) of the code this process runs (see the module docstring)."""
    top = _git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != PACKAGE_DIR.parent:
        return f"initmem {initmem.__version__}", None   # installed from a wheel/sdist, or git not there
    commit = _git("rev-parse", "--short=12", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return (commit or f"initmem {initmem.__version__}"), (bool(status) if status is not None else None)


def _hash_files(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p.relative_to(root)).encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return "sha256:" + h.hexdigest()[:16]


_CACHE: dict[tuple, str] = {}


def data_id(path: str | os.PathLike | None, synthetic_seed: int | None = None) -> str:
    """The content id of a data source: a file's hash, a folder's (every file, sorted by name), or
    synthetic:<seed> (path None)."""
    if path is None:
        return f"synthetic:{synthetic_seed or 0}"
    p = Path(path).expanduser().resolve()
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    key = (str(p), tuple((str(q), q.stat().st_size, q.stat().st_mtime_ns) for q in files))
    if key not in _CACHE:
        _CACHE[key] = _hash_files(files, p.parent if p.is_file() else p)
    return _CACHE[key]


def differences(rows, code: str, dirty: bool | None, data: str) -> list[str]:
    """What differs between existing runs rows (dicts or a DataFrame's records with code_version,
    code_dirty, data_id) and the code and data a new attempt would use: one sentence each, naming
    both sides; rows written before these columns existed (None) are not compared. Uncommitted
    changes on either side count as a difference: the same commit may then be different code."""
    have_code = sorted({r.get("code_version") for r in rows if r.get("code_version") is not None})
    have_data = sorted({r.get("data_id") for r in rows if r.get("data_id") is not None})
    dirty_before = any(bool(r.get("code_dirty")) for r in rows if r.get("code_dirty") is not None)
    out = []
    if have_code and (have_code != [code] or dirty or dirty_before):
        now = code + (" with uncommitted changes" if dirty else "")
        out.append(f"code: the results were written by {', '.join(have_code)}"
                   f"{' (with uncommitted changes)' if dirty_before else ''}; this run is {now}")
    if have_data and have_data != [data]:
        out.append(f"data: the results read {', '.join(have_data)}; this run reads {data}")
    return out
