"""Initialisation memory: spreads with seed-bootstrap intervals, per-sigma statistics, paper tables.

    python -m analysis.memory RESULTS [--by optimizer batch_size] [--n-boot 1000]   # spread table

    from analysis.memory import spread, sigma_stats
    spread(runs)                                   # Mem per procedure, pp, with a 95% bootstrap interval
    spread(runs, by=["optimizer", "batch_size"])   # any grouping
    sigma_stats(runs, by=["optimizer", "batch_size"], metric="test_acc")   # mean and 10-90% band per sigma

Pure functions over the runs table (analysis.load). Mem (SPEC Section 4) of a procedure over its
sigma set: max_sigma mean_seeds[m] - min_sigma mean_seeds[m], m = test accuracy at tau_best by
default. Accuracies are fractions in the files and percentage points (pp) here; other metrics
(epochs, norms) keep their unit (scale=1). Runs whose metric is missing or non-finite (diverged
before any epoch, running) are left out of the means; `n` columns say how many remained.
"""

from __future__ import annotations

import argparse
from typing import Sequence

import numpy as np
import pandas as pd

from initmem.metrics import INTERP_THRESHOLD
from initmem.registry import parse_with_plugins

from analysis.bootstrap import draws
from analysis.load import procedure_columns
from analysis.sensitivity import CLOCKS, add_own_clock, extension_clocks

PP = 100.0  # fraction -> percentage points
ACC_METRICS = ("test_acc", "val_acc_best", "val_acc_interp", "repair_gap", "train_acc_final",
               "train_acc_best", "val_acc", "train_acc")
INTERP_PP = PP * INTERP_THRESHOLD  # train accuracy (pp) that counts as interpolation (tau_interp)


def scale_of(metric: str) -> float:
    """100 for accuracies (fraction -> pp), 1 for anything else."""
    return PP if metric in ACC_METRICS else 1.0


def _by(runs: pd.DataFrame, by: Sequence[str] | None) -> list[str]:
    return list(by) if by is not None else procedure_columns(runs)


def _values(runs: pd.DataFrame, metric: str, scale: float | None) -> np.ndarray:
    s = scale_of(metric) if scale is None else scale
    return pd.to_numeric(runs[metric], errors="coerce").astype("float64").to_numpy(na_value=np.nan) * s


def sigma_stats(runs: pd.DataFrame, by: Sequence[str] | None = None, metric: str = "test_acc",
                scale: float | None = None, q: tuple[float, float] = (0.1, 0.9)) -> pd.DataFrame:
    """Per (by..., sigma_w): n, mean, std (ddof 1), p10, p90 of `metric` over seeds (pp for accuracies)."""
    by = _by(runs, by)
    d = runs[by + ["sigma_w"]].copy()
    d["v"] = _values(runs, metric, scale)
    d = d[np.isfinite(d["v"].to_numpy())]
    g = d.groupby(by + ["sigma_w"], sort=True, dropna=False)["v"]
    out = pd.concat({"n": g.size(), "mean": g.mean(), "std": g.std(ddof=1),
                     f"p{round(q[0] * 100)}": g.quantile(q[0]), f"p{round(q[1] * 100)}": g.quantile(q[1])},
                    axis=1).reset_index()
    out["n"] = out["n"].astype(np.int64)
    return out


def _cells(runs: pd.DataFrame, by: list[str], metric: str, scale: float | None):
    """Runs sorted by (group, sigma) with finite metric; group/cell codes and starts."""
    d = runs[by + ["sigma_w"]].copy()
    d["v"] = _values(runs, metric, scale)
    d = d[np.isfinite(d["v"].to_numpy())]
    d["g"] = d.groupby(by, sort=True, dropna=False).ngroup().to_numpy() if by else 0
    d = d.sort_values(["g", "sigma_w"], kind="stable").reset_index(drop=True)
    d["c"] = d.groupby(["g", "sigma_w"], sort=True).ngroup().to_numpy()
    return d


def spread(runs: pd.DataFrame, by: Sequence[str] | None = None, metric: str = "test_acc",
           n_boot: int = 1000, ci: float = 0.95, seed: int = 0, scale: float | None = None) -> pd.DataFrame:
    """Mem per group (default: per procedure) with a seed-bootstrap percentile interval.

    Columns: by..., mem (pp for accuracies), lo, hi (the `ci` percentile interval of the
    bootstrap distribution: seeds resampled with replacement within each (group, sigma) cell),
    boot_mean, n_sigma, n_runs, min_seeds (fewest seeds in a cell), sigma_max / sigma_min (where
    the seed mean is highest / lowest), mean_max / mean_min. With n_boot=0, lo/hi are NaN.
    Max minus min is biased upward when the spread is within noise (boot_mean > mem shows it).
    """
    return spread_boot(runs, by, metric, n_boot, ci, seed, scale)[0]


def spread_boot(runs: pd.DataFrame, by: Sequence[str] | None = None, metric: str = "test_acc",
                n_boot: int = 1000, ci: float = 0.95, seed: int = 0,
                scale: float | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """spread's table and its bootstrap replicates, (n_boot, groups) in the table's row order: a
    ratio or difference of two groups' spreads gets its interval from the same replicates
    (analysis.findings). The groups are disjoint sets of runs, so their replicates are independent."""
    by = _by(runs, by)
    d = _cells(runs, by, metric, scale)
    if len(d) == 0:
        return pd.DataFrame(columns=by + ["mem", "lo", "hi", "boot_mean", "n_sigma", "n_runs", "min_seeds",
                                          "sigma_max", "sigma_min", "mean_max", "mean_min"]), np.zeros((n_boot, 0))
    v = d["v"].to_numpy()
    cell = d["c"].to_numpy()
    cstart = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    csize = np.diff(np.r_[cstart, len(d)])
    cgroup = d["g"].to_numpy()[cstart]
    gstart = np.flatnonzero(np.r_[True, cgroup[1:] != cgroup[:-1]])
    cmean = np.add.reduceat(v, cstart) / csize
    csig = d["sigma_w"].to_numpy()[cstart]

    # point estimate and where it sits
    gmax = np.maximum.reduceat(cmean, gstart)
    gmin = np.minimum.reduceat(cmean, gstart)
    G = len(gstart)
    gid = np.repeat(np.arange(G), np.diff(np.r_[gstart, len(cmean)]))
    arg_max = pd.Series(cmean).groupby(gid).idxmax().to_numpy()
    arg_min = pd.Series(cmean).groupby(gid).idxmin().to_numpy()

    boot = _bootstrap(v, cstart, csize, gstart, n_boot, seed) if n_boot else None
    alpha = (1.0 - ci) / 2.0
    out = d.drop_duplicates("g")[by].reset_index(drop=True) if by else pd.DataFrame(index=range(1))
    out["mem"] = gmax - gmin
    out["lo"] = np.quantile(boot, alpha, axis=0) if boot is not None else np.nan
    out["hi"] = np.quantile(boot, 1.0 - alpha, axis=0) if boot is not None else np.nan
    out["boot_mean"] = boot.mean(axis=0) if boot is not None else np.nan
    out["n_sigma"] = np.diff(np.r_[gstart, len(cmean)])
    out["n_runs"] = np.add.reduceat(csize, gstart)
    out["min_seeds"] = np.minimum.reduceat(csize, gstart)
    out["sigma_max"], out["sigma_min"] = csig[arg_max], csig[arg_min]
    out["mean_max"], out["mean_min"] = gmax, gmin
    return out, (boot if boot is not None else np.zeros((0, G)))


def _bootstrap(v: np.ndarray, cstart: np.ndarray, csize: np.ndarray, gstart: np.ndarray,
               n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n_groups) bootstrap Mem: all cells and groups at once, in blocks of replicates
    (analysis.bootstrap: seeds resampled within each (group, sigma) cell)."""
    rng = np.random.default_rng(seed)
    blocks = []
    for idx in draws(cstart, csize, n_boot, rng):
        means = np.add.reduceat(v[idx], cstart, axis=1) / csize
        blocks.append(np.maximum.reduceat(means, gstart, axis=1) - np.minimum.reduceat(means, gstart, axis=1))
    return np.concatenate(blocks)


def noise_floor(runs: pd.DataFrame, q: float = 0.95, n: int = 200, seed: int = 0, metric: str = "test_acc",
                scale: float | None = None) -> float:
    """The `q` quantile of the spread that seed noise alone gives on one procedure's runs (pp for
    accuracies): the runs' deviations from their sigma cell's mean (scaled by sqrt(k / (k - 1)) so
    that their variance is the seeds'), shuffled among all runs, averaged in the same cells, max -
    min; `n` shuffles. Max - min of seed means is biased upward by this noise: a spread at or below
    its floor cannot be told from none. NaN with one seed per cell (no noise to measure)."""
    v = _values(runs, metric, scale)
    ok = np.isfinite(v)
    v, sig = v[ok], np.round(runs["sigma_w"].to_numpy(np.float64)[ok], 9)
    su, cell, size = np.unique(sig, return_inverse=True, return_counts=True)
    if len(su) < 2 or size.max() < 2:
        return np.nan
    resid = (v - (np.bincount(cell, v) / size)[cell]) * np.sqrt(size / np.maximum(size - 1, 1))[cell]
    order = np.argsort(cell, kind="stable")
    start = np.r_[0, np.cumsum(size)[:-1]]
    perm = np.argsort(np.random.default_rng([seed, len(v)]).random((n, len(v))), axis=1)  # a shuffle per row
    means = np.add.reduceat(resid[perm][:, order], start, axis=1) / size
    return float(np.quantile(means.max(axis=1) - means.min(axis=1), q))


def varying(df: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    """The columns of `columns` (in that order) that take more than one value in df and are not
    determined by the ones kept before them (e.g. weight_decay by optimizer): row labels."""
    kept: list[str] = []
    for c in columns:
        if c not in df.columns or df[c].nunique(dropna=False) < 2:
            continue
        if kept and df.groupby(kept, dropna=False)[c].nunique(dropna=False).max() < 2:
            continue
        kept.append(c)
    return kept


def _wide(runs: pd.DataFrame, by: list[str], metric: str, sigmas: Sequence[float] | None,
          prefix: str = "", scale: float | None = None) -> pd.DataFrame:
    """Mean and std of `metric` per sigma as columns '{prefix}{sigma}' and '{prefix}{sigma} sd'."""
    st = sigma_stats(runs, by, metric, scale)
    if sigmas is not None:
        st = st[st["sigma_w"].isin(list(sigmas))]
    st["sig"] = [f"{prefix}{s:g}" for s in st["sigma_w"]]
    order = list(dict.fromkeys(st.sort_values("sigma_w")["sig"]))
    idx = by if by else None
    mean = st.pivot_table(index=idx, columns="sig", values="mean", sort=True)
    sd = st.pivot_table(index=idx, columns="sig", values="std", sort=True)
    sd = sd.reindex(columns=order)
    sd.columns = [f"{c} sd" for c in sd.columns]
    cols = [x for c in order for x in (c, f"{c} sd")]
    return pd.concat([mean.reindex(columns=order), sd], axis=1)[cols].reset_index()


def sigma_table(runs: pd.DataFrame, by: Sequence[str] | None = None, metric: str = "test_acc",
                sigmas: Sequence[float] | None = None, n_boot: int = 1000, ci: float = 0.95,
                seed: int = 0, spreads: pd.DataFrame | None = None) -> pd.DataFrame:
    """Paper layout (Tables 4-6): a row per group, mean and sd of `metric` per sigma (pp), then
    spread with its interval and `train` = mean final train accuracy over all sigmas (pp).
    `spreads`: spread(runs, by, metric) already computed (one row per group), used instead of a new
    bootstrap, so that a report shows one interval per group."""
    by = _by(runs, by)
    w = _wide(runs, by, metric, sigmas)
    sp = spread(runs, by, metric, n_boot=n_boot, ci=ci, seed=seed) if spreads is None else spreads
    sp = sp[by + ["mem", "lo", "hi"]].rename(columns={"mem": "spread"})
    tr = runs.groupby(by, sort=True, dropna=False)["train_acc_final"].mean().mul(PP).rename("train").reset_index()
    out = w.merge(sp, on=by, how="left").merge(tr, on=by, how="left") if by else \
        pd.concat([w, sp, tr], axis=1)
    return out


def checkpoint_table(runs: pd.DataFrame, epochs: pd.DataFrame, by: Sequence[str] | None = None,
                     sigmas: Sequence[float] | None = None) -> pd.DataFrame:
    """Tables 2-3: val accuracy (pp) at tau_interp, tau_best and the last epoch, and the repair
    gap, mean and sd over seeds, for the extreme sigmas (default: each group's min and max)."""
    by = _by(runs, by)
    last = epochs.groupby("run", sort=False)["val_acc"].last()
    d = runs.copy()
    d["val_acc_final"] = d["run"].map(last).astype("float64") if "run" in d.columns else np.nan
    if sigmas is None:
        lo = d.groupby(by, dropna=False)["sigma_w"].transform("min") if by else d["sigma_w"].min()
        hi = d.groupby(by, dropna=False)["sigma_w"].transform("max") if by else d["sigma_w"].max()
        d = d[(d["sigma_w"] == lo) | (d["sigma_w"] == hi)]
    else:
        d = d[d["sigma_w"].isin(list(sigmas))]
    parts = []
    for metric, name in (("val_acc_interp", "val@interp"), ("val_acc_best", "val@best"),
                         ("val_acc_final", "val@final"), ("repair_gap", "repair_gap")):
        st = sigma_stats(d, by, metric, scale=PP).set_index(by + ["sigma_w"])
        parts.append(st[["mean", "std"]].rename(columns={"mean": name, "std": f"{name} sd"}))
        if metric == "val_acc_best":
            parts.append(st[["n"]])
    interp = d.assign(ok=d["tau_interp"].notna()).groupby(by + ["sigma_w"], dropna=False)["ok"].mean()
    out = pd.concat(parts, axis=1)
    out["interpolated"] = interp.reindex(out.index)
    return out.reset_index()


def tau_table(runs: pd.DataFrame, by: Sequence[str] | None = None,
              sigmas: Sequence[float] | None = None) -> pd.DataFrame:
    """Table 5 (lower part): tau_interp and tau_best (epochs) per sigma, mean and sd over seeds;
    tau_interp means are over the runs that interpolated (`interp n` says how many)."""
    by = _by(runs, by)
    a = _wide(runs, by, "tau_interp", sigmas, prefix="tau_interp@", scale=1.0)
    b = _wide(runs, by, "tau_best", sigmas, prefix="tau_best@", scale=1.0)
    return a.merge(b, on=by, how="outer") if by else pd.concat([a, b], axis=1)


def delta_table(runs: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Table 7: test accuracy (pp) at the smallest and largest sigma, tau_interp / tau_best at
    both, and |Delta| = |mean(sigma_min) - mean(sigma_max)| (pp)."""
    by = _by(runs, by)
    lo_s, hi_s = float(runs["sigma_w"].min()), float(runs["sigma_w"].max())
    two = runs[runs["sigma_w"].isin([lo_s, hi_s])]
    acc = _wide(two, by, "test_acc", None, prefix="test@")
    taus = tau_table(two, by)
    out = acc.merge(taus, on=by, how="outer") if by else pd.concat([acc, taus], axis=1)
    for c in (f"test@{lo_s:g}", f"test@{hi_s:g}"):
        if c not in out:
            out[c] = np.nan  # every run at this sigma lacks an accuracy (diverged before epoch 1)
    out["|delta|"] = (out[f"test@{lo_s:g}"] - out[f"test@{hi_s:g}"]).abs()
    return out


def clock_table(runs: pd.DataFrame, spreads: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """The forgetting-clock table: each procedure's T_SGD, T_L2, T_adapt at its final epoch (median
    over its runs that did not diverge: a diverged run's clocks stop at its divergence epoch) and
    its matching clock, beside its spread; then initmem's extension clocks t_wd and t_sgd_eff
    (analysis.sensitivity.extension_clocks; NaN where they do not apply)."""
    by = _by(runs, by)
    ok = runs["status"] != "diverged" if "status" in runs else pd.Series(True, index=runs.index)
    g = runs.groupby(by, sort=True, dropna=False)
    clk = g[list(CLOCKS)].median()
    if (~ok).any():  # groups with some non-diverged run take only those; all-diverged groups keep all
        clean = runs[ok].groupby(by, sort=True, dropna=False)[list(CLOCKS)].median()
        clk.loc[clean.index] = clean
    if {"optimizer", "l2"} <= set(runs.columns):
        clk[["clock", "T"]] = add_own_clock(pd.concat([g[["optimizer", "l2"]].first(), clk], axis=1))[["clock", "T"]]
    if {"optimizer", "weight_decay", "momentum"} <= set(runs.columns):
        cfg = g[["optimizer", "weight_decay", "momentum"]].first()
        ext = extension_clocks(cfg["optimizer"], cfg["weight_decay"], cfg["momentum"], clk["t_sgd"], clk["t_adapt"])
        for k, v in ext.items():
            clk[k] = v
    return clk.reset_index().merge(spreads[by + ["mem", "lo", "hi"]], on=by, how="left")


def main(argv: Sequence[str] | None = None) -> None:
    from analysis.load import load_or_exit
    ap = argparse.ArgumentParser(prog="python -m analysis.memory", description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+")
    ap.add_argument("--by", nargs="*", help="grouping columns (default: the procedure)")
    ap.add_argument("--metric", default="test_acc")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = parse_with_plugins(ap, argv)
    runs, _ = load_or_exit(args.roots, epoch_columns=["epoch"])
    sp = spread(runs, args.by, args.metric, n_boot=args.n_boot)
    show = (args.by or varying(runs, procedure_columns(runs))) + ["mem", "lo", "hi", "n_sigma", "n_runs"]
    print(sp[show].to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
