"""Sensitivity beta(t) = d val_acc / d sigma_w per procedure and epoch, its clocks, and collapse.

    python -m analysis.sensitivity RESULTS [--n-boot 200]     # collapse scores per family, with intervals

    from analysis.sensitivity import beta_t, with_clock, collapse_score
    frame = attach(epochs, runs, ["procedure", "sigma_w"])       # analysis.load
    beta = beta_t(frame, by=["procedure"])                      # every procedure and epoch at once
    beta = with_clock(beta.merge(procedures(runs), on="procedure"))
    collapse_score(beta, family=["experiment", "optimizer", "l2", "lr0"])

beta(t) is the ordinary least squares slope of val accuracy (fraction) on sigma_w over all
(sigma, seed) runs of a procedure at epoch t (SPEC Section 4): units fraction per unit sigma_w,
so a 26.5 pp spread over sigma 0.1..2.5 is |beta| ~ 0.11. It is computed from grouped sums
(n, sum x, sum y, then centred sums of squares and products) per (group, epoch) with np.bincount:
no Python loop over groups or epochs. se is the usual OLS standard error of the slope,
sqrt(SSE / (n - 2) / Sxx); r2 = Sxy^2 / (Sxx Syy).

Collapse (SPEC Section 4): analysis.collapse. Curves of log10|beta| of one family (a procedure
minus batch size), one per batch size, compared pairwise on the own clock and on epochs over the
same pairs; score = clock spread / epoch spread, with a seed-bootstrap interval and a verdict.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np
import pandas as pd

from initmem.optimizers import CLOCKS, decoupled, own_clock  # noqa: F401  CLOCKS: the recorded clocks, imported from here
from initmem.registry import parse_with_plugins

CLOCK_SHORT = {"t_sgd": "T_SGD", "t_l2": "T_L2", "t_adapt": "T_adapt"}
CLOCK_LABEL = {"t_sgd": "T_SGD = (1/b) sum eta_k^2", "t_l2": "T_L2 = l2 sum eta_k", "t_adapt": "T_adapt = sum eta_k"}
# initmem's extension beyond the paper's clocks (SPEC Section 4), shown beside them, never used by
# the paper's figures: the decoupled-decay clock and momentum's effective-step T_SGD.
EXT_CLOCKS = ("t_wd", "t_sgd_eff")
EXT_LABEL = {"t_wd": "T_wd = wd sum eta_k (AdamW, Muon; initmem extension)",
             "t_sgd_eff": "T_SGD,eff = (1/b) sum (eta_k / (1 - mu))^2 (SGD + momentum; initmem extension)"}
BETA_FLOOR = 1e-4  # |beta| below this is noise (fraction per unit sigma); log10 is taken of max(|beta|, floor)


def _codes(frame: pd.DataFrame, by: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer group code per row and the group key table (one row per code)."""
    if len(by) == 1 and pd.api.types.is_integer_dtype(frame[by[0]]) and frame[by[0]].min() >= 0:
        raw = frame[by[0]].to_numpy(np.int64)
        uniq, codes = np.unique(raw, return_inverse=True)
        return codes, pd.DataFrame({by[0]: uniq})
    g = frame.groupby(list(by), sort=True, dropna=False)
    codes = g.ngroup().to_numpy(np.int64)
    keys = frame[list(by)].iloc[np.unique(codes, return_index=True)[1]].reset_index(drop=True)
    return codes, keys


def beta_t(frame: pd.DataFrame, by: Sequence[str], x: str = "sigma_w", y: str = "val_acc",
           t: str = "epoch", carry: Sequence[str] = CLOCKS) -> pd.DataFrame:
    """OLS slope of y on x per (by..., t), vectorised over all groups and t values at once.

    Returns by..., t, n, beta, se, r2, intercept, and the mean of each `carry` column present
    (the clocks, identical across a procedure's runs at one epoch). Rows with non-finite x or y
    are dropped; beta is NaN where a group has < 2 distinct x, se where n < 3.
    """
    keep = np.isfinite(frame[x].to_numpy(np.float64)) & np.isfinite(frame[y].to_numpy(np.float64, na_value=np.nan))
    f = frame.loc[keep] if not keep.all() else frame
    gcode, keys = _codes(f, by)
    tv = f[t].to_numpy()
    tu, tcode = np.unique(tv, return_inverse=True)
    nt = len(tu)
    key = gcode * nt + tcode
    size = len(keys) * nt
    xv = f[x].to_numpy(np.float64)
    yv = f[y].to_numpy(np.float64)

    n = np.bincount(key, minlength=size).astype(np.float64)
    present = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.bincount(key, xv, size) / n
        my = np.bincount(key, yv, size) / n
        dx = xv - mx[key]
        dy = yv - my[key]
        sxx = np.bincount(key, dx * dx, size)
        sxy = np.bincount(key, dx * dy, size)
        syy = np.bincount(key, dy * dy, size)
        ok = sxx > 0
        beta = np.where(ok, sxy / np.where(ok, sxx, 1.0), np.nan)
        sse = np.maximum(syy - beta * sxy, 0.0)
        se = np.where(ok & (n > 2), np.sqrt(sse / np.maximum(n - 2, 1) / np.where(ok, sxx, 1.0)), np.nan)
        r2 = np.where(ok & (syy > 0), sxy * sxy / (np.where(ok, sxx, 1.0) * np.where(syy > 0, syy, 1.0)), np.nan)
        intercept = my - beta * mx
    idx = np.flatnonzero(present)
    out = keys.iloc[idx // nt].reset_index(drop=True)
    out[t] = tu[idx % nt]
    out["n"] = n[idx].astype(np.int64)
    out["beta"], out["se"], out["r2"], out["intercept"] = beta[idx], se[idx], r2[idx], intercept[idx]
    for c in carry:
        if c in f.columns:
            out[c] = (np.bincount(key, f[c].to_numpy(np.float64), size) / np.where(present, n, 1.0))[idx]
    return out


def extension_clocks(optimizer, weight_decay, momentum, t_sgd, t_adapt) -> dict[str, np.ndarray]:
    """initmem's extension clocks from a run's config and its recorded clocks (arrays or scalars):
    t_wd = weight_decay * T_adapt for the decoupled-decay optimizers (T_adapt = sum eta), NaN for
    the others; t_sgd_eff = T_SGD / (1 - momentum)^2 for sgd_momentum (its effective step is
    eta / (1 - mu)), NaN for the others."""
    opt = np.asarray(optimizer, dtype=object)
    wd, mu = np.asarray(weight_decay, dtype=np.float64), np.asarray(momentum, dtype=np.float64)
    t_sgd, t_adapt = np.asarray(t_sgd, dtype=np.float64), np.asarray(t_adapt, dtype=np.float64)
    dec = np.isin(opt, decoupled())
    mom = opt == "sgd_momentum"
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"t_wd": np.where(dec, wd * t_adapt, np.nan),
                "t_sgd_eff": np.where(mom, t_sgd / (1.0 - mu) ** 2, np.nan)}


def add_own_clock(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` (optimizer, l2 and the three clocks) plus `clock` (own_clock's name) and `T` (its value)."""
    out = frame.copy()
    name = np.array([own_clock(o, l) for o, l in zip(out["optimizer"], out["l2"])], dtype=object)
    out["clock"] = name
    out["T"] = np.select([name == c for c in CLOCKS], [out[c].to_numpy(np.float64) for c in CLOCKS], np.nan)
    return out


def with_clock(beta: pd.DataFrame) -> pd.DataFrame:
    """Add abs_beta, `clock` (the optimizer's own clock name) and `T` (its value) to a beta frame
    that carries optimizer, l2 and the three clocks."""
    return add_own_clock(beta.assign(abs_beta=beta["beta"].abs()))


def collapse_score(beta: pd.DataFrame, family: Sequence[str], **kw) -> pd.DataFrame:
    """Point estimate of the collapse score per family from a beta(t) frame: see analysis.collapse
    (which also gives the seed-bootstrap interval and the verdict, from the runs)."""
    from analysis.collapse import collapse_score as score
    return score(beta, family, **kw)


def family_columns(beta: pd.DataFrame, procedure_cols: Sequence[str], across: str = "batch_size") -> list[str]:
    """A procedure's columns minus `across` and epochs: the collapse family. Epochs go too because a
    preset may scale them with the batch size (the smoke does, to give every run 300 updates); the
    clock and the epoch axis of each curve already account for them."""
    return [c for c in procedure_cols if c not in (across, "epochs") and c in beta.columns]


def main(argv: Sequence[str] | None = None) -> None:
    from analysis.load import attach, load_or_exit, procedure_columns, procedures
    from analysis.memory import varying
    ap = argparse.ArgumentParser(prog="python -m analysis.sensitivity", description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+")
    ap.add_argument("--n-boot", type=int, default=200, help="seed-bootstrap replicates of the score")
    args = parse_with_plugins(ap, argv)
    runs, epochs = load_or_exit(args.roots, epoch_columns=["epoch", "val_acc", *CLOCKS])
    b = beta_t(attach(epochs, runs, ["procedure", "sigma_w"]), by=["procedure"])
    b = with_clock(b.merge(procedures(runs), on="procedure"))
    fam = family_columns(b, procedure_columns(runs))
    from analysis.collapse import collapse_table
    sc = collapse_table(runs, epochs, fam, n_boot=args.n_boot)
    if not len(sc):
        print("no family with two or more batch sizes: no collapse score")
        return
    show = varying(sc, fam) + ["clock", "n_curves", "n_pairs", "s_clock", "s_epoch", "score", "lo", "hi", "verdict"]
    print(sc[show].to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
