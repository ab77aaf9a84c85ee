"""python bench/bench_smoke.py [EXPERIMENT ...] [--data PATH] [--workers 2]

CPU seconds of every pack of an experiment's smoke preset, each trained in-process on one thread
(as a Ray trial with 1 CPU trains it), and the longest lane when the packs are dealt to 2 cores
longest first: what the trials of `python -m tune_jobs.<experiment> --preset smoke` need on a quiet
2-core machine, before Ray's start-up and the report. CPU seconds rather than wall seconds, so the
number means the same on a machine that other work loads (contention still inflates it a little).
Default: all six experiments, on the shared CIFAR-10 copy.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

_DATA: dict = {}


def _train(args: tuple) -> tuple[str, float, float]:
    pack, data = args
    import torch

    from initmem.data import load_splits
    from initmem.train import train_pack
    torch.set_num_threads(1)
    c = pack[0]
    key = (c.dataset, c.train_subset, c.eval_subset)
    if key not in _DATA:
        _DATA[key] = load_splits(c.dataset, data, c.train_subset, c.eval_subset)
    cpu, wall = time.process_time(), time.perf_counter()
    train_pack(pack, _DATA[key], log=None)
    label = f"{c.arch}-{c.norm}-{c.optimizer}-b{c.batch_size}-ep{c.epochs} x{len(pack)}"
    return label, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    from initmem.config import group_into_packs
    from initmem.study import EXPERIMENTS
    from tune_jobs.planner import CPU_PACK_SIZE

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiments", nargs="*", default=list(EXPERIMENTS))
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "cifar10-jpeg75.npz"))
    p.add_argument("--workers", type=int, default=2, help="processes training packs at once (default 2)")
    args = p.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for name in args.experiments:
        packs = group_into_packs(EXPERIMENTS[name].runs("smoke"), CPU_PACK_SIZE)
        with Pool(args.workers) as pool:
            res = pool.map(_train, [(pk, args.data) for pk in packs], chunksize=1)
        for label, cpu, wall in res:
            print(f"  {label:48} cpu {cpu:6.1f} s   wall {wall:6.1f} s")
        lanes = [0.0, 0.0]
        for cpu in sorted((r[1] for r in res), reverse=True):
            lanes[lanes.index(min(lanes))] += cpu
        print(f"{name}: {len(packs)} packs, {sum(r[1] for r in res):.0f} CPU s, longest of 2 lanes {max(lanes):.0f} s "
              f"(load average now {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
