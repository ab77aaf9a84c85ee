"""The paper check: synthetic results planted at the paper's headline numbers, on the paper's own design,
agree on every line; planted 5 pp away they differ on every line; the new claims (long SGD, Adam <= 3.5
under augmentation, the best recipe's |Delta|, 5- vs 25-point spreads) each differ on data built to
make them fail; measured on another design every line says "not comparable (measured on ...)"; a bound
is "inconclusive" when its interval straddles it; absent experiments are "not run".

    python -m pytest tests/test_analysis_paper_check.py -q
"""

import os
import re

import numpy as np
import pandas as pd
import pytest

from analysis.load import add_procedure, load
from analysis.paper_check import CLAIMS, Claim, main, paper_check, summary, verdict
from analysis.report import build_report
from analysis.synthetic import Plant, synthetic_frames, write_synthetic
from initmem.study import EXPERIMENTS, SIGMA5

# the paper's design (every experiment's own sigmas, seeds and epochs), cut only to the batch sizes
# the claims name
BATCHES = {e: sorted({c.select["batch_size"] for c in CLAIMS if c.experiment == e}) for e in EXPERIMENTS}


def _paper_design_runs(plant, experiments=tuple(EXPERIMENTS), **kw) -> pd.DataFrame:
    """The runs tables of `experiments` generated on their full presets, as one frame (procedures renumbered)."""
    parts = [synthetic_frames(e, plant, batch_sizes=BATCHES[e], **kw)[0] for e in experiments]
    return add_procedure(pd.concat(parts, ignore_index=True).drop(columns=["procedure", "run"]))


@pytest.fixture(scope="module")
def exact():
    return _paper_design_runs(Plant(mem="paper", noise=0.0, seed_noise=0.0))


@pytest.fixture(scope="module")
def shifted():
    return _paper_design_runs(Plant(mem="paper", paper_shift=5.0, seed=2))


def test_planted_at_the_paper_every_line_agrees(exact):
    t = paper_check(exact, n_boot=50)
    assert len(t) == len(CLAIMS) and (t["verdict"] == "agrees").all(), t[t["verdict"] != "agrees"]
    # an independent read of the numbers: measured within the paper's quoted digit (noise-free data)
    est = t[[c.bound is None for c in CLAIMS]]
    tol = np.array([c.tol for c in CLAIMS if c.bound is None])
    assert (est["difference"].abs().to_numpy() <= tol).all(), est[["claim", "measured", "difference"]]
    # long SGD is the paper's single seed: comparable, and the note says its interval is the point
    long = t[t["experiment"] == "long_sgd"]
    assert len(long) == 2 and long["note"].str.contains("one seed per sigma").all()
    assert not t.loc[t["experiment"] == "main_grid", "note"].str.contains("one seed").any()


def test_planted_five_pp_away_every_line_differs(shifted):
    t = paper_check(shifted, n_boot=200)
    moved = np.array([c.kind != "subset" for c in CLAIMS])  # the shift moves every number, not the 5-vs-25 gap
    assert (t.loc[moved, "verdict"] == "differs").all(), t[moved & (t["verdict"] != "differs")][
        ["claim", "measured", "lo", "hi"]]
    assert (t.loc[~moved, "verdict"] == "agrees").all()
    est = t[[c.bound is None for c in CLAIMS]]
    assert (est["difference"].abs() > 4.0).all()


def _one(table: pd.DataFrame, text: str) -> pd.Series:
    return table.set_index("claim").loc[text]


def test_new_claims_each_differ_on_data_built_to_fail(exact):
    # 5- vs 25-point: a sigma outside the 5-point subset (0.2) lifted 3 pp makes the 25-point spread wider
    r = exact.copy()
    bump = (r["experiment"] == "main_grid") & (r["optimizer"] == "sgd") & (r["batch_size"] == 16) \
        & np.isclose(r["sigma_w"], 0.2)
    r.loc[bump, "test_acc"] += 0.03
    t = paper_check(r, n_boot=50)
    row = _one(t, "SGD b=16: spread over the 5-point subset within ~1 pp of the 25-point one")
    # independent: seed means per sigma, 25-point max - min minus the 5-point one
    sel = r[(r["experiment"] == "main_grid") & (r["optimizer"] == "sgd") & (r["batch_size"] == 16)]
    m = sel.groupby("sigma_w")["test_acc"].mean() * 100
    sub = m[np.isclose(m.index.to_numpy()[:, None], SIGMA5).any(axis=1)]
    assert row["measured"] == pytest.approx((m.max() - m.min()) - (sub.max() - sub.min()), abs=1e-9)
    assert row["measured"] > 1.9 and row["verdict"] == "differs"
    assert _one(t, "SGD b=128: spread over the 5-point subset within ~1 pp of the 25-point one")["verdict"] == "agrees"

    # long SGD erased, Adam + augmentation at 6 pp, best recipe's |Delta| at 2 pp (SGD) and 0.0 (Adam)
    def mem(cfg):
        if cfg.experiment == "long_sgd":
            return 5.0
        if cfg.experiment == "norm_aug" and cfg.optimizer == "adam":
            return 6.0
        if cfg.experiment == "best_recipe":
            return 2.0 if cfg.optimizer == "sgd_momentum" else 0.0
        return None
    bad = _paper_design_runs(Plant(mem=mem, noise=0.0, seed_noise=0.0), ["long_sgd", "norm_aug", "best_recipe"])
    t = paper_check(bad, n_boot=50).set_index("claim")
    for text, measured in (("Long SGD b=16 (5,000 epochs, constant lr0 1e-3): spread ~26 (abstract: essentially "
                            "unchanged)", 5.0),
                           ("Adam + augmentation, LayerNorm, b=128: spread <= 3.5 pp", 6.0),
                           ("Best recipe, SGD b=128: |Delta| between sigma 0.1 and 2.5", 2.0),
                           ("Best recipe, Adam b=128: |Delta| between sigma 0.1 and 2.5", 0.0)):
        assert t.loc[text, "measured"] == pytest.approx(measured, abs=1e-9), text
        assert t.loc[text, "verdict"] == "differs", (text, t.loc[text, "verdict"])
    assert (t.loc[t.index.str.startswith("Adam + augmentation"), "verdict"] == "differs").all()


def test_measured_on_another_design_is_not_comparable():
    cut = _paper_design_runs(Plant(mem="paper", noise=0.0, seed_noise=0.0), ["main_grid", "lr_l2", "long_sgd"],
                             sigmas=list(SIGMA5), seeds=[0, 1, 42], epochs=6)
    t = paper_check(cut, n_boot=20).set_index("claim")
    assert t.loc["SGD b=128: spread", "verdict"] == \
        "not comparable (measured on 5 of 25 sigmas, 3 of 10 seeds, epochs 6 (paper 300))"
    # an accuracy at one sigma does not depend on the other sigmas: only the seeds and sizes count
    assert t.loc["SGD b=128: test accuracy at sigma 0.1", "verdict"] == \
        "not comparable (measured on 3 of 10 seeds, epochs 6 (paper 300))"
    assert t.loc["SGD b=16, lr0 1e-2: spread", "verdict"] == \
        "not comparable (measured on 3 of 10 seeds, epochs 6 (paper 300))"
    # long SGD is the paper's single seed: only its epochs differ
    assert t.loc["Long SGD b=128 (5,000 epochs, constant lr0 1e-3): spread ~26 (abstract: essentially unchanged)",
                 "verdict"] == "not comparable (measured on epochs 6 (paper 5,000))"
    subset = t.index.str.contains("5-point subset")
    judged = t[t["experiment"].isin(["main_grid", "lr_l2", "long_sgd"]) & ~subset]
    assert judged["verdict"].str.startswith("not comparable").all()
    assert judged["measured"].notna().all()  # the values are still shown
    # the 5- vs 25-point gap cannot be measured without sigmas beyond the subset
    assert (t.loc[subset, "verdict"] == "not run").all()
    assert t.loc[subset, "note"].str.contains("sigma_w beyond it").all()
    assert summary(t.reset_index()).startswith("0 agree, 0 differ, 22 not comparable")
    # the same runs on the paper's sizes but a cut sigma set and too few seeds (the smoke case: one seed)
    one = cut[(cut["seed"] == 0) & (cut["experiment"] == "main_grid")].assign(epochs=300)
    v = paper_check(one, n_boot=20).set_index("claim").loc["SGD b=128: spread", "verdict"]
    assert v == "not comparable (measured on 5 of 25 sigmas, 1 of 10 seeds)"


def test_a_bound_straddled_by_its_interval_is_inconclusive():
    # planted right at the bound with seed noise: the interval straddles 1 pp
    mem = lambda cfg: 1.0 if (cfg.lr0, cfg.l2, cfg.batch_size) == (1e-2, 5e-3, 128) else None  # noqa: E731
    r = _paper_design_runs(Plant(mem=mem, noise=0.004, seed_noise=0.004, seed=3), ["lr_l2"])
    row = _one(paper_check(r, n_boot=500), "SGD b=128, lr0 1e-2, L2 5e-3 (T_L2 ~ 4.7): spread < 1 pp")
    assert row["lo"] < 1.0 < row["hi"] and row["verdict"] == "inconclusive"


def test_verdict_rules():
    est = next(c for c in CLAIMS if c.kind == "spread" and c.bound is None)
    v = est.paper
    assert verdict(est, v - 1, v + 1) == "agrees"
    assert verdict(est, v + 0.04, v + 1) == "agrees"       # within the quoted digit
    assert verdict(est, v + 0.06, v + 1) == "differs"
    below = next(c for c in CLAIMS if c.bound == "<")
    assert verdict(below, 0.2, 0.8) == "agrees"
    assert verdict(below, 0.9, 3.5) == "inconclusive"     # a 3 pp estimate with a lower end of 0.9
    assert verdict(below, 0.2, 1.5) == "inconclusive" and verdict(below, 1.2, 2.0) == "differs"
    assert verdict(below, 1.0, 2.0) == "differs" and verdict(below, 0.5, 1.0) == "inconclusive"  # "<" is strict
    le = next(c for c in CLAIMS if c.bound == "<=")
    assert verdict(le, 0.5, le.paper) == "agrees" and verdict(le, le.paper + 0.01, 9) == "differs"
    train = next(c for c in CLAIMS if c.kind == "train_min")
    assert verdict(train, 99.6, 99.9) == "agrees" and verdict(train, 99.0, 99.6) == "inconclusive"
    assert verdict(train, 97.0, 99.0) == "differs"
    approx = next(c for c in CLAIMS if c.experiment == "long_sgd")  # "~26": [25.5, 26.5]
    assert verdict(approx, 26.4, 26.4) == "agrees" and verdict(approx, 26.6, 26.6) == "differs"
    delta = Claim("best_recipe", {}, "delta", 0.0, "")
    assert verdict(delta, 0.0, 0.4) == "agrees" and verdict(delta, 0.06, 0.4) == "differs"
    assert verdict(est, np.nan, np.nan) == "no interval"


def test_delta_interval_is_the_fold_of_the_signed_one():
    # equal seed means at both sigmas: the signed difference's interval holds 0, so |Delta|'s starts at 0
    vals = np.array([0.93, 0.94, 0.95, 0.94, 0.93, 0.95, 0.94, 0.96, 0.92, 0.94])
    runs = pd.DataFrame({"experiment": "best_recipe", "optimizer": "sgd_momentum", "batch_size": 128,
                         "sigma_w": np.repeat([0.1, 2.5], 10), "seed": np.tile(np.arange(10), 2),
                         "test_acc": np.tile(vals, 2), "procedure": 0})
    c = next(c for c in CLAIMS if c.kind == "delta" and c.paper == 0.0)
    row = paper_check(runs, n_boot=500, claims=[c]).iloc[0]
    assert row["measured"] == pytest.approx(0.0) and row["lo"] == 0.0 and row["hi"] > 0.3
    assert row["verdict"] == "agrees"


def test_absent_experiments_are_not_run_and_present_ones_judged(exact):
    t = paper_check(exact[exact["experiment"].isin(["main_grid", "long_sgd"])], n_boot=20)
    assert (t.loc[t["experiment"].isin(["main_grid", "long_sgd"]), "verdict"] == "agrees").all()
    rest = t[~t["experiment"].isin(["main_grid", "long_sgd"])]
    assert (rest["verdict"] == "not run").all() and rest["note"].str.contains("not in the results").all()


def test_missing_procedure_is_not_run(tmp_path):
    root = str(tmp_path / "mg")
    write_synthetic(root, "main_grid", Plant(mem="paper", noise=0.0, seed_noise=0.0), optimizers=["sgd"],
                    batch_sizes=[128], sigmas=[0.1, 2.5], seeds=[0, 1], epochs=4)
    t = paper_check(load(root)[0], n_boot=20).set_index("claim")
    assert t.loc["SGD b=128: spread", "verdict"].startswith("not comparable (measured on 2 of 25 sigmas")
    assert t.loc["SGD b=16: spread", "verdict"] == "not run"
    assert "procedure not in the results" in t.loc["Adam b=128: spread", "note"]


@pytest.fixture(scope="module")
def smoke_like(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("cut"))
    write_synthetic(base, ["main_grid", "lr_l2"], Plant(mem="paper"), sigmas=[1.0, 2.5], seeds=[0], epochs=3,
                    batch_sizes=[16, 128])
    return [os.path.join(base, e) for e in ("main_grid", "lr_l2")]


def test_cli_and_report_show_the_same_table_and_say_what_the_study_is(smoke_like, capsys):
    main(smoke_like + ["--n-boot", "50"])
    out = capsys.readouterr().out
    runs, epochs = load(smoke_like)
    t = paper_check(runs, n_boot=50)
    assert summary(t) in out and out.count("not comparable (measured on") == \
        t["verdict"].str.startswith("not comparable").sum() > 0
    assert out.startswith("Not the paper's scale.") and "1 of 10 seeds" in out.splitlines()[0]
    page = build_report(runs, epochs, n_boot=50, linear_model=False)
    ids = re.findall(r"<section id='([^']+)'>", page)
    assert ids[0] == "paper_check"
    assert summary(t) in page and "Not the paper&#x27;s scale." in page
