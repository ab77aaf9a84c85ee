"""python bench/bench_memory.py [--widths 0.25 0.5 1] [--batches 16 64] [--packs 1 2] [--optimizers sgd adamw]

Does the planner's memory model (tune_jobs.planner.run_memory_bytes, data_bytes) match what a pack
step really allocates? For each configuration, on CPU: one warm-up step of PackTrainer.train_epoch,
then one step under torch.profiler(profile_memory=True); measured = tensors resident between
steps (data, the optimizer's flat buffers, BN statistics) + the peak of what the step allocates on
top (activations saved for backward, gradients, the update's temporaries). Prints measured /
predicted for the whole pack and per run ((measured - data) / M against run_memory_bytes), and the
fit per run = state + b * activations that tune_jobs/planner.py's MEASURED_RUN_BYTES holds.
Allocation sizes do not depend on the device, so the CPU measures what a GPU step allocates
(minus cuDNN workspaces and allocator rounding, which GPU_MEMORY_FRACTION leaves room for).
Expected time: a few minutes on 2 cores with the defaults (width 1 dominates).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_gpu import cpu_peak_bytes, resident_bytes  # noqa: E402
from initmem.config import RunConfig  # noqa: E402
from initmem.data import synthetic_splits  # noqa: E402
from initmem.train import PackTrainer  # noqa: E402
from tune_jobs.planner import data_bytes, run_memory_bytes  # noqa: E402


def measure(width: float, b: int, m: int, optimizer: str) -> tuple[float, RunConfig]:
    """Peak tensor bytes of one training step of a pack (data included)."""
    runs = [RunConfig(dataset="synthetic", train_subset=b, eval_subset=16, batch_size=b, width=width,
                      optimizer=optimizer, sigma_w=0.5 + 0.1 * i, seed=i) for i in range(m)]
    t = PackTrainer(runs, synthetic_splits(b, 16))
    t.train_epoch()
    _, extra = cpu_peak_bytes(t.train_epoch)
    return resident_bytes(t) + extra, runs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--packs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--optimizers", nargs="+", default=["sgd", "adamw"])
    args = ap.parse_args()
    print(f"{'width':>6} {'opt':>6} {'b':>4} {'M':>3} {'measured MB':>12} {'model MB':>9} {'ratio':>6} "
          f"{'per run MB':>11} {'model/run':>10} {'ratio/run':>9}")
    per_run: dict[tuple, list[tuple[int, float]]] = {}
    for width in args.widths:
        for opt in args.optimizers:
            for b in args.batches:
                for m in args.packs:
                    got, cfg = measure(width, b, m, opt)
                    model = data_bytes(cfg) + m * run_memory_bytes(cfg)
                    run_got = (got - data_bytes(cfg)) / m
                    per_run.setdefault((width, opt), []).append((b, run_got))
                    print(f"{width:6g} {opt:>6} {b:4d} {m:3d} {got / 1e6:12.1f} {model / 1e6:9.1f} {got / model:6.2f} "
                          f"{run_got / 1e6:11.1f} {run_memory_bytes(cfg) / 1e6:10.1f} "
                          f"{run_got / run_memory_bytes(cfg):9.2f}", flush=True)
    print("\nper-run fit: bytes = state + b * per_image (least squares over the batch sizes and packs)")
    for (width, opt), pts in per_run.items():
        if len({b for b, _ in pts}) < 2:
            continue
        bs, ys = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts])
        slope, icept = np.polyfit(bs, ys, 1)
        print(f"  width {width:g} {opt}: state {icept / 1e6:.2f} MB + {slope / 1e6:.3f} MB per image")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
