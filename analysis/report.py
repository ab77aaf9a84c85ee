"""One self-contained HTML report (works offline) from one or more results roots.

    python -m analysis.report RESULTS [RESULTS ...] -o report.html [--n-boot 1000] [--no-linear-model]

First the findings (analysis.findings) and the paper check (analysis.paper_check), then a section per
experiment present in the data (runs.experiment: main_grid, long_sgd, lr_l2, norm_aug, best_recipe,
depth; any other name gets a generic section; absent ones are named), each with its tables (laid out like the paper's Tables
1-7), figures (Figures 1-8; 4 and 6 as the paper draws them, analysis.paper_figures), collapse
scores with their verdicts, and a paragraph that reads the numbers; then the forgetting-clock
table (each procedure's T_SGD, T_L2, T_adapt at its final epoch beside its spread, and initmem's
extension clocks) and the Appendix G linear model (Figure 9). Runs still running are left out and
the header says n of N runs finished (plan.json); a path without results exits with status 2. plotly.js is written once in the
head; every figure is a div that uses it, so the file needs no network.

`build_report(runs, epochs)` is pure (frames in, HTML string out); `main` is the file edge.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import html
import sys
import time
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from analysis.page import (CSS, ORDER, Figures, _absent_line, _num, _opt, _order, _p, _pp, _progress_line,  # noqa: F401
                           fmt_table, table_html)
from analysis.figures import (OPT_NAME, fig_beta, fig_heatmaps, fig_linear_model, fig_repair_map, fig_vs_sigma,
                              labels, value_name)
from analysis.load import attach, finished, is_finished, procedure_columns, procedures
from analysis.memory import (INTERP_PP, PP, checkpoint_table, clock_table, delta_table, sigma_stats, sigma_table,
                             spread, tau_table, varying)
from initmem.study import EXPERIMENTS
from initmem.registry import parse_with_plugins

from analysis.sensitivity import CLOCK_LABEL, CLOCK_SHORT, CLOCKS, beta_t, family_columns, with_clock
from analysis.collapse import COLLAPSE_BOOT  # seed-bootstrap replicates of the collapse score


# ----------------------------------------------------------------------------- analysis state
@dataclasses.dataclass
class Analysis:
    """Everything computed once over all experiments (pure results of the analysis modules)."""
    runs: pd.DataFrame
    epochs: pd.DataFrame
    procs: pd.DataFrame            # one row per procedure
    spreads: pd.DataFrame          # spread per procedure (pp) with bootstrap interval
    clocks: pd.DataFrame           # clock_table per procedure (median clocks, own clock, spread)
    beta: pd.DataFrame             # beta(t) per procedure and epoch, with clocks and procedure columns
    pcols: list[str]               # procedure columns present
    n_boot: int
    seed: int = 0
    collapse: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)  # collapse_table of every family


def analyse(runs: pd.DataFrame, epochs: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> Analysis:
    procs = procedures(runs)
    pcols = procedure_columns(runs)
    sp = spread(runs, by=["procedure"], n_boot=n_boot, seed=seed)
    clocks = clock_table(runs, sp, by=["procedure"]).merge(procs, on="procedure")
    frame = attach(epochs[["run", "epoch", "val_acc", *[c for c in CLOCKS if c in epochs]]], runs,
                   ["procedure", "sigma_w"])
    beta = beta_t(frame, by=["procedure"])
    beta = with_clock(beta.merge(procs[["procedure", *pcols]], on="procedure"))
    # collapse scores of every family with >= 2 batch sizes, all experiments at once (one pass over epochs)
    from analysis.collapse import collapse_table
    collapse = collapse_table(runs, epochs, family_columns(beta, pcols), n_boot=min(n_boot, COLLAPSE_BOOT),
                              seed=seed) if len(runs) and "batch_size" in runs else pd.DataFrame()
    return Analysis(runs, epochs, procs, sp.merge(procs, on="procedure"), clocks, beta, pcols, n_boot, seed, collapse)


# ----------------------------------------------------------------------------- formatting
# ----------------------------------------------------------------------------- shared pieces
def _collapse_scores(A: "Analysis", exp: str) -> pd.DataFrame:
    """The collapse scores (with interval and verdict) of one experiment's families (may be empty)."""
    sc = A.collapse
    if not len(sc) or "experiment" not in sc:
        return pd.DataFrame()
    sc = sc[sc["experiment"] == exp]
    return sc[sc["n_curves"] >= 2] if len(sc) else sc


def _collapse_block(beta: pd.DataFrame, sc: pd.DataFrame, figs: Figures, pcols: list[str]) -> list[str]:
    """Figure 6 panels for the procedures in `beta` and the table of their collapse scores `sc`."""
    out = []
    vary = varying(beta, pcols)
    color = [c for c in vary if c != "batch_size"] or ["optimizer"]
    out.append(figs.html(fig_beta(beta, x="epoch", color=color, facet="batch_size" if "batch_size" in vary else None,
                                  title="|beta(t)| against epoch"),
                         "OLS slope of val accuracy on sigma_w at each epoch, over all (sigma, seed) runs of a "
                         "procedure (fraction per unit sigma_w)."))
    clocked = beta[beta["T"] > 0].assign(_clock=lambda d: d["clock"].map(CLOCK_LABEL))
    if len(clocked):
        out.append(figs.html(fig_beta(clocked, x="T", color=_order(set(color) | ({"batch_size"} & set(vary)))
                                      or ["optimizer"], facet="_clock", log_x=True, xlabel="own clock T",
                                      title="|beta| against each optimizer's own clock"),
                             "T_SGD for sgd and sgd_momentum without L2, T_L2 for sgd with L2, T_adapt for the "
                             "Adam family (Muon included). Curves of one recipe at different batch sizes should "
                             "coincide here if the clock is the right unit of forgetting."))
    if len(sc):
        show = _order(varying(sc, family_columns(beta, pcols))) + ["clock", "n_curves", "n_pairs", "s_clock",
                                                                   "s_epoch", "score", "lo", "hi", "verdict"]
        out.append(table_html(sc[show], "Collapse score: log10|beta| compared pairwise across batch sizes, over "
                              "the same pairs on both sides (pairs whose own-clock ranges overlap: n_pairs); "
                              "s_clock = RMS difference at matched clock values / sqrt 2, s_epoch the same at "
                              "matched epochs (decades); score = s_clock / s_epoch with a seed-bootstrap 95% "
                              "interval [lo, hi]. 'aligns on its clock' only when hi < 1, 'aligns on epochs' "
                              "only when lo > 1 (analysis/README.md).", digits=3))
    return out


def _collapse_sentence(sc: pd.DataFrame) -> list[str]:
    """The reading's sentence on the collapse scores ([] when there is none to say)."""
    if not len(sc) or "optimizer" not in sc:
        return []
    parts = []
    for _, r in sc.dropna(subset=["score"]).iterrows():
        ci = f" [95% CI {r['lo']:.2f}-{r['hi']:.2f}]" if np.isfinite(r["lo"]) else ""
        parts.append(f"{_opt(r['optimizer'])} scores {r['score']:.2f}{ci} on {CLOCK_SHORT[r['clock']]}: "
                     f"{r['verdict']}")
    return ["Collapse of |beta| across batch sizes (score < 1: tighter on the clock than on epochs): "
            + "; ".join(parts) + "."] if parts else []


def _with_main_grid(A: Analysis, runs: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """`runs` plus the main-grid runs on the same sigma_w, optimizers and batch sizes (the paper's
    baseline rows in Tables 5-6), and whether there were any."""
    sig = np.round(sorted(runs["sigma_w"].unique()), 6)
    m = A.runs
    base = m[(m["experiment"] == "main_grid") & m["sigma_w"].round(6).isin(sig)
             & m["optimizer"].isin(runs["optimizer"].unique()) & m["batch_size"].isin(runs["batch_size"].unique())]
    return (pd.concat([runs, base], ignore_index=True), True) if len(base) else (runs, False)


def band_caption(runs: pd.DataFrame) -> str:
    """The caption of an accuracy-vs-sigma figure: its band exists only with several seeds per cell."""
    by = [c for c in procedure_columns(runs)] + ["sigma_w"]
    most = int(runs.groupby(by, dropna=False).size().max()) if len(runs) else 0
    return ("Mean over seeds; band: 10th-90th percentile over seeds." if most > 1 else
            "One seed per (configuration, sigma): the line is that run; no band (a percentile band needs several seeds).")


def _generic(A: Analysis, runs: pd.DataFrame, sp: pd.DataFrame, figs: Figures) -> list[str]:
    """Spread table and accuracy vs sigma: any experiment."""
    vary = _order(varying(runs, A.pcols))
    blocks = []
    show = vary + ["mem", "lo", "hi", "n_sigma", "n_runs", "min_seeds", "mean_max", "mean_min"]
    blocks.append(table_html(sp.sort_values(vary or ["mem"])[show],
                             f"Spread Mem = max_sigma - min_sigma of the seed-mean test accuracy at tau_best (pp), "
                             f"{A.n_boot}-replicate seed bootstrap 95% interval; mean_max / mean_min in pp."))
    st = sigma_stats(runs, vary, "test_acc")
    facet = "batch_size" if "batch_size" in vary and len(vary) > 1 else None
    color = [c for c in vary if c != facet] or None
    blocks.append(figs.html(fig_vs_sigma(st, color=color, facet=facet, title="Test accuracy at tau_best vs sigma_w",
                                         ylabel="test acc (pp)"), band_caption(runs)))
    return blocks


# ----------------------------------------------------------------------------- sections
def _missing_note(missing: Sequence[str]) -> str:
    return (f" Missing from these results: {', '.join(missing)} (the parts that need "
            f"{'it' if len(missing) == 1 else 'them'} are left out).") if missing else ""


def _table1_block(A: Analysis) -> list[str]:
    from analysis.paper_figures import table1
    t1, _ = table1(A.runs)
    return [table_html(t1, "Table 1: main-grid optimizer settings as these results ran them (seeds: per batch "
                           "size and sigma; beta1 / beta2, epsilon and the Muon step are the Keras constants of "
                           "initmem.optimizers). 'the paper's grid': where the paper's main grid (the catalogue's, "
                           "initmem.study) differs, or 'as the paper'.")]


def _main_grid_paper_blocks(A: Analysis, runs: pd.DataFrame, figs: Figures) -> list[str]:
    """The 5- vs 25-point spread table and Figure 6 as the paper draws it."""
    from analysis.paper_figures import fig6, fig6_batches, sigma_subset_table
    out = []
    by = [c for c in ("optimizer", "batch_size") if c in varying(runs, A.pcols)] or ["optimizer"]
    sub = sigma_subset_table(runs, by, n_boot=A.n_boot, seed=A.seed)
    if len(sub):
        worst = float(sub["difference"].abs().max())
        out.append(table_html(sub,
                              f"Main-grid spread (pp) over all sigma_w beside the 5-point subset {{0.1, 0.5, 1.0, 1.8, "
                              f"2.5}} that Figure 4 and Table 4 use, each with its 95% seed-bootstrap interval; "
                              f"largest |difference| {worst:.1f} pp (the paper: they agree to within ~1 pp)."))
    beta6 = A.beta[A.beta["experiment"].isin(["main_grid", "lr_l2"])]
    f6, missing = fig6(beta6, "Figure 6: initialization sensitivity decays on regularization timescales, not epoch count")
    b = fig6_batches(beta6) + [None, None]
    top, bottom = (f"b={b[0]}", f"b={b[1]}") if b[1] is not None else (f"b={b[0]}", "")
    rows = f"{top} top, {bottom} bottom" if bottom else f"{top}"
    out.append(figs.html(f6, f"(a-d) |beta(t)| vs epoch: SGD family left (SGD red, SGD + momentum orange, SGD with "
                             f"lr0 1e-2 and L2 1e-2 from lr_l2 green), adaptive methods right; {rows}. "
                             f"(e) vanilla SGD on T_SGD for every batch size, SGD + L2 on T_L2 at {top} (solid)"
                             + (f" and {bottom} (dashed, green)" if bottom else "") +
                             ". (f) Adam on T_adapt for every batch size. The paper's clocks, recorded per epoch "
                             "(cosine decay included). A panel says when its runs are not in the results."
                             + _missing_note(missing)))
    return out


def section_main_grid(A, runs, sp, sc, figs):
    by = _order(varying(runs, A.pcols)) or ["optimizer"]
    fac = "batch_size" if "batch_size" in by else None
    col = [c for c in by if c != fac] or None
    blocks = _table1_block(A)
    # reading
    bs = sorted(sp["batch_size"].unique()) if "batch_size" in sp else []
    bref = 128 if 128 in bs else (bs[-1] if bs else None)
    text = []
    at = sp[sp["batch_size"] == bref] if bref is not None else sp
    order = [o for o in OPT_NAME if o in set(at.get("optimizer", []))]
    if order:
        first, *rest = order
        r0 = at[at["optimizer"] == first].iloc[0]
        s = (f"At b={bref}, {_opt(first)} keeps {_pp(r0['mem'])} of memory (95% CI {r0['lo']:.1f}-{r0['hi']:.1f}; "
             f"{r0['mean_max']:.1f}% at sigma {r0['sigma_max']:g} vs {r0['mean_min']:.1f}% at sigma {r0['sigma_min']:g})")
        s += "".join(f"; {_opt(o)} {_pp(at[at['optimizer'] == o]['mem'].iloc[0])}" for o in rest) + "."
        text.append(s)
    if len(bs) > 1:
        for o in order[:1] + [o for o in order if o == "adam"]:
            so = sp[sp["optimizer"] == o].sort_values("batch_size")
            text.append(f"Across batch sizes {_opt(o)}'s spread runs from {_pp(so['mem'].iloc[0])} (b={so['batch_size'].iloc[0]}) "
                        f"to {_pp(so['mem'].iloc[-1])} (b={so['batch_size'].iloc[-1]}).")
    st = sigma_stats(runs, by, "test_acc")
    cells = st[by + ["sigma_w", "mean"]].rename(columns={"mean": "test"})
    tr = sigma_stats(runs, by, "train_acc_best")[by + ["sigma_w", "mean"]].rename(columns={"mean": "train"})
    cells = cells.merge(tr, on=by + ["sigma_w"], how="left")
    n_bad = int((cells["train"] < INTERP_PP).sum())
    text.append(f"{n_bad} of {len(cells)} (configuration, sigma) cells did not reach {INTERP_PP}% mean train "
                f"accuracy at tau_best.")
    # spread pivot
    if fac and col:
        pv = sp.assign(cell=[f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in zip(sp["mem"], sp["lo"], sp["hi"])])
        pv = pv.assign(row=labels(pv, col).to_numpy()).pivot_table(index="row", columns="batch_size", values="cell",
                                                                     aggfunc="first")
        pv.columns = [f"b={c}" for c in pv.columns]
        blocks.append(f"<div class='tblwrap'><p class='cap'>Spread (pp) [95% seed-bootstrap interval] per "
                      f"optimizer and batch size.</p>{pv.reset_index().rename(columns={'row': ''}).to_html(index=False, border=0, classes='tbl')}</div>")
    else:
        blocks.append(table_html(sp[by + ["mem", "lo", "hi", "n_sigma", "n_runs"]], "Spread (pp)."))
    blocks.append(figs.html(fig_vs_sigma(st, col, fac, "Figure 1a: test accuracy at tau_best vs sigma_w", "test acc (pp)"),
                            band_caption(runs)))
    blocks.append(figs.html(fig_vs_sigma(sigma_stats(runs, by, "train_acc_final"), col, fac,
                                         "Figure 1b: train accuracy at the last epoch vs sigma_w", "train acc (pp)")))
    wn = sigma_stats(runs, by, "w_norm_best", scale=1.0)
    w0 = sigma_stats(runs, by, "w_norm_init", scale=1.0)
    blocks.append(figs.html(fig_vs_sigma(wn, col, fac, "Figure 1c: kernel norm ||W||_F at tau_best vs sigma_w",
                                         "||W||_F", ref=w0, ref_name="initial ||W||_F"),
                            "Dashed: the norm at initialisation. Radial memory: the selected norm tracks the initial one."))
    if fac and col:
        blocks.append(figs.html(fig_heatmaps(cells.assign(_row=labels(cells, col).to_numpy()), facet=fac, row="_row",
                                             title="Figure 2: mean test accuracy at tau_best (pp)"),
                                f"x: mean train accuracy at tau_best below {INTERP_PP}%."))
    blocks.append(figs.html(fig_vs_sigma(sigma_stats(runs, by, "tau_interp", scale=1.0), col, fac,
                                         "Figure 3a: interpolation epoch tau_interp vs sigma_w", "epochs"),
                            f"Runs that never reach {INTERP_PP:g}% train accuracy are left out of the mean."))
    blocks.append(figs.html(fig_vs_sigma(sigma_stats(runs, by, "repair_gap"), col, fac,
                                         "Figure 3b: repair gap val acc(tau_best) - val acc(tau_interp) vs sigma_w",
                                         "repair gap (pp)")))
    ck = checkpoint_table(runs, A.epochs, by)
    blocks.append(table_html(ck, "Tables 2-3: validation accuracy (pp) at tau_interp, tau_best and the last epoch, "
                                 "and the repair gap, mean \u00b1 sd over seeds, at the extreme sigmas; "
                                 "'interpolated' = fraction of runs with a tau_interp."))
    blocks += _main_grid_paper_blocks(A, runs, figs)
    return text + _collapse_sentence(sc), blocks


def _fig4_block(A: Analysis, figs: Figures) -> list[str]:
    from analysis.paper_figures import fig4, fig4_data
    curves, spreads, missing = fig4_data(A.runs, n_boot=A.n_boot, seed=A.seed)
    bs = [b for b in (16, 128) if len(curves) and b in set(curves["batch_size"])] or [16, 128]
    return [figs.html(fig4(curves, spreads, bs, "Figure 4: What helps SGD forget initialization?"),
                      "Test accuracy at tau_best vs sigma_w, mean over seeds, bars 10th-90th percentile: the main-grid "
                      "SGD baseline, long training (long_sgd, constant lr), larger learning rates and lr0 1e-2 with "
                      "L2 (lr_l2); inset: spread (pp) per configuration, sorted ascending, with its 95% seed-bootstrap "
                      "interval. All on lr_l2's sigma_w grid (the 5-point subset) where lr_l2 is present."
                      + _missing_note(missing))]


def section_long_sgd(A, runs, sp, sc, figs):
    blocks = _generic(A, runs, sp, figs)
    if not (A.runs["experiment"] == "lr_l2").any():  # Figure 4 lives in the lr_l2 section when it is there
        blocks += _fig4_block(A, figs)
    t_sgd = A.clocks.set_index("procedure")["t_sgd"]
    text = []
    for _, r in sp.sort_values("batch_size").iterrows():
        s = (f"After {r['epochs']} epochs at {r['schedule']} lr {r['lr0']:g}, SGD at b={r['batch_size']} keeps "
             f"{_pp(r['mem'])} (T_SGD = {t_sgd[r['procedure']]:.3g})")
        main = A.spreads[(A.spreads["experiment"] == "main_grid") & (A.spreads["optimizer"] == r["optimizer"])
                         & (A.spreads["batch_size"] == r["batch_size"])]
        if len(main):
            m = main.iloc[0]
            s += f", against {_pp(m['mem'])} after {m['epochs']} epochs in the main grid " \
                 f"(T_SGD = {t_sgd[m['procedure']]:.3g})"
        text.append(s + ".")
    return text, blocks


def section_lr_l2(A, runs, sp, sc, figs):
    by = _order(set(varying(runs, A.pcols)) | {"batch_size", "lr0", "l2"})
    tab = sigma_table(runs, by, spreads=sp)  # the intervals of the repair map and the clock table
    clk = runs.groupby(by, dropna=False)[["t_sgd", "t_l2"]].median().reset_index()
    tab = tab.merge(clk, on=by)
    blocks = [table_html(tab, "Table 4: test accuracy (pp) at tau_best per sigma_w, mean \u00b1 sd over seeds; "
                              "spread with its 95% seed-bootstrap interval; train = mean final train accuracy over "
                              "all sigma_w (pp); clocks at the last epoch.")]
    st = sigma_stats(runs, by, "test_acc")
    col = [c for c in by if c != "batch_size"]
    from analysis.paper_figures import table4_bottom
    bottom, missing = table4_bottom(A.runs, sorted(runs["sigma_w"].unique()), sorted(runs["batch_size"].unique()),
                                    n_boot=A.n_boot, seed=A.seed)
    if len(bottom):
        bottom = bottom.merge(A.runs.groupby(["experiment", "batch_size", "lr0", "l2", "epochs"])[["t_sgd", "t_l2"]]
                              .median().reset_index().drop(columns="experiment")
                              .drop_duplicates(["batch_size", "lr0", "l2", "epochs"]),
                              on=["batch_size", "lr0", "l2", "epochs"], how="left")
        blocks.append(table_html(bottom, "Table 4 (bottom rows): the Adam baseline (main grid) and SGD long training "
                                         "(long_sgd) on the same sigma_w and batch sizes, for comparison; †: a "
                                         "single seed (no sd)." + _missing_note(missing)))
    elif missing:
        blocks.append(_p("Table 4's bottom rows (Adam baseline, SGD long training) need" + _missing_note(missing)))
    blocks += _fig4_block(A, figs)
    blocks.append(figs.html(fig_vs_sigma(st, col, "batch_size", "The full LR x L2 sweep: test accuracy vs sigma_w",
                                         "test acc (pp)")))
    blocks.append(figs.html(fig_repair_map(sp, col, facet="batch_size", title="Repair map: spread per configuration"),
                            "Sorted ascending; error bars: 95% seed-bootstrap interval."))
    # reading: what separates small from large spreads, on the L2 clock
    text = []
    lo, hi = sp.loc[sp["mem"].idxmin()], sp.loc[sp["mem"].idxmax()]
    text.append(f"The spread ranges from {_pp(hi['mem'])} (b={hi['batch_size']}, lr0={hi['lr0']:g}, l2={hi['l2']:g}) "
                f"down to {_pp(lo['mem'])} (b={lo['batch_size']}, lr0={lo['lr0']:g}, l2={lo['l2']:g}).")
    t = sp.merge(clk, on=by)
    big = t[t["t_l2"] >= 1.0]
    small = t[(t["l2"] > 0) & (t["t_l2"] < 1.0)]
    if len(big) and len(small):
        text.append(f"With T_L2 >= 1 ({len(big)} configurations) the spread is at most {_pp(big['mem'].max())}; with "
                    f"L2 but T_L2 < 1 ({len(small)}) it is at least {_pp(small['mem'].min())}.")
    return text, blocks


def section_norm_aug(A, runs, sp, sc, figs):
    by = _order(set(varying(runs, A.pcols)) | {"norm", "augment", "optimizer", "batch_size"})
    both, has_base = _with_main_grid(A, runs)
    tab = sigma_table(both, by, n_boot=A.n_boot)
    blocks = [table_html(tab, "Table 6: test accuracy (pp) per sigma_w, mean \u00b1 sd; spread [95% CI]"
                         + ("; rows without augmentation are the main-grid baseline on the same sigma_w." if has_base else "."))]
    st = sigma_stats(both, by, "test_acc")
    dash = {}
    if has_base:
        for lab in labels(st[~st["augment"]], ["norm", "augment"]).unique():
            dash[lab] = "dash"
    blocks.append(figs.html(fig_vs_sigma(st, ["norm", "augment"], ["optimizer", "batch_size"],
                                         "Figure 8: test accuracy vs sigma_w by normalisation and augmentation",
                                         "test acc (pp)", dash=dash)))
    text = []
    for (o, b), g in tab.groupby(["optimizer", "batch_size"]):
        parts = [f"{value_name('norm', r['norm'])}{' + aug' if r['augment'] else ' (no aug)'} {_pp(r['spread'])}"
                 for _, r in g.sort_values(["augment", "norm"]).iterrows()]
        text.append(f"{_opt(o)} b={b}: " + ", ".join(parts) + ".")
    return text, blocks


def section_best_recipe(A, runs, sp, sc, figs):
    by = _order(set(varying(runs, A.pcols)) | {"optimizer", "batch_size"})
    tab = delta_table(runs, by)
    blocks = [table_html(tab, "Table 7: test accuracy (pp) at the smallest and largest sigma_w, mean \u00b1 sd; "
                              "tau_interp / tau_best (epochs); |delta| = |difference of the means| (pp).")]
    lo_s, hi_s = runs["sigma_w"].min(), runs["sigma_w"].max()
    text = []
    for _, r in tab.iterrows():
        text.append(f"{_opt(r['optimizer'])} (b={r['batch_size']}): {r[f'test@{lo_s:g}']:.1f}% at sigma {lo_s:g} and "
                    f"{r[f'test@{hi_s:g}']:.1f}% at sigma {hi_s:g}, |delta| = {_pp(r['|delta|'])}.")
    st = sigma_stats(runs, by, "test_acc")
    blocks.append(figs.html(fig_vs_sigma(st, "optimizer", "batch_size", "Best recipe: test accuracy vs sigma_w",
                                         "test acc (pp)")))
    return text, blocks


def section_depth(A, runs, sp, sc, figs):
    both, has_base = _with_main_grid(A, runs)
    by = _order(set(varying(runs, A.pcols)) | {"arch", "optimizer", "batch_size"})
    by = [c for c in by if c != "patience"]  # patience follows arch
    tab = sigma_table(both, by, n_boot=A.n_boot)
    blocks = [table_html(tab, "Table 5 (upper): test accuracy (pp) per sigma_w, mean \u00b1 sd; spread [95% CI]; "
                              "train = mean final train accuracy (pp)"
                              + ("; ResNet-9 rows are the main grid on the same sigma_w." if has_base else "."))]
    blocks.append(table_html(tau_table(both, by), "Table 5 (lower): tau_interp and tau_best (epochs), mean \u00b1 sd."))
    blocks.append(figs.html(fig_vs_sigma(sigma_stats(both, by, "test_acc"), "arch", ["optimizer", "batch_size"],
                                         "Figure 5: test accuracy vs sigma_w by architecture", "test acc (pp)")))
    blocks.append(figs.html(fig_vs_sigma(sigma_stats(both, by, "train_acc_final"), "arch", ["optimizer", "batch_size"],
                                         "Figure 7: final train accuracy vs sigma_w by architecture", "train acc (pp)")))
    text = []
    for (o, b), g in tab.groupby(["optimizer", "batch_size"]):
        if o != "sgd":
            continue
        text.append(f"SGD at b={b}: " + ", ".join(f"{value_name('arch', r['arch'])} {_pp(r['spread'])}"
                                                  for _, r in g.sort_values("arch").iterrows()) + ".")
    tr = both.groupby(["arch", "optimizer", "batch_size", "sigma_w"])["train_acc_final"].mean().mul(PP)
    bad = tr[tr < INTERP_PP].reset_index()
    if len(bad):
        worst = bad.groupby("arch").size().sort_values(ascending=False)
        text.append(f"Cells whose mean final train accuracy stays below {INTERP_PP:g}%: "
                    + ", ".join(f"{value_name('arch', a)} {n}" for a, n in worst.items()) + " (failure to train, not only to forget).")
    return text, blocks


def section_generic(A, runs, sp, sc, figs):
    blocks = _generic(A, runs, sp, figs)
    lo, hi = sp.loc[sp["mem"].idxmin()], sp.loc[sp["mem"].idxmax()]
    vary = _order(varying(runs, A.pcols))
    name = lambda r: ", ".join(value_name(c, r[c]) for c in vary) or "the only procedure"  # noqa: E731
    sig = sorted(runs["sigma_w"].unique())
    if len(sp) == 1:
        text = [f"One procedure, {len(runs)} runs over sigma_w {', '.join(f'{s:g}' for s in sig)}: spread "
                f"{_pp(hi['mem'])} (95% CI {hi['lo']:.1f}-{hi['hi']:.1f}); {hi['mean_max']:.1f}% at sigma "
                f"{hi['sigma_max']:g}, {hi['mean_min']:.1f}% at sigma {hi['sigma_min']:g}."]
    else:
        text = [f"{len(sp)} procedures, {len(runs)} runs. Largest spread {_pp(hi['mem'])} ({name(hi)}); "
                f"smallest {_pp(lo['mem'])} ({name(lo)})."]
    return text + _collapse_sentence(sc), blocks


# Section builders: (A, the experiment's runs, its spreads, its collapse scores, figures) -> (reading
# sentences, HTML blocks); build_report adds the paragraph and the beta / collapse block after them.
SECTIONS: dict[str, Callable] = {"main_grid": section_main_grid, "long_sgd": section_long_sgd,
                                 "lr_l2": section_lr_l2, "norm_aug": section_norm_aug,
                                 "best_recipe": section_best_recipe, "depth": section_depth}


def paper_section(A: Analysis) -> list[str]:
    """The findings (analysis.findings: SPEC Section 5b's qualitative claims as rules) and the paper check
    (analysis.paper_check: SPEC Section 5's headline numbers beside the measured ones)."""
    from analysis.findings import report_blocks
    from analysis.paper_check import paper_check, summary
    ftext, fblocks = report_blocks(A.runs, A.epochs, A.n_boot, A.seed)
    t = paper_check(A.runs, n_boot=A.n_boot, seed=A.seed, spreads=A.spreads)
    judged = t[t["verdict"] != "not run"]
    text = (f"Each headline number of the paper (SPEC Section 5) beside the value measured here, its "
            f"{A.n_boot}-replicate seed-bootstrap 95% interval and the difference (pp). 'agrees': the paper's "
            f"number (quoted to 0.1 pp, so +-0.05; '~26' +-0.5) meets the interval, or for a bound ('< 1', "
            f"'>= 99.5') the whole interval lies on its side; 'differs': it does not (a bound: the whole interval "
            f"lies on the other side); 'inconclusive': the interval straddles a bound; 'not comparable': measured "
            f"on another design than the paper's (its sigma_w set, seeds per cell, network and data sizes, "
            f"epochs), which the verdict names; 'not run': the experiment or procedure is not in these results. "
            f"{summary(t)}.")
    if len(judged) and (judged["verdict"] == "differs").any():
        text += " Differing: " + "; ".join(judged.loc[judged["verdict"] == "differs", "claim"]) + "."
    return [_p(ftext + " " + text), *fblocks,
            table_html(t, "Paper check: paper value, measured value [95% seed-bootstrap interval], "
                          "difference = measured - paper (pp), verdict.")]


EXT_COLUMNS = {"t_wd": "T_wd (initmem ext.)", "t_sgd_eff": "T_SGD,eff (initmem ext.)"}


def clock_section(A: Analysis) -> list[str]:
    ct = A.clocks
    vary = _order(varying(ct, A.pcols))
    ext = [c for c in EXT_COLUMNS if c in ct and ct[c].notna().any()]
    show = vary + ["t_sgd", "t_l2", "t_adapt", "clock", "T", *ext, "mem", "lo", "hi"]
    ct = ct.sort_values([c for c in ("experiment", "mem") if c in ct])
    text = ("Each procedure's three clocks after its last update (median over its runs that did not diverge) "
            "beside its spread. The clock that belongs to the optimizer is 'clock'/'T'; the paper's figures use "
            "only these. Beyond the paper (initmem's extension, SPEC Section 4): T_wd = wd sum eta, the "
            "contraction by decoupled weight decay (AdamW, Muon: their decay 1e-4 is otherwise invisible), and "
            "T_SGD,eff = (1/b) sum (eta / (1 - mu))^2, SGD + momentum's T_SGD with its effective step. "
            "Use `python -m analysis.clocks` to place a recipe that has not been run among these.")
    rx, ry = ct["T"].rank().to_numpy(float), ct["mem"].rank().to_numpy(float)  # Spearman = Pearson of ranks
    ok = np.isfinite(rx) & np.isfinite(ry)
    if ok.sum() >= 3 and np.ptp(rx[ok]) > 0 and np.ptp(ry[ok]) > 0:
        corr = float(np.corrcoef(rx[ok], ry[ok])[0, 1])
        text += (f" Spearman rank correlation of the own clock T with the spread over {int(ok.sum())} "
                 f"procedures: {corr:.2f}.")
    cap = ("Forgetting clocks (T_SGD, T_L2, T_adapt at the final epoch; the paper's definitions) and spread (pp)"
           + ("; " + ", ".join(EXT_COLUMNS[c] for c in ext) + ": initmem's extension clocks, empty where they do "
              "not apply" if ext else "") + ".")
    return [_p(text), table_html(ct[show].rename(columns=EXT_COLUMNS), cap)]


def linear_model_section(figs: Figures) -> list[str]:
    from analysis.linear_model import end_states, figure9_runs
    runs = figure9_runs()
    es = pd.DataFrame(end_states(runs))
    get = lambda p, lr: float(es[(es["panel"].str.startswith(p)) & (es["lr"] == lr)]["D_end"].iloc[0])  # noqa: E731
    text = (f"Scalar model (a b - y)^2 from (1, 6), D = a^2 - b^2 = -35. Gradient descent (20 steps): D = "
            f"{get('a', 0.01):.1f} at lr 0.01, {get('a', 0.04):.1f} at lr 0.04. SGD with cyclic targets (50,000 steps): "
            f"{get('b', 0.01):.2g} and {get('b', 0.04):.2g}. Full-batch Adam (5,000 steps) freezes at "
            f"{get('c', 0.01):.1f} and {get('c', 0.04):.1f}; minibatch Adam with random targets (200,000 steps) "
            f"reaches {get('d', 0.01):.2g} and {get('d', 0.04):.2g}.")
    return [_p(text), table_html(es, "End states of Figure 9 (D_end = final imbalance).", digits=4),
            figs.html(fig_linear_model(runs, "Figure 9: the minimal linear model"))]




def build_report(runs: pd.DataFrame, epochs: pd.DataFrame, n_boot: int = 1000, linear_model: bool = True,
                 title: str = "Initialisation memory report", source: str = "", seed: int = 0,
                 progress: list[dict] | None = None) -> str:
    """The whole report as one HTML string (runs/epochs from analysis.load.load). Runs that are
    still running (a sweep in progress) are left out; `progress` (analysis.load.progress) puts
    'n of N runs finished' per root in the header."""
    from plotly.offline import get_plotlyjs
    t0 = time.perf_counter()
    n_running = int((~is_finished(runs)).sum())
    runs, epochs = finished(runs, epochs)
    A = analyse(runs, epochs, n_boot=n_boot, seed=seed)
    figs = Figures()
    present = list(runs["experiment"].unique()) if len(runs) else []
    order = [e for e in EXPERIMENTS if e in present] + sorted(e for e in present if e not in EXPERIMENTS)
    sections = [("paper_check", "Findings and paper check: the paper's claims against these results",
                 paper_section(A))] if len(runs) else []
    for exp in order:
        b = A.beta[A.beta["experiment"] == exp]
        sc = _collapse_scores(A, exp)
        text, blocks = SECTIONS.get(exp, section_generic)(A, runs[runs["experiment"] == exp],
                                                          A.spreads[A.spreads["experiment"] == exp], sc, figs)
        body = [_p(" ".join(text))] + blocks + _collapse_block(b, sc, figs, A.pcols)
        sections.append((exp, EXPERIMENTS[exp].heading if exp in EXPERIMENTS else f"Experiment {exp}", body))
    if len(runs):
        sections.append(("clocks", "Forgetting clocks of every procedure", clock_section(A)))
    if linear_model:
        sections.append(("linear_model", "Appendix G: the minimal linear model (Figure 9)", linear_model_section(figs)))
    nav = "".join(f"<li><a href='#{k}'>{html.escape(t)}</a></li>" for k, t, _ in sections)
    body = "".join(f"<section id='{k}'><h2>{html.escape(t)}</h2>{''.join(b)}</section>" for k, t, b in sections)
    meta = (f"{_progress_line(runs, progress, n_running)} {len(epochs)} epoch rows, "
            f"{runs['procedure'].nunique() if len(runs) else 0} procedures."
            + (f" Source: {html.escape(source)}." if not progress else "") + " "
            f"Built {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} in "
            f"{time.perf_counter() - t0:.1f} s. Accuracies in percentage points (pp); |beta| in accuracy "
            f"fraction per unit sigma_w.")
    if not len(runs):
        body = "<p>No runs in the results.</p>" + body
    absent = _absent_line(order)
    if absent:
        body = f"<p class='meta'>{html.escape(absent)}</p>" + body
    from analysis.design import banner, presets_of, study_table
    scale = banner(study_table(runs, presets_of(runs, progress))) if len(runs) else ""
    scale = f"<p class='banner'>{html.escape(scale)}</p>" if scale else ""
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style><script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
            f"<h1>{html.escape(title)}</h1>{scale}<p class='meta'>{meta}</p><nav><ul>{nav}</ul></nav>{body}"
            f"</body></html>")


def main(argv: Sequence[str] | None = None) -> None:
    from analysis.load import load_or_exit, progress
    ap = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", help="results root(s): local folders or URIs")
    ap.add_argument("-o", "--output", default="report.html")
    ap.add_argument("--n-boot", type=int, default=1000, help="seed-bootstrap replicates (0: no intervals)")
    ap.add_argument("--no-linear-model", action="store_true", help="leave out the Appendix G section")
    ap.add_argument("--experiment", nargs="*", help="only these experiments")
    args = parse_with_plugins(ap, argv)
    t0 = time.perf_counter()
    filters = [("experiment", "in", args.experiment)] if args.experiment else None
    runs, epochs = load_or_exit(args.roots, filters=filters)  # exit 2 before writing if a root holds nothing
    prog = progress(args.roots, runs)
    if not is_finished(runs).any():
        where = "; ".join(f"{p['root']}: {p['finished']} of {p['planned'] if p['planned'] is not None else '?'} "
                          f"runs finished {p['status']}" for p in prog)
        sel = f" with experiment in {args.experiment}" if args.experiment else ""
        print(f"error: no finished runs{sel} yet ({where}); nothing written", file=sys.stderr)
        raise SystemExit(2)
    t1 = time.perf_counter()
    page = build_report(runs, epochs, n_boot=args.n_boot, linear_model=not args.no_linear_model,
                        source=", ".join(args.roots), progress=prog)
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {args.output} ({len(page) / 1e6:.1f} MB): load {t1 - t0:.1f} s, build {time.perf_counter() - t1:.1f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
