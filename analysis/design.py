"""What was run beside what the paper ran: sigma_w set, seeds and sizes, per claim and per experiment.

    python -m analysis.findings RESULTS [RESULTS ...]      # prints the study's design above the findings
    python -m analysis.paper_check RESULTS [RESULTS ...]   # its "not comparable" verdicts come from here

    from analysis.design import paper_design, measured_design, differences, study_table, banner
    paper = paper_design("main_grid", {"optimizer": "sgd", "batch_size": 128})   # 25 sigmas, 10 seeds, sizes
    differences(measured_design(runs_of_one_procedure), paper)   # [] or ["5 of 25 sigmas", "3 of 10 seeds"]
    banner(study_table(runs, presets))   # "" at the paper's design, else what this study is and that its
                                         # numbers are not the paper's scale

The paper's design is the catalogue's full preset (initmem.study.EXPERIMENTS[name].presets["full"]),
read from its grids (no runs are built): the sigma_w values, the number of seeds, and the sizes
SIZE_FIELDS (dataset, width, train_subset, eval_subset, epochs) of the grids that hold a selection.
A measurement is comparable with the paper's number when it was made on the same sigma_w set,
with at least the paper's number of seeds in every sigma_w cell (more seeds estimate the same
quantity with less noise), and with the paper's sizes. Anything else (a smoke or mini preset, a
cut grid) measures a different quantity: its verdict is "not comparable (measured on ...)".
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from initmem.config import RunConfig
from initmem.study import EXPERIMENTS, Grid

SIZE_FIELDS = ("dataset", "width", "train_subset", "eval_subset", "epochs")  # what makes a study the paper's scale
_DEFAULT = RunConfig()


def _same(a, b) -> bool:
    """The selection rule of analysis.paper_check: isclose for floats, == otherwise."""
    if isinstance(a, float) or isinstance(b, float):
        try:
            return bool(np.isclose(float(a), float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


def _values(g: Grid, field: str) -> tuple:
    return tuple(g.axes[field]) if field in g.axes else (g.fixed.get(field, getattr(_DEFAULT, field)),)


@functools.lru_cache(maxsize=None)
def _paper_design(experiment: str, select: tuple) -> dict | None:
    if experiment not in EXPERIMENTS or "full" not in EXPERIMENTS[experiment].presets:
        return None
    grids = [g for g in EXPERIMENTS[experiment].presets["full"]
             if all(any(_same(x, v) for x in _values(g, k)) for k, v in select)]
    if not grids:
        return None
    sig = sorted({float(s) for g in grids for s in _values(g, "sigma_w")})
    return {"sigmas": tuple(sig), "seeds": max(len(_values(g, "seed")) for g in grids),
            "sizes": {f: tuple(sorted({v for g in grids for v in _values(g, f)}, key=str)) for f in SIZE_FIELDS}}


def paper_design(experiment: str, select: Mapping[str, object] | None = None) -> dict | None:
    """The paper's design of the runs of `experiment` that match `select` (config field -> value):
    sigmas (sorted tuple), seeds (how many per cell), sizes {field: the values the paper used}.
    None for an experiment outside the catalogue or a selection none of its grids holds."""
    return _paper_design(experiment, tuple(sorted((select or {}).items())))


def measured_design(runs: pd.DataFrame) -> dict:
    """The same description of some runs: their sigma_w set, the fewest seeds in a (procedure,
    sigma_w) cell, and the values of each size field."""
    sig = tuple(sorted({round(float(s), 9) for s in runs["sigma_w"]}))
    keys = [c for c in ("procedure", "sigma_w") if c in runs]
    seeds = int(runs.groupby(keys)["seed"].nunique().min()) if len(runs) and "seed" in runs else 0
    sizes = {f: tuple(sorted(set(runs[f].tolist()), key=str)) for f in SIZE_FIELDS if f in runs}
    return {"sigmas": sig, "seeds": seeds, "sizes": sizes}


def _size(field: str, v) -> str:
    if field in ("train_subset", "eval_subset") and v == 0:
        return "all"
    return f"{v:g}" if isinstance(v, float) else f"{v:,}" if isinstance(v, (int, np.integer)) else str(v)


def differences(measured: dict, paper: dict, sigma_set: bool = True) -> list[str]:
    """How a measurement's design departs from the paper's ([] when comparable): "5 of 25 sigmas",
    "3 of 10 seeds", "width 0.125 (paper 1)". `sigma_set` False skips the sigma set (a value
    measured at one sigma_w, such as an accuracy, does not depend on the others)."""
    out = []
    if sigma_set:
        ps, ms = np.asarray(paper["sigmas"]), np.asarray(measured["sigmas"])
        inside = int(sum(np.isclose(ps, s).any() for s in ms))
        extra = len(ms) - inside
        if inside != len(ps) or extra:
            out.append(f"{inside} of {len(ps)} sigmas" + (f" (+{extra} outside the paper's set)" if extra else ""))
    if measured["seeds"] < paper["seeds"]:
        out.append(f"{measured['seeds']} of {paper['seeds']} seeds")
    for f in SIZE_FIELDS:
        mv, pv = measured["sizes"].get(f), paper["sizes"].get(f)
        if mv is None or pv is None:
            continue
        if not all(any(_same(m, p) for p in pv) for m in mv):
            out.append(f"{f} {'/'.join(_size(f, m) for m in mv)} (paper {'/'.join(_size(f, p) for p in pv)})")
    return out


def not_comparable(diffs: Sequence[str]) -> str:
    """The verdict of a measurement whose design is not the paper's."""
    return "not comparable (measured on " + ", ".join(diffs) + ")"


# ----------------------------------------------------------------------------- the study as a whole
def presets_of(runs: pd.DataFrame, progress: Sequence[dict] | None) -> dict[str, str]:
    """experiment -> the preset(s) its roots' plan.json name ("mini", "smoke", "full"), from
    analysis.load.progress; "unknown" where a root has no plan.json."""
    if not progress or "root" not in runs:
        return {}
    out: dict[str, set] = {}
    for i, p in enumerate(progress):
        for e in runs.loc[runs["root"] == i, "experiment"].unique():
            out.setdefault(e, set()).add(p.get("preset") or "unknown (no plan.json)")
    return {e: "/".join(sorted(v)) for e, v in out.items()}


def study_table(runs: pd.DataFrame, presets: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per experiment: preset, runs, sigmas, seeds (fewest per cell), batch sizes, the size
    fields, and how the design departs from the paper's full preset ('' when it does not)."""
    rows = []
    for exp, r in runs.groupby("experiment", sort=False):
        m = measured_design(r)
        paper = paper_design(exp)
        diffs = differences(m, paper) if paper is not None else ["not a catalogue experiment"]
        rows.append({"experiment": exp, "preset": (presets or {}).get(exp, "unknown"), "runs": len(r),
                     "sigmas": ", ".join(f"{s:g}" for s in m["sigmas"]), "seeds": m["seeds"],
                     "batch sizes": ", ".join(str(b) for b in sorted(r["batch_size"].unique()))
                     if "batch_size" in r else "",
                     **{f: "/".join(_size(f, v) for v in m["sizes"].get(f, ())) for f in SIZE_FIELDS},
                     "departs from the paper": ", ".join(diffs)})
    return pd.DataFrame(rows)


def banner(table: pd.DataFrame) -> str:
    """'' when every experiment is at the paper's design; else one sentence per experiment saying
    what it is, and that its numbers are not the paper's scale."""
    off = table[table["departs from the paper"] != ""] if len(table) else table
    if not len(off):
        return ""
    parts = [f"{r['experiment']} (preset {r['preset']}; {r['runs']} runs): {r['departs from the paper']}"
             for _, r in off.iterrows()]
    return ("Not the paper's scale. " + "; ".join(parts) + ". Its numbers are not the paper's: the paper check "
            "marks each claim measured on another design 'not comparable'; the findings test the paper's "
            "qualitative claims on this design, with intervals from its own seeds.")
