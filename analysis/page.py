"""HTML building blocks of the report: number formatting, tables, figure divs, the page style.

    python -m analysis.report RESULTS -o report.html      # what these build

    from analysis.page import table_html, Figures
    table_html(df, "caption")                       # a formatted <table> with its caption
    Figures().html(fig, "caption")                  # a plotly div (plotly.js is written once, in the head)
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import pandas as pd

from initmem.study import EXPERIMENTS

from analysis.figures import OPT_NAME, value_name

# display order of procedure columns in tables and labels
ORDER = ["experiment", "arch", "norm", "augment", "optimizer", "batch_size", "lr0", "l2", "weight_decay",
         "momentum", "schedule", "epochs", "alpha", "patience", "precision", "dataset", "train_subset",
         "eval_subset", "width"]


def _order(cols: Sequence[str]) -> list[str]:
    return sorted(cols, key=lambda c: ORDER.index(c) if c in ORDER else len(ORDER))


def _num(v, digits: int = 1, sig: bool = False) -> str:
    """Fixed `digits` decimals, or 3 significant digits (clocks, scores) with sig=True."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and not np.isfinite(v)):
        return "\u2014"
    if isinstance(v, (int, np.integer)):
        return str(v)
    return f"{float(v):.3g}" if sig else f"{float(v):.{digits}f}"


SIG_COLUMNS = ("weight decay", "L2", "T_wd (initmem ext.)", "T_SGD,eff (initmem ext.)", "t_wd", "t_sgd_eff", "sigma_w", "t_sgd", "t_l2", "t_adapt", "T", "s_clock", "s_epoch", "score", "D_start", "D_end", "a_end", "b_end",
               "lr0", "l2", "lr", "weight_decay")


def fmt_table(df: pd.DataFrame, digits: int = 1) -> pd.DataFrame:
    """Strings for display: 'X' with 'X sd' -> 'm ± s'; mem/spread with lo, hi -> 'm [lo, hi]';
    config values -> short names. The numbers stay in the frame the table functions return."""
    out = pd.DataFrame(index=df.index)
    cols = list(df.columns)
    skip = set()
    for c in cols:
        if c in skip:
            continue
        if c in ORDER:
            out[c] = [value_name(c, v) if c == "augment" else value_name(c, v).split("=")[-1] for v in df[c]]
        elif f"{c} sd" in cols:
            out[c] = [f"{_num(m, digits)} \u00b1 {_num(s, digits)}" if pd.notna(s) and pd.notna(m) else _num(m, digits)
                      for m, s in zip(df[c], df[f"{c} sd"])]
            skip.add(f"{c} sd")
        elif c in ("mem", "spread") and "lo" in cols and "hi" in cols:
            out[f"{c} [CI]"] = [f"{_num(m, digits)} [{_num(lo, digits)}, {_num(hi, digits)}]"
                                for m, lo, hi in zip(df[c], df["lo"], df["hi"])]
            skip |= {"lo", "hi"}
        elif pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]):
            out[c] = [_num(v, digits, sig=c in SIG_COLUMNS) for v in df[c]]
        else:
            out[c] = df[c].astype(str)
    return out


def table_html(df: pd.DataFrame, caption: str = "", digits: int = 1) -> str:
    body = fmt_table(df.reset_index(drop=True), digits).to_html(index=False, escape=True, border=0,
                                                                 classes="tbl", na_rep="\u2014")
    cap = f"<p class='cap'>{html.escape(caption)}</p>" if caption else ""
    return f"<div class='tblwrap'>{cap}{body}</div>"


class Figures:
    """Collects figure HTML; plotly.js is not included (written once in the page head)."""

    def __init__(self):
        self.n = 0

    def html(self, fig, caption: str = "") -> str:
        self.n += 1
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"fig{self.n}",
                          config={"displaylogo": False, "responsive": True})
        cap = f"<p class='cap'>{html.escape(caption)}</p>" if caption else ""
        return f"<div class='fig'>{div}{cap}</div>"


def _p(text: str) -> str:
    return f"<p class='reading'>{html.escape(text)}</p>"


def _opt(o: str) -> str:
    return OPT_NAME.get(o, o)


def _pp(v: float) -> str:
    return f"{v:.1f} pp"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1400px;
padding:0 24px 60px;color:#222;line-height:1.45}
h1{font-size:1.6em;margin-top:1em} h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:2.2em}
p.reading{background:#f5f8ff;border-left:4px solid #4a7bd0;padding:10px 14px;max-width:1100px}
p.cap{color:#555;font-size:.9em;margin:4px 0} .fig{margin:18px 0}
.tblwrap{overflow-x:auto;margin:14px 0} table.tbl{border-collapse:collapse;font-size:.85em}
table.tbl th,table.tbl td{padding:3px 8px;border-bottom:1px solid #e5e5e5;text-align:right;white-space:nowrap}
table.tbl th{background:#fafafa} .meta{color:#666;font-size:.85em}
nav ul{display:flex;flex-wrap:wrap;gap:2px 18px;list-style:none;padding:0;margin:6px 0;font-size:.9em}
table.tbl td:last-child{white-space:normal;min-width:14em;max-width:34em;text-align:left}
table.tbl.wrap td{white-space:normal;text-align:left;vertical-align:top;min-width:6em}
p.banner{background:#fff4e5;border-left:4px solid #e08a00;padding:10px 14px;max-width:1100px}
"""


# ----------------------------------------------------------------------------- the header
def _progress_line(runs: pd.DataFrame, progress: list[dict] | None, n_running: int) -> str:
    """'n of N runs finished' per root when the sweep's plan is known, else 'n runs'; status counts."""
    def counts(c: dict) -> str:
        return ", ".join(f"{v} {k}" for k, v in c.items())
    if not progress:
        status = runs.groupby("status").size().to_dict() if len(runs) else {}
        extra = f"; {n_running} still running, left out" if n_running else ""
        return f"{len(runs)} runs ({counts(status)}{extra})"
    parts = []
    for p in progress:
        if p["planned"] is None:
            parts.append(f"{html.escape(p['root'])}: {p['finished']} runs ({counts(p['status'])}; no plan.json, so "
                         f"the planned total is unknown)")
        else:
            state = "complete" if p["finished"] >= p["planned"] else "PARTIAL: the sweep has not finished"
            parts.append(f"{html.escape(p['root'])}: {p['finished']} of {p['planned']} runs finished "
                         f"({counts(p['status'])}; {state})")
    n, N = sum(p["finished"] for p in progress), [p["planned"] for p in progress]
    head = (f"{n} of {sum(N)} planned runs finished" if None not in N else f"{n} finished runs")
    running = f" Runs still running ({n_running}) are left out of every table and figure." if n_running else ""
    return f"{head}. " + "; ".join(parts) + "." + running


def _absent_line(present: Sequence[str]) -> str:
    absent = [e for e in EXPERIMENTS if e not in present]
    if not absent:
        return ""
    return (f"Experiments present: {', '.join(e for e in present) or 'none'}. Absent: {', '.join(absent)}: their "
            f"sections, and the parts of combined figures and of the paper check that need them, are left out.")
