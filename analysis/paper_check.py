"""The paper check: each headline number of SPEC Section 5 beside the measured value, its seed-bootstrap
95% interval, the difference and a verdict (agrees / differs / inconclusive / not comparable / not run).

    python -m analysis.paper_check RESULTS [RESULTS ...] [--n-boot 1000]

    from analysis.paper_check import CLAIMS, paper_check
    paper_check(runs)                 # one row per claim (runs from analysis.load.load)

CLAIMS is the one place these numbers live (the synthetic generator plants them from here).
Measured values, all in percentage points:
    spread     Mem of the procedure (analysis.memory.spread: max - min over sigma of the seed-mean
               test accuracy at tau_best), its seed-bootstrap interval;
    acc        seed-mean test accuracy at tau_best at one sigma_w, bootstrap over its seeds;
    train_min  the smallest seed-mean train accuracy at tau_best over sigma_w (the paper's ">= 99.5%
               train accuracy across the whole sweep"), bootstrap within each sigma;
    delta      |Delta| = |mean at the smallest sigma - mean at the largest| (Table 7), its interval
               the image under |.| of the signed difference's bootstrap interval (a true 0.0 is not
               pushed above 0 by the fold);
    subset     Mem over all sigma_w minus Mem over the 5-point subset SIGMA5 (>= 0), both from the
               same bootstrap replicates (the subset's cells are among the full set's).
Verdicts. A number the paper quotes to one decimal stands for [v - 0.05, v + 0.05] (`tol`; "~26"
stands for [25.5, 26.5]): "agrees" when that range meets the measured 95% interval, "differs"
otherwise. A bound ("< 1", "<= 3.5", ">= 99.5") "agrees" only when the whole interval lies on its
side, "differs" when the whole interval lies on the other, "inconclusive" when it straddles the
bound. Before any of that, the measurement must be on the paper's design (analysis.design: its
sigma_w set, at least its seeds per cell, its sizes); otherwise the verdict is "not comparable
(measured on 5 of 25 sigmas, 3 of 10 seeds)". "not run" when the experiment or the procedure is not
in the results. Only the claims whose experiment is present are judged.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from initmem.study import SIGMA5
from initmem.registry import parse_with_plugins

from analysis.bootstrap import sigma_boot
from analysis.design import differences, measured_design, not_comparable, paper_design
from analysis.memory import PP, spread

ROUNDING = 0.05 + 1e-9  # pp: half the last digit the paper quotes (inclusive, up to float round-off)
MAIN = {"lr0": 1e-3, "l2": 0.0}  # the main grid's SGD / Adam procedures (SPEC Section 2 defaults)
BOUNDS = ("<", "<=", ">=")


@dataclasses.dataclass(frozen=True)
class Claim:
    experiment: str
    select: Mapping[str, object]   # config columns that pick the procedure
    kind: str                      # spread | acc | train_min | delta | subset
    paper: float                   # pp (the bound itself when `bound` is set)
    text: str                      # what the paper says, briefly
    sigma: float | None = None     # for kind "acc"
    bound: str | None = None       # None: an estimate; "<", "<=": an upper bound; ">=": a lower bound
    tol: float = ROUNDING          # pp: what an estimate stands for, paper +- tol (half its last digit)


def _mg(opt: str, b: int, v: float, text: str) -> Claim:
    return Claim("main_grid", {"optimizer": opt, "batch_size": b, **MAIN}, "spread", v, text)


def _lr(b: int, lr0: float, l2: float, v: float, text: str, bound: str | None = None) -> Claim:
    return Claim("lr_l2", {"optimizer": "sgd", "batch_size": b, "lr0": lr0, "l2": l2}, "spread", v, text, bound=bound)


def _na(opt: str, norm: str, b: int, v: float, text: str, bound: str | None = None) -> Claim:
    return Claim("norm_aug", {"optimizer": opt, "norm": norm, "augment": True, "batch_size": b}, "spread", v, text,
                 bound=bound)


def _long(b: int) -> Claim:
    # "~26 pp": quoted to the unit, so it stands for [25.5, 26.5]
    return Claim("long_sgd", {"optimizer": "sgd", "batch_size": b}, "spread", 26.0,
                 f"Long SGD b={b} (5,000 epochs, constant lr0 1e-3): spread ~26 (abstract: essentially unchanged)",
                 tol=0.5 + 1e-9)


SGD128 = {"optimizer": "sgd", "batch_size": 128, **MAIN}
BEST = {"optimizer": "sgd_momentum", "batch_size": 128}
CLAIMS: tuple[Claim, ...] = (
    Claim("main_grid", SGD128, "acc", 85.0, "SGD b=128: test accuracy at sigma 0.1", sigma=0.1),
    Claim("main_grid", SGD128, "acc", 58.6, "SGD b=128: test accuracy at sigma 2.5", sigma=2.5),
    _mg("sgd", 128, 26.5, "SGD b=128: spread"),
    Claim("main_grid", SGD128, "train_min", 99.5, "SGD b=128: train accuracy >= 99.5% at every sigma", bound=">="),
    _mg("sgd", 16, 22.8, "SGD b=16: spread"),
    _mg("sgd", 256, 25.7, "SGD b=256: spread"),
    _mg("sgd_momentum", 16, 10.9, "SGD + momentum b=16: spread"),
    _mg("adam", 128, 4.3, "Adam b=128: spread"),
    _mg("adamw", 128, 4.7, "AdamW b=128: spread"),
    _mg("muon", 128, 4.0, "Muon b=128: spread"),
    _mg("adam", 16, 1.6, "Adam b=16: spread"),
    _mg("adam", 256, 5.3, "Adam b=256: spread"),
    # Figure 4's caption: the 5-point spreads agree with the 25-point ones "to within ~1 pp"
    Claim("main_grid", {"optimizer": "sgd", "batch_size": 16, **MAIN}, "subset", 1.0,
          "SGD b=16: spread over the 5-point subset within ~1 pp of the 25-point one", bound="<="),
    Claim("main_grid", SGD128, "subset", 1.0,
          "SGD b=128: spread over the 5-point subset within ~1 pp of the 25-point one", bound="<="),
    _long(16),
    _long(128),
    _lr(16, 1e-2, 0.0, 9.7, "SGD b=16, lr0 1e-2: spread"),
    _lr(16, 1e-1, 0.0, 4.5, "SGD b=16, lr0 1e-1: spread"),
    _lr(128, 1e-2, 0.0, 23.8, "SGD b=128, lr0 1e-2: spread"),
    _lr(128, 1e-1, 0.0, 8.1, "SGD b=128, lr0 1e-1: spread"),
    _lr(16, 1e-2, 1e-2, 0.3, "SGD b=16, lr0 1e-2, L2 1e-2: spread"),
    _lr(128, 1e-2, 1e-2, 0.3, "SGD b=128, lr0 1e-2, L2 1e-2: spread"),
    _lr(128, 1e-2, 1e-3, 17.4, "SGD b=128, lr0 1e-2, L2 1e-3 (T_L2 ~ 0.94): spread"),
    _lr(128, 1e-2, 5e-3, 1.0, "SGD b=128, lr0 1e-2, L2 5e-3 (T_L2 ~ 4.7): spread < 1 pp", bound="<"),
    _na("sgd", "batchnorm", 16, 8.3, "SGD + augmentation, BatchNorm, b=16: spread"),
    _na("sgd", "batchnorm", 128, 18.9, "SGD + augmentation, BatchNorm, b=128: spread"),
    _na("sgd", "layernorm", 16, 5.1, "SGD + augmentation, LayerNorm, b=16: spread"),
    _na("sgd", "layernorm", 128, 15.2, "SGD + augmentation, LayerNorm, b=128: spread"),
    # Appendix E: "Under Adam, all three configurations show small spreads (<= 3.5 pp)": the two with
    # augmentation are norm_aug's; the third (BatchNorm, no augmentation) is the main grid, whose Adam
    # spreads are claims of their own (on 25 sigmas)
    _na("adam", "batchnorm", 16, 3.5, "Adam + augmentation, BatchNorm, b=16: spread <= 3.5 pp", bound="<="),
    _na("adam", "batchnorm", 128, 3.5, "Adam + augmentation, BatchNorm, b=128: spread <= 3.5 pp", bound="<="),
    _na("adam", "layernorm", 16, 3.5, "Adam + augmentation, LayerNorm, b=16: spread <= 3.5 pp", bound="<="),
    _na("adam", "layernorm", 128, 3.5, "Adam + augmentation, LayerNorm, b=128: spread <= 3.5 pp", bound="<="),
    Claim("best_recipe", BEST, "acc", 94.2, "Best recipe, SGD b=128: test accuracy at sigma 0.1", sigma=0.1),
    Claim("best_recipe", BEST, "acc", 94.2, "Best recipe, SGD b=128: test accuracy at sigma 2.5", sigma=2.5),
    Claim("best_recipe", BEST, "delta", 0.0, "Best recipe, SGD b=128: |Delta| between sigma 0.1 and 2.5"),
    Claim("best_recipe", {"optimizer": "adam", "batch_size": 128}, "delta", 0.6,
          "Best recipe, Adam b=128: |Delta| between sigma 0.1 and 2.5"),
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
def _interval(b: np.ndarray | None, ci: float) -> tuple[float, float]:
    a = (1.0 - ci) / 2.0
    b = None if b is None else b[np.isfinite(b)]
    return (float(np.quantile(b, a)), float(np.quantile(b, 1 - a))) if b is not None and len(b) else (np.nan, np.nan)


def _measure(c: Claim, runs: pd.DataFrame, n_boot: int, rng: np.random.Generator, ci: float,
             spreads: pd.DataFrame | None = None) -> dict:
    """measured, lo, hi, n_runs of one claim on the runs of its procedure."""
    if c.kind == "spread" and spreads is not None:
        sp = spreads[spreads["procedure"] == runs["procedure"].iloc[0]]
        if len(sp):
            sp = sp.iloc[0]
            return {"measured": sp["mem"], "lo": sp["lo"], "hi": sp["hi"], "n_runs": int(sp["n_runs"])}
    if c.kind == "spread":
        sp = spread(runs, by=["procedure"], n_boot=n_boot, ci=ci, seed=int(rng.integers(1 << 31)))
        if not len(sp):  # no finite accuracy left (every run diverged before selection)
            return {"measured": np.nan, "lo": np.nan, "hi": np.nan, "n_runs": 0}
        sp = sp.iloc[0]
        return {"measured": sp["mem"], "lo": sp["lo"], "hi": sp["hi"], "n_runs": int(sp["n_runs"])}
    metric = "train_acc_best" if c.kind == "train_min" else "test_acc"
    d = runs[np.isclose(runs["sigma_w"], c.sigma)] if c.kind == "acc" else runs
    v = pd.to_numeric(d[metric], errors="coerce").to_numpy(np.float64) * PP
    n = int(np.isfinite(v).sum())
    if not n:
        return {"measured": np.nan, "lo": np.nan, "hi": np.nan, "n_runs": 0,
                **({"note": f"no run at sigma_w {c.sigma:g}"} if not len(d) else {})}
    sig, means, boot = sigma_boot(v, d["sigma_w"].to_numpy(np.float64), n_boot, rng)
    b = boot if n_boot else None
    if c.kind == "acc":
        m, rep = means[0], (b[:, 0] if b is not None else None)
    elif c.kind == "train_min":
        m, rep = means.min(), (b.min(axis=1) if b is not None else None)
    elif c.kind == "delta":  # signed difference, then its interval folded by |.|
        m, rep = means[0] - means[-1], (b[:, 0] - b[:, -1] if b is not None else None)
        lo, hi = _interval(rep, ci)
        lo, hi = (0.0, max(-lo, hi)) if lo <= 0.0 <= hi else (min(abs(lo), abs(hi)), max(abs(lo), abs(hi)))
        return {"measured": float(abs(m)), "lo": lo, "hi": hi, "n_runs": n}
    elif c.kind == "subset":
        inside = np.array([np.isclose(SIGMA5, s).any() for s in sig])
        if inside.sum() < len(SIGMA5) or inside.all():
            return {"measured": np.nan, "lo": np.nan, "hi": np.nan, "n_runs": n,
                    "note": "needs the 5-point subset and sigma_w beyond it"}
        gap = lambda x: (x.max(-1) - x.min(-1)) - (x[..., inside].max(-1) - x[..., inside].min(-1))  # noqa: E731
        m, rep = gap(means), (gap(b) if b is not None else None)
    else:
        raise ValueError(f"claim kind {c.kind!r} is not known")
    lo, hi = _interval(rep, ci)
    return {"measured": float(m), "lo": lo, "hi": hi, "n_runs": n}


def verdict(c: Claim, lo: float, hi: float) -> str:
    """agrees / differs / inconclusive for a measured interval [lo, hi] (pp); NaN bounds: 'no interval'.
    An estimate agrees when [paper - tol, paper + tol] meets the interval; a bound agrees only when
    the interval lies wholly on its side, differs when wholly on the other, else is inconclusive."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval"
    v = c.paper
    if c.bound == ">=":
        return "agrees" if lo >= v else "differs" if hi < v else "inconclusive"
    if c.bound == "<":
        return "agrees" if hi < v else "differs" if lo >= v else "inconclusive"
    if c.bound == "<=":
        return "agrees" if hi <= v else "differs" if lo > v else "inconclusive"
    return "agrees" if lo <= v + c.tol and hi >= max(v - c.tol, 0.0 if c.kind == "delta" else -np.inf) \
        else "differs"


def paper_text(c: Claim) -> str:
    """How the paper's number is shown: "26.5", "~26", "< 1", ">= 99.5", "<= 3.5"."""
    if c.bound:
        return f"{c.bound} {c.paper:g}"
    return f"~{c.paper:g}" if c.tol > 0.1 else f"{c.paper:.1f}"


def design_of(c: Claim, runs: pd.DataFrame) -> list[str]:
    """How the runs a claim was measured on depart from the paper's design ([] when they do not)."""
    paper = paper_design(c.experiment, c.select)
    if paper is None:
        return []
    d = runs[np.isclose(runs["sigma_w"], c.sigma)] if c.kind == "acc" else runs
    return differences(measured_design(d), paper, sigma_set=c.kind != "acc")


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
        row = {"experiment": c.experiment, "claim": c.text, "paper": paper_text(c), "measured": np.nan, "lo": np.nan,
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
        notes = [f"{len(procs)} procedures match; the one with the most runs is used"] if len(procs) > 1 else []
        sel = sel[sel["procedure"] == procs.index[0]]
        m = _measure(c, sel, n_boot, rng, ci, spreads)
        notes += [m.pop("note")] if "note" in m else []
        row.update(m)
        if not c.bound:
            row["difference"] = row["measured"] - c.paper
        if not np.isfinite(row["measured"]):
            notes += [] if notes else ["no finite value (every run diverged before selection)"]
        else:
            diffs = design_of(c, sel)
            row["verdict"] = not_comparable(diffs) if diffs else verdict(c, row["lo"], row["hi"])
            if measured_design(sel)["seeds"] == 1:
                notes.append("one seed per sigma: no seed spread to bootstrap, the interval is the point")
        row["note"] = "; ".join(notes)
        rows.append(row)
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> str:
    """'12 agree, 3 differ, 1 inconclusive, 5 not comparable, 13 not run' (counts of the verdicts)."""
    v = table["verdict"].where(~table["verdict"].str.startswith("not comparable"), "not comparable")
    n = v.value_counts()
    parts = [f"{n.get('agrees', 0)} agree", f"{n.get('differs', 0)} differ"]
    for k in ("inconclusive", "not comparable"):
        if n.get(k, 0):
            parts.append(f"{n[k]} {k}")
    if n.get("no interval", 0):
        parts.append(f"{n['no interval']} without an interval")
    parts.append(f"{n.get('not run', 0)} not run")
    return ", ".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    from analysis.load import finished, load_or_exit
    ap = argparse.ArgumentParser(prog="python -m analysis.paper_check", description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", help="results root(s): local folders or URIs")
    ap.add_argument("--n-boot", type=int, default=1000, help="seed-bootstrap replicates")
    args = parse_with_plugins(ap, argv)
    runs, _ = load_or_exit(args.roots, epoch_columns=["epoch"])
    runs = finished(runs)
    from analysis.design import banner, presets_of, study_table
    from analysis.load import progress
    head = banner(study_table(runs, presets_of(runs, progress(args.roots, runs))))
    if head:
        print(head)
    t = paper_check(runs, n_boot=args.n_boot)
    show = t.assign(**{c: t[c].map(lambda v: f"{v:.1f}" if np.isfinite(v) else "-")
                       for c in ("measured", "lo", "hi", "difference")})
    print(show[["experiment", "claim", "paper", "measured", "lo", "hi", "difference", "verdict", "n_runs", "note"]]
          .to_string(index=False))
    print(summary(t))


if __name__ == "__main__":
    main()
