"""beta(t) by vectorised OLS, its clocks, and the collapse score (SPEC Section 4).

    python -m pytest tests/test_analysis_sensitivity.py -q
"""

import numpy as np
import pandas as pd
import pytest

from analysis.load import add_procedure, attach, procedure_columns, procedures
from analysis.sensitivity import beta_t, collapse_score, family_columns, with_clock
from initmem.optimizers import own_clock
from analysis.synthetic import Plant, synthetic_frames


def _frame(seed=0):
    """Groups x epochs with uneven sizes, a constant-x group and a few non-finite rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for opt in ("sgd", "adam"):
        for b in (16, 128, 256):
            n = int(rng.integers(5, 40))
            sig = rng.uniform(0.1, 2.5, n)
            for e in range(6):
                y = 0.5 + rng.normal(0, 0.2) * sig + rng.normal(0, 0.05, n)
                rows.append(pd.DataFrame({"optimizer": opt, "batch_size": b, "epoch": e, "sigma_w": sig,
                                          "val_acc": y, "t_sgd": e * 1e-3 / b}))
    f = pd.concat(rows, ignore_index=True)
    f.loc[[3, 50, 200], "val_acc"] = np.nan
    f.loc[[7], "val_acc"] = np.inf
    return f


def test_slope_equals_polyfit_per_group():
    f = _frame()
    b = beta_t(f, by=["optimizer", "batch_size"])
    assert len(b) == 2 * 3 * 6
    fin = f[np.isfinite(f["val_acc"])]
    for (o, bs, e), g in fin.groupby(["optimizer", "batch_size", "epoch"]):
        slope, icpt = np.polyfit(g["sigma_w"], g["val_acc"], 1)
        row = b[(b["optimizer"] == o) & (b["batch_size"] == bs) & (b["epoch"] == e)].iloc[0]
        assert row["n"] == len(g)
        assert abs(row["beta"] - slope) <= 1e-10
        assert abs(row["intercept"] - icpt) <= 1e-10
        assert row["t_sgd"] == pytest.approx(e * 1e-3 / bs, rel=1e-12)


def test_se_and_r2_against_an_independent_formula():
    f = _frame(1)
    b = beta_t(f, by=["optimizer", "batch_size"]).set_index(["optimizer", "batch_size", "epoch"])
    fin = f[np.isfinite(f["val_acc"])]
    for key, g in fin.groupby(["optimizer", "batch_size", "epoch"]):
        x, y = g["sigma_w"].to_numpy(), g["val_acc"].to_numpy()
        X = np.c_[np.ones_like(x), x]
        coef, sse, *_ = np.linalg.lstsq(X, y, rcond=None)
        cov = sse[0] / (len(x) - 2) * np.linalg.inv(X.T @ X)
        assert b.loc[key, "se"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-9)
        assert b.loc[key, "r2"] == pytest.approx(np.corrcoef(x, y)[0, 1] ** 2, rel=1e-9)


def test_degenerate_groups_give_nan_not_errors():
    f = pd.DataFrame({"g": [0, 0, 1, 1, 1, 2], "epoch": 0, "sigma_w": [1.0, 1.0, 0.1, 0.2, 0.3, 0.5],
                      "val_acc": [0.5, 0.6, 0.1, 0.2, 0.3, 0.4]})
    b = beta_t(f, by=["g"]).set_index("g")
    assert np.isnan(b.loc[0, "beta"])                      # one distinct sigma
    assert b.loc[1, "beta"] == pytest.approx(1.0) and b.loc[1, "se"] == pytest.approx(0.0, abs=1e-12)
    assert np.isnan(b.loc[2, "beta"]) and b.loc[2, "n"] == 1


def test_own_clock():
    assert own_clock("sgd", 0.0) == "t_sgd"
    assert own_clock("sgd_momentum", 0.0) == "t_sgd"
    assert own_clock("sgd", 1e-3) == "t_l2"
    for o in ("adam", "adamw", "muon", "muon_conv"):
        assert own_clock(o, 0.0) == own_clock(o, 1e-3) == "t_adapt"  # the Adam family: T_adapt, L2 or not
    b = with_clock(pd.DataFrame({"optimizer": ["sgd", "sgd", "adam"], "l2": [0, 1e-3, 0], "beta": [-1, 2, -3],
                                 "t_sgd": [1.0, 2, 3], "t_l2": [4.0, 5, 6], "t_adapt": [7.0, 8, 9]}))
    assert b["clock"].tolist() == ["t_sgd", "t_l2", "t_adapt"] and b["T"].tolist() == [1, 5, 9]
    assert b["abs_beta"].tolist() == [1, 2, 3]


def _beta_of(runs, epochs):
    runs = add_procedure(runs)
    runs["run"] = np.arange(len(runs))
    epochs = epochs.assign(run=pd.Categorical(epochs["run_id"], categories=runs["run_id"]).codes.astype(np.int64))
    b = beta_t(attach(epochs, runs, ["procedure", "sigma_w"]), by=["procedure"])
    b = with_clock(b.merge(procedures(runs), on="procedure"))
    pack = runs.groupby("procedure")["pack_id"].first()
    return b.assign(pack_id=b["procedure"].map(pack)), runs


def test_planted_beta_recovered_exactly_without_noise():
    runs, epochs, truth = synthetic_frames("main_grid", Plant(noise=0.0, seed_noise=0.0), optimizers=["sgd", "adam"],
                                           batch_sizes=[16, 128], sigmas=[0.1, 0.5, 1.0, 1.8, 2.5], seeds=[0, 1],
                                           epochs=20)
    b, _ = _beta_of(runs, epochs)
    m = b.merge(truth["beta"], on=["pack_id", "epoch"], suffixes=("", "_true"))
    assert len(m) == len(b) == 4 * 21
    np.testing.assert_allclose(m["beta"], m["beta_true"], atol=1e-12)


def test_planted_beta_recovered_within_its_standard_error():
    runs, epochs, truth = synthetic_frames("main_grid", Plant(noise=0.004, seed_noise=0.004, seed=5),
                                           optimizers=["sgd", "adam"], batch_sizes=[16, 256],
                                           sigmas=[0.1, 0.5, 1.0, 1.8, 2.5], seeds=list(range(10)), epochs=40)
    b, _ = _beta_of(runs, epochs)
    m = b.merge(truth["beta"], on=["pack_id", "epoch"], suffixes=("", "_true"))
    z = (m["beta"] - m["beta_true"]) / m["se"]
    assert (z.abs() < 3).mean() > 0.95      # ~99.7% for a correct estimator and SE
    assert (m["beta"] - m["beta_true"]).abs().max() < 0.01


@pytest.fixture(scope="module")
def collapse_data():
    kw = dict(optimizers=["sgd", "adam"], sigmas=[0.1, 0.7, 1.3, 1.9, 2.5], seeds=[0, 1, 2, 3])
    out = {}
    for mode in ("clock", "epoch"):
        runs, epochs, _ = synthetic_frames("main_grid", Plant(beta_mode=mode, noise=0.001, seed_noise=0.001), **kw)
        b, runs = _beta_of(runs, epochs)
        out[mode] = collapse_score(b, family_columns(b, procedure_columns(runs))).set_index("optimizer")
    return out


def test_clock_collapse_scores_better_on_the_clock(collapse_data):
    sc = collapse_data["clock"]
    assert sc.loc["sgd", "clock"] == "t_sgd" and sc.loc["adam", "clock"] == "t_adapt"
    assert (sc["n_curves"] == 5).all()
    assert (sc["score"] < 0.5).all(), sc[["s_clock", "s_epoch", "score", "mode"]]


def test_epoch_collapse_scores_better_on_epochs(collapse_data):
    sc = collapse_data["epoch"]
    assert (sc["score"] > 2.0).all(), sc[["s_clock", "s_epoch", "score", "mode"]]
    # and the two kinds of data are told apart by a wide margin
    assert (collapse_data["epoch"]["score"] > 10 * collapse_data["clock"]["score"]).all()


def test_collapse_score_on_hand_curves():
    # two curves, identical as functions of the clock, clock = epoch * k with k = 1 and 4
    e = np.arange(1, 51, dtype=float)
    rows = []
    for b, k in ((16, 4.0), (64, 1.0)):
        T = e * k
        rows.append(pd.DataFrame({"optimizer": "sgd", "l2": 0.0, "batch_size": b, "epoch": e.astype(int),
                                  "beta": 0.1 * np.exp(-T / 50), "t_sgd": T}))
    sc = collapse_score(pd.concat(rows), ["optimizer", "l2"]).iloc[0]
    assert sc["mode"] == "overlap" and sc["s_clock"] < 1e-3 and sc["s_epoch"] > 0.1 and sc["score"] < 1e-2
