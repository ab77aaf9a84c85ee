"""Collapse of |beta(t)| across batch sizes: a like-with-like score, its seed bootstrap, a verdict.

    python -m analysis.sensitivity RESULTS            # prints this table for every family

    from analysis.collapse import collapse_table
    collapse_table(runs, epochs, family=["experiment", "optimizer", "l2", "lr0"], n_boot=200)

A family is a procedure minus its batch size: one curve log10 max(|beta(t)|, 1e-4) per batch
size (beta(t) as in analysis.sensitivity; epochs >= 1). The score compares the curves PAIRWISE,
over the same pairs on both sides (SPEC Section 4: curves whose clock ranges do not overlap
must not make the clock side look tighter):

  - clock side, pair (i, j): the curve with fewer epochs inside the pair's common range of the
    own clock (log10 T) is the source; each of its epochs in that range is matched with the
    target curve's epoch nearest in log10 T (nearest, not interpolated: interpolation averages
    neighbouring noisy values and would make the clock side look tighter on noise alone);
    d_clock(i, j) = mean squared difference of the matched log10|beta| values;
  - epoch side, the same pair: d_epoch(i, j) = mean squared difference at the epochs both have;
  - a pair counts only if both sides have >= 2 points; s_clock = sqrt(mean over the counted
    pairs of d_clock / 2) (decades; the std across two curves is |difference| / sqrt 2),
    s_epoch likewise, score = s_clock / s_epoch.

On curves with no structure (noise, or a flat level per batch size) both sides estimate the same
quantity, so the score is 1 up to noise. The interval is a percentile seed bootstrap: in every
replicate the runs of each (procedure, sigma_w) cell are resampled with replacement, beta(t) is
refitted (weighted OLS: one matrix product per procedure) and the score recomputed. Verdict:
"aligns on its clock" when the whole interval lies below 1, "aligns on epochs" when it lies above
1, otherwise "no clear difference".
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np
import pandas as pd

from initmem.optimizers import own_clock

from analysis.bootstrap import multiplicities

from analysis.sensitivity import BETA_FLOOR

CLOCK_VERDICT, EPOCH_VERDICT, NO_VERDICT = "aligns on its clock", "aligns on epochs", "no clear difference"
COLLAPSE_BOOT = 200  # seed-bootstrap replicates of a score in the report and the findings (each refits beta(t))


def verdict_of(lo: float, hi: float) -> str:
    """The three-way verdict of a score interval (NaN bounds: 'not measurable')."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "not measurable"
    return CLOCK_VERDICT if hi < 1.0 else EPOCH_VERDICT if lo > 1.0 else NO_VERDICT


# ----------------------------------------------------------------------------- pairs and the score
def _pair_index(curves: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[int, int, np.ndarray, np.ndarray,
                                                                            np.ndarray, np.ndarray]]:
    """For each usable pair (i, j) of curves given as (epochs, log10 clock) with clock NaN where not
    usable: (i, j, clock-side index into i, into j, epoch-side index into i, into j)."""
    out = []
    for i, j in combinations(range(len(curves)), 2):
        (ei, ci), (ej, cj) = curves[i], curves[j]
        _, ie, je = np.intersect1d(ei, ej, assume_unique=True, return_indices=True)
        if len(ie) < 2:
            continue
        fi, fj = np.flatnonzero(np.isfinite(ci)), np.flatnonzero(np.isfinite(cj))
        if len(fi) < 2 or len(fj) < 2:
            continue
        lo, hi = max(ci[fi].min(), cj[fj].min()), min(ci[fi].max(), cj[fj].max())
        if lo > hi:
            continue
        in_i = fi[(ci[fi] >= lo) & (ci[fi] <= hi)]
        in_j = fj[(cj[fj] >= lo) & (cj[fj] <= hi)]
        swap = len(in_j) < len(in_i)            # the source is the sparser curve in the common range
        src, (tgt_all, ct, cs) = (in_j, (fi, ci, cj)) if swap else (in_i, (fj, cj, ci))
        if len(src) < 2:
            continue
        order = tgt_all[np.argsort(ct[tgt_all], kind="stable")]
        tv = ct[order]
        k = np.clip(np.searchsorted(tv, cs[src]), 1, len(tv) - 1)
        left_nearer = np.abs(cs[src] - tv[k - 1]) <= np.abs(tv[k] - cs[src])
        match = order[np.where(left_nearer, k - 1, k)]
        ic, jc = (match, src) if swap else (src, match)
        out.append((i, j, ic, jc, ie, je))
    return out


def _spreads(ly: list[np.ndarray], pairs) -> tuple[np.ndarray, np.ndarray]:
    """(s_clock, s_epoch) per replicate from log10|beta| curves ly[c] of shape (replicates, epochs)."""
    if not pairs:
        n = ly[0].shape[0] if ly else 1
        return np.full(n, np.nan), np.full(n, np.nan)
    dc, de = [], []
    with np.errstate(invalid="ignore"), _quiet():
        for i, j, ic, jc, ie, je in pairs:
            dc.append(np.nanmean((ly[i][:, ic] - ly[j][:, jc]) ** 2, axis=1))
            de.append(np.nanmean((ly[i][:, ie] - ly[j][:, je]) ** 2, axis=1))
        return np.sqrt(np.nanmean(np.stack(dc), axis=0) / 2), np.sqrt(np.nanmean(np.stack(de), axis=0) / 2)


class _quiet:
    """Silence numpy's 'Mean of empty slice' for all-NaN pairs (they are skipped by nanmean)."""

    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def _log_beta(beta: np.ndarray, floor: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(beta), np.log10(np.maximum(np.abs(beta), floor)), np.nan)


def _log_clock(t: np.ndarray) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(np.isfinite(t) & (t > 0), np.log10(np.where(t > 0, t, 1.0)), np.nan)


def _mode(curves) -> str:
    """'overlap' when every curve shares one clock range, else 'pairwise' (informational)."""
    lo = [np.nanmin(c) for _, c in curves if np.isfinite(c).any()]
    hi = [np.nanmax(c) for _, c in curves if np.isfinite(c).any()]
    return "overlap" if lo and max(lo) < min(hi) else "pairwise"


def collapse_score(beta: pd.DataFrame, family: Sequence[str], across: str = "batch_size",
                   clock: str | None = None, floor: float = BETA_FLOOR, min_epoch: int = 1) -> pd.DataFrame:
    """Point estimate of the collapse score per family from a beta(t) frame (no interval).

    `beta` needs the family columns, `across`, epoch, beta and the clock columns; `clock` None
    picks each family's own clock (optimizer, l2). Columns: family..., clock, n_curves, n_pairs,
    pairs_total, s_clock, s_epoch (decades), score, points_clock, points_epoch, mode.
    """
    d = beta[beta["epoch"] >= min_epoch]
    rows = []
    for key, fam in d.groupby(list(family), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        c = clock or own_clock(fam["optimizer"].iloc[0], float(fam["l2"].iloc[0]))
        curves, ly = [], []
        for _, cur in fam.groupby(across, sort=True):
            cur = cur.sort_values("epoch")
            curves.append((cur["epoch"].to_numpy(np.int64), _log_clock(cur[c].to_numpy())))
            ly.append(_log_beta(cur["beta"].to_numpy(np.float64), floor)[None, :])
        rows.append({**dict(zip(family, key)), "clock": c, **_summary(curves, ly)})
    return pd.DataFrame(rows)


def _summary(curves, ly, interval: bool = False, ci: float = 0.95) -> dict:
    """Score of curves (epochs, log10 clock) with log10|beta| ly[c] (replicate 0 = the data); with
    `interval`, lo / hi / verdict from replicates 1..."""
    pairs = _pair_index(curves)
    s_c, s_e = _spreads(ly, pairs)
    out = {"n_curves": len(curves), "n_pairs": len(pairs), "pairs_total": len(curves) * (len(curves) - 1) // 2,
           "s_clock": float(s_c[0]), "s_epoch": float(s_e[0]),
           "score": float(s_c[0] / s_e[0]) if s_e[0] > 0 else np.nan,
           "points_clock": int(sum(len(p[2]) for p in pairs)), "points_epoch": int(sum(len(p[4]) for p in pairs)),
           "mode": _mode(curves)}
    if interval:
        out["lo"] = out["hi"] = np.nan
        out["verdict"] = "no interval (n_boot=0)"
    if interval and len(s_c) > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            sc = s_c[1:] / s_e[1:]
        sc = sc[np.isfinite(sc)]
        a = (1 - ci) / 2
        out["lo"], out["hi"] = (float(np.quantile(sc, a)), float(np.quantile(sc, 1 - a))) if len(sc) else (np.nan,) * 2
        out["verdict"] = verdict_of(out["lo"], out["hi"])
    return out


# ----------------------------------------------------------------------------- bootstrap from the runs
def _procedure_arrays(runs: pd.DataFrame, epochs: pd.DataFrame, wanted: np.ndarray, clocks: Sequence[str],
                      min_epoch: int) -> dict[int, dict]:
    """Per wanted procedure: sigma per run, cell id per run, val_acc (runs x epochs, NaN where
    absent), its epochs and the mean of each clock per epoch."""
    keys = runs["run"].to_numpy(np.int64)
    er = epochs["run"].to_numpy(np.int64)
    pos = np.full(max(int(keys.max()), int(er.max(initial=0))) + 1, -1, dtype=np.int64)
    pos[keys] = np.arange(len(keys))  # epochs may hold runs that are not in `runs` (another experiment)
    prow = np.r_[runs["procedure"].to_numpy(np.int64), -1][pos[er]]
    ep = epochs["epoch"].to_numpy(np.int64)
    sel = np.flatnonzero(np.isin(prow, wanted) & (ep >= min_epoch))
    sel = sel[np.argsort(prow[sel], kind="stable")]
    bounds = np.flatnonzero(np.r_[True, prow[sel][1:] != prow[sel][:-1], True])
    y_all = epochs["val_acc"].to_numpy(np.float64, na_value=np.nan)
    sig_all = runs["sigma_w"].to_numpy(np.float64)
    out = {}
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows = sel[a:b]
        ru, ri = np.unique(er[rows], return_inverse=True)
        eu, ei = np.unique(ep[rows], return_inverse=True)
        Y = np.full((len(ru), len(eu)), np.nan)
        Y[ri, ei] = y_all[rows]
        x = sig_all[pos[ru]]
        _, cell = np.unique(np.round(x, 9), return_inverse=True)
        cnt = np.bincount(ei, minlength=len(eu))
        clk = {c: np.bincount(ei, epochs[c].to_numpy(np.float64)[rows], len(eu)) / np.maximum(cnt, 1)
               for c in clocks if c in epochs.columns}
        out[int(prow[rows[0]])] = {"x": x, "cell": cell, "Y": Y, "epochs": eu, "clocks": clk}
    return out


def _weighted_beta(p: dict, W: np.ndarray) -> np.ndarray:
    """OLS slope of val_acc on sigma per epoch for every weight row: (replicates, epochs). x and y
    are centred first (the slope does not change; the sums stay small). Complete runs (no missing
    epoch) need two matrix products, ragged ones five."""
    Y, x = p["Y"], p["x"] - p["x"].mean()
    M = np.isfinite(Y)
    with np.errstate(invalid="ignore"):
        Y0 = np.where(M, Y - np.nanmean(np.where(M, Y, np.nan), axis=0), 0.0)
    # replicate 0 (the data) in float64; the bootstrap replicates in float32 (the products dominate
    # the report's time; x and y are centred, so float32 keeps ~1e-6 of the slope's scale)
    W32 = W[1:].astype(np.float32)

    def prod(A: np.ndarray) -> np.ndarray:
        return np.vstack([W[:1] @ A, (W32 @ A.astype(np.float32)).astype(np.float64)]) if len(W32) else W[:1] @ A

    if M.all():
        S0 = W.sum(axis=1)[:, None]
        S1, S2 = (W @ x)[:, None], (W @ (x * x))[:, None]
    else:
        Mf = M.astype(np.float64)
        S0, S1, S2 = prod(Mf), prod(Mf * x[:, None]), prod(Mf * (x * x)[:, None])
    Sy, Sxy = prod(Y0), prod(x[:, None] * Y0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sxx = S2 - S1 * S1 / S0
        sxy = Sxy - S1 * Sy / S0
        ok = (S0 > 0) & (sxx > 1e-12 * np.maximum(S2, 1e-300))
        return np.where(ok, sxy / np.where(ok, sxx, 1.0), np.nan)


def collapse_table(runs: pd.DataFrame, epochs: pd.DataFrame, family: Sequence[str], across: str = "batch_size",
                   n_boot: int = 200, ci: float = 0.95, seed: int = 0, floor: float = BETA_FLOOR,
                   min_epoch: int = 1, clock: str | None = None) -> pd.DataFrame:
    """Collapse score per family with a seed-bootstrap interval and its verdict.

    runs: analysis.load runs (run, procedure, sigma_w, family columns, `across`); epochs: run,
    epoch, val_acc and the clocks. Families with fewer than two `across` values are left out.
    Columns: those of collapse_score plus lo, hi (the `ci` percentile interval of the score) and
    verdict. The point estimate equals collapse_score on beta_t of the same data.
    """
    from analysis.load import procedures
    procs = procedures(runs)
    fam_cols = list(family)
    rng = np.random.default_rng(seed)
    groups = [(k, g) for k, g in procs.groupby(fam_cols, sort=True, dropna=False) if g[across].nunique() >= 2]
    if not groups:
        return pd.DataFrame()
    wanted = np.concatenate([g["procedure"].to_numpy() for _, g in groups])
    arrays = _procedure_arrays(runs, epochs, wanted, ("t_sgd", "t_l2", "t_adapt"), min_epoch)
    with _one_blas_thread():
        return pd.DataFrame(_families(groups, arrays, fam_cols, across, clock, n_boot, ci, floor, rng))


def _one_blas_thread():
    """The refits are many small matrix products: a multithreaded BLAS spends more time waking and
    spinning its threads than multiplying (measured ~5x the CPU time on 2 loaded cores), so they run
    on one thread (threadpoolctl; without it, as they are)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a dependency in pyproject; the result is the same without it
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _families(groups, arrays, fam_cols, across, clock, n_boot, ci, floor, rng) -> list[dict]:
    rows = []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        c = clock or own_clock(g["optimizer"].iloc[0], float(g["l2"].iloc[0]))
        curves, ly = [], []
        for _, r in g.sort_values(across).iterrows():
            p = arrays.get(int(r["procedure"]))
            if p is None:
                continue
            curves.append((p["epochs"], _log_clock(p["clocks"][c])))
            ly.append(_log_beta(_weighted_beta(p, multiplicities(p["cell"], n_boot, rng)), floor))
        if len(curves) < 2:
            continue
        rows.append({**dict(zip(fam_cols, key)), "clock": c, **_summary(curves, ly, interval=True, ci=ci)})
    return rows
