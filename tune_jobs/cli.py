"""The command line of every experiment module (python -m tune_jobs.<experiment>).

    python -m tune_jobs.main_grid --preset smoke                      # local Ray, ./results
    python -m tune_jobs.main_grid --preset full --dry-run             # plan + cost, trains nothing
    python -m tune_jobs my_grid.yaml --preset full --storage s3://bucket/initmem --device cuda
    python -m tune_jobs --list                                        # the catalogue

A finished sweep ends by building its HTML report, <results>/report.html (--no-report: skip).
Bad input (unknown experiment or preset, an invalid field, unwritable storage, an unreachable
cluster, missing data) is reported before anything starts, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from initmem.config import ConfigError
from tune_jobs.catalogue import EXPERIMENTS, PRESETS, USER_GRID_HELP, get_experiment
from tune_jobs.runner import DEFAULT_STORAGE, SweepError, SweepOptions, run_sweep


def _parse_set(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} is not FIELD=VALUE (e.g. --set dataset=synthetic)")
        out[key.strip()] = value.strip()
    return out


def build_parser(experiment: str | None = None) -> argparse.ArgumentParser:
    prog = f"python -m tune_jobs.{experiment}" if experiment else "python -m tune_jobs"
    desc = EXPERIMENTS[experiment].description if experiment in EXPERIMENTS else \
        "Run an experiment of the catalogue or a user grid file on Ray Tune."
    p = argparse.ArgumentParser(prog=prog, description=desc, epilog=None if experiment else USER_GRID_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    if experiment is None:
        p.add_argument("experiment", nargs="?", help=f"one of {list(EXPERIMENTS)}, or a .yaml/.py grid file")
        p.add_argument("--list", action="store_true", help="list the catalogue and exit")
    p.add_argument("--preset", choices=PRESETS, default="smoke",
                   help="smoke: tiny, minutes on 2 CPU cores (default); full: the paper's grid")
    p.add_argument("--storage", default=None,
                   help=f"folder or URI (s3://, gs://) for results and Tune state (default {DEFAULT_STORAGE})")
    p.add_argument("--dry-run", action="store_true", help="print runs, packs, trials and cost; train nothing")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: by resources)")
    p.add_argument("--data", default=None, help="CIFAR-10 .npz or torchvision folder (default: $INITMEM_DATA, "
                                                "then ~/.cache/initmem/cifar10)")
    p.add_argument("--download", action="store_true", help="local Ray: download CIFAR-10 into the cache first")
    p.add_argument("--address", default=None, help="Ray cluster address (host:port, ray://host:10001, auto); "
                                                   "default: $RAY_ADDRESS, else a local Ray")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="trial device the packs are sized for (auto: GPU if the cluster has one)")
    p.add_argument("--gpu-memory-gb", type=float, default=None, help="GPU memory per trial for pack sizes (default: detected, else 80)")
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs the sweep will run on (implies --device cuda): no trial is planned much longer "
                        "than total work / N where a group can be split, and the dry run prints the makespan "
                        "(default: what the cluster has)")
    p.add_argument("--max-pack-size", type=int, default=None, help="cap on runs per pack (default: from the device)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default 1)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="epochs between checkpoints (default: epochs // 30)")
    p.add_argument("--max-failures", type=int, default=3, help="Tune retries of a failed trial (default 3)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    p.add_argument("--efficiency", type=float, default=None, help="cost estimate: fraction of peak FLOP/s achieved")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a RunConfig field on every run, e.g. --set dataset=synthetic --set precision=tf32")
    p.add_argument("--no-report", action="store_true",
                   help="do not build the HTML report at the end (default: <results>/report.html)")
    p.add_argument("-v", "--verbose", action="store_true", help="show Ray's and the trials' own logs")
    return p


def main(argv: Sequence[str] | None = None, experiment: str | None = None) -> int:
    parser = build_parser(experiment)
    args = parser.parse_args(argv)
    if experiment is None and args.list:
        for name, e in EXPERIMENTS.items():
            print(f"{name:<12} {e.expected_runs:>6,} runs  {e.description}")
        return 0
    name = experiment or args.experiment
    if not name:
        parser.error("give an experiment name or a grid file (see --list)")
    try:
        exp = get_experiment(name)
        opts = SweepOptions(storage=args.storage, data=args.data, download=args.download, address=args.address,
                            device=args.device, gpu_memory_gb=args.gpu_memory_gb, max_pack_size=args.max_pack_size,
                            max_concurrent=args.max_concurrent, cpus_per_trial=args.cpus_per_trial,
                            checkpoint_every=args.checkpoint_every, max_failures=args.max_failures,
                            overrides=_parse_set(args.set), num_cpus=args.num_cpus, efficiency=args.efficiency,
                            dry_run=args.dry_run, verbose=args.verbose, gpus=args.gpus)
        if args.gpus is not None and opts.device == "auto":
            opts.device = "cuda"  # --gpus N plans for N GPUs
        for flag, value in (("--max-concurrent", opts.max_concurrent), ("--max-pack-size", opts.max_pack_size),
                            ("--checkpoint-every", opts.checkpoint_every), ("--num-cpus", opts.num_cpus), ("--gpus", opts.gpus)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag}={value} is not allowed: an integer >= 1")
        if opts.cpus_per_trial <= 0 or opts.max_failures < 0:
            raise ConfigError("--cpus-per-trial must be > 0 and --max-failures >= 0")
        result = run_sweep(exp, args.preset, opts)
    except (ConfigError, SweepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.dry_run and not args.no_report:
        build_report(result.results)
    return 0 if result.ok or args.dry_run else 1


def build_report(results: str) -> None:
    """The sweep ends with its report: <results>/report.html (./report.html for a URI root)."""
    from analysis.report import main as report_main
    path = "report.html" if "://" in results else f"{results.rstrip('/')}/report.html"
    try:
        report_main([results, "-o", path])
    except Exception as e:  # the results are safe on storage; a report failure must not hide that
        print(f"warning: the report could not be built ({type(e).__name__}: {e}); "
              f"rebuild it with: python -m analysis.report {results} -o report.html", file=sys.stderr)
        return
    print(f"report      {path} (open it in a browser)")
