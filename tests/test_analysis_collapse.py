"""The collapse score compares like with like: structureless curves score 1 within their seed-bootstrap
interval ("no clear difference") on the main grid's real cosine T_SGD ranges, where the batch sizes'
clock ranges never all overlap; planted collapse on the clock or on epochs gets its verdict.

    python -m pytest tests/test_analysis_collapse.py -q
"""

import math

import numpy as np
import pandas as pd
import pytest

from initmem.config import TRAIN_SIZE
from initmem.metrics import clocks

from analysis.collapse import CLOCK_VERDICT, EPOCH_VERDICT, NO_VERDICT, collapse_table, verdict_of
from analysis.load import add_procedure, attach
from analysis.sensitivity import beta_t, collapse_score

BATCH = (16, 32, 64, 128, 256)
SIGMAS = np.array([0.1, 0.7, 1.3, 1.9, 2.5])
EPOCHS = 300


def _clock_curves(b: int) -> dict:
    """The main grid's recorded clocks per epoch 0..300 (cosine, lr0 1e-3, alpha 0.01)."""
    spe = math.ceil(TRAIN_SIZE / b)
    return clocks(np.arange(EPOCHS + 1) * spe, lr0=1e-3, batch_size=b, total_steps=EPOCHS * spe)


def _data(beta_of, seeds=8, noise=0.002, seed=0):
    """runs and epochs frames (analysis.load's shape): val_acc = 0.8 + beta_b(t) (sigma - 1.3) + noise,
    beta_of(b, epochs, t_sgd) the planted slope per batch size."""
    rng = np.random.default_rng(seed)
    runs, eps = [], []
    t = np.arange(EPOCHS + 1)
    run = 0
    for b in BATCH:
        c = _clock_curves(b)
        beta = beta_of(b, t, c["t_sgd"])
        for s in SIGMAS:
            for sd in range(seeds):
                runs.append({"run": run, "experiment": "main_grid", "optimizer": "sgd", "batch_size": b,
                             "lr0": 1e-3, "l2": 0.0, "sigma_w": s, "seed": sd})
                eps.append(pd.DataFrame({"run": run, "epoch": t.astype(np.int32),
                                         "val_acc": 0.8 + beta * (s - 1.3) + rng.normal(0, noise, len(t)),
                                         "t_sgd": c["t_sgd"], "t_l2": c["t_l2"], "t_adapt": c["t_adapt"]}))
                run += 1
    return add_procedure(pd.DataFrame(runs)), pd.concat(eps, ignore_index=True)


FAMILY = ["experiment", "optimizer", "lr0", "l2"]


def _score(beta_of, **kw):
    runs, epochs = _data(beta_of, **kw)
    return collapse_table(runs, epochs, FAMILY, n_boot=200, seed=1).iloc[0], runs, epochs


def test_main_grid_clock_ranges_do_not_all_overlap():
    # the situation the old score was biased in: no common T_SGD range across b = 16..256
    lo = [np.log10(_clock_curves(b)["t_sgd"][1]) for b in BATCH]
    hi = [np.log10(_clock_curves(b)["t_sgd"][-1]) for b in BATCH]
    assert max(lo) > min(hi)


@pytest.mark.parametrize("name, beta_of", [
    ("pure noise", lambda b, t, T: np.zeros(len(t))),
    ("flat level per batch size", lambda b, t, T: np.full(len(t), -0.01 * np.log2(b))),
])
def test_structureless_curves_score_one_within_the_interval(name, beta_of):
    r, _, _ = _score(beta_of)
    assert r["mode"] == "pairwise" and r["n_pairs"] >= 6  # pairs whose T_SGD ranges overlap
    assert r["lo"] < 1.0 < r["hi"], (name, r["score"], r["lo"], r["hi"])
    assert abs(r["score"] - 1.0) < 0.15, (name, r["score"])
    assert r["verdict"] == NO_VERDICT


def test_structureless_verdict_holds_over_generator_seeds():
    # the interval covers 1 on most draws (it is a 95% interval, so a miss is allowed, not many)
    hits = [_score(lambda b, t, T: np.zeros(len(t)), seeds=5, seed=s)[0]["verdict"] == NO_VERDICT
            for s in range(6)]
    assert sum(hits) >= 5, hits


def test_planted_clock_collapse_aligns_on_its_clock():
    # |beta| a power law of T_SGD, the same function for every batch size
    r, runs, epochs = _score(lambda b, t, T: -0.1 * (np.maximum(T, 1e-9) / 1e-5) ** -0.35)
    assert r["hi"] < 1.0 and r["score"] < 0.3 and r["verdict"] == CLOCK_VERDICT
    # the point estimate is collapse_score on beta_t of the same data
    b = beta_t(attach(epochs, runs, ["procedure", "sigma_w"]), by=["procedure"])
    b = b.merge(runs.drop_duplicates("procedure")[["procedure", *FAMILY, "batch_size"]], on="procedure")
    assert collapse_score(b, FAMILY).iloc[0]["score"] == pytest.approx(r["score"], rel=1e-6)


def test_planted_epoch_collapse_aligns_on_epochs():
    r, _, _ = _score(lambda b, t, T: -0.1 * np.exp(-t / 80.0))
    assert r["lo"] > 1.0 and r["score"] > 2.0 and r["verdict"] == EPOCH_VERDICT


def test_verdict_thresholds():
    assert verdict_of(0.5, 0.99) == CLOCK_VERDICT and verdict_of(1.01, 3) == EPOCH_VERDICT
    assert verdict_of(0.8, 1.2) == NO_VERDICT and verdict_of(np.nan, 1) == "not measurable"


def test_pairs_without_clock_overlap_are_left_out_of_both_sides():
    # two curves identical on epochs whose clock ranges are disjoint: no pair, no score (not 0 or 1)
    e = np.arange(1, 31)
    rows = [pd.DataFrame({"optimizer": "sgd", "l2": 0.0, "batch_size": b, "epoch": e, "beta": 0.1 * np.exp(-e / 10),
                          "t_sgd": e * k}) for b, k in ((16, 1.0), (256, 1e3))]
    sc = collapse_score(pd.concat(rows), ["optimizer", "l2"]).iloc[0]
    assert sc["n_pairs"] == 0 and np.isnan(sc["score"]) and sc["pairs_total"] == 1
