"""Will this recipe forget its initialisation? Its three forgetting clocks, before it is run, and
the measured procedures whose clocks are nearest.

    python -m analysis.clocks --optimizer sgd --lr0 0.01 --batch-size 128 --epochs 300 --l2 1e-3
    python -m analysis.clocks --optimizer adam --lr0 1e-3 --batch-size 256 --epochs 300 --results results/main_grid

Clocks after the recipe's K = epochs * ceil(train_size / b) updates (SPEC Section 4), from
initmem.metrics.clocks (the same code train.py records them with; cosine decay included):
    T_SGD = (1/b) sum_k eta_k^2    T_L2 = l2 sum_k eta_k    T_adapt = sum_k eta_k
The recipe's own clock is T_adapt for the Adam family (Muon included), T_L2 for SGD with l2 > 0,
T_SGD otherwise. Beside them, labelled as initmem's extension (SPEC Section 4; the paper's figures
do not use them): T_wd = wd sum_k eta_k for the decoupled-decay optimizers (AdamW, Muon: their
decay 1e-4 is otherwise invisible) and T_SGD,eff = (1/b) sum_k (eta_k / (1 - mu))^2 for
sgd_momentum (the heavy-ball effective step). With --results, every measured procedure (analysis.memory.clock_table) is placed
by its distance in log10 clock space: d_own = |log10 T - log10 T'| on the recipe's own clock, among
procedures that share that clock; d_all = Euclidean over the three log10 clocks (each floored at
1e-8 so that T_L2 = 0 is finite), for the rest. The k nearest and their spreads answer the question;
the verdict reads the median spread of those on the same clock against --forget-pp.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Sequence

import numpy as np
import pandas as pd

from initmem.config import TRAIN_SIZE
from initmem.metrics import clocks
from initmem.optimizers import OPTIMIZERS, own_clock
from initmem.registry import parse_with_plugins

from analysis.sensitivity import CLOCK_SHORT, CLOCKS, EXT_CLOCKS, EXT_LABEL, extension_clocks

LOG_FLOOR = 1e-8     # clocks below this count as 1e-8 in log space (T_L2 = 0 without l2)
FORGET_PP = 5.0      # a spread below this many pp counts as 'forgets'


def recipe_clocks(optimizer: str, lr0: float, batch_size: int, epochs: int, schedule: str = "cosine",
                  alpha: float = 0.01, l2: float = 0.0, train_size: int = TRAIN_SIZE, weight_decay: float = -1.0,
                  momentum: float = 0.9) -> dict:
    """The three clocks after the recipe's last update, its own clock name and value, K, and the
    extension clocks t_wd and t_sgd_eff (NaN where they do not apply). weight_decay -1: the
    optimizer's default (RunConfig: 1e-4 for adamw / muon / muon_conv, else 0)."""
    K = int(epochs) * math.ceil(train_size / batch_size)
    c = clocks([K], lr0=lr0, batch_size=batch_size, total_steps=K, alpha=alpha, schedule=schedule, l2=l2)
    own = own_clock(optimizer, l2)
    out = {"optimizer": optimizer, "lr0": lr0, "batch_size": batch_size, "epochs": epochs, "schedule": schedule,
           "alpha": alpha, "l2": l2, "train_size": train_size, "steps": K}
    out.update({k: float(c[k][0]) for k in CLOCKS})
    out["clock"], out["T"] = own, out[own]
    wd = OPTIMIZERS[optimizer].default_weight_decay if weight_decay == -1.0 else weight_decay
    out["weight_decay"], out["momentum"] = wd, momentum
    out.update({k: float(v) for k, v in extension_clocks(optimizer, wd, momentum, out["t_sgd"], out["t_adapt"]).items()})
    return out


def _log(v) -> np.ndarray:
    return np.log10(np.maximum(np.asarray(v, dtype=np.float64), LOG_FLOOR))


def nearest(recipe: dict, table: pd.DataFrame, k: int = 5) -> pd.DataFrame:
    """The measured procedures nearest to `recipe` in log clock space (table from clock_table):
    same own clock first, by d_own, then the others by d_all."""
    t = table.copy()
    t["same_clock"] = t["clock"] == recipe["clock"]
    t["d_own"] = np.where(t["same_clock"], np.abs(_log(t[recipe["clock"]]) - _log(recipe["T"])), np.nan)
    t["d_all"] = np.sqrt(sum((_log(t[c]) - _log(recipe[c])) ** 2 for c in CLOCKS))
    t = t.sort_values(["same_clock", "d_own", "d_all"], ascending=[False, True, True], na_position="last")
    return t.head(k).reset_index(drop=True)


def verdict(recipe: dict, near: pd.DataFrame, table: pd.DataFrame, forget_pp: float = FORGET_PP) -> str:
    """One sentence: what the nearest measured procedures on the same clock say."""
    own = near[near["same_clock"]]
    name = CLOCK_SHORT[recipe["clock"]]
    if not len(own):
        return f"No measured procedure runs on {name}: no verdict (nearest by all three clocks listed)."
    med = float(own["mem"].median())
    same = table[table["clock"] == recipe["clock"]][recipe["clock"]]
    where = ""
    if recipe["T"] > same.max():
        where = f" The recipe's {name} = {recipe['T']:.3g} is beyond the largest measured ({same.max():.3g}): extrapolation."
    elif recipe["T"] < same.min():
        where = f" The recipe's {name} = {recipe['T']:.3g} is below the smallest measured ({same.min():.3g}): extrapolation."
    guess = "likely forgets its initialisation" if med < forget_pp else "likely remembers its initialisation"
    return (f"The {len(own)} nearest measured procedures on {name} keep a median spread of {med:.1f} pp "
            f"(range {own['mem'].min():.1f}-{own['mem'].max():.1f}): this recipe {guess} "
            f"(threshold {forget_pp:g} pp).{where}")


def measured_table(roots: Sequence[str], n_boot: int = 200) -> pd.DataFrame:
    """clock_table of every procedure in the results roots, with procedure columns (file edge)."""
    from analysis.load import load, procedures
    from analysis.memory import clock_table, spread
    runs, _ = load(roots, epoch_columns=["epoch"], require_results=True)
    sp = spread(runs, by=["procedure"], n_boot=n_boot)
    return clock_table(runs, sp, by=["procedure"]).merge(procedures(runs), on="procedure")


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m analysis.clocks", description=__doc__.splitlines()[0])
    ap.add_argument("--optimizer", required=True, help="sgd, sgd_momentum, adam, adamw, muon, muon_conv")
    ap.add_argument("--lr0", type=float, required=True, help="peak learning rate, per update")
    ap.add_argument("--batch-size", type=int, required=True)
    ap.add_argument("--epochs", type=int, required=True)
    ap.add_argument("--schedule", default="cosine", choices=["cosine", "constant"])
    ap.add_argument("--alpha", type=float, default=0.01, help="cosine floor as a fraction of lr0")
    ap.add_argument("--l2", type=float, default=0.0, help="Keras L2 coefficient")
    ap.add_argument("--train-size", type=int, default=TRAIN_SIZE, help="training examples per epoch")
    ap.add_argument("--weight-decay", type=float, default=-1.0,
                    help="decoupled decay (adamw, muon, muon_conv); -1: the optimizer's default (1e-4)")
    ap.add_argument("--momentum", type=float, default=0.9, help="heavy-ball momentum (sgd_momentum)")
    ap.add_argument("--results", nargs="*", help="results root(s) to compare with")
    ap.add_argument("-k", type=int, default=5, help="how many nearest procedures to list")
    ap.add_argument("--forget-pp", type=float, default=FORGET_PP, help="spread (pp) below which a procedure forgets")
    args = parse_with_plugins(ap, argv)
    if args.results:  # a results root that holds nothing: exit 2 before printing anything
        from analysis.load import NoResults, check_roots
        try:
            check_roots(args.results)
        except NoResults as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
    r = recipe_clocks(args.optimizer, args.lr0, args.batch_size, args.epochs, args.schedule, args.alpha, args.l2,
                      args.train_size, args.weight_decay, args.momentum)
    print(f"recipe: {args.optimizer}, lr0 {args.lr0:g}, {args.schedule} (alpha {args.alpha:g}), b {args.batch_size}, "
          f"{args.epochs} epochs, l2 {args.l2:g}, {args.train_size} examples -> K = {r['steps']} updates")
    for c in CLOCKS:
        mark = "   <- its own clock" if c == r["clock"] else ""
        print(f"  {CLOCK_SHORT[c]:8s} = {r[c]:.4g}{mark}")
    for c in EXT_CLOCKS:
        value = f"{r[c]:.4g}" if math.isfinite(r[c]) else "n/a (not this optimizer)"
        print(f"  {EXT_LABEL[c]}: {value}")
    if args.results:
        table = measured_table(args.results)
        near = nearest(r, table, args.k)
        from analysis.memory import varying
        from analysis.load import procedure_columns
        ext = [c for c in EXT_CLOCKS if c in near and near[c].notna().any()]
        cols = varying(table, procedure_columns(table)) + ["clock", *CLOCKS, *ext, "d_own", "d_all", "mem", "lo", "hi"]
        print(near[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
        print(verdict(r, near, table, args.forget_pp))


if __name__ == "__main__":
    main()
