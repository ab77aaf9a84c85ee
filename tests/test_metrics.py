"""Clocks against SPEC's closed forms; selection rules against hand-made histories."""

import numpy as np
import pytest
import torch

from initmem import metrics
from initmem.optim import schedule_factor


def test_clocks_equal_spec_closed_forms():
    # b = 128, lr 1e-3, 300 epochs constant: K = 300 * 313 = 93,900 -> T_SGD = 7.336e-4
    c = metrics.clocks([93_900], lr0=1e-3, batch_size=128, total_steps=93_900, schedule="constant")
    assert c["t_sgd"][0] == pytest.approx(93_900 * 1e-6 / 128, rel=1e-12)
    assert round(c["t_sgd"][0], 7) == 7.336e-4
    # b = 16, lr 1e-2, 300 epochs: K = 300 * 2,500 -> T_SGD = 4.6875
    c = metrics.clocks([750_000], lr0=1e-2, batch_size=16, total_steps=750_000, schedule="constant")
    assert c["t_sgd"][0] == pytest.approx(4.6875, rel=1e-12)
    # b = 128, lr 1e-2, lambda 1e-3: T_L2 = 0.939
    c = metrics.clocks([93_900], lr0=1e-2, batch_size=128, total_steps=93_900, schedule="constant", l2=1e-3)
    assert c["t_l2"][0] == pytest.approx(0.939, rel=1e-12)
    assert c["t_adapt"][0] == pytest.approx(939.0, rel=1e-12)


def test_cosine_clocks_are_sums_of_the_schedule_the_optimizer_uses():
    K, lr0, b = 1000, 0.05, 32
    eta = np.array([lr0 * schedule_factor(k, K, 0.01, "cosine") for k in range(K)])
    c = metrics.clocks([0, 10, 500, K], lr0=lr0, batch_size=b, total_steps=K, l2=5e-3)
    np.testing.assert_allclose(c["t_adapt"], [0, eta[:10].sum(), eta[:500].sum(), eta.sum()], rtol=1e-12)
    np.testing.assert_allclose(c["t_sgd"], [0, (eta[:10] ** 2).sum() / b, (eta[:500] ** 2).sum() / b,
                                            (eta ** 2).sum() / b], rtol=1e-12)
    np.testing.assert_allclose(c["t_l2"], 5e-3 * c["t_adapt"], rtol=1e-15)
    # closed form of the continuous cosine integral: sum eta ~ lr0 * K * (1 + alpha) / 2
    assert c["t_adapt"][-1] == pytest.approx(lr0 * K * 1.01 / 2, rel=1e-3)
    assert c["lr"][-1] == pytest.approx(lr0 * 0.01)


def test_lr_schedule_matches_the_optimizers_scalar_schedule():
    ks = np.arange(0, 25)
    np.testing.assert_allclose(metrics.lr_schedule(ks, 20, 0.05, 0.01),
                               [0.05 * schedule_factor(int(k), 20, 0.01, "cosine") for k in ks], rtol=1e-15)


def test_tau_best_interp_and_repair_gap():
    h = {"val_loss": [9.0, 2.0, 1.0, 1.0, 3.0], "train_acc": [0.1, 0.5, 0.99, 0.996, 1.0],
         "val_acc": [0.1, 0.5, 0.7, 0.71, 0.6], "test_acc": [0.1, 0.4, 0.69, 0.7, 0.6],
         "test_loss": [9, 2, 1, 1, 3], "w_norm": [5.0, 5.1, 5.2, 5.3, 5.4]}
    s = metrics.summarize(h)
    assert s["tau_best"] == 2  # first epoch on ties, epoch 0 excluded
    assert s["tau_interp"] == 3
    assert s["repair_gap"] == pytest.approx(0.7 - 0.71)
    assert s["test_acc"] == 0.69 and s["w_norm_init"] == 5.0 and s["w_norm_final"] == 5.4
    assert metrics.tau_interp([0.0, 0.5, 0.9]) is None
    assert metrics.tau_best([1.0, float("nan"), 0.5]) == 2


def test_kernel_norms_per_run():
    k = [torch.ones(2, 3, 4), torch.full((2, 5), 2.0)]
    n = metrics.kernel_norms(k)
    assert n.shape == (2, 2)
    np.testing.assert_allclose(n[0].numpy(), [np.sqrt(12), np.sqrt(20)])
    np.testing.assert_allclose(metrics.total_norm(n)[1].item(), np.sqrt(32))
