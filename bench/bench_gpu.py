"""python bench/bench_gpu.py [--out bench_gpu.json] [--optimizer adamw] [--max-seconds 420]
   python bench/bench_gpu.py --tiny        # the same code on CPU in seconds (CI runs it)

How fast does a pack train on this GPU, and does the planner's memory model hold? For ResNet-9
(width 1) at b = 16 and b = 128, pack sizes 1, 8, 32 and the planner's maximum for the GPU, in
tf32 and bf16, eager and compiled (the whole step as one graph, CUDA graphs through
torch.compile's "reduce-overhead"), it trains one warm-up epoch of --warmup steps (compilation,
graph capture) and times one epoch of --steps steps of PackTrainer.train_epoch (the training
loop itself: batch indexing, step, update; no evaluation), then prints one table row:

  step ms, images/s (all runs), achieved TFLOP/s (3 x the planner's forward FLOPs per trained
  image), MFU (against --peak-tflops, default the planner's datasheet peak for the precision),
  peak memory of the epoch and of one evaluation chunk as a full-size pack evaluates
  (torch.cuda.max_memory_allocated; on CPU the profiler's tensor allocations) beside the planner's
  prediction (data + M x run_memory_bytes, initmem/memory.py), and their ratio.

A case that runs out of memory is a row saying so; cases past --max-seconds are skipped and
listed. The JSON (--out) holds the rows and the device. Expected time: under 8 minutes on one
H100/H200 with the defaults; --tiny: width 1/16, b = 16, M = 1 and 2, a few steps on CPU, under a
minute on 2 loaded cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch._dynamo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from initmem.config import RunConfig  # noqa: E402
from initmem.data import synthetic_splits  # noqa: E402
from initmem.memory import eval_chunk  # noqa: E402
from initmem.train import PackTrainer  # noqa: E402
from initmem.memory import data_bytes, run_memory_bytes  # noqa: E402
from tune_jobs.planner import (CPU_CORE_PEAK_GFLOPS, GPU_PEAK_TFLOPS, detect_device,  # noqa: E402
                               forward_flops, max_pack_size)


def cpu_peak_bytes(fn) -> tuple[object, float]:
    """(fn(), peak bytes of tensor memory allocated during fn above the level at its start), from the
    profiler's allocation events (each op's own allocations at its start, frees as they happen)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as p:
        out = fn()
    deltas = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in p.events() if e.self_cpu_memory_usage)
    level = peak = 0
    for _, d in deltas:
        level += d
        peak = max(peak, level)
    return out, float(peak)


def resident_bytes(t: PackTrainer) -> float:
    """Tensors the pack holds between steps: data, parameters and buffers (the optimizer's flat
    buffers hold the parameters and gradients), optimizer slots, scratch, run index."""
    seen, total = set(), 0
    tensors = [t.data.x_train, t.data.y_train, t.data.x_val, t.data.y_val, t.data.x_test, t.data.y_test,
               *t.opt.persistent_tensors(), *t.model.buffers()]
    for x in tensors:
        key = x.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total += x.untyped_storage().nbytes()
    return float(total)


def run_case(b: int, m: int, precision: str, compiled: bool, args, device: str) -> dict:
    n_train = b * args.steps
    kw = dict(batch_size=b, width=args.width, optimizer=args.optimizer, precision=precision, device=device,
              compile=compiled, channels_last=args.channels_last and device == "cuda")
    n_eval = eval_chunk(RunConfig(**kw), m)     # one evaluation chunk of a full-size sweep's pack
    runs = [RunConfig(dataset="synthetic", train_subset=n_train, eval_subset=n_eval, epochs=2,
                      sigma_w=0.5 + 0.01 * i, seed=i, **kw) for i in range(m)]
    cfg = runs[0]
    data = synthetic_splits(n_train, n_eval)
    t = PackTrainer(runs, data, compile_backend=args.backend if device == "cpu" and compiled else None)
    warm_steps = min(args.warmup, args.steps)
    t.steps_per_epoch = warm_steps            # warm-up: compilation, CUDA graph capture, cuDNN autotune
    t.train_epoch()
    t.steps_per_epoch = args.steps
    cuda = device == "cuda"
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    t.train_epoch()
    if cuda:
        torch.cuda.synchronize()
    sec = (time.perf_counter() - start) / args.steps
    if cuda:   # the epoch's evaluation (one chunk; with compile, its CUDA graph) counts in the peak too
        t.evaluate(t.data.x_val, t.data.y_val)
        torch.cuda.synchronize()
        peak = float(torch.cuda.max_memory_allocated())
    elif not compiled:   # a second epoch and an evaluation under the profiler (not in the timing)
        _, extra = cpu_peak_bytes(lambda: (t.train_epoch(), t.evaluate(t.data.x_val, t.data.y_val)))
        peak = resident_bytes(t) + extra
    else:                # the profiler does not see inside a compiled graph's memory planning
        peak = float("nan")
    flops = 3 * forward_flops(cfg.arch, cfg.width) * b * m
    peak_flops = (args.peak_tflops * 1e12 if args.peak_tflops else
                  GPU_PEAK_TFLOPS[cfg.effective_precision] * 1e12 if cuda else
                  CPU_CORE_PEAK_GFLOPS[cfg.effective_precision] * 1e9 * torch.get_num_threads())
    predicted = data_bytes(cfg) + m * run_memory_bytes(cfg)
    return {"batch_size": b, "pack": m, "precision": cfg.effective_precision, "mode": "compiled" if compiled else "eager",
            "step_ms": sec * 1e3, "images_per_s": b * m / sec, "tflops": flops / sec / 1e12,
            "mfu": flops / sec / peak_flops, "peak_gb": peak / 1e9 if peak == peak else None, "predicted_gb": predicted / 1e9,
            "memory_ratio": peak / predicted if peak == peak else None, "status": "ok"}


def cases(args, device: str) -> list[tuple[int, int, str, bool]]:
    if args.tiny:
        return [(16, 1, "fp32", False), (16, 2, "fp32", False), (16, 2, "bf16", False), (16, 2, "fp32", True)]
    dev = detect_device("cuda", gpu_memory_gb=torch.cuda.get_device_properties(0).total_memory / 1e9)  # this GPU's
    out = []
    for compiled in (False, True):
        for b in (16, 128):
            top = max_pack_size(RunConfig(batch_size=b, optimizer=args.optimizer, device="cuda"), dev)
            for m in sorted({1, 8, 32, top}):
                for precision in ("tf32", "bf16"):
                    out.append((b, m, precision, compiled))
    return out


HEAD = (f"{'b':>4} {'M':>4} {'prec':>5} {'mode':>8} {'step ms':>9} {'img/s':>9} {'TFLOP/s':>8} {'MFU':>6} "
        f"{'peak GB':>8} {'model GB':>9} {'ratio':>6}")


def row_text(r: dict) -> str:
    lead = f"{r['batch_size']:>4} {r['pack']:>4} {r['precision']:>5} {r['mode']:>8}"
    if r["status"] != "ok":
        return f"{lead} {r['status']}"
    mem = (f"{r['peak_gb']:8.3f} {r['predicted_gb']:9.3f} {r['memory_ratio']:6.2f}" if r["memory_ratio"] is not None
           else f"{'-':>8} {r['predicted_gb']:9.3f} {'-':>6}")
    return (f"{lead} {r['step_ms']:9.2f} {r['images_per_s']:9.0f} {r['tflops']:8.4f} {r['mfu']:6.1%} {mem}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="CPU, width 1/16, a few steps: the same code in seconds")
    ap.add_argument("--out", default="bench_gpu.json", help="JSON with every row (default bench_gpu.json)")
    ap.add_argument("--optimizer", default="adamw")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per case (default 20; --tiny 2)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="warm-up steps per case: compilation, CUDA graph capture (default 3; --tiny 1)")
    ap.add_argument("--width", type=float, default=None, help="width multiplier (default 1; --tiny 1/16)")
    ap.add_argument("--channels-last", action="store_true", help="channels_last activations on CUDA")
    ap.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: datasheet by precision)")
    ap.add_argument("--backend", default="aot_eager", help="torch.compile backend of compiled cases on CPU")
    ap.add_argument("--max-seconds", type=float, default=420.0, help="skip the cases left after this many seconds")
    args = ap.parse_args(argv)
    args.steps = args.steps or (2 if args.tiny else 20)
    args.width = args.width or (1 / 16 if args.tiny else 1.0)
    args.warmup = args.warmup or (1 if args.tiny else 3)
    for flag, v in (("--steps", args.steps), ("--warmup", args.warmup)):
        if v < 1:
            ap.error(f"{flag}={v} is not allowed: an integer >= 1")
    if args.tiny:
        device = "cpu"
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        print("error: no CUDA device is visible; run with --tiny for the CPU check", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"bench_gpu: ResNet-9 x{args.width:g}, {args.optimizer}, {args.steps} timed steps per case, on {name}, "
          f"torch {torch.__version__}")
    print(HEAD)
    rows, skipped, t0 = [], [], time.perf_counter()
    for b, m, precision, compiled in cases(args, device):
        if time.perf_counter() - t0 > args.max_seconds:
            skipped.append({"batch_size": b, "pack": m, "precision": precision, "compiled": compiled})
            continue
        try:
            r = run_case(b, m, precision, compiled, args, device)
        except torch.OutOfMemoryError as e:
            r = {"batch_size": b, "pack": m, "precision": precision, "mode": "compiled" if compiled else "eager",
                 "status": f"out of memory ({str(e).splitlines()[0][:60]})"}
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()
            torch._dynamo.reset()
        rows.append(r)
        print(row_text(r), flush=True)
    if skipped:
        print(f"skipped {len(skipped)} case(s) past --max-seconds={args.max_seconds:g}: "
              + ", ".join(f"b{s['batch_size']} M{s['pack']} {s['precision']}{' compiled' if s['compiled'] else ''}"
                          for s in skipped))
    Path(args.out).write_text(json.dumps({"device": name, "torch": torch.__version__, "width": args.width,
                                          "optimizer": args.optimizer, "steps": args.steps, "rows": rows,
                                          "skipped": skipped, "wall_s": time.perf_counter() - t0}, indent=1))
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
