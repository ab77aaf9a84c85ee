"""The paper check: synthetic results planted at the paper's headline numbers agree on every line;
planted 5 pp away they differ on every line; absent experiments are "not run".

    python -m pytest tests/test_analysis_paper_check.py -q
"""

import os
import re

import numpy as np
import pytest

from analysis.load import load
from analysis.paper_check import CLAIMS, main, paper_check, verdict
from analysis.report import build_report
from analysis.synthetic import Plant, write_synthetic
from initmem.study import EXPERIMENTS

GRID = dict(sigmas=[0.1, 1.3, 2.5], seeds=[0, 1, 2], batch_sizes=[16, 128, 256], epochs=6)


def _roots(base, plant):
    write_synthetic(base, list(EXPERIMENTS), plant, **GRID)
    return [os.path.join(base, e) for e in EXPERIMENTS]


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    return _roots(str(tmp_path_factory.mktemp("paper")), Plant(mem="paper", noise=0.0, seed_noise=0.0))


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    return _roots(str(tmp_path_factory.mktemp("off")), Plant(mem="paper", paper_shift=5.0, seed=2))


def test_planted_at_the_paper_every_line_agrees(exact):
    runs, _ = load(exact)
    t = paper_check(runs, n_boot=50)
    assert len(t) == len(CLAIMS) and (t["verdict"] == "agrees").all(), t[t["verdict"] != "agrees"]
    # an independent read of the numbers: measured within the paper's quoted digit (noise-free data)
    est = t[t["paper"].str.match(r"^\d")]
    assert (est["difference"].abs() <= 0.05 + 1e-9).all(), est[["claim", "measured", "difference"]]


def test_planted_five_pp_away_every_line_differs(shifted):
    runs, _ = load(shifted)
    t = paper_check(runs, n_boot=200)
    assert (t["verdict"] == "differs").all(), t[t["verdict"] != "differs"][["claim", "measured", "lo", "hi"]]
    est = t[t["paper"].str.match(r"^\d")]
    assert (est["difference"].abs() > 4.0).all()


def test_absent_experiments_are_not_run_and_present_ones_judged(exact):
    runs, _ = load(exact[:2])  # main_grid and long_sgd
    t = paper_check(runs, n_boot=20)
    assert (t.loc[t["experiment"] == "main_grid", "verdict"] == "agrees").all()
    rest = t[~t["experiment"].isin(["main_grid"])]
    assert (rest["verdict"] == "not run").all() and rest["note"].str.contains("not in the results").all()


def test_missing_procedure_is_not_run(tmp_path):
    root = str(tmp_path / "mg")
    write_synthetic(root, "main_grid", Plant(mem="paper", noise=0.0, seed_noise=0.0), optimizers=["sgd"],
                    batch_sizes=[128], sigmas=[0.1, 2.5], seeds=[0, 1], epochs=4)
    t = paper_check(load(root)[0], n_boot=20).set_index("claim")
    assert t.loc["SGD b=128: spread", "verdict"] == "agrees"
    assert t.loc["SGD b=16: spread", "verdict"] == "not run"
    assert "procedure not in the results" in t.loc["Adam b=128: spread", "note"]


def test_verdict_rules():
    spread_claim = next(c for c in CLAIMS if c.kind == "spread")
    v = spread_claim.paper
    assert verdict(spread_claim, v - 1, v + 1) == "agrees"
    assert verdict(spread_claim, v + 0.04, v + 1) == "agrees"       # within the quoted digit
    assert verdict(spread_claim, v + 0.06, v + 1) == "differs"
    below = next(c for c in CLAIMS if c.kind == "spread_below")
    assert verdict(below, 0.2, 1.5) == "agrees" and verdict(below, 1.2, 2.0) == "differs"
    train = next(c for c in CLAIMS if c.kind == "train_min")
    assert verdict(train, 99.0, 99.6) == "agrees" and verdict(train, 97.0, 99.0) == "differs"
    assert verdict(spread_claim, np.nan, np.nan) == "no interval"


def test_cli_and_report_show_the_same_table(exact, capsys):
    main(exact + ["--n-boot", "50"])
    out = capsys.readouterr().out
    assert out.count("agrees") == len(CLAIMS) and f"{len(CLAIMS)} agree, 0 differ" in out
    page = build_report(*load(exact), n_boot=50, linear_model=False)
    ids = re.findall(r"<section id='([^']+)'>", page)
    assert ids[0] == "paper_check"
    assert f"{len(CLAIMS)} agree, 0 differ" in page
