"""The paper check: each headline number of SPEC Section 5 beside the measured value, its seed-bootstrap
95% interval, the difference and a verdict (agrees / differs / not run).

    python -m analysis.paper_check RESULTS [RESULTS ...] [--n-boot 1000]

    from analysis.paper_check import CLAIMS, paper_check
    paper_check(runs)                 # one row per claim (runs from analysis.load.load)

CLAIMS is the one place these numbers live (the synthetic generator plants them from here).
Measured values, all in percentage points:
    spread       Mem of the procedure (analysis.memory.spread: max - min over sigma of the seed-mean
                 test accuracy at tau_best), its seed-bootstrap interval;
    acc          seed-mean test accuracy at tau_best at one sigma_w, bootstrap over its seeds;
    train_min    the smallest seed-mean train accuracy at tau_best over sigma_w (the paper's ">= 99.5%
                 train accuracy across the whole sweep"), bootstrap within each sigma;
    spread_below Mem, judged against an upper bound ("< 1 pp").
Verdict: the paper quotes one decimal, so its number stands for [v - 0.05, v + 0.05]; "agrees" when
that range meets the measured 95% interval (for a bound: when the interval reaches the allowed side),
"differs" otherwise, "not run" when the experiment or the procedure is not in the results. Only the
claims whose experiment is present are judged.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from analysis.bootstrap import cell_means, cells
from analysis.memory import PP, spread

ROUNDING = 0.05 + 1e-9  # pp: half the last digit the paper quotes (inclusive, up to float round-off)
MAIN = {"lr0": 1e-3, "l2": 0.0}  # the main grid's SGD / Adam procedures (SPEC Section 2 defaults)


@dataclasses.dataclass(frozen=True)
class Claim:
    experiment: str
    select: Mapping[str, object]   # config columns that pick the procedure
    kind: str                      # spread | acc | train_min | spread_below
    paper: float                   # pp (a bound for train_min and spread_below)
    text: str                      # what the paper says, briefly
    sigma: float | None = None     # for kind "acc"


def _mg(opt: str, b: int, v: float, text: str) -> Claim:
    return Claim("main_grid", {"optimizer": opt, "batch_size": b, **MAIN}, "spread", v, text)


def _lr(b: int, lr0: float, l2: float, v: float, text: str, kind: str = "spread") -> Claim:
    return Claim("lr_l2", {"optimizer": "sgd", "batch_size": b, "lr0": lr0, "l2": l2}, kind, v, text)


def _na(norm: str, b: int, v: float, text: str) -> Claim:
    return Claim("norm_aug", {"optimizer": "sgd", "norm": norm, "augment": True, "batch_size": b}, "spread", v, text)


SGD128 = {"optimizer": "sgd", "batch_size": 128, **MAIN}
BEST = {"optimizer": "sgd_momentum", "batch_size": 128}
CLAIMS: tuple[Claim, ...] = (
    Claim("main_grid", SGD128, "acc", 85.0, "SGD b=128: test accuracy at sigma 0.1", sigma=0.1),
    Claim("main_grid", SGD128, "acc", 58.6, "SGD b=128: test accuracy at sigma 2.5", sigma=2.5),
    _mg("sgd", 128, 26.5, "SGD b=128: spread"),
    Claim("main_grid", SGD128, "train_min", 99.5, "SGD b=128: train accuracy >= 99.5% at every sigma"),
    _mg("sgd", 16, 22.8, "SGD b=16: spread"),
    _mg("sgd", 256, 25.7, "SGD b=256: spread"),
    _mg("sgd_momentum", 16, 10.9, "SGD + momentum b=16: spread"),
    _mg("adam", 128, 4.3, "Adam b=128: spread"),
    _mg("adamw", 128, 4.7, "AdamW b=128: spread"),
    _mg("muon", 128, 4.0, "Muon b=128: spread"),
    _mg("adam", 16, 1.6, "Adam b=16: spread"),
    _mg("adam", 256, 5.3, "Adam b=256: spread"),
    _lr(16, 1e-2, 0.0, 9.7, "SGD b=16, lr0 1e-2: spread"),
    _lr(16, 1e-1, 0.0, 4.5, "SGD b=16, lr0 1e-1: spread"),
    _lr(128, 1e-2, 0.0, 23.8, "SGD b=128, lr0 1e-2: spread"),
    _lr(128, 1e-1, 0.0, 8.1, "SGD b=128, lr0 1e-1: spread"),
    _lr(16, 1e-2, 1e-2, 0.3, "SGD b=16, lr0 1e-2, L2 1e-2: spread"),
    _lr(128, 1e-2, 1e-2, 0.3, "SGD b=128, lr0 1e-2, L2 1e-2: spread"),
    _lr(128, 1e-2, 1e-3, 17.4, "SGD b=128, lr0 1e-2, L2 1e-3 (T_L2 ~ 0.94): spread"),
    _lr(128, 1e-2, 5e-3, 1.0, "SGD b=128, lr0 1e-2, L2 5e-3 (T_L2 ~ 4.7): spread < 1 pp", kind="spread_below"),
    _na("batchnorm", 16, 8.3, "SGD + augmentation, BatchNorm, b=16: spread"),
    _na("batchnorm", 128, 18.9, "SGD + augmentation, BatchNorm, b=128: spread"),
    _na("layernorm", 16, 5.1, "SGD + augmentation, LayerNorm, b=16: spread"),
    _na("layernorm", 128, 15.2, "SGD + augmentation, LayerNorm, b=128: spread"),
    Claim("best_recipe", BEST, "acc", 94.2, "Best recipe, SGD b=128: test accuracy at sigma 0.1", sigma=0.1),
    Claim("best_recipe", BEST, "acc", 94.2, "Best recipe, SGD b=128: test accuracy at sigma 2.5", sigma=2.5),
    Claim("depth", {"arch": "resnet56", "optimizer": "sgd", "batch_size": 128}, "spread", 24.2,
          "ResNet-56, SGD b=128: spread"),
    Claim("depth", {"arch": "resnet110", "optimizer": "sgd", "batch_size": 128}, "spread", 20.4,
          "ResNet-110, SGD b=128: spread"),
)


def _matches(df: pd.DataFrame, select: Mapping[str, object]) -> pd.Series:
    m = pd.Series(True, index=df.index)
    for k, v in select.items():
        if k not in df:
            return pd.Series(False, index=df.index)
        m &= np.isclose(df[k].astype(float), float(v)) if isinstance(v, float) else (df[k] == v)
    return m


def claims_for(cfg) -> list[Claim]:
    """The claims whose procedure is this config (a RunConfig or a mapping of its fields)."""
    get = (lambda k: cfg[k]) if isinstance(cfg, Mapping) else (lambda k: getattr(cfg, k))  # noqa: E731
    out = []
    for c in CLAIMS:
        if get("experiment") != c.experiment:
            continue
        if all(np.isclose(float(get(k)), float(v)) if isinstance(v, float) else get(k) == v
               for k, v in c.select.items()):
            out.append(c)
    return out


# ----------------------------------------------------------------------------- measuring
def _measure(c: Claim, runs: pd.DataFrame, n_boot: int, rng: np.random.Generator, ci: float,
             spreads: pd.DataFrame | None = None) -> dict:
    """measured, lo, hi, n_runs of one claim on the runs of its procedure."""
    a = (1.0 - ci) / 2.0
    if c.kind in ("spread", "spread_below") and spreads is not None:
        sp = spreads[spreads["procedure"] == runs["procedure"].iloc[0]]
        if len(sp):
            sp = sp.iloc[0]
            return {"measured": sp["mem"], "lo": sp["lo"], "hi": sp["hi"], "n_runs": int(sp["n_runs"])}
    if c.kind in ("spread", "spread_below"):
        sp = spread(runs, by=["procedure"], n_boot=n_boot, ci=ci, seed=int(rng.integers(1 << 31))).iloc[0]
        return {"measured": sp["mem"], "lo": sp["lo"], "hi": sp["hi"], "n_runs": int(sp["n_runs"])}
    metric = "test_acc" if c.kind == "acc" else "train_acc_best"
    d = runs if c.kind != "acc" else runs[np.isclose(runs["sigma_w"], c.sigma)]
    v = pd.to_numeric(d[metric], errors="coerce").to_numpy(np.float64) * PP
    ok = np.isfinite(v)
    v, sig = v[ok], d["sigma_w"].to_numpy(np.float64)[ok]
    if not len(v):
        return {"measured": np.nan, "lo": np.nan, "hi": np.nan, "n_runs": 0}
    _, cell = np.unique(np.round(sig, 9), return_inverse=True)
    means = np.bincount(cell, v) / np.bincount(cell)
    order, start, size = cells(cell)
    boot = cell_means(v[order], start, size, n_boot, rng) if n_boot else None
    if c.kind == "acc":
        m, b = means[0], (boot[:, 0] if boot is not None else None)
    else:
        m, b = means.min(), (boot.min(axis=1) if boot is not None else None)
    lo, hi = (np.quantile(b, a), np.quantile(b, 1 - a)) if b is not None else (np.nan, np.nan)
    return {"measured": float(m), "lo": float(lo), "hi": float(hi), "n_runs": int(len(v))}


def verdict(c: Claim, lo: float, hi: float) -> str:
    """agrees / differs for a measured interval [lo, hi] (pp); NaN bounds: 'no interval'."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    if c.kind == "train_min":
        return "agrees" if hi >= c.paper - ROUNDING else "differs"
    if c.kind == "spread_below":
        return "agrees" if lo < c.paper else "differs"
    return "agrees" if lo <= c.paper + ROUNDING and hi >= c.paper - ROUNDING else "differs"


def paper_check(runs: pd.DataFrame, n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                claims: Sequence[Claim] = CLAIMS, spreads: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim: experiment, claim, paper, measured, lo, hi, difference (measured - paper,
    pp), verdict, n_runs, note. `runs` from analysis.load.load (finished runs). `spreads`:
    spread(runs, by=["procedure"]) already computed (the report's), used for the spread claims so
    that the report shows one interval per procedure."""
    rng = np.random.default_rng(seed)
    present = set(runs["experiment"].unique()) if len(runs) else set()
    rows = []
    for c in claims:
        paper = f"< {c.paper:g}" if c.kind == "spread_below" else f">= {c.paper:g}" if c.kind == "train_min" \
            else f"{c.paper:.1f}"
        row = {"experiment": c.experiment, "claim": c.text, "paper": paper, "measured": np.nan, "lo": np.nan,
               "hi": np.nan, "difference": np.nan, "verdict": "not run", "n_runs": 0, "note": ""}
        if c.experiment not in present:
            row["note"] = f"experiment {c.experiment} not in the results"
            rows.append(row)
            continue
        exp = runs[runs["experiment"] == c.experiment]
        sel = exp[_matches(exp, c.select)]
        if not len(sel):
            row["note"] = "procedure not in the results (" + ", ".join(f"{k}={v}" for k, v in c.select.items()) + ")"
            rows.append(row)
            continue
        procs = sel["procedure"].value_counts()
        if len(procs) > 1:
            row["note"] = f"{len(procs)} procedures match; the one with the most runs is used"
        sel = sel[sel["procedure"] == procs.index[0]]
        row.update(_measure(c, sel, n_boot, rng, ci, spreads))
        if c.kind in ("spread", "acc"):
            row["difference"] = row["measured"] - c.paper
        row["verdict"] = verdict(c, row["lo"], row["hi"]) if np.isfinite(row["measured"]) else "not run"
        if not np.isfinite(row["measured"]):
            row["note"] = "no finite value (every run diverged before selection)"
        rows.append(row)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> str:
    """'12 agree, 3 differ, 13 not run' (counts of the verdicts)."""
    n = table["verdict"].value_counts()
    parts = [f"{n.get('agrees', 0)} agree", f"{n.get('differs', 0)} differ"]
    if n.get("no interval", 0):
        parts.append(f"{n['no interval']} without an interval")
    parts.append(f"{n.get('not run', 0)} not run")
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    from analysis.load import finished, load_or_exit
    ap = argparse.ArgumentParser(prog="python -m analysis.paper_check", description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", help="results root(s): local folders or URIs")
    ap.add_argument("--n-boot", type=int, default=1000, help="seed-bootstrap replicates")
    args = ap.parse_args(argv)
    runs, _ = load_or_exit(args.roots, epoch_columns=["epoch"])
    runs = finished(runs)
    t = paper_check(runs, n_boot=args.n_boot)
    show = t.assign(**{c: t[c].map(lambda v: f"{v:.1f}" if np.isfinite(v) else "-")
                       for c in ("measured", "lo", "hi", "difference")})
    print(show[["experiment", "claim", "paper", "measured", "lo", "hi", "difference", "verdict", "n_runs", "note"]]
          .to_string(index=False))
    print(summary(t))


if __name__ == "__main__":
    main()
