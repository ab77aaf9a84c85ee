"""The paper's combined outputs, laid out as the paper draws them: Table 1 (from the catalogue),
Table 4's bottom rows, Figure 4 (what helps SGD forget, with its inset) and Figure 6 (panels a-f).

    python -m analysis.report RESULTS... -o report.html      # they appear in the experiments' sections

    from analysis.paper_figures import table1, fig4, fig6
    table1(runs)                              # the main grid's optimizer settings (+ what the results differ in)
    fig4(runs, spreads)                       # needs lr_l2; main_grid and long_sgd add their curves
    fig6(beta)                                # needs main_grid; lr_l2 adds the green L2 curve

Each builder returns (figure or frame, the names of the experiments it needed but did not find),
so the report can say which one is missing. Nothing here reads result files.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from initmem.optimizers import OPTIMIZERS

from analysis.figures import FAST, LAYOUT, OPT_NAME, PALETTE, _xy, empty_figure
from analysis.memory import sigma_stats

# Figure 6's colours as the paper draws them (SGD red, momentum orange; Adam, AdamW, Muon); any other
# optimizer in the results takes a palette colour and the panel of its family (initmem.optimizers).
PAPER_COLORS = {"sgd": "#d62728", "sgd_momentum": "#ff7f0e", "adam": "#1f77b4", "adamw": "#9467bd", "muon": "#17becf"}
L2_GREEN = "#2ca02c"
BATCH_COLORS = {16: "#440154", 32: "#3b528b", 64: "#21918c", 128: "#5ec962", 256: "#c8b000"}


def _sel(df: pd.DataFrame, **kv) -> pd.DataFrame:
    from analysis.paper_check import _matches   # one selection rule: isclose for floats, == otherwise
    return df[_matches(df, kv)]


# ----------------------------------------------------------------------------- Table 1
def table1(runs: pd.DataFrame | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Table 1 (main-grid optimizer settings), one row per optimizer, with the Keras constants of
    initmem.optimizers. Without `runs` (or without main-grid runs in them): the catalogue's main grid
    (initmem.study), the paper's. With them: what ran (values, batch sizes, sigmas and seeds of the
    main-grid runs), and a last column saying where that departs from the paper's grid."""
    from initmem.config import RunConfig
    from initmem.study import MAIN_GRID
    mg = runs[runs["experiment"] == "main_grid"] if runs is not None and len(runs) else None
    rows = []
    for grid in MAIN_GRID.full:
        axes = dict(grid.axes)
        for opt in axes.get("optimizer", (grid.fixed.get("optimizer", "sgd"),)):
            paper = RunConfig(**{**grid.fixed, "optimizer": opt, "experiment": MAIN_GRID.name})
            ran = mg[mg["optimizer"] == opt] if mg is not None and len(mg) else None
            if mg is not None and len(mg) and not len(ran):
                continue                                   # an optimizer the results did not run
            src = _settings(ran) if ran is not None else {
                "lr0": paper.lr0, "schedule": paper.schedule, "alpha": paper.alpha, "epochs": paper.epochs,
                "momentum": paper.momentum, "weight_decay": paper.weight_decay, "l2": paper.l2,
                "batch sizes": list(axes.get("batch_size", (paper.batch_size,))),
                "sigma_w": list(axes.get("sigma_w", (paper.sigma_w,))), "seeds": len(axes.get("seed", (paper.seed,)))}
            c = OPTIMIZERS[opt].constants
            row = {"optimizer": OPT_NAME.get(opt, opt), "lr0": src["lr0"],
                   "schedule": f"{src['schedule']} (alpha {src['alpha']:g})" if src["schedule"] == "cosine"
                   else src["schedule"], "epochs": src["epochs"],
                   "momentum": f"{src['momentum']:g}" if opt == "sgd_momentum" else "\u2014",
                   "beta1 / beta2": f"{c['beta_1']} / {c['beta_2']}" if "beta_1" in c else "\u2014",
                   "epsilon": f"{c['epsilon']}" if "epsilon" in c else "\u2014",
                   "Muon step": (f"momentum {c['momentum']}, {c['ns_steps']} Newton-Schulz steps, "
                                 f"rate {c['rms_rate']}") if "ns_steps" in c else "\u2014",
                   "weight decay": src["weight_decay"], "L2": src["l2"],
                   "batch sizes": ", ".join(str(b) for b in src["batch sizes"]), "sigma_w": _range(src["sigma_w"]),
                   "seeds": src["seeds"]}
            if ran is not None:
                row["the paper's grid"] = _differences(ran, paper, axes)
            rows.append(row)
    return pd.DataFrame(rows), []


def _settings(r: pd.DataFrame) -> dict:
    """The settings the runs of one optimizer ran with (one value where they agree, else all)."""
    one = (lambda k: (lambda v: v[0] if len(v) == 1 else "/".join(f"{x:g}" if isinstance(x, float) else str(x)
                                                                  for x in v))(sorted(set(r[k].tolist()), key=str)))
    return {"lr0": one("lr0"), "schedule": one("schedule"), "alpha": r["alpha"].iloc[0], "epochs": one("epochs"),
            "momentum": r["momentum"].iloc[0], "weight_decay": one("weight_decay"), "l2": one("l2"),
            "batch sizes": sorted(set(r["batch_size"].tolist())), "sigma_w": sorted(set(r["sigma_w"].tolist())),
            "seeds": int(r.groupby(["batch_size", "sigma_w"])["seed"].nunique().max())}


def _range(values: Sequence[float]) -> str:
    v = sorted(values)
    return f"{v[0]:g}, {v[1]:g}, ..., {v[-1]:g} ({len(v)})" if len(v) > 3 else ", ".join(f"{x:g}" for x in v)


def _differences(r: pd.DataFrame, paper, axes) -> str:
    """Where the runs of one optimizer depart from the paper's main grid: "as the paper", or "paper: ..."."""
    diffs = []
    for k in ("lr0", "schedule", "alpha", "epochs", "momentum", "weight_decay", "l2", "arch", "norm", "augment",
              "width", "train_subset", "eval_subset", "dataset"):
        if k in r:
            vals = sorted(set(r[k].tolist()), key=str)
            if vals != [getattr(paper, k)]:
                v = getattr(paper, k)
                diffs.append(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}")
    sig, seeds = sorted(axes.get("sigma_w", ())), len(axes.get("seed", ()))
    if sig and sorted(set(r["sigma_w"].tolist())) != sig:
        diffs.append(f"sigma_w {_range(sig)}")
    if seeds and r.groupby(["batch_size", "sigma_w"])["seed"].nunique().max() != seeds:
        diffs.append(f"{seeds} seeds")
    if sorted(set(r["batch_size"].tolist())) != sorted(axes.get("batch_size", ())):
        diffs.append("batch sizes " + ", ".join(str(b) for b in axes.get("batch_size", ())))
    return "as the paper" if not diffs else "paper: " + "; ".join(diffs)


# ----------------------------------------------------------------------------- Table 4, bottom rows
def table4_bottom(runs: pd.DataFrame, sigmas: Sequence[float], batch_sizes: Sequence[int],
                  n_boot: int = 1000, seed: int = 0) -> tuple[pd.DataFrame, list[str]]:
    """Table 4's bottom rows on the lr_l2 sweep's sigma_w and batch sizes: the Adam baseline (main
    grid) and SGD long training (long_sgd, single seed: marked with a dagger)."""
    from analysis.memory import sigma_table
    sig = np.round(np.asarray(sigmas, dtype=float), 6)
    parts, missing = [], []
    for exp, label, pick in (("main_grid", "Adam baseline (main grid)", dict(optimizer="adam", lr0=1e-3, l2=0.0)),
                             ("long_sgd", "SGD long training (constant lr)", dict(optimizer="sgd"))):
        r = runs[(runs["experiment"] == exp)]
        if not len(r):
            missing.append(exp)
            continue
        r = _sel(r, **pick)
        r = r[r["sigma_w"].round(6).isin(sig) & r["batch_size"].isin(list(batch_sizes))]
        if not len(r):
            continue
        t = sigma_table(r, ["batch_size", "lr0", "l2", "epochs"], n_boot=n_boot, seed=seed)
        one_seed = r.groupby(["batch_size", "sigma_w"]).size().max() == 1
        t.insert(0, "rows", label + (" \u2020 (single seed)" if one_seed else ""))
        parts.append(t)
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()), missing


# ----------------------------------------------------------------------------- Figure 4
def fig4_data(runs: pd.DataFrame, n_boot: int = 1000, seed: int = 0, batch_sizes=(16, 128)):
    """Curves (label, batch_size, sigma_w, mean, p10, p90 in pp) and spreads (label, batch_size, mem,
    lo, hi; the report's n_boot and seed) of Figure 4's configurations, on lr_l2's sigma_w grid; and
    the missing experiments."""
    from analysis.memory import spread
    lr = runs[runs["experiment"] == "lr_l2"]
    sig = np.round(sorted(lr["sigma_w"].unique()), 6) if len(lr) else None
    picks = [("main_grid", "SGD baseline (main grid, lr0 1e-3)", dict(optimizer="sgd", lr0=1e-3, l2=0.0)),
             ("long_sgd", "long training (constant lr 1e-3)", dict(optimizer="sgd")),
             ("lr_l2", "lr0 1e-2", dict(lr0=1e-2, l2=0.0)), ("lr_l2", "lr0 1e-1", dict(lr0=1e-1, l2=0.0)),
             ("lr_l2", "lr0 1e-2 + L2 1e-3", dict(lr0=1e-2, l2=1e-3)),
             ("lr_l2", "lr0 1e-2 + L2 5e-3", dict(lr0=1e-2, l2=5e-3)),
             ("lr_l2", "lr0 1e-2 + L2 1e-2", dict(lr0=1e-2, l2=1e-2))]
    curves, spr, missing = [], [], []
    for exp, label, pick in picks:
        r = runs[runs["experiment"] == exp]
        if not len(r):
            missing.append(exp)
            continue
        r = _sel(r, **pick)
        if sig is not None:
            r = r[r["sigma_w"].round(6).isin(sig)]
        r = r[r["batch_size"].isin(list(batch_sizes))]
        if not len(r):
            continue
        st = sigma_stats(r, ["batch_size"], "test_acc")
        curves.append(st.assign(label=label))
        spr.append(spread(r, ["batch_size"], n_boot=n_boot, seed=seed).assign(label=label))
    cat = (lambda x: pd.concat(x, ignore_index=True) if x else pd.DataFrame())  # noqa: E731
    return cat(curves), cat(spr), sorted(set(missing))


def fig4(curves: pd.DataFrame, spreads: pd.DataFrame, batch_sizes=(16, 128), title: str = "") -> go.Figure:
    """Figure 4: test accuracy vs sigma_w at b=16 (a) and b=128 (b), one line per configuration,
    with an inset per panel: the configurations' spreads (pp) sorted ascending, 95% intervals."""
    if not len(curves):
        return empty_figure(title, "no Figure 4 configuration in these results")
    labels = list(dict.fromkeys(curves["label"]))
    cmap = {lab: PALETTE[i % len(PALETTE)] for i, lab in enumerate(labels)}
    fig = make_subplots(rows=1, cols=len(batch_sizes), shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=[f"({'ab'[i]}) b={b}" for i, b in enumerate(batch_sizes)])
    for i, b in enumerate(batch_sizes):
        for lab in labels:
            cur = curves[(curves["label"] == lab) & (curves["batch_size"] == b)].sort_values("sigma_w")
            if not len(cur):
                continue
            fig.add_trace(go.Scatter(**FAST, x=cur["sigma_w"], y=cur["mean"], mode="lines+markers", name=lab, legendgroup=lab,
                                     line=dict(color=cmap[lab]), marker=dict(size=5), showlegend=i == 0,
                                     error_y=dict(type="data", symmetric=False, array=cur["p90"] - cur["mean"],
                                                  arrayminus=cur["mean"] - cur["p10"], thickness=0.8, width=2)),
                          row=1, col=i + 1)
    # insets: axes placed inside each panel (lower left: the curves fall towards large sigma)
    w = 1.0 / len(batch_sizes)
    for i, b in enumerate(batch_sizes):
        s = spreads[spreads["batch_size"] == b].sort_values("mem") if len(spreads) else spreads
        if not len(s):
            continue
        ax = 3 + i
        x0 = i * w + 0.02 * (i == 0) + 0.04 * (i > 0)
        fig.add_trace(go.Bar(x=s["mem"], y=s["label"], orientation="h", marker_color=[cmap[lab] for lab in s["label"]],
                             error_x=dict(type="data", symmetric=False, array=(s["hi"] - s["mem"]).clip(lower=0),
                                          arrayminus=(s["mem"] - s["lo"]).clip(lower=0)),
                             showlegend=False, xaxis=f"x{ax}", yaxis=f"y{ax}",
                             hovertemplate="%{y}: %{x:.1f} pp<extra></extra>"))
        fig.update_layout(**{f"xaxis{ax}": dict(domain=[x0 + 0.16, x0 + w * 0.62], anchor=f"y{ax}", title_text="spread (pp)",
                                                title_font=dict(size=9), tickfont=dict(size=8)),
                             f"yaxis{ax}": dict(domain=[0.05, 0.45], anchor=f"x{ax}", tickfont=dict(size=8))})
    fig.update_xaxes(title_text="sigma_w", row=1)
    fig.update_yaxes(title_text="test acc (pp)", col=1, row=1)
    fig.update_layout(title=title, height=520, **LAYOUT)
    return fig


# ----------------------------------------------------------------------------- Figure 6
def _pair_batches(available: Sequence[int]) -> list[int]:
    av = sorted(set(int(b) for b in available))
    return [b for b in (16, 128) if b in av] if {16, 128} <= set(av) else (av[:1] + av[-1:] if len(av) > 1 else av)


def fig6_batches(beta: pd.DataFrame) -> list[int]:
    """The two batch sizes of Figure 6's rows (16 and 128 where the main grid has them)."""
    mg = beta[beta["experiment"] == "main_grid"]
    mg = _sel(mg, lr0=1e-3, l2=0.0) if len(mg) else mg
    return _pair_batches(mg["batch_size"].unique()) if len(mg) else []


def fig6(beta: pd.DataFrame, title: str = "", floor: float = 1e-5) -> tuple[go.Figure, list[str]]:
    """Figure 6: (a-d) |beta(t)| vs epoch, SGD family left and adaptive methods right, b=16 top and
    b=128 bottom, with lr_l2's eta 1e-2, L2 1e-2 curve (green); (e) vanilla SGD on T_SGD across the
    batch sizes with SGD + L2 on T_L2 at b=16, 128 (green); (f) Adam on T_adapt across batch sizes.
    `beta` from analysis.report.analyse (beta(t) with procedure columns, the clocks and T)."""
    mg = beta[beta["experiment"] == "main_grid"]
    mg = _sel(mg, lr0=1e-3, l2=0.0) if len(mg) else mg
    l2 = beta[beta["experiment"] == "lr_l2"]
    l2 = _sel(l2, lr0=1e-2, l2=1e-2) if len(l2) else l2
    missing = [e for e, d in (("main_grid", mg), ("lr_l2", l2)) if not len(beta[beta["experiment"] == e])]
    if not len(mg):
        return empty_figure(title, "Figure 6 needs the main grid"), missing
    bs = fig6_batches(beta)
    names = []
    for b in bs:
        names += [f"SGD family, b={b}", f"adaptive methods, b={b}"]
    letters = "abcd"
    fig = make_subplots(rows=len(bs) + 1, cols=2, shared_yaxes=True, horizontal_spacing=0.05, vertical_spacing=0.11,
                        subplot_titles=[f"({letters[i]}) {n}" for i, n in enumerate(names)]
                        + ["(e) SGD on T_SGD; SGD + L2 on T_L2", "(f) Adam on T_adapt"])
    shown, traces, filled = set(), [], set()

    def line(d, x, name, color, row, col, dash="solid"):
        d = d[np.isfinite(d["beta"])].sort_values(x)
        if x != "epoch":
            d = d[d[x] > 0]
        if not len(d):
            return
        filled.add((row, col))
        traces.append(go.Scatter(**FAST, **_xy(fig, row, col), x=d[x].to_numpy(),
                                 y=np.maximum(d["beta"].abs().to_numpy(), floor), mode="lines", name=name,
                                 legendgroup=name, showlegend=name not in shown, line=dict(color=color, width=1.5, dash=dash),
                                 hovertemplate=f"{name}<br>{x} %{{x:.3g}}<br>|beta| %{{y:.3g}}<extra></extra>"))
        shown.add(name)

    present = [o for o in OPTIMIZERS if o in set(mg["optimizer"])]
    extra = iter(c for c in PALETTE if c not in PAPER_COLORS.values())
    colors = {o: PAPER_COLORS.get(o) or next(extra) for o in present}
    for r, b in enumerate(bs, start=1):
        for opt in present:
            col = 2 if OPTIMIZERS[opt].adaptive else 1
            line(mg[(mg["optimizer"] == opt) & (mg["batch_size"] == b)], "epoch", OPT_NAME.get(opt, opt), colors[opt],
                 r, col)
        line(l2[l2["batch_size"] == b], "epoch", "SGD lr0 1e-2 + L2 1e-2 (lr_l2)", L2_GREEN, r, 1)
    last = len(bs) + 1
    for b in sorted(mg["batch_size"].unique()):
        colr = BATCH_COLORS.get(int(b), "#777")
        line(mg[(mg["optimizer"] == "sgd") & (mg["batch_size"] == b)], "t_sgd", f"SGD b={b} (T_SGD)", colr, last, 1)
        line(mg[(mg["optimizer"] == "adam") & (mg["batch_size"] == b)], "t_adapt", f"Adam b={b} (T_adapt)", colr, last, 2)
    for b in bs:
        line(l2[l2["batch_size"] == b], "t_l2", f"SGD + L2 b={b} (T_L2)", L2_GREEN, last, 1,
             dash="solid" if b == bs[0] else "dash")
    fig.add_traces(traces)
    for r in range(1, last + 1):   # a panel with nothing to draw says so (e.g. a smoke trains plain SGD at 1e-2)
        for c in (1, 2):
            if (r, c) not in filled:
                fig.add_annotation(text="no data here: these runs are not in the results", showarrow=False,
                                   xref="x domain", yref="y domain", x=0.5, y=0.5, row=r, col=c,
                                   font=dict(color="#888"))
    fig.update_yaxes(type="log", title_text="|beta| (acc / sigma_w)", col=1)
    fig.update_yaxes(type="log", col=2)
    for r in range(1, last):
        fig.update_xaxes(title_text="epoch", row=r)
    fig.update_xaxes(type="log", title_text="T_SGD (SGD) and T_L2 (SGD + L2)", row=last, col=1)
    fig.update_xaxes(type="log", title_text="T_adapt", row=last, col=2)
    fig.update_layout(title=title, height=300 * last + 120, **LAYOUT)
    return fig, missing


# ----------------------------------------------------------------------------- 5- vs 25-point spreads
SIGMA5 = (0.1, 0.5, 1.0, 1.8, 2.5)


def sigma_subset_table(runs: pd.DataFrame, by: Sequence[str], n_boot: int = 1000, seed: int = 0,
                       subset: Sequence[float] = SIGMA5) -> pd.DataFrame:
    """The main grid's spread over all its sigma_w beside the spread over the 5-point subset that
    Figure 4 and Table 4 use (the paper: they agree to within ~1 pp). Empty when the runs do not
    hold the subset and more."""
    from analysis.memory import spread
    sig = np.round(runs["sigma_w"].unique(), 6)
    sub = [s for s in subset if np.isclose(sig, s).any()]
    if len(sub) < 2 or len(sig) <= len(sub):
        return pd.DataFrame()
    full = spread(runs, list(by), n_boot=n_boot, seed=seed)
    part = spread(runs[runs["sigma_w"].round(6).isin(np.round(sub, 6))], list(by), n_boot=n_boot, seed=seed)
    t = full[[*by, "mem", "lo", "hi", "n_sigma"]].merge(
        part[[*by, "mem", "lo", "hi", "n_sigma"]], on=list(by), suffixes=(f" ({len(sig)} sigma)", f" ({len(sub)} sigma)"))
    t["difference"] = t[f"mem ({len(sub)} sigma)"] - t[f"mem ({len(sig)} sigma)"]
    return t
