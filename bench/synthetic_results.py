"""Write a synthetic results root in the Parquet contract, with planted effects (analysis/synthetic.py).

    python bench/synthetic_results.py /tmp/syn --experiment main_grid            # 6,250 runs x 301 epochs
    python bench/synthetic_results.py /tmp/syn --experiment all       # every experiment: /tmp/syn/<experiment>/
    python bench/synthetic_results.py /tmp/syn --experiment main_grid --beta-mode epoch --seeds 0 1

The generator itself is analysis.synthetic (so tests import it without path tricks); this is its
command line. It prints the seconds it took and the planted spreads.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from analysis.synthetic import Plant, write_synthetic  # noqa: E402
from initmem.study import EXPERIMENTS  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python bench/synthetic_results.py", description=__doc__.splitlines()[0])
    ap.add_argument("root", help="results root to write (a local folder); with several experiments, "
                                 "one root per experiment under it")
    ap.add_argument("--experiment", nargs="+", default=["main_grid"], help=f"{list(EXPERIMENTS)} or all")
    ap.add_argument("--beta-mode", choices=["clock", "epoch"], default="clock")
    ap.add_argument("--mem", choices=["paper", "none"], default="paper",
                    help="paper: plant the paper's main-grid spreads; none: spreads follow the decay model")
    ap.add_argument("--seeds", type=int, nargs="*", help="seed subset (default: the experiment's)")
    ap.add_argument("--sigmas", type=float, nargs="*", help="sigma_w subset (default: the experiment's)")
    ap.add_argument("--epochs", type=int, help="override the epochs of every run")
    ap.add_argument("--noise", type=float, default=0.004, help="per (run, epoch) accuracy noise, fraction")
    ap.add_argument("--diverged", type=int, default=0, help="runs per experiment made to diverge")
    ap.add_argument("--paper-shift", type=float, default=0.0,
                    help="pp: with --mem paper, move every planted paper number away (spreads up, accuracies down)")
    args = ap.parse_args(argv)
    exps = list(EXPERIMENTS) if args.experiment == ["all"] else args.experiment
    plant = Plant(beta_mode=args.beta_mode, mem=None if args.mem == "none" else "paper",
                  noise=args.noise, n_diverged=args.diverged, paper_shift=args.paper_shift)
    kw = {k: v for k, v in dict(seeds=args.seeds, sigmas=args.sigmas, epochs=args.epochs).items() if v}
    t0 = time.perf_counter()
    truth = write_synthetic(args.root, exps, plant, **kw)
    dt = time.perf_counter() - t0
    procs = truth["procedures"]
    print(f"wrote {len(procs)} procedures of {exps} under {args.root} in {dt:.1f} s")
    print(procs[["experiment", "optimizer", "batch_size", "lr0", "l2", "spread_pp", "tau_star"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
