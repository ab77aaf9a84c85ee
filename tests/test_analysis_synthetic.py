"""The synthetic generator plants the paper's spreads and the collapse on the own clock together: every
batch size of a family lies on one curve of its clock and reaches its own point of it at its tau*.

    python -m pytest tests/test_analysis_synthetic.py -q
"""

import numpy as np
import pytest

from analysis.collapse import CLOCK_VERDICT, EPOCH_VERDICT, collapse_table
from analysis.memory import spread
from analysis.synthetic import Plant, synthetic_frames

FAMILY = ["experiment", "optimizer", "lr0", "l2"]
GRID = dict(sigmas=[0.1, 0.7, 1.3, 1.9, 2.5], seeds=[0, 1, 2, 3], epochs=40)


def _paper(exp, **kw):
    return synthetic_frames(exp, Plant(mem="paper", noise=0.002, seed_noise=0.002, seed=1), **{**GRID, **kw})


@pytest.fixture(scope="module")
def adam():
    return _paper("main_grid", optimizers=["adam", "adamw", "muon"], batch_sizes=[16, 32, 64, 128, 256])


@pytest.fixture(scope="module")
def l2():
    return _paper("lr_l2", batch_sizes=[16, 128])


def test_the_paper_spreads_are_planted_exactly(adam, l2):
    for runs, _, truth in (adam, l2):
        t = truth["procedures"].dropna(subset=["mem_planted_pp"])
        np.testing.assert_allclose(t["spread_pp"], t["mem_planted_pp"], atol=1e-9)
    p = adam[2]["procedures"].set_index(["optimizer", "batch_size"])["spread_pp"]
    assert p[("adam", 16)] == pytest.approx(1.6) and p[("adam", 128)] == pytest.approx(4.3)
    assert p[("adam", 256)] == pytest.approx(5.3) and p[("muon", 128)] == pytest.approx(4.0)
    q = l2[2]["procedures"].set_index(["batch_size", "lr0", "l2"])["spread_pp"]
    assert q[(16, 1e-2, 1e-2)] == pytest.approx(0.3) and q[(128, 1e-2, 1e-3)] == pytest.approx(17.4)
    # and measured back from the runs (seed noise 0.2 pp per run)
    sp = spread(adam[0], by=["optimizer", "batch_size"], n_boot=200).set_index(["optimizer", "batch_size"])
    assert abs(sp.loc[("adam", 128), "mem"] - 4.3) < 0.6 and abs(sp.loc[("adam", 16), "mem"] - 1.6) < 0.6


def test_one_curve_of_the_clock_per_family(adam):
    from analysis.synthetic import _clock_table, grid
    _, _, truth = adam
    procs, beta = truth["procedures"], truth["beta"]
    for opt in ("adam", "adamw", "muon"):
        curves = []
        for _, p in procs[procs["optimizer"] == opt].iterrows():
            cfg = grid("main_grid", optimizers=[opt], batch_sizes=[p["batch_size"]], **GRID)[0]
            b = beta[beta["pack_id"] == p["pack_id"]].sort_values("epoch")["beta"].to_numpy()
            curves.append((_clock_table(cfg)["t_adapt"], b, int(p["tau_star"])))
        # the family's points: each batch size's (T, beta) at its own tau*
        knots = np.array(sorted((T[ts], b[ts]) for T, b, ts in curves))
        assert len(knots) == 5
        for T, b, _ in curves:
            assert b[0] == pytest.approx(-0.10)  # every curve starts at -B_opt (T = 0)
            past = T >= knots[0, 0]
            # past the first point every curve is the same function of T: log-linear through the points
            np.testing.assert_allclose(b[past], np.interp(np.log10(T[past]), np.log10(knots[:, 0]), knots[:, 1]),
                                       rtol=1e-12)
            before = ~past & (T > 0)
            assert ((b[before] <= knots[0, 1]) & (b[before] >= -0.10)).all()


def test_planted_paper_spreads_collapse_on_the_own_clock(adam, l2):
    runs, epochs, _ = adam
    sc = collapse_table(runs, epochs, FAMILY, n_boot=100, seed=0).set_index("optimizer")
    assert (sc["clock"] == "t_adapt").all() and (sc["verdict"] == CLOCK_VERDICT).all(), sc[["score", "lo", "hi"]]
    runs, epochs, _ = l2
    sc = collapse_table(runs, epochs, FAMILY, n_boot=100, seed=0).set_index(["lr0", "l2"])
    assert sc.loc[(1e-2, 1e-2), "clock"] == "t_l2" and sc.loc[(1e-2, 1e-2), "verdict"] == CLOCK_VERDICT, \
        sc.loc[(1e-2, 1e-2)]


def test_epoch_mode_still_collapses_on_epochs():
    runs, epochs, _ = synthetic_frames("main_grid", Plant(beta_mode="epoch", noise=0.002, seed_noise=0.002),
                                       optimizers=["adam"], batch_sizes=[16, 128], **GRID)
    sc = collapse_table(runs, epochs, FAMILY, n_boot=100, seed=0).iloc[0]
    assert sc["verdict"] == EPOCH_VERDICT
