"""python bench/bench_packing.py [--archs resnet9 resnet56] [--width 0.25] [--batch 32] [--device cpu]

(from the repo root after `pip install -e .`, or prefix PYTHONPATH=.)

How should M runs of a pack share one device? Times forward+backward of one training step
(per-run mean cross-entropy summed over runs, BatchNorm in training mode) for M in {1, 4}, all
in this one process, for three mechanisms:

  loop    M separate models (build_model with n_runs=1), one forward/backward each: the baseline
  grouped initmem.models as implemented: runs side by side in channels, groups=M convs, bmm head
  vmap    torch.func.vmap over functional_call of the n_runs=1 model, parameters stacked (M, 1, ...)

and prints ms per step and the per-run time relative to the loop at the same M (< 1 = faster).
Expected time: about 30 s on one CPU thread with the defaults.

Measured (torch 2.14.1, CPU, 1 thread, --reps 10), per-run time vs loop at M=4:
resnet9 grouped 0.99, vmap 1.20; resnet56 grouped 0.73, vmap 0.87. At M=1 grouped == loop.
Grouped wins: level with the loop on ResNet-9 (also at M=16: 1.05), much faster where many small layers are
overhead-bound, and vmap pays for re-batching every op. Rerun with --device cuda on a GPU.
"""

import argparse
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap

from initmem.config import RunConfig
from initmem.models import build_model


def make_models(cfg, M, dtype, device):
    gens = lambda: [torch.Generator().manual_seed(s) for s in range(M)]  # noqa: E731
    sigmas = [1.0] * M
    loop_models = []
    for m in range(M):
        net = build_model(cfg, 1, dtype, device)
        net.init_(sigmas[m:m + 1], gens()[m:m + 1])
        loop_models.append(net)
    packed = build_model(cfg, M, dtype, device)
    packed.init_(sigmas, gens())
    return loop_models, packed


def step_loop(models, x, y):
    for m, net in enumerate(models):
        logits = net(x[m:m + 1])
        F.cross_entropy(logits[0], y[m]).backward()


def step_grouped(net, x, y):
    logits = net(x)
    M, B = y.shape
    F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(M, B).mean(1).sum().backward()


def make_vmap_step(models):
    """Stack the n_runs=1 models' parameters/buffers to (M, 1, ...) and vmap over the leading dim."""
    base = models[0]
    params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in models]).requires_grad_()
              for n, _ in base.named_parameters()}
    buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]) for n, _ in base.named_buffers()}

    def loss_one(p, b, x, y):  # x: (1, B, 3, H, W), y: (B,)
        logits = functional_call(base, (p, b), (x,))
        return F.cross_entropy(logits[0], y)

    losses = vmap(loss_one, randomness="error")

    def step(x, y):
        losses(params, buffers, x.unsqueeze(1), y).sum().backward()
    return step, params


def timeit(steps, reps, device):
    """Min seconds per step for each mechanism; mechanisms interleaved so that load from other
    processes on the machine hits them alike."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = {name: [] for name in steps}
    for i in range(reps + 1):  # first round is warm-up
        for name, fn in steps.items():
            sync()
            t = time.perf_counter()
            fn()
            sync()
            if i >= 1:
                times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", nargs="+", default=["resnet9", "resnet56"])
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--threads", type=int, default=1,
                    help="CPU threads; 1 keeps timings stable when other processes share the cores")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), torch.float32
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"width {args.width}, b {args.batch}, fp32, 32x32 images, min of {args.reps} steps (interleaved)")
    print(f"{'arch':10} {'M':>2} {'mechanism':8} {'ms/step':>9} {'ms/run':>8} {'per-run vs loop':>16}")
    for arch in args.archs:
        cfg = RunConfig(arch=arch, width=args.width, batch_size=args.batch, channels_last=args.channels_last)
        for M in args.runs:
            torch.manual_seed(0)
            x = torch.rand(M, args.batch, 3, 32, 32, dtype=dtype, device=device)
            y = torch.randint(0, 10, (M, args.batch), device=device)
            loop_models, packed = make_models(cfg, M, dtype, device)
            vmap_step, _ = make_vmap_step(loop_models)
            steps = {"loop": lambda: step_loop(loop_models, x, y),
                     "grouped": lambda: step_grouped(packed, x, y),
                     "vmap": lambda: vmap_step(x, y)}
            times = timeit(steps, args.reps, device)
            for name, t in times.items():
                base = times["loop"]
                print(f"{arch:10} {M:>2} {name:8} {1e3 * t:9.1f} {1e3 * t / M:8.1f} {t / base:16.2f}", flush=True)


if __name__ == "__main__":
    main()
