"""The optimizers as data: family, clock, defaults, Keras constants, state, memory (SPEC Section 3).

    python -m initmem fields                     # lists the registered optimizers (plugins included)

    from initmem.optimizers import OPTIMIZERS
    spec = OPTIMIZERS["adamw"]
    spec.family, spec.own_clock(l2=0.0)          # "adaptive", "t_adapt"
    spec.default_weight_decay, spec.constants    # 1e-4, {"beta_1": 0.9, ...}

Every floor reads an optimizer from here: RunConfig validates names and defaults against it, the
update (initmem.optim) takes its constants and state slots, the planner its memory, the analysis
its family and clock, Table 1 its constants. No torch is imported: the specs are plain data.

Families (the paper's grouping, SPEC Section 4): "sgd" (sgd, sgd_momentum) forgets on T_SGD, or on
T_L2 when the run has an L2 penalty; "adaptive" (adam, adamw, muon, muon_conv) on T_adapt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

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

ADAM_CONSTANTS = {"beta_1": ADAM_BETA_1, "beta_2": ADAM_BETA_2, "epsilon": EPSILON}
MUON_CONSTANTS = {**ADAM_CONSTANTS, "momentum": MUON_MOMENTUM, "ns_steps": MUON_NS_STEPS,
                  "ns_coefficients": MUON_ABC, "rms_rate": MUON_RMS_RATE}

FAMILY_CLOCK = {"sgd": "t_sgd", "adaptive": "t_adapt"}   # the clock a family forgets on (no L2)
CLOCKS = ("t_sgd", "t_l2", "t_adapt")                    # the paper's three, recorded every epoch


@dataclass(frozen=True)
class OptimizerSpec:
    """What the system needs from one update rule.

    family: "sgd" or "adaptive" (FAMILY_CLOCK); an SGD-family run with l2 > 0 forgets on T_L2
    instead. decoupled_decay: whether weight_decay applies (w -= lr*wd*w
    first); default_weight_decay: what weight_decay=-1 resolves to. slots: optimizer state per
    parameter kind ("default" for the kinds not listed), e.g. adam keeps m and v. muon_kinds: the
    parameter kinds that take the Muon step. state_copies: parameter-sized copies held while
    training (weights, gradient buffers, slots, scratch), measured by bench/bench_memory.py: the
    planner's memory per run. constants: the rule's fixed numbers (shown in Table 1)."""
    name: str
    family: str
    description: str
    slots: Mapping[str, tuple[str, ...]]
    state_copies: float
    decoupled_decay: bool = False
    default_weight_decay: float = 0.0
    muon_kinds: tuple[str, ...] = ()
    constants: Mapping[str, object] = field(default_factory=dict)

    def own_clock(self, l2: float = 0.0) -> str:
        """The clock this optimizer forgets on (SPEC Section 4): T_L2 for the SGD family with l2 > 0."""
        return "t_l2" if self.family == "sgd" and l2 > 0 else FAMILY_CLOCK[self.family]

    def slots_of(self, kind: str) -> tuple[str, ...]:
        return tuple(self.slots.get(kind, self.slots.get("default", ())))

    @property
    def adaptive(self) -> bool:
        return self.family == "adaptive"


OPTIMIZERS: Registry[OptimizerSpec] = Registry("optimizer", "optimizer")


def register_optimizer(spec: OptimizerSpec) -> OptimizerSpec:
    """Add an optimizer (a plugin's too): RunConfig(optimizer=spec.name) is then allowed everywhere."""
    if spec.family not in FAMILY_CLOCK:
        raise ValueError(f"optimizer {spec.name!r}: family={spec.family!r} is not allowed: one of {list(FAMILY_CLOCK)}")
    return OPTIMIZERS.add(spec.name, spec)


_ADAM_SLOTS = {"default": ("m", "v")}
_MUON_SLOTS = {"dense": ("m",), "default": ("m", "v")}
for _spec in (
    OptimizerSpec("sgd", "sgd", "w <- w - lr g", {}, 5.9),
    OptimizerSpec("sgd_momentum", "sgd", "Keras heavy ball: v <- mu v - lr g; w <- w + v (momentum field)",
                  {"default": ("velocity",)}, 6.9),
    OptimizerSpec("adam", "adaptive", "Keras Adam (epsilon outside the square root)", _ADAM_SLOTS, 7.9,
                  constants=ADAM_CONSTANTS),
    OptimizerSpec("adamw", "adaptive", "Adam with decoupled weight decay applied first", _ADAM_SLOTS, 7.9,
                  decoupled_decay=True, default_weight_decay=ADAMW_DECAY, constants=ADAM_CONSTANTS),
    OptimizerSpec("muon", "adaptive", "Keras 3.13 Muon: the dense kernel takes the Muon step, the rest AdamW",
                  _MUON_SLOTS, 7.9, decoupled_decay=True, default_weight_decay=ADAMW_DECAY,
                  muon_kinds=("dense",), constants=MUON_CONSTANTS),
    OptimizerSpec("muon_conv", "adaptive", "Muon on the conv kernels too (flattened; beyond the paper)",
                  {"dense": ("m",), "conv": ("m",), "default": ("m", "v")}, 8.9, decoupled_decay=True,
                  default_weight_decay=ADAMW_DECAY, muon_kinds=("dense", "conv"), constants=MUON_CONSTANTS),
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
