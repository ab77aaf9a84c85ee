"""python bench/bench_memory.py [--widths 0.25 0.5 1] [--batches 16 64] [--packs 1 2] [--optimizers sgd adamw]

Does the memory model (initmem/memory.py, which the planner's pack sizes and train_pack's evaluation
chunks come from) match what a pack really allocates? For each configuration, on CPU:
  train: one warm-up step of PackTrainer.train_epoch, then one step under torch.profiler(profile_memory=True);
  eval:  one warm-up evaluation of a val split of one chunk (PackTrainer.evaluate, the chunk the pack
         uses: EVAL_CHUNK_CPU on CPU), then one under the profiler (its peak does not depend on the
         batch size or the optimizer: measured once per width and pack size);
measured = tensors resident between steps (data, the optimizer's flat buffers, BN statistics) + the
peak of what the step or the evaluation allocates on top. Prints measured / predicted for training
(data + M x (state + train_step_bytes)), evaluation (data + M x (state + chunk x eval_image_bytes)) and
the pack (max of the two against data + M x run_memory_bytes), and the fit per run = state + b x
per image behind MEASURED_RUN_BYTES. Allocation sizes do not depend on the device, so the CPU
measures what a GPU allocates (minus cuDNN workspaces and allocator rounding, which the planner's
GPU_MEMORY_FRACTION leaves room for; CUDA graph pools are measured by bench/bench_gpu.py on a GPU).
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
from initmem.memory import EVAL_CHUNK_CPU, eval_image_bytes, state_bytes, train_step_bytes  # noqa: E402
from initmem.train import PackTrainer  # noqa: E402
from initmem.memory import data_bytes, run_memory_bytes  # noqa: E402


def measure(width: float, b: int, m: int, optimizer: str, eval_extra: dict) -> tuple[float, float, RunConfig]:
    """Peak tensor bytes of one training step and of one evaluation chunk of a pack (data included).
    eval_extra caches the evaluation's own peak per (width, m)."""
    runs = [RunConfig(dataset="synthetic", train_subset=b, eval_subset=EVAL_CHUNK_CPU, batch_size=b, width=width,
                      optimizer=optimizer, sigma_w=0.5 + 0.1 * i, seed=i) for i in range(m)]
    t = PackTrainer(runs, synthetic_splits(b, EVAL_CHUNK_CPU))
    t.train_epoch()
    _, train = cpu_peak_bytes(t.train_epoch)
    if (width, m) not in eval_extra:
        t.evaluate(t.data.x_val, t.data.y_val)
        eval_extra[(width, m)] = cpu_peak_bytes(lambda: t.evaluate(t.data.x_val, t.data.y_val))[1]
    resident = resident_bytes(t)
    return resident + train, resident + eval_extra[(width, m)], runs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    ap.add_argument("--packs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--optimizers", nargs="+", default=["sgd", "adamw"])
    args = ap.parse_args()
    print(f"{'width':>6} {'opt':>6} {'b':>4} {'M':>3} {'train MB':>9} {'model':>8} {'ratio':>6} "
          f"{'eval MB':>8} {'model':>8} {'ratio':>6} {'pack ratio':>10}")
    per_run: dict[tuple, list[tuple[int, float]]] = {}
    eval_extra: dict[tuple, float] = {}
    worst = 1.0
    for width in args.widths:
        for opt in args.optimizers:
            for b in args.batches:
                for m in args.packs:
                    train, evaluation, cfg = measure(width, b, m, opt, eval_extra)
                    data, state = data_bytes(cfg), state_bytes(cfg)
                    model_train = data + m * (state + train_step_bytes(cfg))
                    model_eval = data + m * (state + EVAL_CHUNK_CPU * eval_image_bytes(cfg))
                    pack = max(train, evaluation) / (data + m * run_memory_bytes(cfg))
                    ratios = (train / model_train, evaluation / model_eval, pack)
                    worst = max([worst] + [max(r, 1 / r) for r in ratios])
                    per_run.setdefault((width, opt), []).append((b, (train - data) / m))
                    print(f"{width:6g} {opt:>6} {b:4d} {m:3d} {train / 1e6:9.1f} {model_train / 1e6:8.1f} "
                          f"{ratios[0]:6.3f} {evaluation / 1e6:8.1f} {model_eval / 1e6:8.1f} {ratios[1]:6.3f} "
                          f"{ratios[2]:10.3f}", flush=True)
    print(f"\nworst measured/predicted: {worst - 1:.1%} off")
    print("per-run fit: bytes = state + b * per_image (least squares over the batch sizes and packs)")
    for (width, opt), pts in per_run.items():
        if len({b for b, _ in pts}) < 2:
            continue
        bs, ys = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts])
        slope, icept = np.polyfit(bs, ys, 1)
        print(f"  width {width:g} {opt}: state {icept / 1e6:.2f} MB + {slope / 1e6:.3f} MB per image")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
