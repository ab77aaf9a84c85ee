"""python -m tune_jobs study --preset mini: several experiments one after another on one storage, one report.

    python -m tune_jobs study --preset mini --data ../shared/data/cifar10-jpeg75.npz   # main_grid, long_sgd, lr_l2
    python -m tune_jobs study --preset mini --experiments all --storage results        # the six
    python -m tune_jobs study --preset smoke --experiments main_grid depth --set dataset=synthetic

Each experiment runs as `python -m tune_jobs <experiment>` would (the same options, plan, resume and
exit statuses: a re-run resumes every experiment), into <storage>/<experiment>_<preset>; the study
ends with one report over all of them, <storage>/report_<preset>.html, whose first section checks the
paper's findings (analysis.findings) and numbers across the experiments. The default experiments are
the three the findings need. Exit status: 0 all runs of all experiments finished, 1 some did not,
2 bad input (before anything starts).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from initmem.config import ConfigError
from initmem.registry import add_plugin_option, load_plugins, plugins_in_argv
from initmem.study import EXPERIMENTS, PRESETS
from tune_jobs.cli import HelpFormatter, PRESET_HELP, build_report, fields_help, report_path, sweep_options
from tune_jobs.errors import SweepError
from tune_jobs.options import DEFAULT_STORAGE, add_arguments
from tune_jobs.runner import run_sweep

FINDINGS_EXPERIMENTS = ("main_grid", "long_sgd", "lr_l2")   # what findings F1-F6 need (analysis/README.md)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tune_jobs study", description=__doc__.splitlines()[0],
                                epilog=fields_help(), formatter_class=HelpFormatter)
    p.add_argument("--preset", choices=PRESETS, default="mini", help=PRESET_HELP.replace(
        "default: smoke for the catalogue's experiments, full (as written) for a grid file", "default: mini"))
    p.add_argument("--experiments", nargs="+", default=list(FINDINGS_EXPERIMENTS), metavar="NAME",
                   help=f"catalogue experiments to run, in this order, or 'all'; allowed: {list(EXPERIMENTS)} or all; "
                        f"default: {' '.join(FINDINGS_EXPERIMENTS)}")
    add_arguments(p)
    add_plugin_option(p)
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="set a RunConfig field on every run of every experiment (repeatable); default: none")
    p.add_argument("--no-report", action="store_true", help="do not build the study's report; default: off")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        load_plugins(plugins_in_argv(argv))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    names = list(EXPERIMENTS) if args.experiments == ["all"] else args.experiments
    unknown = [n for n in names if n not in EXPERIMENTS]
    try:
        if unknown:
            raise ConfigError(f"--experiments {unknown} is not allowed: names of {list(EXPERIMENTS)}, or all")
        opts = sweep_options(args)
        for name in names:   # every experiment's runs validated before the first one trains
            EXPERIMENTS[name].runs(args.preset, opts.overrides)
    except (ConfigError, SweepError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results, ok = [], True
    for name in names:
        print(f"study       {name} ({args.preset}): {names.index(name) + 1} of {len(names)}", flush=True)
        try:
            r = run_sweep(EXPERIMENTS[name], args.preset, opts)
        except (ConfigError, SweepError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        results.append(r)
        ok &= r.ok
    for r in results:
        print(f"study       {r.plan.experiment}: {r.finished_runs:,}/{r.n_runs:,} runs finished in {r.wall_s:.0f} s")
    if not args.dry_run and not args.no_report:
        storage = opts.storage or DEFAULT_STORAGE
        build_report([r.root for r in results], report_path(storage, f"report_{args.preset}.html"))
    return 0 if ok or args.dry_run else 1


if __name__ == "__main__":
    sys.exit(main())
