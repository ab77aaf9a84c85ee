"""The sweep's options, each defined once: its flag, --help text, error and docs/sweeps.md row.

    python -m tune_jobs.main_grid --help                  # these options, then the --set fields
    python -m tune_jobs.options --markdown                # the table of docs/sweeps.md

    from tune_jobs.options import SweepOptions
    opts = SweepOptions(storage="results", max_concurrent=2)   # validated on construction

Every field is defined with initmem.fields.option (meaning, unit, allowed values, default), as
RunConfig's fields are: `add_arguments` makes the flags from them, `SweepOptions.__post_init__`
checks them with the same words, and `options_markdown` writes the docs table (a test checks that
docs/sweeps.md holds it). The run-config fields set on every run (`--set FIELD=VALUE`) are
RunConfig's, listed after these in --help.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from initmem.config import CHECKPOINT_EVERY
from initmem.fields import check_fields, check_value, field_docs, markdown_table, option
from tune_jobs.planner import DEFAULT_EFFICIENCY

DEFAULT_STORAGE = "./results"


@dataclass
class SweepOptions:
    """How a sweep runs: where its results go, what it runs on, how it is planned and retried."""
    storage: str | None = option(None, "folder or URI (s3://, gs://) for results and Tune state, one folder per "
                                 "experiment under it", allowed="a writable folder or URI",
                                 default_text=DEFAULT_STORAGE, metavar="PATH_OR_URI")
    data: str | None = option(None, "CIFAR-10 as an .npz (x_train, y_train, x_test, y_test) or a torchvision folder",
                              allowed="an existing .npz or folder", metavar="PATH",
                              default_text="$INITMEM_DATA, then ~/.cache/initmem/cifar10")
    download: bool = option(False, "local Ray: download CIFAR-10 into the cache first", allowed="a flag")
    address: str | None = option(None, "Ray cluster address", allowed="host:port, ray://host:10001 or auto",
                                 metavar="ADDRESS",
                                 default_text="$RAY_ADDRESS, else a local Ray on 127.0.0.1")
    device: str = option("auto", "trial device the packs are sized for", choices=("auto", "cpu", "cuda"),
                         default_text="auto (cuda if the cluster has a GPU)")
    gpu_memory_gb: float | None = option(None, "GPU memory per trial that pack sizes are planned for", "GB",
                                         "a number > 0", check=lambda v: v > 0, default_text="detected, else 80")
    gpus: int | None = option(None, "GPUs the sweep will run on (implies --device cuda): no trial is planned much "
                              "longer than total work / N where a group can be split, and the dry run prints the "
                              "makespan", "GPUs", "an integer >= 1", check=lambda v: v >= 1,
                              default_text="what the cluster has")
    max_pack_size: int | None = option(None, "cap on runs per pack", "runs", "an integer >= 1", check=lambda v: v >= 1,
                                       default_text="from the device (CPU: 1; GPU: as many as its memory holds)")
    max_concurrent: int | None = option(None, "trials at once", "trials", "an integer >= 1", check=lambda v: v >= 1,
                                        default_text="as many as the resources hold")
    cpus_per_trial: float = option(1.0, "CPUs per trial (and torch threads); GPU trials also take one GPU", "CPUs",
                                   "a number > 0", check=lambda v: v > 0)
    checkpoint_every: int | None = option(None, **CHECKPOINT_EVERY)
    max_failures: int = option(3, "Tune retries of a trial whose process died", "retries", "an integer >= 0",
                               check=lambda v: v >= 0)
    num_cpus: int | None = option(None, "CPUs of a local Ray", "CPUs", "an integer >= 1", check=lambda v: v >= 1,
                                  default_text="all of this machine")
    efficiency: float | None = option(None, "cost estimate: achieved fraction of peak FLOP/s", "fraction",
                                      "a number in (0, 1]", check=lambda v: 0 < v <= 1,
                                      default_text=f"{DEFAULT_EFFICIENCY['cuda']:g} on GPU, "
                                                   f"{DEFAULT_EFFICIENCY['cpu']:g} on CPU")
    require_same_code: bool = option(False, "refuse to resume an experiment whose rows were written by another "
                                     "code version (or with uncommitted changes), or read other data; without it a "
                                     "re-run warns", allowed="a flag")
    dry_run: bool = option(False, "print runs, packs, trials and cost (FLOPs, device-hours); train nothing",
                           allowed="a flag")
    verbose: bool = option(False, "show Ray's and the trials' own logs", allowed="a flag", flag="-v")
    # not command-line options: set by the command (--set) or by tests and benchmarks
    overrides: dict[str, Any] = field(default_factory=dict)     # RunConfig fields set on every run (--set)
    resources: dict[str, float] | None = None                   # per-trial resources instead of the device's

    def __post_init__(self) -> None:
        check_fields(self)  # ConfigError naming the option, the value and what is allowed


OPTION_DOCS = field_docs(SweepOptions)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per documented option: a switch for the booleans, typed values (converted and
    checked by SweepOptions, so a bad value reads the same from the command line and from Python)."""
    for d in OPTION_DOCS.values():
        flags = [d.flag] + (["--verbose"] if d.name == "verbose" else [])
        text = d.describe().replace("%", "%%")
        if d.kind == "bool":
            parser.add_argument(*flags, dest=d.name, action="store_true", help=text)
        elif d.meta["choices"] is not None:
            parser.add_argument(*flags, dest=d.name, default=d.default, choices=d.meta["choices"], help=text)
        else:
            metavar = d.meta.get("metavar") or d.unit.upper() or {"int": "N", "float": "X", "str": "VALUE"}[d.kind]
            parser.add_argument(*flags, dest=d.name, default=None, metavar=metavar,
                                type={"int": int, "float": float, "str": str}[d.kind], help=text)


def from_args(args: argparse.Namespace, **extra: Any) -> SweepOptions:
    """The options given on a command line (absent ones keep their defaults); a bad value is a
    ConfigError that names the flag as typed (--max-concurrent=0 is not allowed: an integer >= 1)."""
    given = {n: getattr(args, n) for n in OPTION_DOCS if getattr(args, n, None) is not None}
    for n, v in given.items():
        d = OPTION_DOCS[n]
        check_value(d.flag, v, d.type, d.meta)
    return SweepOptions(**given, **extra)


def options_markdown() -> str:
    """The options table of docs/sweeps.md."""
    return markdown_table(OPTION_DOCS, "option")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tune_jobs.options", description=__doc__.splitlines()[0])
    p.add_argument("--markdown", action="store_true", help="print the table of docs/sweeps.md")
    p.parse_args(argv)
    print(options_markdown(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
