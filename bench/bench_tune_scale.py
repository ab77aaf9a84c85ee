"""python bench/bench_tune_scale.py [--device cuda|cpu] [--checkpoint-every N] [--progress] [--out DIR]

Scale of the sweep service: the full main grid (6,250 runs) through the real Tune runner
(tune_jobs.runner.run_sweep: planner, plan.json, Tuner, with_parameters, checkpoints, the
progress callback, the Parquet results) with train_pack replaced by the instant stand-in
(tune_jobs.standin.instant_train_pack: 300 epochs of schema-correct rows per run, a checkpoint
every 10 epochs). Local Ray on this machine's CPUs.

Default --device cuda plans the packs as the full preset runs on GPU workers (pack-key groups up
to the planner's 80 GB memory bound) while each trial takes CPU only. --device cpu plans CPU packs
of tune_jobs.planner.CPU_PACK_SIZE runs (1 since issue 10: 6,250 trials); pass
--checkpoint-every 300 with it to keep one report per trial.

Prints: wall seconds (target <= 120 s on 2 cores), driver peak RSS (target <= 1.5 GB), the
number of run rows in the Parquet (6,250) and of epoch rows, and whether every target holds.
Measured on 2 cores before issue 10's planner changes (measured memory model, CPU packs of 1):
43-74 s, 0.28 GB (88 trials; 55 s, 0.29 GB with 87); --device cpu --checkpoint-every 300:
72-90 s, 0.91 GB (1,575 trials of 4 runs). Not re-measured with today's trial counts.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from initmem.results import read_epochs, read_runs  # noqa: E402
from initmem.study import EXPERIMENTS  # noqa: E402
from tune_jobs.runner import SweepOptions, run_sweep  # noqa: E402
from tune_jobs.standin import instant_train_pack  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="device the packs are planned for")
    ap.add_argument("--max-concurrent", type=int, default=None)
    ap.add_argument("--checkpoint-every", type=int, default=None, help="default: epochs // 30 = 10")
    ap.add_argument("--cpus-per-trial", type=float, default=0.5)
    ap.add_argument("--out", default=None, help="storage folder (default: a temporary one, deleted)")
    ap.add_argument("--progress", action="store_true", help="print the runner's per-trial progress lines")
    args = ap.parse_args()

    storage = args.out or tempfile.mkdtemp(prefix="bench-tune-scale-")
    opts = SweepOptions(storage=storage, device=args.device, max_concurrent=args.max_concurrent,
                        checkpoint_every=args.checkpoint_every, resources={"cpu": args.cpus_per_trial},
                        overrides={"dataset": "synthetic"}, gpu_memory_gb=80.0)
    lines = []
    out = print if args.progress else lines.append
    t0 = time.perf_counter()
    result = run_sweep(EXPERIMENTS["main_grid"], "full", opts,
                       train_fn=functools.partial(instant_train_pack, log=None), out=out)
    wall = time.perf_counter() - t0
    rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    runs = read_runs(result.root, columns=["run_id", "status"])
    n_epochs = len(read_epochs(result.root, columns=["run_id", "epoch"]))
    n_trials = len(result.plan.packs)
    checks = {"wall <= 120 s": wall <= 120, "driver RSS <= 1.5 GB": rss_gb <= 1.5,
              "6,250 run rows": len(runs) == 6250 and runs["run_id"].is_unique,
              "all completed": bool((runs["status"] == "completed").all())}
    print(f"bench_tune_scale: main_grid full, {len(result.plan.runs):,} runs in {n_trials:,} trials "
          f"(packs planned for {args.device}), {os.cpu_count()} CPUs")
    print(f"  wall            {wall:8.1f} s")
    print(f"  driver peak RSS {rss_gb:8.2f} GB")
    print(f"  run rows        {len(runs):8,d}   epoch rows {n_epochs:,}")
    print("  " + "  ".join(f"{k}: {'ok' if v else 'FAIL'}" for k, v in checks.items()))
    if args.out is None:
        shutil.rmtree(storage, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
