"""The command line of every experiment module (python -m tune_jobs.<experiment>).

    python -m tune_jobs.main_grid --preset smoke                      # local Ray, ./results
    python -m tune_jobs.main_grid --preset full --dry-run             # plan + cost, trains nothing
    python -m tune_jobs my_grid.yaml --preset full --storage s3://bucket/initmem --device cuda
    python -m tune_jobs --list                                        # the catalogue

A finished sweep ends by building its HTML report, <results>/report.html (--no-report: skip).
Bad input (unknown experiment or preset, an invalid field, unwritable storage, an unreachable
cluster, missing data) is reported before anything starts, with exit status 2. --help lists every
option and every --set field with its meaning, unit, allowed values and default; the field texts
come from RunConfig's definitions (initmem/config.py), as do the errors.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Sequence

from initmem.cli import HelpFormatter
from initmem.config import FIELD_DOCS, ConfigError
from initmem.layout import REPORT_FILE
from initmem.registry import add_plugin_option, load_plugins, loaded_plugins, plugins_in_argv
from initmem.study import EXPERIMENTS, PRESETS
from tune_jobs.errors import SweepError
from tune_jobs.grids import USER_GRID_HELP, get_experiment
from tune_jobs.options import add_arguments, from_args
from tune_jobs.runner import run_sweep


def fields_help() -> str:
    """The --set fields, generated from RunConfig's definitions (the epilog of --help)."""
    lines = ["--set FIELD=VALUE fields (RunConfig, initmem/config.py; `python -m initmem fields` lists them too;",
             "experiment is the experiment's name and cannot be set; a --set value replaces the grid's):"]
    for doc in FIELD_DOCS.values():
        lines.append(f"  {doc.name} ({doc.type})")
        lines += textwrap.wrap(doc.describe(), 96, initial_indent="      ", subsequent_indent="      ",
                               break_on_hyphens=False, break_long_words=False)
    return "\n".join(lines)


def _parse_set(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r} is not FIELD=VALUE (e.g. --set dataset=synthetic)")
        out[key.strip()] = value.strip()
    return out


PRESET_HELP = ("smoke: the same grid cut to 2 sigmas, 1 seed, b 16 and 32, width 1/8 on 2,400 images, >= 300 updates "
               "per run, about 3 minutes at most on 2 CPU cores; mini: the paper's questions on a laptop (5 sigmas, "
               "3 seeds, b 16 and 128, width 1/8 on 256 images, 40 epochs; initmem/study.py; the three findings minis 94 min on 2 CPU cores, measured); full: the grid as "
               f"written (the paper's for the catalogue); allowed: {', '.join(PRESETS)}; default: smoke for the "
               "catalogue's experiments, full (as written) for a grid file")


def build_parser(experiment: str | None = None) -> argparse.ArgumentParser:
    prog = f"python -m tune_jobs.{experiment}" if experiment else "python -m tune_jobs"
    desc = EXPERIMENTS[experiment].description if experiment in EXPERIMENTS else \
        "Run an experiment of the catalogue or a user grid file on Ray Tune."
    epilog = fields_help() if experiment else f"{USER_GRID_HELP}\n{fields_help()}"
    p = argparse.ArgumentParser(prog=prog, description=desc, epilog=epilog, formatter_class=HelpFormatter)
    if experiment is None:
        p.add_argument("experiment", nargs="?", help=f"one of {list(EXPERIMENTS)}, or a .yaml/.py grid file")
        p.add_argument("--list", action="store_true", help="list the catalogue and exit")
    p.add_argument("--preset", choices=PRESETS, default=None, help=PRESET_HELP)
    add_arguments(p)  # every sweep option, from its definition (tune_jobs/options.py)
    add_plugin_option(p)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a RunConfig field on every run (repeatable), e.g. --set dataset=synthetic "
                        "--set precision=tf32; the fields, their allowed values and defaults are listed "
                        "below; default: none")
    p.add_argument("--no-report", action="store_true",
                   help="do not build the HTML report at the end; default: off (the report is "
                        "<results>/report.html)")
    return p


def main(argv: Sequence[str] | None = None, experiment: str | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        load_plugins(plugins_in_argv(argv))  # before the parser: --help and the errors list the plugins' names
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
        preset = args.preset or ("smoke" if exp.source == "catalogue" else "full")  # a user grid runs as written
        result = run_sweep(exp, preset, sweep_options(args))
    except (ConfigError, SweepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not args.dry_run and not args.no_report:
        build_report([result.root], report_path(result.root))
    return 0 if result.ok or args.dry_run else 1


def sweep_options(args: argparse.Namespace):
    """The SweepOptions of a parsed command line (--set fields; --gpus N plans for N GPUs)."""
    opts = from_args(args, overrides=_parse_set(args.set))
    if args.gpus is not None and opts.device == "auto":
        opts.device = "cuda"
    return opts


def report_path(root: str, name: str = REPORT_FILE) -> str:
    """Where a sweep's report goes: in its root (./<name> for a URI root)."""
    return name if "://" in root else f"{root.rstrip('/')}/{name}"


def build_report(roots: Sequence[str], path: str) -> None:
    """A sweep (or a study) ends with its report over its results roots."""
    from analysis.report import main as report_main
    try:
        report_main([*roots, "-o", path])
    except (Exception, SystemExit) as e:  # results are safe on storage; a report failure (or analysis.report's
        # exit 2 when no run has finished yet) must not hide that nor change the sweep's exit status
        print(f"warning: the report could not be built ({type(e).__name__}: {e}); "
              f"rebuild it with: python -m analysis.report {' '.join(roots)}"
              + "".join(f" --plugin {p}" for p in loaded_plugins()) + f" -o {path}", file=sys.stderr)
        return
    print(f"report      {path} (open it in a browser)")
