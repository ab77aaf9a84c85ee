"""python bench/gpu_checks.py [--out gpu_checks.json] [--max-seconds 450]
   python bench/gpu_checks.py --cpu      # the same checks, tiny, on CPU (CI runs it)

The prepared script for the first session that has a GPU (issues 10 and 17): one command, under 8
minutes (a 15-minute device lease can run it twice), that says whether initmem's CUDA paths are right
and whether the first real sweep will run, before anyone spends GPU-hours on them. Each check prints a
PASS/FAIL line and the JSON (--out) is rewritten after every check, so a session cut short keeps what
it measured. Exit status 1 if a check fails. Checks whose bound is round-off are built so that round-off
passes and a bug fails: strict fp32 only after one step (BatchNorm at b = 16 amplifies round-off ~10x
per step, SPEC Section 3: after 5 steps a correct pack differs from its runs alone by 0.3), longer
comparisons in fp64, where round-off stays far below the bounds.

1. The first real run (train_pack, as a sweep's trial calls it): a pack of 2 runs (adam, augmentation)
   for 2 epochs whose last batch is partial, evaluated in the pack's chunks, checkpointed every epoch:
   - resume: stopped after epoch 1 and resumed from its checkpoint, it must equal the uninterrupted
     run (fp64; max relative difference over every epochs-table metric <= 1e-9; on CUDA it crashed
     in Generator.set_state before issue 17);
   - compile: the same pack compiled (CUDA: inductor with CUDA graphs; CPU: AOT autograd) must equal the
     eager run within 1e-7 (fp64), compile each batch shape once, and keep every mutated graph input
     static: on CUDA inductor's cudagraph_skips counter must stay 0, on CPU the graphs' forward metadata
     lists every mutated input as static and only the batch (x, y) as not;
   - out of memory: a pack of 4 on a device that holds 2 (CUDA: a real torch.OutOfMemoryError under
     torch.cuda.set_per_process_memory_fraction; CPU: tune_jobs.standin.OutOfMemoryAbove) must end in a
     clear message, release its memory, and be re-planned into 2 packs of 2 that finish, every
     (run_id, epoch) row once (tune_jobs/replan.py, as the sweep's driver does).
2. Pack equivalence: a pack of 4 runs that differ in sigma_w, seed, lr0 and l2 beside each run trained
   alone; max over tensors of max |pack - alone| / max |alone|. sgd and sgd_momentum after 1 step in
   strict fp32 (TF32 off), 1e-4: a grouped convolution sums in another order than a single one (CPU:
   2.1e-6; cuDNN may choose other algorithms for the two, Winograd/FFT ones err ~1e-5), while an l2 of
   1e-3 in the wrong run moves it by 2.4e-4 and a wrong lr0 or init by O(1); every
   optimizer after --steps steps in fp64, 1e-9 (adamw: Adam divides by sqrt(v), so a gradient zero in
   exact arithmetic turns fp32 round-off into steps of ~lr; muon_conv with Newton-Schulz in fp64 for
   this check: in fp32 its batched GEMMs round by batch count, measured 2e-8 after 5 steps on CPU).
3. The CUDA paths against the same sgd pack trained eagerly in NCHW (the reference; the runs' default
   layout is channels_last, itself one of the paths), as the share of the
   training that differs, ||theta_path - theta_ref|| / ||theta_ref - theta_init||: compile and
   channels_last after 1 step in fp32 within 0.02 (a correct path: 1.1e-4 and 2.9e-3 on two CPU data
   sets for channels_last, whose CPU BatchNorm accumulates in fp32 (10x the error of the NCHW kernel)
   and, at b = 16, moves ReLU and max-pool decisions within the step; a wrong layout is O(1)), and
   channels_last after --steps in fp64 (1e-7; exact arithmetic's yardstick); tf32 after
   1 step within 0.25 (and on CUDA not 0: TF32 is on); bf16 (autocast, fp32 master weights) after 1 step
   within 0.75 (bf16 keeps 8 bits: its conv-kernel gradients are 20-37% from fp32's at init); all finite.
4. bench/bench_gpu.py's table in the time left (not with --cpu; tests run it --tiny).

Expected time on one H100/H200: 3-5 minutes of checks (inductor compiles dominate), then the benchmark
until --max-seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere in the checkout

from initmem import optim  # noqa: E402
from initmem.config import RunConfig, pack_id  # noqa: E402
from initmem.data import synthetic_splits  # noqa: E402
from initmem.memory import eval_chunk  # noqa: E402
from initmem.results import read_epochs, read_runs  # noqa: E402
from initmem.train import PackTrainer, train_pack  # noqa: E402

# (optimizer, precision, steps (None: --steps), bound)
PACK_CASES = (("sgd", "fp32", 1, 1e-4), ("sgd_momentum", "fp32", 1, 1e-4), ("sgd", "fp64", None, 1e-9),
              ("sgd_momentum", "fp64", None, 1e-9), ("adamw", "fp64", None, 1e-9), ("muon_conv", "fp64", None, 1e-9))
# name -> (RunConfig changes, reference precision, steps (None: --steps), bound)
PATHS = {"compile": ({"compile": True}, "fp32", 1, 0.02),
         "channels_last": ({"channels_last": True}, "fp32", 1, 0.02),
         "channels_last fp64": ({"channels_last": True}, "fp64", None, 1e-7),
         "tf32": ({"precision": "tf32"}, "fp32", 1, 0.25),
         "bf16": ({"precision": "bf16"}, "fp32", 1, 0.75)}
RESUME_RTOL, COMPILE_RTOL = 1e-9, 1e-7
METRICS = ("train_loss", "train_acc", "val_loss", "val_loss_raw", "val_acc", "test_loss", "test_acc", "w_norm")


# --- helpers ------------------------------------------------------------------------------------------

def pack_runs(optimizer: str, width: float, batch_size: int, steps: int, device: str, **kw) -> list[RunConfig]:
    """Four runs of one pack: sigma_w, seed, lr0 and l2 differ.  Kept out of the chaotic corner (sigma_w
    2.5 at lr0 0.08 amplifies the round-off of 2 sgd steps to 7e-3), so a difference means a bug."""
    decay = optimizer in ("adamw", "muon", "muon_conv")
    lr = (0.05, 0.02, 0.04, 0.03) if optimizer.startswith("sgd") else (2e-3, 1e-3, 3e-3, 1.5e-3)
    return [RunConfig(dataset="synthetic", train_subset=batch_size * steps, eval_subset=16, batch_size=batch_size,
                      epochs=1, width=width, optimizer=optimizer, device=device, sigma_w=s, seed=k, lr0=l, l2=l2,
                      **({"weight_decay": 1e-4} if decay else {}), **kw)
            for s, k, l, l2 in zip((0.5, 1.0, 1.5, 2.0), (0, 1, 42, 123), lr, (0.0, 1e-3, 0.0, 5e-3))]


@contextlib.contextmanager
def newton_schulz_in(dtype: torch.dtype):
    """Optimizers built inside run Newton-Schulz in `dtype` (SPEC: float32; fp64 for the fp64 checks)."""
    before = optim.NS_DTYPE
    optim.NS_DTYPE = dtype
    try:
        yield
    finally:
        optim.NS_DTYPE = before


def train(runs: list[RunConfig], data, backend, init: list | None = None) -> tuple[list[torch.Tensor], np.ndarray]:
    """One epoch of the pack; (its parameters on the host, float64; the train losses). ``init``, a
    list, receives the parameters before training. fp64 packs run Newton-Schulz in fp64."""
    with newton_schulz_in(torch.float64 if runs[0].effective_precision == "fp64" else optim.NS_DTYPE):
        t = PackTrainer(runs, data, compile_backend=backend)
    snapshot = (lambda: [p.detach().to("cpu", torch.float64, copy=True) for p in t.params])  # copies, also of fp64
    if init is not None:
        init.extend(snapshot())
    loss, _ = t.train_epoch()
    return snapshot(), loss


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


def static_input_probe(records: list):
    """A torch.compile backend: AOT autograd as inductor runs it (input mutations kept in the graph), no
    code generation; it records each graph's forward metadata: its inputs, the mutated ones and those
    marked static (fw_metadata.static_input_indices: what inductor's CUDA-graph check reads as
    static_input_idxs; a mutated input that is not static makes CUDA graphs skip the graph)."""
    from torch._dynamo.backends.common import aot_autograd

    def fw(gm, example_inputs):
        meta = torch._guards.TracingContext.try_get().fw_metadata
        records.append({"inputs": len(meta.input_info), "static": set(meta.static_input_indices),
                        "mutated": {i for i, info in enumerate(meta.input_info) if info.mutates_data}})
        return gm
    return aot_autograd(fw_compiler=fw, keep_inference_input_mutations=True)


def epochs_diff(a, b) -> tuple[float, bool]:
    """(max relative difference over METRICS, same rows?) of two epochs tables."""
    key = ["run_id", "epoch"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    if len(a) != len(b) or not (a[key].values == b[key].values).all():
        return float("inf"), False
    worst = 0.0
    for c in METRICS:
        x, y = a[c].to_numpy(float), b[c].to_numpy(float)
        worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-12))))
    return worst, True


def result(check: str, value: float, bound: float, passed: bool, **info) -> dict:
    return {"check": check, "value": value, "bound": bound, "passed": bool(passed), **info}


# --- 1. the first real run ------------------------------------------------------------------------------

def run_pack(args, device: str, **kw) -> list[RunConfig]:
    """The pack of check 1: 2 runs, adam, augmentation, 2 epochs of 2.5 batches (the last one partial)."""
    b = args.batch_size
    return [RunConfig(dataset="synthetic", train_subset=2 * b + b // 2, eval_subset=args.eval_images, batch_size=b,
                      epochs=2, width=args.width, optimizer="adam", augment=True, lr0=2e-3, device=device,
                      sigma_w=s, seed=k, **kw) for s, k in ((0.7, 0), (1.6, 1))]


def resume_check(args, device: str, work: Path) -> dict:
    runs = run_pack(args, device, precision="fp64")
    data = synthetic_splits(runs[0].n_train, runs[0].n_eval)
    train_pack(runs, data, results=str(work / "whole"), checkpoint_dir=work / "ck_whole", log=None)
    part = train_pack(runs, data, results=str(work / "resumed"), checkpoint_dir=work / "ck", stop_after_epoch=1,
                      log=None)
    rows = train_pack(runs, data, results=str(work / "resumed"), checkpoint_dir=work / "ck", log=None)
    whole, resumed = read_epochs(str(work / "whole")), read_epochs(str(work / "resumed"))
    diff, same_rows = epochs_diff(resumed, whole)
    ok = (same_rows and diff <= RESUME_RTOL and {r["status"] for r in part} == {"running"}
          and {r["status"] for r in rows} == {"completed"} and len(whole) == 2 * 3)
    return result("train_pack resume = uninterrupted", diff, RESUME_RTOL, ok, bit_identical=diff == 0.0,
                  eval_chunk=eval_chunk(runs[0], len(runs)))


def compile_check(args, device: str, work: Path) -> dict:
    """The pack of resume_check compiled, against its eager run (work/whole, written by resume_check)."""
    from torch._dynamo.utils import counters
    runs = run_pack(args, device, precision="fp64", compile=True)
    data = synthetic_splits(runs[0].n_train, runs[0].n_eval)
    records: list = []
    backend = None if device == "cuda" else static_input_probe(records)
    counters.clear()
    train_pack(runs, data, results=str(work / "compiled"), log=None, compile_backend=backend)
    diff, same_rows = epochs_diff(read_epochs(str(work / "compiled")), read_epochs(str(work / "whole")))
    graphs = int(counters["stats"]["unique_graphs"])
    info = {"graphs": graphs, "graph_breaks": int(sum(counters["graph_break"].values()))}
    ok = same_rows and diff <= COMPILE_RTOL and not info["graph_breaks"]
    if device == "cuda":
        info["cudagraph_skips"] = int(counters["inductor"]["cudagraph_skips"])
        ok = ok and info["cudagraph_skips"] == 0
    else:   # the steps' graphs (a full and a partial batch) and the evaluation's (one padded chunk shape)
        steps = [r for r in records if r["mutated"]]
        info["nonstatic_mutated"] = sum(len(r["mutated"] - r["static"]) for r in records)
        info["nonstatic_step_inputs"] = [r["inputs"] - len(r["static"]) for r in steps]
        ok = ok and len(steps) == 2 and info["nonstatic_mutated"] == 0 and info["nonstatic_step_inputs"] == [2, 2]
    return result("train_pack compiled = eager" + (", no cudagraph skip" if device == "cuda" else ", static inputs"),
                  diff, COMPILE_RTOL, ok, **info)


def oom_check(args, device: str, work: Path) -> dict:
    """A pack of 4 on a device that holds 2: clear message, memory released, re-planned, complete."""
    from tune_jobs.planner import Device, make_plan
    from tune_jobs.replan import replan_out_of_memory, train_or_out_of_memory
    from tune_jobs.standin import OutOfMemoryAbove
    runs = [r.replace(sigma_w=s, seed=k) for r in run_pack(args, device)[:1]
            for s, k in ((0.5, 0), (1.0, 1), (1.5, 2), (2.0, 3))]
    data = synthetic_splits(runs[0].n_train, runs[0].n_eval)
    plan = make_plan("oom", "check", runs, Device(device, device, 0.0), max_pack=4)
    results, lines, messages, freed = str(work / "oom"), [], [], []
    train_fn, fraction = train_pack, None
    if device == "cuda":   # the fraction of the GPU that holds what 3 runs need: 4 do not fit, 2 do
        from initmem.memory import data_bytes, run_memory_bytes
        torch.cuda.empty_cache()
        fraction = (data_bytes(runs[0]) + 3 * run_memory_bytes(runs[0]) + torch.cuda.memory_allocated()) \
            / torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, fraction))
    else:
        train_fn = OutOfMemoryAbove(train_pack, max_runs=2, at_epoch=1)
    try:
        todo = list(plan.pack_ids)
        for _ in range(3):                   # 4 -> 2 + 2 (-> 1 x 4 if a half does not fit either)
            failed = {}
            for pid, pack in zip(plan.pack_ids, plan.packs):
                if pid in todo:
                    before = torch.cuda.memory_allocated() if device == "cuda" else 0
                    _, msg = train_or_out_of_memory(train_fn, pid, pack, data, results=results,
                                                    checkpoint_dir=work / f"ck_{pid}", log=None)
                    if msg is not None:
                        failed[pid] = msg
                        freed.append(torch.cuda.memory_allocated() - before if device == "cuda" else 0)
            messages += failed.values()
            plan, errors = replan_out_of_memory(plan, failed, results, lines.append)
            todo = [new for pid in failed if pid in plan.replaced for new in plan.replaced[pid]]
            if not todo:
                break
    finally:
        if fraction is not None:
            torch.cuda.set_per_process_memory_fraction(1.0)
    epochs, table = read_epochs(results), read_runs(results)
    complete = (len(epochs) == 4 * 3 and not epochs.duplicated(["run_id", "epoch"]).any()
                and set(table["status"]) == {"completed"} and len(table) == 4)
    clear = bool(messages) and all("ran out of memory" in m and "re-plans it into 2 packs of 2 and 2" in m
                                   for m in messages[:1])
    ok = complete and clear and [len(p) for p in plan.packs] == [2, 2] and all(f <= 1 << 20 for f in freed)
    return result("out of memory -> re-planned into halves", float(len(plan.packs)), 2.0, ok,
                  messages=messages, memory_left_after_oom=freed, packs=[len(p) for p in plan.packs],
                  pack_ids=[pack_id(p) for p in plan.packs])


# --- 2. and 3. equivalence and paths -----------------------------------------------------------------------

def pack_equivalence(optimizer: str, precision: str, bound: float, args, device: str, data, steps: int | None = None,
                     alone_kw: dict | None = None) -> dict:
    """A pack of 4 against each run alone. alone_kw changes the runs trained alone (tests use it to
    build a case that must fail)."""
    steps = steps or args.steps
    runs = pack_runs(optimizer, args.width, args.batch_size, steps, device, precision=precision)
    data = data.subset(train=args.batch_size * steps)
    packed, _ = train(runs, data, None)
    worst = 0.0
    for i, r in enumerate(runs):
        alone, _ = train([r.replace(**(alone_kw or {}))], data, None)
        worst = max(worst, max_rel([p[i:i + 1] for p in packed], alone))
    return result(f"pack equivalence {optimizer} {precision} {steps} step{'s' if steps > 1 else ''}", worst, bound,
                  worst <= bound)


def path_check(name: str, args, device: str, data) -> dict:
    """One CUDA path against the eager sgd pack in the reference precision (sgd: a path's round-off is
    not amplified by an adaptive step)."""
    kw, precision, steps, bound = PATHS[name]
    steps = steps or args.steps
    # the reference is NCHW (channels_last false): the default layout is channels_last, itself a path
    runs = pack_runs("sgd", args.width, args.batch_size, steps, device, precision=precision, channels_last=False)
    data = data.subset(train=args.batch_size * steps)
    init: list[torch.Tensor] = []
    ref, _ = train(runs, data, None, init)
    backend = None if device == "cuda" else "aot_eager"
    params, loss = train([r.replace(**kw) for r in runs], data, backend if kw.get("compile") else None)
    torch._dynamo.reset()
    diff = training_diff(params, ref, init)
    passed = diff <= bound and bool(np.isfinite(loss).all())
    if name == "tf32" and device == "cuda":
        passed = passed and diff > 0          # identical to fp32 would mean TF32 is not in use
    return result(f"path {name} vs {precision} eager {steps} step{'s' if steps > 1 else ''}", diff, bound, passed,
                  final_loss=[float(v) for v in loss])


# --- the command -----------------------------------------------------------------------------------------

def line(r: dict) -> str:
    if r.get("skipped"):
        return f"SKIP  {r['check']:<52s} ({r['skipped']})"
    return f"{'PASS' if r['passed'] else 'FAIL'}  {r['check']:<52s} {r['value']:.3e} (bound {r['bound']:g})"


def checks(args, device: str, data, work: Path) -> list[tuple[str, object]]:
    """(name, thunk) of every check, in the order they run (the first real run first)."""
    out = [("train_pack resume", lambda: resume_check(args, device, work)),
           ("train_pack compiled", lambda: compile_check(args, device, work)),
           ("out of memory", lambda: oom_check(args, device, work))]
    for opt, precision, steps, bound in PACK_CASES:
        out.append((f"pack {opt} {precision}",
                    lambda o=opt, p=precision, s=steps, b=bound: pack_equivalence(o, p, b, args, device, data, s)))
    for name in PATHS:
        out.append((f"path {name}", lambda n=name: path_check(n, args, device, data)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run the checks on CPU, width 1/16 (CI)")
    ap.add_argument("--out", default="gpu_checks.json", help="JSON with every check, rewritten after each")
    ap.add_argument("--steps", type=int, default=5, help="training steps of the fp64 comparisons (default 5)")
    ap.add_argument("--batch-size", type=int, default=None, help="default 128; --cpu 16")
    ap.add_argument("--width", type=float, default=None, help="width multiplier (default 1; --cpu 1/16)")
    ap.add_argument("--eval-images", type=int, default=100,
                    help="val/test images of the train_pack checks (several chunks and a partial one on CUDA)")
    ap.add_argument("--max-seconds", type=float, default=450.0,
                    help="the whole command's budget: checks not started by then are skipped, and "
                         "bench/bench_gpu.py gets what is left (0 after the checks: no benchmark)")
    args = ap.parse_args(argv)
    for flag, v in (("--steps", args.steps), ("--eval-images", args.eval_images)):
        if v < 1:
            ap.error(f"{flag}={v} is not allowed: an integer >= 1")
    device = "cpu" if args.cpu else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device is visible; run with --cpu for the CPU check", file=sys.stderr)
        return 2
    if args.cpu:   # tiny models run fastest on one thread (two on a loaded 2-core machine: 8x slower, seen)
        torch.set_num_threads(1)
    args.batch_size = args.batch_size or (16 if args.cpu else 128)
    args.width = args.width or (1 / 16 if args.cpu else 1.0)
    t0 = time.perf_counter()
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"gpu_checks: ResNet-9 x{args.width:g}, b {args.batch_size}, {args.steps} steps, on {name}, "
          f"torch {torch.__version__}", flush=True)
    data = synthetic_splits(args.batch_size * args.steps, 16)
    report = {"device": name, "torch": torch.__version__, "width": args.width, "batch_size": args.batch_size,
              "steps": args.steps, "checks": []}
    out = Path(args.out)

    def write() -> None:
        report["checks_s"] = time.perf_counter() - t0
        out.write_text(json.dumps(report, indent=1, default=str))

    with tempfile.TemporaryDirectory(prefix="gpu_checks-") as tmp:
        for check, thunk in checks(args, device, data, Path(tmp)):
            if time.perf_counter() - t0 > args.max_seconds:
                r = {"check": check, "passed": False, "skipped": f"past --max-seconds={args.max_seconds:g}"}
            else:
                try:
                    r = thunk()
                except Exception as e:  # noqa: BLE001 - a crash is a failed check, and the others still run
                    r = result(check, math.nan, math.nan, False, error=f"{type(e).__name__}: {e}"[:2000])
            r["at_s"] = round(time.perf_counter() - t0, 1)
            report["checks"].append(r)
            print(line(r) + (f"  {r['error'][:300]}" if "error" in r else ""), flush=True)
            write()
        left = args.max_seconds - (time.perf_counter() - t0) - 20   # margin: the benchmark's last case
        if device == "cuda" and left > 30:
            from bench import bench_gpu as bench   # bench/ as a namespace package: the checkout is on sys.path
            bench_out = out.with_name(out.stem + "_bench.json")
            bench.main(["--out", str(bench_out), "--max-seconds", str(left)])
            report["bench"] = json.loads(bench_out.read_text())
            write()
    results = report["checks"]
    failed = [r["check"] for r in results if not r["passed"]]
    print(f"{len(results) - len(failed)}/{len(results)} checks passed; wrote {args.out} "
          f"({time.perf_counter() - t0:.0f} s)" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
