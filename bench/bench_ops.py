"""python bench/bench_ops.py [--plugin my_science.py]     # ~30 s on 2 cores

Aten ops dispatched per training step and per optimizer update, for every registered optimizer
(a plugin's too: docs/extending.md), with L2 off
and on, in packs of 1 and 8 (ResNet-9 width 1/16: the count does not depend on the width). It
uses the counter of tests/test_step.py (a TorchDispatchMode: one op per kernel launch in eager),
which asserts the goals; this prints the table behind them. "update" is the optimizer as the step
dispatches it (its hyperparameters are loaded before the step); "groups" are Muon's kernel shapes,
each 19 ops of Newton-Schulz.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import argparse  # noqa: E402

from initmem.data import load_splits  # noqa: E402
from initmem.optimizers import OPTIMIZERS  # noqa: E402
from initmem.registry import add_plugin_option, load_plugins  # noqa: E402
from test_step import count_step_and_update, trainer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plugin_option(ap)
    load_plugins(ap.parse_args().plugin)
    data = load_splits("synthetic", train_subset=48, eval_subset=16)
    print(f"{'optimizer':14s} {'l2':>6s} {'M':>3s} {'step':>5s} {'update':>6s} {'groups':>6s} {'syncs':>5s}")
    for opt in OPTIMIZERS:
        for l2 in (0.0, 5e-4):
            for m in (1, 8):
                t = trainer(data, opt, m, l2=l2)
                step, upd = count_step_and_update(t)
                print(f"{opt:14s} {l2:6g} {m:3d} {step.total:5d} {upd.total:6d} {len(t.opt.muon_groups):6d} "
                      f"{step.syncs:5d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
