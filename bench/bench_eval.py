"""python bench/bench_eval.py [--width 1] [--images 1000] [--chunks 50 100 200 250 500 1000] [--repeats 2]

Evaluation time per image against the chunk size on this CPU (PackTrainer.evaluate, one run, one
thread, ResNet-9): behind initmem.memory.EVAL_CHUNK_CPU. Each chunk size evaluates the same --images
images --repeats times, interleaved (chunk sizes alternate, so load on a shared machine hits them
alike); the best time of each is printed with its ratio to the largest chunk (the pre-issue-17
default of 1000). Ratios within one run only: absolute times depend on the machine and its load.
Expected time: ~2 minutes at width 1 on one core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from initmem.config import RunConfig  # noqa: E402
from initmem.data import synthetic_splits  # noqa: E402
from initmem.train import PackTrainer, evaluate  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--chunks", type=int, nargs="+", default=[50, 100, 200, 250, 500, 1000])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    run = RunConfig(dataset="synthetic", train_subset=16, eval_subset=args.images, batch_size=16, width=args.width)
    t = PackTrainer([run], synthetic_splits(16, args.images))
    x, y = t.data.x_val, t.data.y_val
    best = {c: float("inf") for c in args.chunks}
    for c in args.chunks:                                   # warm-up: oneDNN primitives per shape
        evaluate(t.forward, x[:c], y[:c], 1, t.autocast, c)
    for _ in range(args.repeats):
        for c in args.chunks:
            start = time.perf_counter()
            evaluate(t.forward, x, y, 1, t.autocast, c)
            best[c] = min(best[c], time.perf_counter() - start)
    ref = best[max(args.chunks)]
    print(f"ResNet-9 x{args.width:g}, {args.images} images, 1 thread, best of {args.repeats}")
    print(f"{'chunk':>6} {'ms/image':>9} {'vs ' + str(max(args.chunks)):>8}")
    for c in args.chunks:
        print(f"{c:6d} {best[c] / args.images * 1e3:9.2f} {ref / best[c]:7.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
