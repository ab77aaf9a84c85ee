"""`python -m analysis.clocks`: a recipe's clocks before it runs, and its nearest measured procedures.

    python -m pytest tests/test_analysis_clocks.py -q
"""

import numpy as np
import pandas as pd
import pytest

from analysis.clocks import main, measured_table, nearest, recipe_clocks, verdict
from analysis.synthetic import Plant, write_synthetic


def test_spec_section_4_checks():
    r = recipe_clocks("sgd", 1e-3, 128, 300, schedule="constant")
    assert r["steps"] == 300 * 313 and r["t_sgd"] == pytest.approx(7.336e-4, rel=1e-3)
    assert r["clock"] == "t_sgd" and r["T"] == r["t_sgd"] and r["t_l2"] == 0.0
    assert recipe_clocks("sgd", 1e-2, 16, 300, schedule="constant")["t_sgd"] == pytest.approx(4.6875, rel=1e-12)
    r = recipe_clocks("sgd", 1e-2, 128, 300, schedule="constant", l2=1e-3)
    assert r["t_l2"] == pytest.approx(0.939, rel=1e-12) and r["clock"] == "t_l2"
    a = recipe_clocks("adamw", 1e-3, 128, 300)  # cosine: below the constant-lr value
    assert a["clock"] == "t_adapt" and 0.4 * 93.9 < a["t_adapt"] < 0.6 * 93.9
    assert recipe_clocks("sgd", 1e-3, 128, 10, train_size=1280)["steps"] == 100


def test_nearest_orders_by_own_clock_then_all_clocks():
    table = pd.DataFrame({
        "name": ["sgd_far", "sgd_near", "l2_proc", "adam"],
        "clock": ["t_sgd", "t_sgd", "t_l2", "t_adapt"],
        "t_sgd": [1e-5, 2e-3, 2e-3, 1e-4], "t_l2": [0.0, 0.0, 0.5, 0.0], "t_adapt": [10.0, 90.0, 90.0, 50.0],
        "mem": [26.0, 3.0, 1.0, 4.0], "lo": 0.0, "hi": 30.0})
    rec = {"clock": "t_sgd", "T": 1e-3, "t_sgd": 1e-3, "t_l2": 0.0, "t_adapt": 100.0}
    near = nearest(rec, table, k=4)
    assert near["name"].tolist()[:2] == ["sgd_near", "sgd_far"]
    assert near["d_own"].iloc[0] == pytest.approx(np.log10(2))
    assert near["same_clock"].tolist() == [True, True, False, False]
    assert near["name"].iloc[2] == "adam"  # d_all: adam (T_L2 both 0) is nearer than the L2 procedure
    v = verdict(rec, near.head(1), table)
    assert "likely forgets" in v and "3.0 pp" in v
    v2 = verdict({**rec, "T": 1.0}, near.head(2), table)
    assert "likely remembers" in v2 and "extrapolation" in v2


def test_cli_with_results(tmp_path, capsys):
    root = str(tmp_path / "lr_l2")
    write_synthetic(root, "lr_l2", Plant(), sigmas=[0.1, 2.5], seeds=[0, 1], batch_sizes=[128], epochs=4)
    assert len(measured_table([root], n_boot=10)) == 12
    main(["--optimizer", "sgd", "--lr0", "0.01", "--batch-size", "128", "--epochs", "4", "--l2", "1e-3",
          "--train-size", "40000", "--results", root, "-k", "3"])
    out = capsys.readouterr().out
    assert "T_L2" in out and "<- its own clock" in out and "nearest measured procedures on T_L2" in out
    # the recipe itself was measured: it comes first, at distance 0 on its own clock
    near = nearest(recipe_clocks("sgd", 0.01, 128, 4, l2=1e-3), measured_table([root], n_boot=10), k=3)
    assert near["d_own"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert (near["lr0"].iloc[0], near["l2"].iloc[0]) == (0.01, 1e-3)
