"""Plotly figures for the paper's Figures 1-6 and 9, from the tables of memory.py / sensitivity.py.

    python -m analysis.report RESULTS -o report.html      # the figures are meant to be seen there

    from analysis.figures import fig_vs_sigma
    fig_vs_sigma(sigma_stats(runs, ["optimizer", "batch_size"]), color="optimizer", facet="batch_size",
                 title="Test accuracy at tau_best", ylabel="test acc (pp)")

Every function takes small aggregated frames (never the epochs table) and returns a
plotly.graph_objects.Figure; nothing here reads or writes files. Accuracies are expected in
percentage points (memory.py already converts), |beta| in fraction per unit sigma_w.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analysis.memory import INTERP_PP

PALETTE = qualitative.Plotly + qualitative.D3
ARCH_NAME = {"resnet9": "ResNet-9", "r9_avgpool": "R9-AvgPool", "resnet56": "ResNet-56", "resnet110": "ResNet-110"}
NORM_NAME = {"batchnorm": "BatchNorm", "layernorm": "LayerNorm"}
OPT_NAME = {"sgd": "SGD", "sgd_momentum": "SGD+momentum", "adam": "Adam", "adamw": "AdamW",
            "muon": "Muon", "muon_conv": "Muon-conv"}
SHORT = {"batch_size": "b", "optimizer": "", "lr0": "lr0", "l2": "l2", "arch": "", "norm": "",
         "augment": "aug", "experiment": "", "epochs": "ep", "schedule": "", "weight_decay": "wd"}
# plotly_white's look in a small template: plotly validates and copies the template of every figure
# it builds (make_subplots included), and the full plotly_white one costs ~35 ms a figure (~10x this).
_AXIS = dict(gridcolor="#EBF0F8", linecolor="#EBF0F8", zerolinecolor="#EBF0F8", zerolinewidth=2, ticks="",
             automargin=True)
pio.templates["initmem_white"] = go.layout.Template(layout=dict(
    paper_bgcolor="white", plot_bgcolor="white", xaxis=_AXIS, yaxis=_AXIS, hovermode="closest",
    colorway=list(qualitative.Plotly), font=dict(color="#2a3f5f")))
pio.templates.default = "initmem_white"  # make_subplots builds its figure with the default template
# Traces of the many-line figures are built without plotly's per-property validation (~18x faster
# per trace; the Chromium test checks that every figure draws with no console error).
FAST = dict(_validate=False)
LAYOUT = dict(template="initmem_white", margin=dict(l=60, r=20, t=70, b=50), legend=dict(title=None),
              font=dict(size=12))


def value_name(col: str, v) -> str:
    """A short human label of one column value: 'SGD', 'b=128', 'lr0=0.01', 'aug'."""
    if col == "optimizer":
        return OPT_NAME.get(v, str(v))
    if col == "arch":
        return ARCH_NAME.get(v, str(v))
    if col == "norm":
        return NORM_NAME.get(v, str(v))
    if col.startswith("_"):  # a label column made by labels()
        return str(v)
    if col == "augment":
        return "aug" if bool(v) else "no aug"
    if isinstance(v, (float, np.floating)):
        v = f"{v:g}"
    pre = SHORT.get(col, col)
    return f"{pre}={v}" if pre else str(v)


def labels(df: pd.DataFrame, cols: Sequence[str]) -> pd.Series:
    """One label per row from the values of `cols` ('SGD, b=128'); 'all' when cols is empty.
    value_name runs once per distinct value (frames of beta(t) have ~10^5 rows)."""
    if not cols:
        return pd.Series(["all"] * len(df), index=df.index)
    out = None
    for c in cols:
        codes, uniq = pd.factorize(df[c], use_na_sentinel=False)
        names = np.array([value_name(c, v) for v in uniq], dtype=object)
        part = names[codes]
        out = part if out is None else out + ", " + part
    return pd.Series(out, index=df.index, dtype=object)


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def _facets(df: pd.DataFrame, facet: str | Sequence[str] | None) -> list[tuple[str, pd.DataFrame]]:
    if not facet:
        return [("", df)]
    cols = [facet] if isinstance(facet, str) else list(facet)
    d = df.assign(_f=labels(df, cols).to_numpy())
    order = d.sort_values(cols)["_f"].drop_duplicates().tolist()
    return [(f, d[d["_f"] == f]) for f in order]


def _xy(fig: go.Figure, row: int, col: int) -> dict:
    """The axis names of a make_subplots cell, for a trace built with them: figures add all their
    traces in one add_traces call (add_trace(row=, col=) re-validates every trace)."""
    sp = fig.get_subplot(row, col)
    return {"xaxis": sp.xaxis.plotly_name.replace("axis", ""), "yaxis": sp.yaxis.plotly_name.replace("axis", "")}


def _grid(n: int, max_cols: int) -> tuple[int, int]:
    cols = min(n, max_cols)
    return (n + cols - 1) // cols, cols


def _color_map(values: Sequence[str]) -> dict[str, str]:
    return {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(values)}


def empty_figure(title: str, message: str = "no data") -> go.Figure:
    """A titled figure that says why it is empty (e.g. no run interpolated, one sigma only)."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=220, **LAYOUT)
    return fig


def fig_vs_sigma(stats: pd.DataFrame, color: str | Sequence[str] | None, facet=None, title: str = "",
                 ylabel: str = "", band: tuple[str, str] = ("p10", "p90"), ref: pd.DataFrame | None = None,
                 ref_name: str = "initial", max_cols: int = 5, dash: dict | None = None) -> go.Figure:
    """Mean of a metric vs sigma_w with a shaded percentile band, one line per `color`, one panel
    per `facet` (Figures 1, 3, 5, 7, 8). `ref` (same shape) is drawn dashed grey (e.g. initial norm)."""
    if len(stats) == 0:
        return empty_figure(title, f"no data (no run has this metric, e.g. none reached {INTERP_PP:g}% train accuracy)")
    ccols = [color] if isinstance(color, str) else list(color or [])
    d = stats.assign(_c=labels(stats, ccols).to_numpy())
    cmap = _color_map(list(dict.fromkeys(d.sort_values(ccols or ["sigma_w"])["_c"])))
    panels = _facets(d, facet)
    rows, cols = _grid(len(panels), max_cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p[0] for p in panels], shared_yaxes=True,
                        horizontal_spacing=0.03 if cols > 1 else 0.1, vertical_spacing=0.12 / max(rows, 1) * 2)
    shown = set()
    rpanels = dict(_facets(ref.assign(_c="ref"), facet)) if ref is not None else {}
    traces = []
    for i, (fname, p) in enumerate(panels):
        r, c = i // cols + 1, i % cols + 1
        ax = _xy(fig, r, c)
        for name, cur in p.groupby("_c", sort=False):
            cur = cur.sort_values("sigma_w")
            x, col = cur["sigma_w"].to_numpy(), cmap[name]
            if band and band[0] in cur and band[1] in cur:
                traces.append(go.Scatter(**FAST, **ax, x=np.r_[x, x[::-1]], y=np.r_[cur[band[1]], cur[band[0]][::-1]],
                                         fill="toself", fillcolor=_rgba(col, 0.15), line=dict(width=0),
                                         hoverinfo="skip", showlegend=False, legendgroup=name))
            traces.append(go.Scatter(**FAST, **ax, x=x, y=cur["mean"].to_numpy(), mode="lines+markers", name=name,
                                     legendgroup=name, line=dict(color=col, dash=(dash or {}).get(name, "solid")),
                                     marker=dict(size=4), showlegend=name not in shown))
            shown.add(name)
        if fname in rpanels or (not facet and rpanels):
            rp = rpanels.get(fname, next(iter(rpanels.values())))
            rp = rp.groupby("sigma_w", as_index=False)["mean"].mean()
            traces.append(go.Scatter(**FAST, **ax, x=rp["sigma_w"].to_numpy(), y=rp["mean"].to_numpy(), mode="lines",
                                     name=ref_name, legendgroup="ref", line=dict(color="grey", dash="dash"),
                                     showlegend="ref" not in shown))
            shown.add("ref")
    fig.add_traces(traces)
    fig.update_xaxes(title_text="sigma_w", row=rows)
    fig.update_yaxes(title_text=ylabel, col=1)
    fig.update_layout(title=title, height=300 * rows + 90, **LAYOUT)
    return fig


def fig_heatmaps(cells: pd.DataFrame, facet: str = "batch_size", row: str = "optimizer",
                 z: str = "test", mark: str = "train", mark_below: float = INTERP_PP, title: str = "",
                 zlabel: str = "test acc (pp)") -> go.Figure:
    """Figure 2: one heatmap per `facet` (rows `row`, columns sigma_w, colour = mean `z`), with a
    x where the mean `mark` (train accuracy at tau_best, pp) is below `mark_below`."""
    if len(cells) == 0 or not np.isfinite(cells[z]).any():
        return empty_figure(title)
    panels = _facets(cells, facet)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], shared_yaxes=True,
                        horizontal_spacing=0.02)
    zmin, zmax = float(np.nanmin(cells[z])), float(np.nanmax(cells[z]))
    for i, (_, p) in enumerate(panels):
        zt = p.pivot_table(index=row, columns="sigma_w", values=z, sort=True)
        mt = p.pivot_table(index=row, columns="sigma_w", values=mark, sort=True).reindex_like(zt)
        ylab = [value_name(row, v) for v in zt.index]
        text = np.where(mt.to_numpy() < mark_below, "\u00d7", "")
        fig.add_trace(go.Heatmap(z=zt.to_numpy(), x=[f"{s:g}" for s in zt.columns], y=ylab, text=text,
                                 texttemplate="%{text}", coloraxis="coloraxis",
                                 hovertemplate="sigma %{x}<br>%{y}<br>%{z:.1f}<extra></extra>"), row=1, col=i + 1)
    fig.update_layout(title=title, height=340, coloraxis=dict(colorscale="Viridis", cmin=zmin, cmax=zmax,
                                                              colorbar=dict(title=dict(text=zlabel))), **LAYOUT)
    fig.update_xaxes(title_text="sigma_w")
    return fig


def fig_repair_map(spreads: pd.DataFrame, label_cols: Sequence[str], facet: str | None = None,
                   title: str = "", value: str = "mem") -> go.Figure:
    """Figure 4 inset / repair map: spread (pp) per configuration, sorted ascending, with the
    bootstrap interval as error bars, one panel per `facet`."""
    if len(spreads) == 0:
        return empty_figure(title)
    d = spreads.assign(_l=labels(spreads, [c for c in label_cols if c != facet]).to_numpy())
    panels = _facets(d, facet)
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[p[0] for p in panels], horizontal_spacing=0.12)
    for i, (_, p) in enumerate(panels):
        p = p.sort_values(value)
        err = dict(type="data", symmetric=False, array=(p["hi"] - p[value]).clip(lower=0).to_numpy(),
                   arrayminus=(p[value] - p["lo"]).clip(lower=0).to_numpy()) if "hi" in p else None
        fig.add_trace(go.Bar(x=p[value], y=p["_l"], orientation="h", error_x=err, marker_color=PALETTE[i],
                             showlegend=False, hovertemplate="%{y}: %{x:.1f} pp<extra></extra>"), row=1, col=i + 1)
    fig.update_xaxes(title_text="spread (pp)")
    n = max(len(p) for _, p in panels)
    fig.update_layout(title=title, height=max(300, 22 * n + 120), **LAYOUT)
    return fig


def fig_beta(beta: pd.DataFrame, x: str = "epoch", color: str | Sequence[str] = "optimizer", facet=None,
             title: str = "", log_x: bool = False, xlabel: str | None = None, max_cols: int = 3,
             floor: float = 1e-5) -> go.Figure:
    """Figure 6: |beta(t)| (log scale) against epoch or a clock, one line per `color`, one panel
    per `facet`. Points with x <= 0 are dropped on a log axis (epoch 0, T_L2 without l2)."""
    ccols = [color] if isinstance(color, str) else list(color)
    d = beta.assign(_c=labels(beta, ccols).to_numpy(), _y=np.maximum(beta["beta"].abs(), floor))
    if log_x:
        d = d[d[x] > 0]
    d = d[np.isfinite(d["_y"])]
    if len(d) == 0:
        return empty_figure(title, "no finite |beta| (a single sigma_w, or no positive clock)")
    cmap = _color_map(list(dict.fromkeys(d.sort_values(ccols)["_c"])))
    panels = _facets(d, facet)
    rows, cols = _grid(len(panels), max_cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[p[0] for p in panels], shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.25 / max(rows, 1))
    shown = set()
    traces = []
    for i, (_, p) in enumerate(panels):
        r, c = i // cols + 1, i % cols + 1
        ax = _xy(fig, r, c)
        for name, cur in p.groupby("_c", sort=False):
            cur = cur.sort_values(x)
            traces.append(go.Scatter(**FAST, **ax, x=cur[x].to_numpy(), y=cur["_y"].to_numpy(), mode="lines", name=name,
                                     legendgroup=name, line=dict(color=cmap[name], width=1.5),
                                     showlegend=name not in shown,
                                     hovertemplate=f"{name}<br>{x} %{{x:.3g}}<br>|beta| %{{y:.3g}}<extra></extra>"))
            shown.add(name)
    fig.add_traces(traces)
    fig.update_yaxes(type="log", title_text="|beta| (acc / sigma_w)", col=1)
    fig.update_xaxes(type="log" if log_x else "linear", title_text=xlabel or x, row=rows)
    fig.update_layout(title=title, height=300 * rows + 90, **LAYOUT)
    return fig


def _log_idx(n: int, k: int = 1500) -> np.ndarray:
    """About k indices of 0..n-1, log-spaced (keeps the early steps and the end)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.r_[0, np.geomspace(1, n - 1, k).astype(np.int64), n - 1])


def fig_linear_model(runs: dict[str, dict[float, dict]], title: str = "") -> go.Figure:
    """Figure 9: top row, (a, b) trajectories with the minima a b = 1 and the minimum-norm
    solutions; bottom row, the imbalance D = a^2 - b^2 against step (log x)."""
    names = list(runs)
    fig = make_subplots(rows=2, cols=len(names), subplot_titles=names, vertical_spacing=0.14,
                        horizontal_spacing=0.05)
    colors = {0.01: "#d62728", 0.04: "#ff7f0e"}
    hyp = np.linspace(0.12, 7.0, 200)
    for j, name in enumerate(names):
        for sgn in (1, -1):
            fig.add_trace(go.Scatter(x=sgn * hyp, y=sgn / hyp, mode="lines", line=dict(color="black", width=1),
                                     name="ab = 1", legendgroup="ab", showlegend=(j == 0 and sgn == 1)),
                          row=1, col=j + 1)
        fig.add_trace(go.Scatter(x=[1, -1, 1, -1], y=[1, -1, -1, 1], mode="markers", name="min-norm (+-1, +-1)",
                                 marker=dict(symbol="star", size=10, color="magenta"), legendgroup="star",
                                 showlegend=j == 0), row=1, col=j + 1)
        for i, (lr, tr) in enumerate(runs[name].items()):
            col = colors.get(lr, PALETTE[i])
            idx = _log_idx(len(tr["a"]))
            fig.add_trace(go.Scatter(x=tr["a"][idx], y=tr["b"][idx], mode="lines", line=dict(color=col, width=1),
                                     name=f"lr {lr:g}", legendgroup=f"lr{lr}", showlegend=j == 0),
                          row=1, col=j + 1)
            fig.add_trace(go.Scatter(x=idx + 1, y=tr["D"][idx], mode="lines", line=dict(color=col, width=1.5),
                                     name=f"D, lr {lr:g}", legendgroup=f"lr{lr}", showlegend=False,
                                     hovertemplate="step %{x}<br>D %{y:.3g}<extra></extra>"), row=2, col=j + 1)
        fig.update_xaxes(range=[-3, 7], title_text="a", row=1, col=j + 1)
        fig.update_yaxes(range=[-3, 7], row=1, col=j + 1)
        fig.update_xaxes(type="log", title_text="step + 1", row=2, col=j + 1)
    fig.update_yaxes(title_text="b", row=1, col=1)
    fig.update_yaxes(title_text="D = a^2 - b^2", row=2, col=1)
    fig.update_layout(title=title, height=720, **LAYOUT)
    return fig
