"""tune_jobs.options: each sweep option defined once makes its flag, its help, its error and its docs row."""

import argparse
from pathlib import Path

import pytest

from initmem.config import ConfigError
from tune_jobs.options import OPTION_DOCS, SweepOptions, add_arguments, from_args, options_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "sweeps.md"


def test_docs_sweeps_md_holds_the_generated_options_table():
    text = DOCS.read_text()
    begin, end = text.index("<!-- options:begin"), text.index("<!-- options:end")
    assert text[text.index("\n", begin) + 1:end] == options_markdown()


@pytest.mark.parametrize("name, bad, allowed", [
    ("max_concurrent", 0, "an integer >= 1"), ("cpus_per_trial", -1.0, "a number > 0"),
    ("max_failures", -1, "an integer >= 0"), ("efficiency", 0.0, "a number in (0, 1]"),
    ("device", "tpu", "one of ['auto', 'cpu', 'cuda']"), ("checkpoint_every", 0, "an integer >= 1"),
    ("max_pack_size", 2.5, "an integer >= 1 (expected int, got float)"),
])
def test_a_bad_option_is_refused_with_the_help_text(name, bad, allowed):
    with pytest.raises(ConfigError, match=f"^{name}={bad!r} is not allowed: " + allowed.replace("(", r"\(")
                       .replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        SweepOptions(**{name: bad})
    assert OPTION_DOCS[name].allowed in OPTION_DOCS[name].describe()


def test_flags_parse_into_the_same_options():
    p = argparse.ArgumentParser()
    add_arguments(p)
    args = p.parse_args(["--max-concurrent", "2", "--dry-run", "-v", "--device", "cpu", "--checkpoint-every", "5"])
    opts = from_args(args, overrides={"dataset": "synthetic"})
    assert (opts.max_concurrent, opts.dry_run, opts.verbose, opts.device, opts.checkpoint_every) == (2, True, True, "cpu", 5)
    assert opts.overrides == {"dataset": "synthetic"} and opts.cpus_per_trial == 1.0 and opts.storage is None
    with pytest.raises(ConfigError, match=r"^--num-cpus=0 is not allowed: an integer >= 1"):
        from_args(p.parse_args(["--num-cpus", "0"]))
