"""tune_jobs.grids: user grid files (YAML, Python) and lookup of an experiment by name or path."""

import textwrap

import pytest

from initmem.config import ConfigError
from tune_jobs.grids import experiment_from_spec, get_experiment, load_user_experiment


def values(runs, field):
    return sorted({getattr(r, field) for r in runs}, key=lambda v: (str(type(v)), v))


def test_unknown_experiment():
    with pytest.raises(ConfigError, match="unknown experiment 'nosuch'.*main_grid"):
        get_experiment("nosuch")


def test_user_grid_yaml(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(textwrap.dedent("""
        name: mine
        fixed: {epochs: 5, augment: true}
        axes:
          optimizer: [sgd, adam]
          sigma_w: [0.1, 1.0, 2.5]
          seed: [0, 1]
    """))
    exp = get_experiment(str(f))
    runs = exp.runs("full")
    assert len(runs) == 12 and {r.epochs for r in runs} == {5} and {r.experiment for r in runs} == {"mine"}
    small = exp.runs("smoke")
    assert len(small) == 4 and {r.width for r in small} == {0.125} and values(small, "sigma_w") == [1.0, 2.5]
    assert {(r.optimizer, r.lr0) for r in small} == {("sgd", 1e-2), ("adam", 1e-3)}
    assert {(r.batch_size, r.epochs, r.total_steps) for r in small} == {(128, 16, 304)}  # >= 300 updates
    no_mid = experiment_from_spec({"name": "x", "fixed": {"optimizer": "adam", "epochs": 3},
                                   "axes": {"sigma_w": [0.1, 0.5, 2.0], "batch_size": [16, 64, 128],
                                            "lr0": [1e-3, 1e-2]}}).runs("smoke")
    assert values(no_mid, "sigma_w") == [0.1, 2.0] and values(no_mid, "batch_size") == [16, 32]
    assert values(no_mid, "epochs") == [2, 4] and values(no_mid, "lr0") == [1e-3, 1e-2]


def test_user_grid_python(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text("EXPERIMENT = {'name': 'py_grid', 'grids': [{'fixed': {'optimizer': 'adam'}, 'axes': {'seed': [0, 1]}},"
                 " {'fixed': {'optimizer': 'sgd'}, 'axes': {'lr0': [0.01, 0.1]}}]}\n")
    assert len(load_user_experiment(str(f)).runs("full")) == 4


@pytest.mark.parametrize("spec, match", [
    ({"axes": {"optimizr": ["sgd"]}}, r"unknown run field 'optimizr'; allowed fields: \[.*'optimizer'"),
    ({"axes": {"optimizer": ["sgd", "sgdd"]}}, r"optimizer='sgdd' is not allowed: one of \['sgd'"),
    ({"axes": {"batch_size": [0]}}, r"batch_size=0 is not allowed: an integer >= 1"),
    ({"fixed": {"optimizer": "sgd", "weight_decay": 1e-4}}, r"weight_decay=0.0001 is not allowed"),
    ({"axes": {"sigma_w": 0.5}}, r"axis sigma_w=0.5 is not allowed: a non-empty list"),
    ({"axes": {"seed": [0]}, "grid": {}}, r"unknown key\(s\) \['grid'\]"),
    ({"name": "main_grid", "axes": {"seed": [0]}}, r"taken by the catalogue"),
    ({"axes": {"seed": [0, 0]}}, r"holds the same run twice"),
])
def test_user_grid_invalid(spec, match):
    with pytest.raises(ConfigError, match=match):
        experiment_from_spec({"name": "bad", **spec} if "name" not in spec else spec, source="bad.yaml")


def test_a_user_grid_runs_as_written_by_default(tmp_path, capsys):
    """python -m tune_jobs my_grid.yaml: the full preset (the grid as written) unless a preset is asked for;
    the errors of a one-grid file name neither a preset nor a grid number."""
    from tune_jobs.cli import main
    f = tmp_path / "mine.yaml"
    f.write_text("name: mine\nfixed: {dataset: synthetic, epochs: 2, train_subset: 600, eval_subset: 200}\n"
                 "axes: {sigma_w: [0.5, 2.0]}\n")
    assert main([str(f), "--dry-run", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "experiment  mine (full preset)" in out and "train_subset=600" in out and "epochs=2" in out
    assert main([str(f), "--dry-run", "--preset", "smoke", "--storage", str(tmp_path)]) == 0
    assert "mine_smoke (smoke preset), cut from the full grid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\naxes: {batch_size: [0]}\n")
    assert main([str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "experiment 'bad': batch_size=0 is not allowed" in err and "grid 1" not in err and "(smoke" not in err
