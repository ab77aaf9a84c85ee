"""python -m initmem: flags to a validated pack; errors before compute; real data end to end (slow)."""

import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from initmem.cli import build_runs, main
from initmem.config import FIELD_DOCS


def test_per_run_flags_form_the_product():
    runs = build_runs({"optimizer": "adam"}, {"sigma_w": [0.5, 1.0], "seed": [0, 1, 2]})
    assert len(runs) == 6 and {r.optimizer for r in runs} == {"adam"}
    assert {(r.sigma_w, r.seed) for r in runs} == {(s, k) for s in (0.5, 1.0) for k in (0, 1, 2)}


@pytest.mark.parametrize("argv, message", [
    (["--sigma-w", "0"], "sigma_w=0.0 is not allowed"),
    (["--optimizer", "rmsprop"], "optimizer='rmsprop' is not allowed"),
    (["--batch-size", "0"], "batch_size=0 is not allowed"),
    (["--arch", "vgg"], "arch='vgg' is not allowed"),
    (["--data", "/nonexistent/file.npz"], "does not exist"),
])
def test_bad_input_fails_before_training(argv, message, capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "epochs").exists()


def test_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / "pack.yaml"
    cfg.write_text("dataset: synthetic\ntrain_subset: 32\neval_subset: 16\nbatch_size: 16\nwidth: 0.0625\n"
                   "epochs: 1\nsigma_w: [0.5, 2.0]\n")
    assert main(["train", "--config", str(cfg), "--optimizer", "adam", "--out", str(tmp_path / "r")]) == 0
    assert main(["show", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert out.count("completed") >= 4  # train summary + show, two runs each
    bad = tmp_path / "bad.yaml"
    bad.write_text("sigma: 1.0\n")
    assert main(["train", "--config", str(bad), "--out", str(tmp_path / "r2")]) == 2


@pytest.mark.slow
@pytest.mark.no_cluster  # `initmem train`: one process, no Ray
def test_real_data_cli_within_three_minutes(shared, tmp_path):
    data = shared / "data" / "cifar10-jpeg75.npz"
    if not data.exists():
        pytest.skip(f"{data} not present")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "initmem", "train", "--data", str(data), "--arch", "resnet9",
                           "--width", "0.125", "--train-subset", "2000", "--eval-subset", "2000",
                           "--sigma-w", "0.5", "2.0", "--optimizer", "sgd", "--epochs", "2",
                           "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert "epoch 2/2" in proc.stdout
    assert elapsed <= 180, f"took {elapsed:.0f}s"
    runs = pd.read_parquet(tmp_path / "r" / "runs")
    epochs = pq.read_table(tmp_path / "r" / "epochs").to_pandas()
    assert len(runs) == 2 and set(runs.status) == {"completed"}
    assert len(epochs) == 2 * 3 and epochs.groupby("run_id").epoch.apply(sorted).map(list).tolist() == [[0, 1, 2]] * 2


# --- self-explaining --help, generated from RunConfig's field definitions -------------------------

def _flat(text: str) -> str:
    return " ".join(text.split())


def _default_text(default) -> str:
    """The default as a user types it: false, 0.001, 128, resnet9."""
    if isinstance(default, bool):
        return str(default).lower()
    return "%g" % default if isinstance(default, float) else str(default)


def _help(argv, capsys, entry) -> str:
    with pytest.raises(SystemExit) as e:
        entry(argv)
    assert e.value.code == 0
    return _flat(capsys.readouterr().out)


def _section(text: str, start: str, stop: str | None) -> str:
    i = text.index(start)
    return text[i:text.index(stop, i + len(start))] if stop else text[i:]


def test_help_of_both_clis_shows_every_field_with_meaning_unit_allowed_and_default(capsys):
    import dataclasses

    from initmem.config import RunConfig
    from tune_jobs.cli import main as tune_main
    names = [f.name for f in dataclasses.fields(RunConfig)]
    train = _help(["train", "--help"], capsys, main)
    helps = {"initmem train": train,
             "tune_jobs": _help(["--help"], capsys, tune_main),
             "tune_jobs.main_grid": _help(["--help"], capsys, lambda a: tune_main(a, experiment="main_grid"))}
    metavar = {f.name: "--" + f.name.replace("_", "-") + " " + f.type.upper() for f in dataclasses.fields(RunConfig)}
    for cli, text in helps.items():
        for i, f in enumerate(dataclasses.fields(RunConfig)):
            # the text that belongs to this field: from its flag (train) or its name (--set list) to the next one
            if cli == "initmem train":
                group = text[text.index("run-config fields (RunConfig"):]
                part = _section(group, metavar[f.name], metavar[names[i + 1]] if i + 1 < len(names) else None)
            else:
                group = text[text.index("--set FIELD=VALUE fields"):]
                part = _section(group, f" {f.name} ({f.type})", f" {names[i + 1]} (" if i + 1 < len(names) else None)
            meta = f.metadata
            assert meta["meaning"] in part, (cli, f.name, part)
            assert f"allowed: {FIELD_DOCS[f.name].allowed}" in part, (cli, f.name, part)
            assert part.rstrip().endswith(f"default: {_default_text(f.default)}"), (cli, f.name, part)
            if meta["unit"]:
                assert f"[{meta['unit']}]" in part, (cli, f.name)
            if meta["choices"] is not None:
                assert all(f"'{c}'" in part for c in meta["choices"]), (cli, f.name)
    group = train[train.index("run-config fields (RunConfig"):]
    assert "one or more values" in _section(group, "--sigma-w FLOAT", "--seed INT")
    assert "one or more values" not in _section(group, "--batch-size INT", "--epochs INT")


def test_every_tune_jobs_option_states_its_default_and_allowed_values(capsys):
    from tune_jobs.cli import build_parser
    from tune_jobs.options import OPTION_DOCS
    parser = build_parser("main_grid")
    seen = set()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert "default:" in action.help, action.dest
        if action.dest in OPTION_DOCS:
            seen.add(action.dest)
            assert f"allowed: {OPTION_DOCS[action.dest].allowed}" in action.help, action.dest
            assert f"default: {OPTION_DOCS[action.dest].default_text}" in action.help, action.dest
        elif action.choices:
            assert f"allowed: {', '.join(action.choices)}" in action.help, action.dest
    assert seen == set(OPTION_DOCS)  # every documented option is a flag
    # the error of a bad value names the flag and says the same allowed text as --help
    from tune_jobs.cli import main as tune_main
    for flag, bad, value in (("--max-concurrent", "0", 0), ("--cpus-per-trial", "0", 0.0), ("--max-failures", "-1", -1),
                             ("--efficiency", "1.5", 1.5), ("--gpu-memory-gb", "-8", -8.0), ("--num-cpus", "0", 0)):
        assert tune_main([flag, bad, "--dry-run"], experiment="main_grid") == 2
        dest = flag[2:].replace("-", "_")
        assert f"{flag}={value!r} is not allowed: {OPTION_DOCS[dest].allowed}" in capsys.readouterr().err


def test_fields_command_lists_every_field(capsys):
    from initmem.config import FIELD_DOCS, fields_markdown
    assert main(["fields"]) == 0
    out = _flat(capsys.readouterr().out)
    assert all(_flat(d.describe()) in out for d in FIELD_DOCS.values())
    assert main(["fields", "--markdown"]) == 0
    assert capsys.readouterr().out == fields_markdown()
