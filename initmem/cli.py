"""Command line: train one pack locally, or inspect a results folder.

    python -m initmem train --data ../shared/data/cifar10-jpeg75.npz --width 0.125 --train-subset 2000 \\
        --eval-subset 1000 --sigma-w 0.5 2.0 --optimizer sgd --epochs 2 --out results/adhoc
    python -m initmem train --config my_pack.yaml --out results/adhoc     # fields from a YAML/JSON file
    python -m initmem show results/adhoc                                   # one line per run
    python -m initmem fields                     # every RunConfig field: meaning, unit, allowed, default

Every RunConfig field is a flag (--sigma-w for sigma_w). The per-run fields (sigma_w, seed, lr0,
l2, weight_decay) take several values; the pack is their full product. Flags override the file.
The help of every flag is generated from RunConfig's field definitions (initmem/config.py), the
same text the validation errors and docs/results.md use.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import textwrap
import time
from pathlib import Path

from initmem.architectures import MODELS
from initmem.config import (CHECKPOINT_EVERY, FIELD_DOCS, PER_RUN_FIELDS, ConfigError, RunConfig, checkpoint_interval,
                            fields_markdown)
from initmem.datasets import DATASETS
from initmem.fields import FieldDoc
from initmem.inits import INITS
from initmem.optimizers import OPTIMIZERS
from initmem.registry import add_plugin_option, load_plugins, plugins_in_argv


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's, but never breaks a line inside a word or at a hyphen ("non-empty", "cuda:N"),
    so an allowed value reads the same in --help as in the error it appears in."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)


def field_help(name: str) -> str:
    """--help text of a RunConfig field flag: meaning [unit]; allowed: ...; default: ..."""
    doc = FIELD_DOCS[name]
    text = doc.describe().replace("%", "%%")  # argparse %-formats help strings
    return f"one or more values (the pack is their product); {text}" if doc.per_run else text

def build_runs(base: dict, per_run: dict[str, list]) -> list[RunConfig]:
    """The pack: one RunConfig per element of the product of the per-run value lists."""
    keys = [k for k in PER_RUN_FIELDS if per_run.get(k)]
    combos = itertools.product(*(per_run[k] for k in keys)) if keys else [()]
    return [RunConfig.from_dict({**base, **dict(zip(keys, combo))}) for combo in combos]


def _load_file(path: str) -> dict:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file {path!r} does not exist")
    text = p.read_text()
    if p.suffix in (".yaml", ".yml"):
        import yaml
        data = yaml.safe_load(text) or {}
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must hold a mapping of RunConfig fields")
    return data


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m initmem", description=__doc__, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train one pack locally and write Parquet", formatter_class=HelpFormatter,
                        description="Train one pack locally and write its Parquet results.\nEvery RunConfig field "
                                    "is a flag; a field not given takes its value from --config, else its default.")
    tr.add_argument("--config", metavar="FILE",
                    help="YAML or JSON file of RunConfig fields (lists allowed for per-run fields); flags override it; "
                         "default: none")
    fields = tr.add_argument_group("run-config fields (RunConfig, initmem/config.py)")
    for f in dataclasses.fields(RunConfig):  # values stay strings: RunConfig.from_dict converts and checks
        flag = "--" + f.name.replace("_", "-")
        nargs = "+" if f.name in PER_RUN_FIELDS else None
        fields.add_argument(flag, nargs=nargs, default=None, metavar=f.type.upper(), help=field_help(f.name))
    tr.add_argument("--data", metavar="PATH", help="the dataset as an .npz (x_train, y_train, x_test, y_test) or a folder "
                                                   "in torchvision's format; default: $INITMEM_DATA (cifar10), then "
                                                   "~/.cache/initmem/<dataset>")
    tr.add_argument("--download", action="store_true", help="download the dataset with torchvision if missing; "
                                                            "default: off")
    tr.add_argument("--out", default="results/adhoc", metavar="PATH_OR_URI",
                    help="results root (folder or URI such as s3://bucket/x); default: results/adhoc")
    tr.add_argument("--checkpoint-dir", metavar="PATH", help="checkpoint folder, resumed from when it holds a checkpoint; "
                                                           "default: <out>/checkpoints/<pack_id> (none for a URI --out)")
    every = FieldDoc("checkpoint_every", "int | None", None, CHECKPOINT_EVERY["meaning"], "epochs", CHECKPOINT_EVERY)
    tr.add_argument("--checkpoint-every", type=int, default=None, metavar="EPOCHS", help=every.describe())
    sh = sub.add_parser("show", help="print one line per run of a results root", formatter_class=HelpFormatter)
    sh.add_argument("results", help="results root (folder or URI)")
    fl = sub.add_parser("fields", help="list every RunConfig field: meaning, unit, allowed values, default",
                        formatter_class=HelpFormatter)
    fl.add_argument("--markdown", action="store_true", help="print the table of docs/results.md instead")
    for p in (tr, sh, fl):
        add_plugin_option(p)
    return parser


def cmd_train(args: argparse.Namespace) -> int:
    from initmem.config import pack_id
    from initmem.data import load_splits
    from initmem.train import train_pack

    if args.checkpoint_every is not None:  # the trainer checks it too; here before any data is read
        checkpoint_interval(args.checkpoint_every, 1)
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    base = _load_file(args.config) if args.config else {}
    per_run = {k: (v if isinstance(v, list) else [v]) for k, v in base.items() if k in PER_RUN_FIELDS}
    base = {k: v for k, v in base.items() if k not in PER_RUN_FIELDS}
    for name in fields:
        value = getattr(args, name)
        if value is None:
            continue
        if name in PER_RUN_FIELDS:
            per_run[name] = value
        else:
            base[name] = value
    runs = build_runs(base, per_run)  # validates every field before any data is read
    cfg = runs[0]
    data = load_splits(cfg.dataset, args.data, cfg.train_subset, cfg.eval_subset, download=args.download)
    ckpt = args.checkpoint_dir
    if ckpt is None and "://" not in args.out:  # checkpoints are local files; none by default for a URI
        ckpt = str(Path(args.out) / "checkpoints" / pack_id(runs))
    print(f"pack {pack_id(runs)}: {len(runs)} run(s), data {data.source} "
          f"({len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test)")
    start = time.perf_counter()
    rows = train_pack(runs, data, results=args.out, checkpoint_dir=ckpt, checkpoint_every=args.checkpoint_every)
    print(f"done in {time.perf_counter() - start:.1f}s; results in {args.out}")
    _print_rows(rows)
    return 0


def _print_rows(rows: list[dict]) -> None:
    print(f"{'run_id':16}  {'sigma_w':>7} {'seed':>5} {'lr0':>8} {'status':>13} {'tau_best':>8} {'test_acc':>8}")
    for r in rows:
        acc = r.get("test_acc")
        print(f"{r['run_id']:16}  {r['sigma_w']:7.3g} {r['seed']:5d} {r['lr0']:8.2g} {r['status']:>13} "
              f"{str(r.get('tau_best')):>8} {'' if acc is None else f'{acc:.4f}':>8}")


def cmd_show(args: argparse.Namespace) -> int:
    from initmem.results import read_runs
    runs = read_runs(args.results)
    if runs.empty:
        print(f"no runs under {args.results}")
        return 1
    _print_rows(runs.sort_values(["experiment", "optimizer", "batch_size", "sigma_w", "seed"]).to_dict("records"))
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    if args.markdown:
        print(fields_markdown(), end="")
        return 0
    for doc in FIELD_DOCS.values():
        kind = f"{doc.type}, per run" if doc.per_run else doc.type
        print(f"{doc.name} ({kind})")
        print(textwrap.fill(doc.describe(), 100, initial_indent="    ", subsequent_indent="    ",
                            break_on_hyphens=False, break_long_words=False))
    print("\nregistered (initmem.architectures, datasets, optimizers, inits; --plugin adds more):")
    for field, registry in (("arch", MODELS), ("dataset", DATASETS), ("optimizer", OPTIMIZERS), ("init", INITS)):
        print(f"  {field}:")
        for name, entry in registry.items():
            origin = registry.origin(name)
            print(f"    {name:<14} {entry.description}" + ("" if origin == "initmem" else f"  [plugin {origin}]"))
            if field == "optimizer" and entry.constants:   # the rule's fixed numbers (OptimizerSpec.constants)
                print(textwrap.fill("constants: " + ", ".join(f"{k}={v}" for k, v in entry.constants.items()), 100,
                                    initial_indent=" " * 19, subsequent_indent=" " * 19, break_on_hyphens=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        load_plugins(plugins_in_argv(argv))  # before the parser: --help and the choices list their names
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    args = make_parser().parse_args(argv)
    try:
        return {"train": cmd_train, "show": cmd_show, "fields": cmd_fields}[args.command](args)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
