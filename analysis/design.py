"""What was run beside what the paper ran: sigma_w set, seeds and sizes, per claim and per experiment.

    python -m analysis.findings RESULTS [RESULTS ...]      # prints the study's design above the findings
    python -m analysis.paper_check RESULTS [RESULTS ...]   # its "not comparable" verdicts come from here

    from analysis.design import paper_design, measured_design, differences, study_table, banner
    paper = paper_design("main_grid", {"optimizer": "sgd", "batch_size": 128})   # 25 sigmas, 10 seeds, sizes
    differences(measured_design(runs_of_one_procedure), paper)   # [] or ["5 of 25 sigmas", "3 of 10 seeds", ...]
    banner(study_table(runs, presets))   # "" at the paper's design, else what this study is and that its
                                         # numbers are not the paper's scale

The paper's design is the catalogue's full preset (initmem.study.EXPERIMENTS[name].presets["full"],
its RunConfigs built once per experiment, defaults resolved): the sigma_w values, the number of
seeds per cell, and the values of every other config field (COMPARED: the sizes SIZE_FIELDS first,
then lr0, schedule, arch, ... and any field added to RunConfig; not the execution fields) of the
runs that match a selection. A measurement is comparable with the paper's number when it was made
on the same sigma_w set, with at least the paper's number of seeds in every sigma_w cell (more seeds
estimate the same quantity with less noise), and with field values the paper used. Anything else (a
smoke or mini preset, a cut grid, another lr0) measures a different quantity: its verdict is "not
comparable (measured on 5 of 25 sigmas, 3 of 10 seeds, width 0.125 (paper 1))".
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from initmem.config import RunConfig
from initmem.study import EXPERIMENTS

SIZE_FIELDS = ("dataset", "width", "train_subset", "eval_subset", "epochs")  # what makes a study the paper's scale
# Not part of the comparison: the experiment's name, the two swept axes (compared as a set and a
# count), and how a run was computed (SPEC Section 3: statistics over seeds compare across devices).
NOT_COMPARED = ("experiment", "sigma_w", "seed", "device", "channels_last", "compile", "precision")
FIELDS = [f.name for f in dataclasses.fields(RunConfig)]
COMPARED = [*SIZE_FIELDS, *(f for f in FIELDS if f not in SIZE_FIELDS and f not in NOT_COMPARED)]


def _same(a, b) -> bool:
    """The selection rule of analysis.paper_check: isclose for floats, == otherwise."""
    if isinstance(a, float) or isinstance(b, float):
        try:
            return bool(np.isclose(float(a), float(b)))
        except (TypeError, ValueError):
            return False
    return a == b


@functools.lru_cache(maxsize=None)
def _paper_runs(experiment: str) -> pd.DataFrame | None:
    """The catalogue's full preset of `experiment` as a frame of resolved RunConfig fields (built once)."""
    if experiment not in EXPERIMENTS or "full" not in EXPERIMENTS[experiment].presets:
        return None
    return pd.DataFrame([dataclasses.asdict(c) for c in EXPERIMENTS[experiment].runs("full")])


@functools.lru_cache(maxsize=None)
def _paper_design(experiment: str, select: tuple) -> dict | None:
    runs = _paper_runs(experiment)
    if runs is None:
        return None
    keep = np.ones(len(runs), dtype=bool)
    for k, v in select:
        keep &= np.array([_same(x, v) for x in runs[k]]) if k in runs else False
    r = runs[keep]
    if not len(r):
        return None
    cells = [f for f in FIELDS if f not in ("sigma_w", "seed")]
    return {"sigmas": tuple(sorted(float(x) for x in r["sigma_w"].unique())),
            "seeds": int(r.groupby(cells, dropna=False)["seed"].nunique().max()),
            "fields": {f: _values(r[f]) for f in COMPARED if f not in dict(select)}}


def _values(col: pd.Series) -> tuple:
    return tuple(sorted(set(col.tolist()), key=str))


def paper_design(experiment: str, select: Mapping[str, object] | None = None) -> dict | None:
    """The paper's design of the runs of `experiment` that match `select` (config field -> value),
    from the catalogue's full preset: sigmas (sorted tuple), seeds (how many per cell), fields {config
    field: the values the paper used} for every compared field not in `select` (sizes first). None
    for an experiment outside the catalogue or a selection none of its runs has."""
    return _paper_design(experiment, tuple(sorted((select or {}).items())))


def measured_design(runs: pd.DataFrame) -> dict:
    """The same description of some runs: their sigma_w set, the fewest seeds in a (procedure,
    sigma_w) cell, and the values of each compared config field they carry."""
    sig = tuple(sorted({round(float(s), 9) for s in runs["sigma_w"]}))
    keys = [c for c in ("procedure", "sigma_w") if c in runs]
    seeds = int(runs.groupby(keys)["seed"].nunique().min()) if len(runs) and "seed" in runs else 0
    return {"sigmas": sig, "seeds": seeds, "fields": {f: _values(runs[f]) for f in COMPARED if f in runs}}


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
    for f, pv in paper["fields"].items():
        mv = measured["fields"].get(f)
        if mv is not None and not all(any(_same(m, p) for p in pv) for m in mv):
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
                     **{f: "/".join(_size(f, v) for v in m["fields"].get(f, ())) for f in SIZE_FIELDS},
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
