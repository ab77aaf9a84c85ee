"""python bench/bench_train.py [--steps 3] [--eval 512] [--packs 1 4] [--reps 2] [--width 1.0]

Seconds per epoch of ResNet-9 at b = 128 on this machine: an initmem pack of M runs against a bare
PyTorch loop (torch.nn ResNet-9, torch.optim.SGD) doing the same work: M x (train steps + val and
test inference). A full-width epoch takes many minutes on 2 CPU cores, so both sides run `--steps`
updates and `--eval` val + test images and are extrapolated to one epoch (313 updates, 10,000 val
+ 10,000 test images); the ratio is the number to trust, the absolute seconds drift with load.
Both sides are measured interleaved in one process after one warm-up pass each; the minimum over
`--reps` is kept.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from initmem.config import RunConfig
from initmem.data import load_splits
from initmem.memory import EVAL_CHUNK_CPU
from initmem.train import PackTrainer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg75.npz"
B, TRAIN, EVAL = 128, 40_000, 10_000


def bare_resnet9(width: float) -> nn.Module:
    c = lambda n: max(1, round(n * width))  # noqa: E731
    block = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o, 1e-3, 0.01), nn.ReLU())  # noqa: E731

    class Res(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.f = nn.Sequential(block(ch, ch), block(ch, ch))

        def forward(self, x):
            return x + self.f(x)

    return nn.Sequential(block(3, c(64)), block(c(64), c(128)), nn.MaxPool2d(2), Res(c(128)),
                         block(c(128), c(256)), nn.MaxPool2d(2), block(c(256), c(512)), nn.MaxPool2d(2),
                         Res(c(512)), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c(512), 10))


def time_initmem(m: int, data, steps: int, width: float) -> tuple[float, float]:
    runs = [RunConfig(width=width, batch_size=B, train_subset=B * steps, sigma_w=0.5 + i) for i in range(m)]
    t = PackTrainer(runs, data)
    t.train_epoch()  # warm-up: oneDNN primitives and allocations of the first call are not timed
    t.evaluate(t.data.x_val, t.data.y_val)
    a = time.perf_counter()
    t.train_epoch()
    b = time.perf_counter()
    t.evaluate(t.data.x_val, t.data.y_val)
    t.evaluate(t.data.x_test, t.data.y_test)
    return b - a, time.perf_counter() - b


def time_bare(m: int, data, steps: int, width: float) -> tuple[float, float]:
    d = data.to("cpu", torch.float32)
    models = [bare_resnet9(width) for _ in range(m)]
    opts = [torch.optim.SGD(net.parameters(), lr=1e-3) for net in models]

    def train():
        for net, opt in zip(models, opts):
            net.train()
            perm = torch.randperm(len(d.y_train))
            for s in range(steps):
                idx = perm[s * B:(s + 1) * B]
                loss = F.cross_entropy(net(d.x_train[idx]), d.y_train[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    @torch.no_grad()
    def infer(splits):
        for net in models:
            net.eval()
            for x, y in splits:
                for i in range(0, len(y), EVAL_CHUNK_CPU):       # initmem's chunks on CPU
                    F.cross_entropy(net(x[i:i + EVAL_CHUNK_CPU]), y[i:i + EVAL_CHUNK_CPU])

    train()  # warm-up, as for initmem
    infer([(d.x_val, d.y_val)])
    a = time.perf_counter()
    train()
    b = time.perf_counter()
    infer([(d.x_val, d.y_val), (d.x_test, d.y_test)])
    return b - a, time.perf_counter() - b


def profile(m: int, data, steps: int, width: float, rows: int = 12) -> None:
    """Where the time of initmem at M goes, beside M bare runs: torch.profiler tables (self CPU time by
    op) of the timed train epoch and of the val inference, after the same warm-up as the timings."""
    from torch.profiler import ProfilerActivity, profile as prof
    runs = [RunConfig(width=width, batch_size=B, train_subset=B * steps, sigma_w=0.5 + i) for i in range(m)]
    t = PackTrainer(runs, data)
    t.train_epoch()
    t.evaluate(t.data.x_val, t.data.y_val)
    d = data.to("cpu", torch.float32)
    nets = [bare_resnet9(width) for _ in range(m)]
    for net in nets:
        net.train()
        F.cross_entropy(net(d.x_train[:B]), d.y_train[:B]).backward()
    parts = {
        f"initmem M={m} train ({steps} steps)": t.train_epoch,
        f"initmem M={m} val inference": lambda: t.evaluate(t.data.x_val, t.data.y_val),
        f"bare x{m} train ({steps} steps)": lambda: [F.cross_entropy(net(d.x_train[s * B:(s + 1) * B]),
                                                                     d.y_train[s * B:(s + 1) * B]).backward()
                                                     for net in nets for s in range(steps)],
        f"bare x{m} val inference": lambda: [F.cross_entropy(net.eval()(d.x_val[i:i + EVAL_CHUNK_CPU]),
                                                             d.y_val[i:i + EVAL_CHUNK_CPU])
                                             for net in nets for i in range(0, len(d.y_val), EVAL_CHUNK_CPU)],
    }
    for name, fn in parts.items():
        grad = torch.no_grad() if "inference" in name else torch.enable_grad()
        with grad, prof(activities=[ProfilerActivity.CPU]) as p:
            fn()
        total = sum(e.self_cpu_time_total for e in p.key_averages()) / 1e6
        print(f"\n=== {name}: {total:.2f} s of self CPU time")
        print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))
        for net in nets:
            net.train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--eval", type=int, default=512)
    ap.add_argument("--packs", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--profile", type=int, default=0, metavar="M",
                    help="instead of timing: profile initmem at M runs and M bare runs (train and val inference)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if DATA.exists():
        data = load_splits(path=DATA, train_subset=B * args.steps, eval_subset=args.eval)
    else:
        data = load_splits("synthetic", train_subset=B * args.steps, eval_subset=args.eval)
    if args.profile:
        profile(args.profile, data, args.steps, args.width)
        return
    scale_train = math.ceil(TRAIN / B) / args.steps   # updates per epoch / measured updates
    scale_eval = EVAL / args.eval                     # per split
    best: dict[tuple[str, int], float] = {}
    for rep in range(args.reps):
        for m in args.packs:
            for name, fn in (("initmem", time_initmem), ("bare", time_bare)):
                tr, ev = fn(m, data, args.steps, args.width)
                epoch = tr * scale_train + ev * scale_eval
                best[name, m] = min(best.get((name, m), math.inf), epoch)
                print(f"rep {rep} {name:8s} M={m}: train {tr:.2f}s ({args.steps} steps) eval {ev:.2f}s "
                      f"-> {epoch:.0f} s/epoch", flush=True)
    print(f"\nResNet-9 width {args.width:g}, b={B}, fp32, {args.threads} thread(s), data {data.source}")
    print(f"{'M':>3} {'initmem s/epoch':>16} {'bare s/epoch':>13} {'ratio':>6} {'initmem s/epoch/run':>20}")
    for m in args.packs:
        i, b = best["initmem", m], best["bare", m]
        print(f"{m:3d} {i:16.0f} {b:13.0f} {i / b:6.2f} {i / m:20.0f}")


if __name__ == "__main__":
    main()
