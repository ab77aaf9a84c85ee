"""python bench/gpu_checks.py [--out gpu_checks.json] [--bench-seconds 300]
   python bench/gpu_checks.py --cpu      # the same checks, tiny, on CPU (CI runs it)

The prepared script for the first session that has a GPU (issue 10): one command, a few minutes,
that says whether initmem's CUDA paths are right before anyone spends GPU-hours on them.

1. Pack equivalence on the device: a pack of 4 runs that differ in sigma_w, seed, lr0 and l2 trains
   --steps steps beside each run trained alone; every parameter of every run must agree within the
   bound (max |pack - alone| / max |alone| per tensor).  sgd and sgd_momentum in strict fp32 (TF32
   off), 1e-5: a grouped convolution sums in another order than a single one (on CPU too), and
   their updates are proportional to the gradient, so the difference stays at round-off.  adamw and
   muon_conv in fp64, 1e-9: Adam divides by sqrt(v), so a gradient that is zero in exact arithmetic
   (a conv bias before batch norm) turns its fp32 round-off into steps of ~lr, different in a pack
   and alone (measured on CPU: 7e-3 after 2 steps); in fp64 that round-off is far below Adam's eps.
2. The CUDA paths, each against the same sgd pack trained eagerly in strict fp32 (the reference),
   measured as the share of the training that differs: ||theta_path - theta_ref|| / ||theta_ref -
   theta_init|| over all parameters of all runs (per-tensor maxima would be dominated by tensors
   near zero, such as a conv bias before batch norm, whose gradient is round-off):
   - compile (the whole step as one graph; CUDA graphs on CUDA) in fp32: within 1e-3;
   - channels_last in fp32: within 1e-3 (measured on CPU, one thread: 1.6e-4 after 2 steps);
   - tf32: within 0.25, and on CUDA it must differ from fp32 (else the TF32 switch is not on);
   - bf16 (autocast, fp32 master weights): within 0.75.  bf16 keeps 8 bits of mantissa: measured
     on CPU (ResNet-9 x0.5, b 16, at init), its conv-kernel gradients are 20-37% from fp32's
     (cosine 0.93-0.98, CIFAR-10 and synthetic data), so two steps differ by ~45%; the bound
     catches a broken path (no better than not training), not bf16's own noise.  TF32 keeps 11.
   Every path must also end with finite losses.
3. bench/bench_gpu.py's table (step time, images/s, TFLOP/s, MFU, peak memory beside the
   planner's model), in the time left by --bench-seconds.  Not run with --cpu (tests run --tiny).

Prints one PASS/FAIL line per check and writes the JSON (--out); exit status 1 if a check fails.
Expected time on one H100/H200: ~1 minute for 1-2 (width 1, b 128, --steps 5), then the benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from initmem.config import RunConfig  # noqa: E402
from initmem.data import synthetic_splits  # noqa: E402
from initmem.train import PackTrainer  # noqa: E402

PACK_CASES = (("sgd", "fp32", 1e-5), ("sgd_momentum", "fp32", 1e-5), ("adamw", "fp64", 1e-9), ("muon_conv", "fp64", 1e-9))
PATH_RTOL = {"compile": 1e-3, "channels_last": 1e-3, "tf32": 0.25, "bf16": 0.75}


def pack_runs(optimizer: str, width: float, batch_size: int, steps: int, device: str, **kw) -> list[RunConfig]:
    """Four runs of one pack: sigma_w, seed, lr0 and l2 differ.  Kept out of the chaotic corner (sigma_w
    2.5 at lr0 0.08 amplifies the round-off of 2 sgd steps to 7e-3), so a difference means a bug."""
    decay = optimizer in ("adamw", "muon", "muon_conv")
    lr = (0.05, 0.02, 0.04, 0.03) if optimizer.startswith("sgd") else (2e-3, 1e-3, 3e-3, 1.5e-3)
    return [RunConfig(dataset="synthetic", train_subset=batch_size * steps, eval_subset=16, batch_size=batch_size,
                      epochs=1, width=width, optimizer=optimizer, device=device, sigma_w=s, seed=k, lr0=l, l2=l2,
                      **({"weight_decay": 1e-4} if decay else {}), **kw)
            for s, k, l, l2 in zip((0.5, 1.0, 1.5, 2.0), (0, 1, 42, 123), lr, (0.0, 1e-3, 0.0, 5e-3))]


def train(runs: list[RunConfig], data, backend: str | None, init: list | None = None
          ) -> tuple[list[torch.Tensor], np.ndarray]:
    """One epoch of the pack; (its parameters on the host, float64; the train losses). ``init``, a
    list, receives the parameters before training."""
    t = PackTrainer(runs, data, compile_backend=backend)
    if init is not None:
        init.extend(p.detach().double().cpu() for p in t.params)
    loss, _ = t.train_epoch()
    return [p.detach().double().cpu() for p in t.params], loss


def training_diff(a: list[torch.Tensor], ref: list[torch.Tensor], init: list[torch.Tensor]) -> float:
    """||a - ref|| / ||ref - init|| over all tensors: the share of the training that differs."""
    num = sum(float((x - y).square().sum()) for x, y in zip(a, ref))
    den = sum(float((y - z).square().sum()) for y, z in zip(ref, init))
    return (num / den) ** 0.5 if den > 0 else float("inf")


def max_rel(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """The largest over tensors of max |a - b| / max |b| (b the reference)."""
    out = 0.0
    for x, y in zip(a, b):
        scale = float(y.abs().max()) or 1.0
        out = max(out, float((x - y).abs().max()) / scale)
    return out


def pack_equivalence(optimizer: str, precision: str, bound: float, args, device: str, data,
                     alone_kw: dict | None = None) -> dict:
    """A pack of 4 against each run alone. alone_kw changes the runs trained alone (tests use it to
    build a case that must fail)."""
    runs = pack_runs(optimizer, args.width, args.batch_size, args.steps, device, precision=precision)
    packed, _ = train(runs, data, None)
    worst = 0.0
    for i, r in enumerate(runs):
        alone, _ = train([r.replace(**(alone_kw or {}))], data, None)
        worst = max(worst, max_rel([p[i:i + 1] for p in packed], alone))
    return {"check": f"pack equivalence {optimizer} {precision}", "value": worst, "bound": bound,
            "passed": worst <= bound}


def path_checks(args, device: str, data) -> list[dict]:
    """Each CUDA path against the strict-fp32 eager pack (sgd: a path's round-off is not amplified)."""
    runs = pack_runs("sgd", args.width, args.batch_size, args.steps, device, precision="fp32")
    init: list[torch.Tensor] = []
    ref, _ = train(runs, data, None, init)
    backend = None if device == "cuda" else "aot_eager"
    paths = {"compile": dict(compile=True), "channels_last": dict(channels_last=True),
             "tf32": dict(precision="tf32"), "bf16": dict(precision="bf16")}
    out = []
    for name, kw in paths.items():
        params, loss = train([r.replace(**kw) for r in runs], data, backend if kw.get("compile") else None)
        diff = training_diff(params, ref, init)
        passed = diff <= PATH_RTOL[name] and bool(np.isfinite(loss).all())
        if name == "tf32" and device == "cuda":
            passed = passed and diff > 0          # identical to fp32 would mean TF32 is not in use
        out.append({"check": f"path {name} vs fp32 eager", "value": diff, "bound": PATH_RTOL[name],
                    "passed": passed, "final_loss": [float(v) for v in loss]})
        torch._dynamo.reset()
    return out


def line(r: dict) -> str:
    return f"{'PASS' if r['passed'] else 'FAIL'}  {r['check']:<34s} {r['value']:.3e} (bound {r['bound']:g})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run the checks on CPU, width 1/16 (CI)")
    ap.add_argument("--out", default="gpu_checks.json", help="JSON with every check (default gpu_checks.json)")
    ap.add_argument("--steps", type=int, default=5, help="training steps per pack (default 5)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 128; --cpu 16")
    ap.add_argument("--width", type=float, default=None, help="width multiplier (default 1; --cpu 1/16)")
    ap.add_argument("--bench-seconds", type=float, default=300.0,
                    help="time for bench/bench_gpu.py after the checks (0: skip it)")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error(f"--steps={args.steps} is not allowed: an integer >= 1")
    device = "cpu" if args.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device is visible; run with --cpu for the CPU check", file=sys.stderr)
        return 2
    args.batch_size = args.batch_size or (16 if args.cpu else 128)
    args.width = args.width or (1 / 16 if args.cpu else 1.0)
    t0 = time.perf_counter()
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"gpu_checks: ResNet-9 x{args.width:g}, b {args.batch_size}, {args.steps} steps, on {name}, torch {torch.__version__}")
    data = synthetic_splits(args.batch_size * args.steps, 16)
    results = []
    for opt, precision, bound in PACK_CASES:
        results.append(pack_equivalence(opt, precision, bound, args, device, data))
        print(line(results[-1]), flush=True)
    for r in path_checks(args, device, data):
        results.append(r)
        print(line(r), flush=True)
    report = {"device": name, "torch": torch.__version__, "width": args.width, "batch_size": args.batch_size,
              "steps": args.steps, "checks": results, "checks_s": time.perf_counter() - t0}
    if device == "cuda" and args.bench_seconds > 0:
        from bench import bench_gpu as bench   # bench/ as a namespace package: the checkout is on sys.path
        bench_out = Path(args.out).with_name(Path(args.out).stem + "_bench.json")
        bench.main(["--out", str(bench_out), "--max-seconds", str(args.bench_seconds)])
        report["bench"] = json.loads(bench_out.read_text())
    Path(args.out).write_text(json.dumps(report, indent=1))
    failed = [r["check"] for r in results if not r["passed"]]
    print(f"{len(results) - len(failed)}/{len(results)} checks passed; wrote {args.out} "
          f"({time.perf_counter() - t0:.0f} s)" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
