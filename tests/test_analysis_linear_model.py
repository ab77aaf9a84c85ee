"""Appendix G scalar model: exact per-step identities and the Figure 9 end states (SPEC Section 6).

    python -m pytest tests/test_analysis_linear_model.py -q
"""

import numpy as np
import pytest

from analysis.linear_model import end_states, figure9_runs, identity_residuals, simulate

EPS = np.finfo(np.float64).eps
ULP = 8  # a residual of at most 8 ulp of a_k^2 + b_k^2 + a_{k+1}^2 + b_{k+1}^2 is machine precision


def _ok(res):
    return {k: float((v / res["scale"]).max() / EPS) for k, v in res.items() if k != "scale"}


@pytest.mark.parametrize("lr", [0.01, 0.04])
@pytest.mark.parametrize("targets", ["one", "cyclic", "random"])
def test_prop5_and_prop8_hold_per_step_for_euclidean_steps(lr, targets):
    tr = simulate("sgd", lr, 5000, targets, seed=3)
    ulps = _ok(identity_residuals(tr))
    assert set(ulps) == {"prop4", "prop5", "prop8"}
    assert max(ulps.values()) <= ULP, ulps
    # and the leakage is genuinely second order: D moves, but only by eta^2 terms
    assert abs(tr["D"][-1] - tr["D"][0]) > 1e-3


@pytest.mark.parametrize("decay", [0.1, 1.0, 5.0])
def test_prop4_discrete_weight_decay_holds_per_step(decay):
    tr = simulate("sgd", 0.01, 5000, "random", decay=decay, seed=1)
    ulps = _ok(identity_residuals(tr))
    assert list(ulps) == ["prop4"] and ulps["prop4"] <= ULP, ulps


@pytest.mark.parametrize("lr", [0.01, 0.04])
@pytest.mark.parametrize("targets", ["one", "random"])
def test_prop8_holds_per_step_for_adam(lr, targets):
    tr = simulate("adam", lr, 20000, targets, seed=2)
    ulps = _ok(identity_residuals(tr))
    assert list(ulps) == ["prop8"] and ulps["prop8"] <= ULP, ulps
    # first-order term: Adam's directions break the Euclidean cancellation qa*a == qb*b
    first = np.abs(tr["qa"] * tr["a"][:-1] - tr["qb"] * tr["b"][:-1])
    assert first[:100].max() > 1e-2


def test_euclidean_first_order_terms_cancel_exactly():
    tr = simulate("sgd", 0.04, 200, "cyclic")
    a, b, qa, qb = tr["a"][:-1], tr["b"][:-1], tr["qa"], tr["qb"]
    np.testing.assert_allclose(qa * a, qb * b, rtol=4 * EPS, atol=0)  # g b a == g a b


@pytest.fixture(scope="module")
def fig9():
    return {(r["panel"][0], r["lr"]): r for r in end_states(figure9_runs())}


def test_figure9_gradient_descent(fig9):
    assert fig9["a", 0.01]["steps"] == 20 and fig9["a", 0.01]["D_start"] == -35.0
    assert -36 < fig9["a", 0.01]["D_end"] < -33     # small lr: near gradient-flow conservation
    assert -4 < fig9["a", 0.04]["D_end"] < -2       # large lr: toward -3


def test_figure9_cyclic_sgd_forgets(fig9):
    for lr in (0.01, 0.04):
        assert abs(fig9["b", lr]["D_end"]) < 1e-3


def test_figure9_full_batch_adam_freezes():
    for lr in (0.01, 0.04):
        tr = simulate("adam", lr, 5000, "one")
        assert -29.5 < tr["D"][-1] < -26.0            # moved from -35 at first order, then stalled
        assert abs(tr["D"][-1] - tr["D"][3000]) < 1e-6  # frozen


def test_figure9_minibatch_adam_random_targets_forgets(fig9):
    for lr in (0.01, 0.04):
        assert abs(fig9["d", lr]["D_end"]) < 1e-2


def test_cyclic_targets_do_not_let_small_lr_adam_forget():
    tr = simulate("adam", 0.01, 200_000, "cyclic")
    assert tr["D"][-1] < -1.0  # SPEC Section 6: the random draw matters


def test_figure_builds():
    from analysis.figures import fig_linear_model
    fig = fig_linear_model(figure9_runs(scale=0.01))
    assert len(fig.data) > 8 and fig.layout.title is not None
