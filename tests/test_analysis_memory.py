"""Spreads (Mem), seed bootstrap, per-sigma statistics and the paper's table layouts.

    python -m pytest tests/test_analysis_memory.py -q
"""

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from analysis.load import add_procedure
from analysis.memory import (checkpoint_table, clock_table, delta_table, sigma_stats, sigma_table, spread,
                             tau_table, varying)
from analysis.synthetic import Plant, synthetic_frames


def _hand_runs():
    """Two procedures, three sigmas, uneven seeds, one diverged run (NaN accuracy)."""
    rows = [  # optimizer, sigma_w, seed, test_acc (fraction)
        ("sgd", 0.5, 0, 0.80), ("sgd", 0.5, 1, 0.90),
        ("sgd", 1.0, 0, 0.70), ("sgd", 1.0, 1, 0.74), ("sgd", 1.0, 2, 0.72),
        ("sgd", 2.0, 0, 0.60), ("sgd", 2.0, 1, 0.62),
        ("adam", 0.5, 0, 0.88), ("adam", 0.5, 1, 0.86),
        ("adam", 1.0, 0, 0.90), ("adam", 1.0, 1, np.nan),
        ("adam", 2.0, 0, 0.85), ("adam", 2.0, 1, 0.89),
    ]
    return pd.DataFrame(rows, columns=["optimizer", "sigma_w", "seed", "test_acc"])


def test_spread_equals_hand_computation():
    got = spread(_hand_runs(), by=["optimizer"], n_boot=0)
    # by hand: sgd means 85, 72, 61 -> 85 - 61 = 24 pp; adam means 87, 90, 87 -> 3 pp (NaN run left out)
    want = pd.DataFrame({"optimizer": ["adam", "sgd"], "mem": [3.0, 24.0], "n_sigma": [3, 3], "n_runs": [5, 7],
                         "min_seeds": [1, 2], "sigma_max": [1.0, 0.5], "sigma_min": [0.5, 2.0],
                         "mean_max": [90.0, 85.0], "mean_min": [87.0, 61.0]})
    cols = list(want.columns)
    pdt.assert_frame_equal(got[cols], want, check_dtype=False, rtol=1e-12)
    assert got["lo"].isna().all() and got["hi"].isna().all()


def test_sigma_stats_equals_hand_computation():
    got = sigma_stats(_hand_runs(), by=["optimizer"])
    sgd1 = got[(got["optimizer"] == "sgd") & (got["sigma_w"] == 1.0)].iloc[0]
    assert sgd1["n"] == 3 and sgd1["mean"] == pytest.approx(72.0) and sgd1["std"] == pytest.approx(2.0)
    assert sgd1["p10"] == pytest.approx(np.quantile([70, 72, 74], 0.1))
    assert sgd1["p90"] == pytest.approx(np.quantile([70, 72, 74], 0.9))
    assert len(got) == 6 and got[(got["optimizer"] == "adam") & (got["sigma_w"] == 1.0)]["n"].item() == 1


def test_spread_over_all_rows_and_custom_metric_units():
    r = _hand_runs().assign(tau=[5, 6, 7, 8, 9, 10, 11, 1, 2, 3, 4, 5, 6])
    # all rows one group: sigma means (80+90+88+86)/4 = 86, 76.5, (60+62+85+89)/4 = 74
    assert spread(r, by=[], n_boot=0)["mem"].item() == pytest.approx(86.0 - 74.0)
    # non-accuracy metric keeps its unit (epochs)
    assert spread(r[r["optimizer"] == "sgd"], by=["optimizer"], metric="tau", n_boot=0)["mem"].item() == \
        pytest.approx(10.5 - 5.5)


def test_bootstrap_interval_contains_the_estimate_and_covers_the_truth():
    runs, _, truth = synthetic_frames("main_grid", Plant(mem={("sgd", 128): 10.0, ("adam", 128): 20.0}, seed=3),
                                      optimizers=["sgd", "adam"], batch_sizes=[128], sigmas=[0.1, 0.5, 1.0, 1.8, 2.5],
                                      seeds=list(range(10)), epochs=10)
    sp = spread(runs, by=["optimizer"], n_boot=2000, ci=0.95).set_index("optimizer")
    for opt, true in (("sgd", 10.0), ("adam", 20.0)):
        r = sp.loc[opt]
        assert r["lo"] <= r["mem"] <= r["hi"]
        assert abs(r["mem"] - true) < 1.0            # planted spread recovered
        assert r["lo"] - 0.5 < true < r["hi"] + 0.5
    planted = truth["procedures"].set_index("optimizer")["spread_pp"]
    assert planted["sgd"] == pytest.approx(10.0) and planted["adam"] == pytest.approx(20.0)


def test_bootstrap_interval_narrows_as_seeds_are_added():
    # mean width over 6 independent data sets per seed count (one data set's width is itself noisy)
    widths = []
    for n in (4, 16, 64):
        w = []
        for rep in range(6):
            runs, _, _ = synthetic_frames("main_grid", Plant(mem={("sgd", 128): 12.0}, seed=rep, noise=0.01,
                                                             seed_noise=0.01),
                                          optimizers=["sgd"], batch_sizes=[128], sigmas=[0.1, 1.0, 2.5],
                                          seeds=list(range(n)), epochs=5)
            sp = spread(runs, by=["optimizer"], n_boot=1000, seed=rep).iloc[0]
            assert sp["lo"] <= sp["mem"] <= sp["hi"]
            w.append(sp["hi"] - sp["lo"])
        widths.append(np.mean(w))
    assert widths[0] > widths[1] > widths[2], widths
    assert widths[2] < 0.5 * widths[0]  # ~1/sqrt(n): a factor 4 from 4 to 64 seeds


def test_bootstrap_is_reproducible_and_resamples_within_cells():
    r = _hand_runs()
    a = spread(r, by=["optimizer"], n_boot=500, seed=7)
    b = spread(r, by=["optimizer"], n_boot=500, seed=7)
    pdt.assert_frame_equal(a, b)
    # every bootstrap replicate of 'adam' keeps the single-seed cell at 90 -> Mem >= 90 - 89 = 1 and <= 90 - 85
    ad = a.set_index("optimizer").loc["adam"]
    assert 1.0 - 1e-9 <= ad["lo"] <= ad["hi"] <= 5.0 + 1e-9


def test_planted_paper_spreads_recovered_on_the_main_grid():
    runs, _, truth = synthetic_frames("main_grid", Plant(mem="paper", noise=0.0, seed_noise=0.0),
                                      seeds=[0, 1], sigmas=[0.1, 1.3, 2.5], epochs=12)
    sp = spread(add_procedure(runs), by=["optimizer", "batch_size"], n_boot=0)
    m = sp.merge(truth["procedures"], on=["optimizer", "batch_size"])
    assert len(m) == 25
    np.testing.assert_allclose(m["mem"], m["mem_planted_pp"], atol=1e-9)
    assert m.set_index(["optimizer", "batch_size"]).loc[("sgd", 128), "mem"] == pytest.approx(26.5)


def test_varying_drops_constant_and_determined_columns():
    df = pd.DataFrame({"optimizer": ["sgd", "adamw", "sgd", "adamw"], "weight_decay": [0, 1e-4, 0, 1e-4],
                       "batch_size": [16, 16, 128, 128], "arch": "resnet9"})
    assert varying(df, ["arch", "optimizer", "batch_size", "weight_decay"]) == ["optimizer", "batch_size"]


@pytest.fixture(scope="module")
def small():
    runs, epochs, truth = synthetic_frames("main_grid", Plant(seed=2), optimizers=["sgd", "adam"], batch_sizes=[16, 128],
                                           sigmas=[0.1, 1.0, 2.5], seeds=[0, 1, 2], epochs=15)
    runs = add_procedure(runs)
    runs["run"] = np.arange(len(runs))
    epochs["run"] = pd.Categorical(epochs["run_id"], categories=runs["run_id"]).codes.astype(np.int64)
    return runs, epochs


def test_sigma_table_layout(small):
    runs, _ = small
    t = sigma_table(runs, ["optimizer", "batch_size"], n_boot=100)
    assert list(t.columns) == ["optimizer", "batch_size", "0.1", "0.1 sd", "1", "1 sd", "2.5", "2.5 sd",
                               "spread", "lo", "hi", "train"]
    r = t[(t["optimizer"] == "sgd") & (t["batch_size"] == 16)].iloc[0]
    sel = runs[(runs["optimizer"] == "sgd") & (runs["batch_size"] == 16)]
    means = sel.groupby("sigma_w")["test_acc"].mean() * 100
    assert r["0.1"] == pytest.approx(means[0.1]) and r["spread"] == pytest.approx(means.max() - means.min())
    assert r["train"] == pytest.approx(sel["train_acc_final"].mean() * 100)
    # precomputed spreads are used as they are (one interval per group in a report)
    sp = spread(runs, ["optimizer", "batch_size"], n_boot=50, seed=3)
    t2 = sigma_table(runs, ["optimizer", "batch_size"], spreads=sp)
    pdt.assert_frame_equal(t2.drop(columns=["lo", "hi"]), t.drop(columns=["lo", "hi"]))
    m = t2.merge(sp, on=["optimizer", "batch_size"], suffixes=("", "_sp"))
    assert len(m) == 4 and (m["lo"] == m["lo_sp"]).all() and (m["hi"] == m["hi_sp"]).all()


def test_checkpoint_tau_delta_and_clock_tables(small):
    runs, epochs = small
    ck = checkpoint_table(runs, epochs, ["optimizer", "batch_size"])
    assert set(ck["sigma_w"]) == {0.1, 2.5} and len(ck) == 8
    last = epochs.sort_values("epoch").groupby("run")["val_acc"].last()
    sel = runs[(runs["optimizer"] == "adam") & (runs["batch_size"] == 128) & (runs["sigma_w"] == 2.5)]
    row = ck[(ck["optimizer"] == "adam") & (ck["batch_size"] == 128) & (ck["sigma_w"] == 2.5)].iloc[0]
    assert row["val@final"] == pytest.approx(last[sel["run"]].mean() * 100)
    assert row["val@best"] == pytest.approx(sel["val_acc_best"].mean() * 100)
    assert row["repair_gap"] == pytest.approx(sel["repair_gap"].astype(float).mean() * 100)
    tt = tau_table(runs, ["optimizer", "batch_size"])
    assert "tau_interp@0.1" in tt and "tau_best@2.5 sd" in tt
    dt = delta_table(runs, ["optimizer", "batch_size"])
    assert np.allclose(dt["|delta|"], (dt["test@0.1"] - dt["test@2.5"]).abs())
    ct = clock_table(runs, spread(runs, ["optimizer", "batch_size"], n_boot=0), ["optimizer", "batch_size"])
    assert set(ct["clock"]) == {"t_sgd", "t_adapt"}
    assert np.allclose(ct["T"], np.where(ct["clock"] == "t_sgd", ct["t_sgd"], ct["t_adapt"]))
