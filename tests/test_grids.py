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
