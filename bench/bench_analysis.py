"""Scale check of the analysis layer on the whole study as synthetic results: all six full
experiments (9,280 runs; long_sgd with 5,001 epoch rows per run; 2.8 M epoch rows).

    python bench/bench_analysis.py [--root /tmp/bench_study] [--keep] [--n-boot 1000] [--experiment main_grid]

Generates the results in a child process (bench/synthetic_results.py, one root per experiment,
so its memory does not count), then in this process: loads them, times beta(t) over every
procedure and epoch (best of 3), builds the full report (load + analysis + HTML, written to
ROOT/report.html) and prints wall seconds, CPU seconds and peak RSS (resource.getrusage).
Targets (issue 8): report <= 10 s and <= 2 GB peak on 2 cores; beta(t) <= 3 s. Wall times on a
shared machine include other processes' load: the CPU seconds say what this process itself used,
and the load average printed first says how busy the machine was.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # ru_maxrss is KiB on Linux


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python bench/bench_analysis.py", description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/tmp/bench_study")
    ap.add_argument("--experiment", nargs="+", default=["all"], help="experiments to generate (default: all six)")
    ap.add_argument("--keep", action="store_true", help="reuse ROOT if it already holds a grid")
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args(argv)

    from initmem.study import EXPERIMENTS
    exps = list(EXPERIMENTS) if args.experiment == ["all"] else args.experiment
    roots = [os.path.join(args.root, e) for e in exps] if len(exps) > 1 else [args.root]
    print(f"machine   : {os.cpu_count()} cpus, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"(1/5/15 min; other processes share these cores)")
    if not (args.keep and all(os.path.isdir(os.path.join(r, "runs")) for r in roots)):
        shutil.rmtree(args.root, ignore_errors=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(HERE, "synthetic_results.py"), args.root,
                        "--experiment", *exps], check=True, stdout=subprocess.DEVNULL)
        print(f"generate  : {time.perf_counter() - t:6.2f} s wall (child process)")

    from analysis.load import attach, load, progress
    from analysis.report import build_report
    from analysis.sensitivity import beta_t

    w0, c0 = time.perf_counter(), cpu()
    runs, epochs = load(roots, require_results=True)
    w1, c1 = time.perf_counter(), cpu()
    print(f"load      : {w1 - w0:6.2f} s wall {c1 - c0:6.2f} s cpu  ({len(runs)} runs, {len(epochs)} epoch rows)")

    frame = attach(epochs[["run", "epoch", "val_acc", "t_sgd", "t_l2", "t_adapt"]], runs, ["procedure", "sigma_w"])
    best_w, best_c = float("inf"), float("inf")
    for _ in range(3):
        a, b = time.perf_counter(), cpu()
        beta = beta_t(frame, by=["procedure"])
        best_w, best_c = min(best_w, time.perf_counter() - a), min(best_c, cpu() - b)
    print(f"beta(t)   : {best_w:6.2f} s wall {best_c:6.2f} s cpu  ({len(beta)} (procedure, epoch) fits "
          f"over {len(frame)} rows; best of 3)")
    del frame, beta

    w2, c2 = time.perf_counter(), cpu()
    page = build_report(runs, epochs, n_boot=args.n_boot, source=args.root, progress=progress(roots, runs))
    out = os.path.join(args.root, "report.html")
    with open(out, "w", encoding="utf-8") as f:
        f.write(page)
    w3, c3 = time.perf_counter(), cpu()
    print(f"build     : {w3 - w2:6.2f} s wall {c3 - c2:6.2f} s cpu  ({len(page) / 1e6:.1f} MB, {out})")
    total_w, total_c = (w1 - w0) + (w3 - w2), (c1 - c0) + (c3 - c2)
    print(f"REPORT    : {total_w:6.2f} s wall {total_c:6.2f} s cpu (load + build; target <= 10 s)")
    print(f"PEAK RSS  : {peak_gb():6.2f} GB (whole process; target <= 2 GB)")
    print(f"machine   : load average after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"BETA(t)   : {best_w:6.2f} s (target <= 3 s)")


if __name__ == "__main__":
    main()
