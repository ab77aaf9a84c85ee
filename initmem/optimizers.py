"""The optimizers as data: family, clock, update rule, state, constants, memory (SPEC Section 3).

    python -m initmem fields                     # lists the registered optimizers (plugins included)

    from initmem.optimizers import OPTIMIZERS, OptimizerSpec, Constant, register_optimizer
    spec = OPTIMIZERS["adamw"]
    spec.family, spec.own_clock(l2=0.0)          # "adaptive", "t_adapt"
    spec.default_weight_decay, spec.constants    # 1e-4, {"beta_1": 0.9, ...}
    spec.rule                                    # "initmem.optim_rules:adamw": the update, one function

Every floor reads an optimizer from here: RunConfig validates names and defaults against it, the
update (initmem.optim) calls its rule with its constants and state slots, the planner takes its
memory, the analysis its family and clock, Table 1 its constants. No torch is imported: the specs
are plain data, and the rule is a "module:attribute" reference resolved when a pack is built (or a
callable: a plugin's). Adding an optimizer is one register_optimizer(OptimizerSpec(...)) call, in a
plugin file or here (docs/extending.md works one through).

Families (the paper's grouping, SPEC Section 4): "sgd" (sgd, sgd_momentum) forgets on T_SGD, or on
T_L2 when the run has an L2 penalty; "adaptive" (adam, adamw, muon, muon_conv) on T_adapt.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from initmem.errors import ConfigError
from initmem.fields import check_value, fail, meta
from initmem.registry import Registry

# Keras 3.13 constants (the paper's Table 1; keras.optimizers.Adam / AdamW / Muon defaults).
ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
EPSILON = 1e-7              # Keras Adam/AdamW/Muon epsilon, added to sqrt(v)
MUON_MOMENTUM = 0.95
MUON_NS_STEPS = 5
MUON_ABC = (3.4445, -4.7750, 2.0315)
MUON_RMS_RATE = 0.2
NS_EPS = 1e-7               # added to the Frobenius norm before the Newton-Schulz iterations
ADAMW_DECAY = 1e-4          # the paper's decoupled weight decay for adamw / muon (Table 1)

FAMILY_CLOCK = {"sgd": "t_sgd", "adaptive": "t_adapt"}   # the clock a family forgets on (no L2)
CLOCKS = ("t_sgd", "t_l2", "t_adapt")                    # the paper's three, recorded every epoch
# What a parameter is to the optimizer (initmem.models' param_kinds; initmem.generic.kind_of): a slot
# map is keyed by these ("default": every kind not listed); Muon steps only on kernels.
PARAM_KINDS = ("conv", "dense", "bias", "norm", "other")   # "other": a plain model's parameter of no known layer
KERNEL_KINDS = ("conv", "dense")


@dataclass(frozen=True)
class Constant:
    """One fixed hyperparameter of an update rule, documented and checked like a RunConfig field:
    `allowed` says what values are allowed (the error's words), check(value) -> bool enforces it."""
    value: Any
    meaning: str
    allowed: str = ""
    check: Callable[[Any], bool] | None = None

    @property
    def type(self) -> str:
        """"bool", "int" or "float" (what initmem.fields checks), "" for anything else (a tuple)."""
        v = self.value
        return "bool" if isinstance(v, bool) else "int" if isinstance(v, numbers.Integral) else \
            "float" if isinstance(v, numbers.Real) else ""

    def validate(self, name: str) -> None:
        """The value against its definition: a ConfigError "name=value is not allowed: ..." if not."""
        m = meta(self.meaning, allowed=self.allowed, check=self.check)
        if self.type:
            check_value(name, self.value, self.type, m)
        elif self.check is not None and not self.check(self.value):
            fail(name, self.value, self.allowed)


def _unit(v) -> bool:
    return 0 <= v < 1


ADAM_CONSTANTS = {
    "beta_1": Constant(ADAM_BETA_1, "decay of the first moment m per update", "a number in [0, 1)", _unit),
    "beta_2": Constant(ADAM_BETA_2, "decay of the second moment v per update", "a number in [0, 1)", _unit),
    "epsilon": Constant(EPSILON, "added to sqrt(v) (outside the square root, as Keras)", "a number > 0",
                        lambda v: v > 0),
}
MUON_CONSTANTS = {
    **ADAM_CONSTANTS,   # the variables Muon does not step take AdamW
    "momentum": Constant(MUON_MOMENTUM, "decay of Muon's momentum m (Nesterov)", "a number in [0, 1)", _unit),
    "ns_steps": Constant(MUON_NS_STEPS, "Newton-Schulz iterations", "an integer >= 1",
                         lambda v: isinstance(v, int) and v >= 1),
    "ns_coefficients": Constant(MUON_ABC, "(a, b, c) of the Newton-Schulz quintic", "three numbers",
                                lambda v: len(v) == 3 and all(isinstance(x, numbers.Real) for x in v)),
    "rms_rate": Constant(MUON_RMS_RATE, "step scale: lr * rms_rate * sqrt(max(rows, cols)) * O", "a number > 0",
                         lambda v: v > 0),
}


@dataclass(frozen=True)
class OptimizerSpec:
    """What the system needs from one update rule.

    family: "sgd" or "adaptive" (FAMILY_CLOCK); an SGD-family run with l2 > 0 forgets on T_L2
    instead. rule: the update, a function of initmem.optim_rules.StepBuffers (see there), as a
    callable or a "module:attribute" reference. slots: optimizer state per parameter kind
    ("default" for the kinds not listed), e.g. adam keeps m and v; each is a flat buffer of the pack,
    zero at the start, checkpointed. state_copies: parameter-sized copies held while training
    (weights, gradient buffers, slots, scratch), measured by bench/bench_memory.py: the planner's
    memory per run. decoupled_decay: whether RunConfig.weight_decay may be > 0 (the rule reads it
    per run); default_weight_decay: what weight_decay=-1 resolves to. muon_kinds: the parameter kinds
    that take the Muon step (laid out first, in Newton-Schulz groups of one shape). constants: the
    rule's fixed numbers (shown in Table 1), Constant definitions (checked when registered) or plain
    values; `constants` reads as the values, `constant_docs` holds the definitions."""
    name: str
    family: str
    description: str
    slots: Mapping[str, tuple[str, ...]]
    state_copies: float
    rule: Callable | str
    decoupled_decay: bool = False
    default_weight_decay: float = 0.0
    muon_kinds: tuple[str, ...] = ()
    constants: Mapping[str, Any] = field(default_factory=dict)
    constant_docs: Mapping[str, Constant] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given = dict(self.constants)
        docs = {k: v for k, v in given.items() if isinstance(v, Constant)}
        object.__setattr__(self, "constant_docs", docs)
        object.__setattr__(self, "constants", {k: v.value if isinstance(v, Constant) else v for k, v in given.items()})
        object.__setattr__(self, "slots", {k: tuple(v) for k, v in dict(self.slots).items()})
        object.__setattr__(self, "muon_kinds", tuple(self.muon_kinds))

    def own_clock(self, l2: float = 0.0) -> str:
        """The clock this optimizer forgets on (SPEC Section 4): T_L2 for the SGD family with l2 > 0."""
        return "t_l2" if self.family == "sgd" and l2 > 0 else FAMILY_CLOCK[self.family]

    def slots_of(self, kind: str) -> tuple[str, ...]:
        return tuple(self.slots.get(kind, self.slots.get("default", ())))

    @property
    def adaptive(self) -> bool:
        return self.family == "adaptive"

    def validate(self) -> None:
        """Every field against what the system allows (ConfigErrors that name the field and the spec)."""
        n = self.name
        if self.family not in FAMILY_CLOCK:
            raise ConfigError(f"optimizer {n!r}: family={self.family!r} is not allowed: one of {list(FAMILY_CLOCK)}")
        if not (callable(self.rule) or (isinstance(self.rule, str) and ":" in self.rule)):
            raise ConfigError(f"optimizer {n!r}: rule={self.rule!r} is not allowed: a function of "
                              "initmem.optim_rules.StepBuffers, or a 'module:attribute' reference to one")
        for kind, names in self.slots.items():
            if kind not in PARAM_KINDS + ("default",):
                raise ConfigError(f"optimizer {n!r}: slots key {kind!r} is not allowed: one of "
                                  f"{list(PARAM_KINDS) + ['default']}")
            if not all(isinstance(s, str) and s.isidentifier() for s in names) or len(set(names)) != len(names):
                raise ConfigError(f"optimizer {n!r}: slots[{kind!r}]={names!r} is not allowed: distinct names "
                                  "(identifiers)")
        if not isinstance(self.state_copies, numbers.Real) or not self.state_copies > 0:
            raise ConfigError(f"optimizer {n!r}: state_copies={self.state_copies!r} is not allowed: a number > 0 "
                              "(parameter-sized copies per run)")
        if not set(self.muon_kinds) <= set(KERNEL_KINDS):
            raise ConfigError(f"optimizer {n!r}: muon_kinds={self.muon_kinds!r} is not allowed: kinds among "
                              f"{list(KERNEL_KINDS)}")
        if not isinstance(self.default_weight_decay, numbers.Real) or self.default_weight_decay < 0 or \
                (self.default_weight_decay > 0 and not self.decoupled_decay):
            raise ConfigError(f"optimizer {n!r}: default_weight_decay={self.default_weight_decay!r} is not allowed: "
                              "a number >= 0, and 0 unless decoupled_decay=True")
        for key, const in self.constant_docs.items():
            const.validate(f"{n}.{key}")


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer", "optimizer")


def register_optimizer(spec: OptimizerSpec) -> OptimizerSpec:
    """Add an optimizer (a plugin's too): RunConfig(optimizer=spec.name) is then allowed everywhere,
    and a pack with it updates through spec.rule. The spec is checked first (OptimizerSpec.validate)."""
    spec.validate()
    return OPTIMIZERS.add(spec.name, spec)


_RULES = "initmem.optim_rules:"
_ADAM_SLOTS = {"default": ("m", "v")}
_MUON_SLOTS = {"dense": ("m",), "default": ("m", "v")}
for _spec in (
    OptimizerSpec("sgd", "sgd", "w <- w - lr g", {}, 5.9, _RULES + "sgd"),
    OptimizerSpec("sgd_momentum", "sgd", "Keras heavy ball: v <- mu v - lr g; w <- w + v (momentum field)",
                  {"default": ("velocity",)}, 6.9, _RULES + "sgd_momentum"),
    OptimizerSpec("adam", "adaptive", "Keras Adam (epsilon outside the square root)", _ADAM_SLOTS, 7.9,
                  _RULES + "adam", constants=ADAM_CONSTANTS),
    OptimizerSpec("adamw", "adaptive", "Adam with decoupled weight decay applied first", _ADAM_SLOTS, 7.9,
                  _RULES + "adamw", decoupled_decay=True, default_weight_decay=ADAMW_DECAY, constants=ADAM_CONSTANTS),
    OptimizerSpec("muon", "adaptive", "Keras 3.13 Muon: the dense kernel takes the Muon step, the rest AdamW",
                  _MUON_SLOTS, 7.9, _RULES + "muon", decoupled_decay=True, default_weight_decay=ADAMW_DECAY,
                  muon_kinds=("dense",), constants=MUON_CONSTANTS),
    OptimizerSpec("muon_conv", "adaptive", "Muon on the conv kernels too (flattened; beyond the paper)",
                  {"dense": ("m",), "conv": ("m",), "default": ("m", "v")}, 8.9, _RULES + "muon",
                  decoupled_decay=True, default_weight_decay=ADAMW_DECAY, muon_kinds=("dense", "conv"),
                  constants=MUON_CONSTANTS),
):
    register_optimizer(_spec)
del _spec


def decoupled() -> tuple[str, ...]:
    """The registered optimizers that take decoupled weight decay."""
    return tuple(n for n, s in OPTIMIZERS.items() if s.decoupled_decay)


def adaptive() -> tuple[str, ...]:
    """The registered optimizers of the Adam family (their clock is T_adapt)."""
    return tuple(n for n, s in OPTIMIZERS.items() if s.adaptive)


def own_clock(optimizer: str, l2: float = 0.0) -> str:
    """The clock an optimizer forgets on: T_adapt for the Adam family, T_L2 for the SGD family with
    l2 > 0, else T_SGD (SPEC Section 4)."""
    return OPTIMIZERS[optimizer].own_clock(l2)
