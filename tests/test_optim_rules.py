"""initmem.optim_rules: the rule interface a registered optimizer writes its update against.

    python -m pytest tests/test_optim_rules.py

A rule of one's own (Nesterov SGD, registered here as a plugin would) against PyTorch's own
torch.optim.SGD stepping each run alone; the write-back the rules share (inactive runs keep weights
and state); slots that span only some kinds; a rule that returns a slot it has not.
(The built-in rules: tests/test_optim.py, against Keras and a float64 reference.)
"""

import numpy as np
import pytest
import torch

from initmem.optim import PackedOptimizer
from initmem.optimizers import OPTIMIZERS, OptimizerSpec, register_optimizer

SHAPES = {"conv": (4, 2, 3, 3), "dense": (3, 5), "bias": (4,), "norm": (4,)}


def nesterov(s):
    """PyTorch's SGD with Nesterov momentum (dampening 0): buf <- mu buf + g; w <- w - lr (g + mu buf)."""
    a, mu = s.all, s.momentum
    buf = (a.slots["buf"] * mu).add_(a.g)
    torch.sub(a.w, (buf * mu).add_(a.g).mul_(s.lr(a)), out=a.new_w)
    return a.new(buf=buf)


def kernels_only(s):
    """A rule whose slot exists on the kernels only, but which returns it for every element (wrong)."""
    a = s.all
    torch.sub(a.w, a.g, out=a.new_w)
    return a.new(m=a.g)


@pytest.fixture(scope="module", autouse=True)
def _rules():
    """Two optimizers registered as a plugin would, for this module only (the registry is left as it was)."""
    register_optimizer(OptimizerSpec("test_nesterov", "sgd", "torch.optim.SGD(nesterov=True)", {"default": ("buf",)},
                                     6.9, nesterov))
    register_optimizer(OptimizerSpec("test_kernels_only", "sgd", "a slot on the kernels only",
                                     {"conv": ("m",), "dense": ("m",)}, 6.9, kernels_only))
    yield
    OPTIMIZERS.remove("test_nesterov")
    OPTIMIZERS.remove("test_kernels_only")


def _params(m, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn((m,) + s, generator=g, dtype=torch.float64) for n, s in SHAPES.items()}


def test_a_rule_of_ones_own_matches_pytorchs_optimizer_on_each_run_alone():
    M, steps, mu = 3, 8, 0.8
    lr = np.array([0.05, 0.2, 0.01])
    init = _params(M)
    g = torch.Generator().manual_seed(1)
    grads = [{n: torch.randn((M,) + s, generator=g, dtype=torch.float64) for n, s in SHAPES.items()}
             for _ in range(steps)]
    active = lambda k: torch.tensor([True, k < 5, True])                 # run 1 stops after update 5
    ours = {n: v.clone() for n, v in init.items()}
    o = PackedOptimizer(list(ours.items()), {n: n for n in SHAPES}, "test_nesterov", momentum=mu)
    for k in range(steps):
        for n, p in ours.items():
            p.grad = grads[k][n].clone()
        o.step(lr * (1 - 0.05 * k), np.zeros(M), active(k))
    for m in range(M):                                                    # the reference: PyTorch, run m alone
        ref = {n: torch.nn.Parameter(v[m].clone()) for n, v in init.items()}
        sgd = torch.optim.SGD(list(ref.values()), lr=float(lr[m]), momentum=mu, nesterov=True)
        for k in range(steps):
            if not active(k)[m]:
                break
            for group in sgd.param_groups:
                group["lr"] = float(lr[m] * (1 - 0.05 * k))
            for n, p in ref.items():
                p.grad = grads[k][n][m].clone()
            sgd.step()
        for n in SHAPES:
            np.testing.assert_allclose(ours[n][m].numpy(), ref[n].detach().numpy(), rtol=1e-13, atol=1e-15,
                                       err_msg=f"run {m} {n}")
            np.testing.assert_allclose(o.state[n]["buf"][m].numpy(), sgd.state[ref[n]]["momentum_buffer"].numpy(),
                                       rtol=1e-13, atol=1e-15, err_msg=f"run {m} {n} buf")
    assert not torch.equal(ours["conv"][1], init["conv"][1])             # run 1 did move before it stopped


def test_a_slot_spans_only_the_kinds_that_have_it_and_a_rule_cannot_write_it_elsewhere():
    params = _params(2)
    o = PackedOptimizer(list(params.items()), {n: n for n in SHAPES}, "test_kernels_only")
    buf, lo = o.slot_bufs["m"]
    assert lo == 0 and buf.numel() == o.n_kern == 2 * (4 * 2 * 9 + 3 * 5)   # the kernels, laid out first
    assert {n: set(s) for n, s in o.state.items()} == {"conv": {"m"}, "dense": {"m"}, "bias": set(), "norm": set()}
    for p in params.values():
        p.grad = torch.ones_like(p)
    with pytest.raises(ValueError, match=r"returned slot 'm' for the elements all .* whose slots are \[\]"):
        o.step(np.full(2, 0.1), np.zeros(2))
