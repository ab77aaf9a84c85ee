"""The CPU rate the planner's estimates assume, against what train_pack achieves here.

    python bench/bench_cpu_rate.py     # ResNet-9 at widths 1, 1/4, 1/8 (+ the other smokes' nets): GFLOP/s per core

One run per network, two epochs on a CIFAR-10 subset, one thread, in both layouts (NCHW and the
default channels-last NHWC, interleaved, best of two each): achieved GFLOP/s = the planner's FLOP
count of the run (tune_jobs.planner.run_flops) / its wall time; the planner's estimate for the run
on one core (run_seconds: FLOPs plus CPU_LAYER_FLOPS per layer and image, at DEFAULT_EFFICIENCY)
and measured / estimated, which should be one number for every network (the estimate is for a sweep
that runs a trial per core, so alone a run beats it: ~0.4 here); and the NHWC speed-up.
Measured 2026-12-04 on this 2-core machine, NHWC: measured / estimated 0.37-0.40 for every
BatchNorm network, ResNet-9 x1 (96 GFLOP/s) to ResNet-110 x1/8 (4.7 GFLOP/s), where FLOPs alone
spread 20x; ResNet-9 x1/8 with LayerNorm + augmentation 0.42 (1.00 while LayerNorm's layers were
counted at BatchNorm's cost). NHWC over
NCHW (2026-12-03, five runs): ResNet-9 at width 1 x1.06-1.16, 1/4 x1.15-1.36, 1/8 x1.36-1.56; at
width 1/8 LayerNorm + augmentation x0.98-1.12, ResNet-56 x0.88-1.14, ResNet-110 x1.03-1.12. oneDNN
runs NHWC convolutions and max pools natively, NCHW ones reorder or loop; the deep narrow nets gain
little (per-layer overhead dominates them). This machine's speed drifts by 2x between days; compare
the ratios.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from initmem.config import RunConfig  # noqa: E402
from initmem.data import load_splits  # noqa: E402
from initmem.train import train_pack  # noqa: E402
from tune_jobs.planner import DEFAULT_EFFICIENCY, Device, run_flops, run_seconds  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                   "cifar10-jpeg75.npz"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    core = Device("cpu", "one core", 16.0, cores=1, efficiency=DEFAULT_EFFICIENCY["cpu"])
    print(f"{'network':>28} {'images':>6} {'layout':>6} {'seconds':>8} {'GFLOP/s':>8} {'estimate':>8} "
          f"{'meas/est':>8} {'NCHW/NHWC':>9}")
    cases = [({"width": w}, n, ev) for w, n, ev in ((1.0, 128, 64), (0.25, 256, 128), (0.125, 512, 250))]
    cases += [({"width": 0.125, **kw}, 512, 250) for kw in  # the other smokes' networks (norm_aug, depth)
              ({"norm": "layernorm", "augment": True}, {"arch": "resnet56"}, {"arch": "resnet110"})]
    splits = {}  # (images, eval images) -> the subset, read once: four networks share 512/250
    for kw, n, ev in cases:
        if (n, ev) not in splits:
            splits[n, ev] = load_splits("cifar10", args.data, n, ev)
        data = splits[n, ev]
        run = RunConfig(train_subset=n, eval_subset=ev, batch_size=16, epochs=2, **kw)
        seconds = {False: [], True: []}
        for channels_last in (False, True, False, True):  # interleaved: drift hits both layouts alike
            t = time.perf_counter()
            train_pack([run.replace(channels_last=channels_last)], data, log=None)
            seconds[channels_last].append(time.perf_counter() - t)
        name = f"{run.arch} {run.norm}{' aug' if run.augment else ''} x{run.width:g}"
        est = run_seconds(run, core)  # the planner's estimate does not depend on the layout
        for channels_last in (False, True):
            s = min(seconds[channels_last])
            ratio = f"{min(seconds[False]) / s:9.2f}" if channels_last else ""
            print(f"{name:>28} {n:6d} {'NHWC' if channels_last else 'NCHW':>6} {s:8.2f} "
                  f"{run_flops(run) / s / 1e9:8.1f} {est:8.2f} {s / est:8.2f} {ratio}", flush=True)

if __name__ == "__main__":
    main()
