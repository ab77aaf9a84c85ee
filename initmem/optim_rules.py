"""The update rules: one pure function per optimizer over the pack's flat buffers (SPEC Section 3).

    python -m pytest tests/test_optim.py          # each rule against Keras's numbers and a float64 reference

    from initmem.optim_rules import StepBuffers
    def signsgd(s: StepBuffers) -> list:         # a rule of one's own (docs/extending.md: Lion)
        a = s.all
        torch.sub(a.w, torch.sign(a.g).mul_(s.lr(a)), out=a.new_w)
        return []                                # no state
    register_optimizer(OptimizerSpec("signsgd", "adaptive", "w <- w - lr sign(g)", {}, 5.9, signsgd))

A rule is named by its OptimizerSpec (rule="initmem.optim_rules:adam", or a callable) and called by
PackedOptimizer.update once per update of the whole pack. Before the call the pack's gradients are
gathered into one flat buffer and the L2 term's gradient (2 * l2 * W on the kernels) is added; after
it, PackedOptimizer writes the new weights and the new slot values back where the run is active
(torch.where: an inactive or diverged run keeps its weights and state bit for bit), for every rule.
Every parameter of every run sits in the flat buffers, so a rule is a few element-wise ops over all
of them; slice m of each tensor is run m's, and a rule that computes element by element (or, like
Newton-Schulz, per slice) keeps the runs apart.

What the rule receives, s (StepBuffers), for the elements [0, n) of the pack:

    s.all, s.muon, s.rest   Parts: every element [0, n); the Muon kernels [0, k) (spec.muon_kinds,
                            laid out first; k = 0 without); the others [k, n)
    part.w                  the weights (read only: the write-back assigns them)
    part.g                  the gradient, L2 included; scratch: the rule may overwrite it
    part.new_w              where the rule writes the new weights (the scratch buffer); the rule
                            must write every element of s.all.new_w
    part.slots[name]        the optimizer state of the spec's slots over the part (read only;
                            each slot is zero before the first update)
    part.run                the run index of every element (int32), part.size its length
    s.lr(part)              the scheduled lr of each element's run [per update], filled once per
                            update on first use (a view of one buffer: do not write it)
    s.wd(part, out=None)    the run's decoupled weight decay per element (RunConfig.weight_decay)
    s.alpha(part, out=None) Adam's lr * sqrt(1 - b2^t) / (1 - b1^t) per element, t = update + 1
                            (b1, b2: the spec's beta_1 / beta_2, else Adam's)
    s.c                     the spec's constants (values), s.momentum RunConfig.momentum
    s.muon_groups, s.u, s.ns_out   Muon: [(u as (G*M, rows, cols), its NewtonSchulz, scale)], the
                            (k,) buffer u those views share, and ns_out, where NewtonSchulz writes

and what it returns: the new slot values, part.new(m=m_new, v=v_new) per part (lists, added up);
a slot not returned keeps its value. A rule may write into g, new_w and tensors it makes; it must not
write w or a slot in place, nor read a value to the host (no .item(), no data-dependent shapes), so
that an update stays one graph under torch.compile (tests/test_step.py) and launches few ops.

The Keras rules, in Keras's operation order (each in-place op computes the same IEEE value as Keras's
expression: a*b == b*a bitwise):

* sgd:           w <- w - g*lr
* sgd_momentum:  v <- v*mu - g*lr;  w <- w + v                       (no Nesterov)
* adam:          m <- m + (g-m)*(1-b1);  v <- v + (g^2-v)*(1-b2);  w <- w - m*alpha/(sqrt(v)+eps)
                 (m and v as torch.lerp, one op each; its kernel may fuse the multiply-add)
* adamw:         w <- w - w*wd*lr on every variable first (decay), then adam
* muon:          decay on every variable; the Muon kernels take m <- m + (g + m*(mu-1)) (= 0.95 m + g),
                 u = g + 0.95 m, O = NS5(u) in float32, w <- w - lr*O*sqrt(max(rows, cols))*0.2;
                 every other variable takes adam.  muon_conv is the same rule with conv kernels among
                 the Muon kinds (flattened to (c_out, c_in*kh*kw)).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

Write = tuple  # (target slot view, new value, Part): what PackedOptimizer writes back where active


class Part:
    """Elements [lo, hi) of the flat buffers, as the views a rule uses (made by PackedOptimizer.views)."""
    __slots__ = ("name", "lo", "hi", "w", "g", "new_w", "lr", "run", "mask", "slots")

    def __init__(self, name: str, lo: int, hi: int, w: Tensor, g: Tensor, new_w: Tensor, lr: Tensor, run: Tensor,
                 mask: Tensor, slots: Mapping[str, Tensor]):
        self.name, self.lo, self.hi = name, lo, hi
        self.w, self.g, self.new_w, self.lr, self.run, self.mask = w, g, new_w, lr, run, mask
        self.slots = dict(slots)

    @property
    def size(self) -> int:
        return self.hi - self.lo

    def new(self, **values: Tensor) -> list[Write]:
        """The rule's new values of this part's slots, for the write-back: part.new(m=m_new)."""
        out = []
        for name, value in values.items():
            if name not in self.slots:
                raise ValueError(f"the rule returned slot {name!r} for the elements {self.name} [{self.lo}, {self.hi}),"
                                 f" whose slots are {sorted(self.slots)} (OptimizerSpec.slots)")
            target = self.slots[name]
            if value.shape != target.shape:
                raise ValueError(f"the rule returned {name}={tuple(value.shape)} for {self.name}, whose {name} is "
                                 f"{tuple(target.shape)}")
            out.append((target, value, self))
        return out


class StepBuffers:
    """What a rule may use for one update (the module docstring lists it)."""

    def __init__(self, parts: Mapping[str, Part], hp_rows: tuple[Tensor, Tensor, Tensor], constants: Mapping[str, Any],
                 momentum: float, muon_groups: list, u: Tensor | None, ns_out: Tensor | None):
        self.all, self.muon, self.rest = parts["all"], parts["muon"], parts["rest"]
        self._lr_row, self._wd_row, self._alpha_row = hp_rows
        self.c, self.momentum = constants, momentum
        self.muon_groups, self.u, self.ns_out = muon_groups, u, ns_out
        self._lr_filled = False

    def lr(self, part: Part) -> Tensor:
        """The lr of each element's run over `part` (one index_select of the whole pack, once per update)."""
        if not self._lr_filled:
            torch.index_select(self._lr_row, 0, self.all.run, out=self.all.lr)
            self._lr_filled = True
        return part.lr

    def wd(self, part: Part, out: Tensor | None = None) -> Tensor:
        """The decoupled weight decay of each element's run over `part` (into `out` when given)."""
        return _per_element(self._wd_row, part, out)

    def alpha(self, part: Part, out: Tensor | None = None) -> Tensor:
        """Adam's bias-corrected step size of each element's run over `part` (into `out` when given)."""
        return _per_element(self._alpha_row, part, out)


def _per_element(row: Tensor, part: Part, out: Tensor | None) -> Tensor:
    if out is None:
        return torch.index_select(row, 0, part.run)
    return torch.index_select(row, 0, part.run, out=out)


# --- the Keras rules --------------------------------------------------------------------------------------

def sgd(s: StepBuffers) -> list[Write]:
    a = s.all
    torch.sub(a.w, a.g.mul_(s.lr(a)), out=a.new_w)                          # w - g*lr
    return []


def sgd_momentum(s: StepBuffers) -> list[Write]:
    a = s.all
    vel = (a.slots["velocity"] * s.momentum).sub_(a.g.mul_(s.lr(a)))       # v*mu - g*lr
    torch.add(a.w, vel, out=a.new_w)
    return a.new(velocity=vel)


def decay(s: StepBuffers) -> None:
    """Decoupled weight decay into new_w, on every variable (Keras's base optimizer, before the step)."""
    a = s.all
    lr = s.lr(a)
    s.wd(a, out=a.new_w)
    torch.sub(a.w, a.new_w.mul_(a.w).mul_(lr), out=a.new_w)                 # w - (w*wd)*lr


def adam_step(s: StepBuffers, p: Part, decayed: bool = False) -> list[Write]:
    """Adam over part p; decayed: new_w already holds the decayed weights (the step is taken from them)."""
    b1, b2, eps = s.c["beta_1"], s.c["beta_2"], s.c["epsilon"]
    g, m, v = p.g, p.slots["m"], p.slots["v"]
    gsq = g.square()
    v_new = torch.lerp(v, gsq, 1 - b2, out=gsq)                             # v + (g^2 - v) * (1 - b2)
    m_new = torch.lerp(m, g, 1 - b1, out=g)                                 # m + (g - m) * (1 - b1)
    step = s.alpha(p).mul_(m_new)
    step.div_(torch.sqrt(v_new).add_(eps))                                   # m*alpha / (sqrt(v) + eps)
    if decayed:
        p.new_w.sub_(step)
    else:
        torch.sub(p.w, step, out=p.new_w)
    return p.new(m=m_new, v=v_new)


def muon_step(s: StepBuffers, p: Part) -> list[Write]:
    """Keras Muon over the Muon kernels p (new_w already decayed): momentum, Nesterov, Newton-Schulz."""
    mu = s.c["momentum"]
    m = p.slots["m"]
    m_new = (m * (mu - 1)).add_(p.g).add_(m)                                 # m + (g + m*(mu-1))
    torch.mul(m_new, mu, out=s.u).add_(p.g)                                  # u = g + mu*m
    for u_g, ns, _ in s.muon_groups:                                         # O = NS5(u) into ns_out
        ns(u_g)
    torch.mul(s.lr(p), s.ns_out, out=s.u)                                    # lr * O, then * scale
    for u_g, _, scale in s.muon_groups:
        u_g.mul_(scale)
    p.new_w.sub_(s.u)                                                        # w - (lr*O)*scale
    return p.new(m=m_new)


def adam(s: StepBuffers) -> list[Write]:
    return adam_step(s, s.all)


def adamw(s: StepBuffers) -> list[Write]:
    decay(s)
    return adam_step(s, s.all, decayed=True)


def muon(s: StepBuffers) -> list[Write]:
    decay(s)
    out = muon_step(s, s.muon) if s.muon.size else []
    return out + (adam_step(s, s.rest, decayed=True) if s.rest.size else [])
