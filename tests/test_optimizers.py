"""initmem.optimizers: an optimizer is one registration, checked when it is made and read by every floor.

    python -m pytest tests/test_optimizers.py
"""

import pytest

from initmem.config import ConfigError, RunConfig
from initmem.optimizers import (OPTIMIZERS, Constant, OptimizerSpec, adaptive, decoupled, own_clock,
                                register_optimizer)


def _rule(s):
    return []


def _spec(**changes):
    base = dict(name="test_opt", family="adaptive", description="a test rule", slots={"default": ("m",)},
                state_copies=6.9, rule=_rule)
    return OptimizerSpec(**{**base, **changes})


@pytest.mark.parametrize("changes, message", [
    (dict(family="adam"), r"family='adam' is not allowed: one of \['sgd', 'adaptive'\]"),
    (dict(rule="initmem.optim_rules.adam"), r"rule='initmem.optim_rules.adam' is not allowed: a function"),
    (dict(slots={"kernel": ("m",)}), r"slots key 'kernel' is not allowed: one of \['conv', "),
    (dict(slots={"default": ("m", "m")}), r"slots\['default'\]=\('m', 'm'\) is not allowed: distinct names"),
    (dict(state_copies=0), r"state_copies=0 is not allowed: a number > 0"),
    (dict(muon_kinds=("bias",)), r"muon_kinds=\('bias',\) is not allowed: kinds among \['conv', 'dense'\]"),
    (dict(default_weight_decay=1e-3), r"default_weight_decay=0.001 is not allowed: .* 0 unless decoupled_decay"),
    (dict(constants={"beta_1": Constant(1.5, "a decay", "a number in [0, 1)", lambda v: 0 <= v < 1)}),
     r"test_opt.beta_1=1.5 is not allowed: a number in \[0, 1\)$"),
    (dict(constants={"eps": Constant(float("nan"), "added to a root", "a number > 0", lambda v: v > 0)}),
     r"test_opt.eps=nan is not allowed: a finite number"),
    (dict(constants={"coefficients": Constant((1.0, 2.0), "(a, b, c)", "three numbers", lambda v: len(v) == 3)}),
     r"test_opt.coefficients=\(1.0, 2.0\) is not allowed: three numbers"),          # not a number: check() alone
])
def test_a_spec_is_checked_when_registered(changes, message):
    with pytest.raises(ConfigError, match=message):
        register_optimizer(_spec(**changes))
    assert "test_opt" not in OPTIMIZERS


def test_constants_read_as_values_and_keep_their_definitions():
    spec = _spec(constants={"beta": Constant(0.5, "a decay", "a number in [0, 1)", lambda v: 0 <= v < 1), "k": 3})
    assert spec.constants == {"beta": 0.5, "k": 3}
    assert spec.constant_docs["beta"].meaning == "a decay" and set(spec.constant_docs) == {"beta"}
    assert OPTIMIZERS["adam"].constants == {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7}   # Table 1 reads these


@pytest.fixture
def registered():
    spec = register_optimizer(_spec(name="test_added", decoupled_decay=True, default_weight_decay=3e-3))
    yield spec
    OPTIMIZERS.remove("test_added")


def test_an_added_optimizer_is_read_by_every_floor(registered):
    from initmem.memory import state_bytes
    from initmem.architectures import cost
    cfg = RunConfig(optimizer="test_added", arch="resnet9", width=0.25)
    assert cfg.weight_decay == 3e-3                                       # its default decay, resolved
    assert "test_added" in decoupled() and "test_added" in adaptive()
    assert own_clock("test_added", l2=1e-3) == "t_adapt"                  # the analysis's clock
    assert state_bytes(cfg) == cost(cfg).params * 6.9 * 4                 # the planner's memory
    with pytest.raises(ConfigError, match=r"optimizer='test_adde' is not allowed: one of \[.*'test_added'\] "
                                          r"\(did you mean 'test_added'\?\)"):
        RunConfig(optimizer="test_adde")
    with pytest.raises(ConfigError, match=r"weight_decay=0.1 is not allowed: 0 for optimizer 'sgd' "
                                          r"\(decoupled decay exists for \[.*'test_added'\]"):
        RunConfig(optimizer="sgd", weight_decay=0.1)
