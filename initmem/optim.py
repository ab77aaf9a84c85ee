"""Keras 3.13 update rules over packed tensors (SPEC Section 3, "Optimizers").

Every parameter carries a leading run dimension M: slice ``p[m]`` belongs to run m of the pack.
The per-run hyperparameters (the scheduled lr and the decoupled weight decay) are vectors of
length M.  Runs never interact: each update of slice m reads only slice m (element-wise ops,
per-slice Frobenius norms, batched matmuls), so a NaN in one run cannot reach another, and a run
marked inactive keeps its parameters and optimizer state exactly as they were.

    from initmem.optim import PackedOptimizer, schedule_factor, l2_penalty
    opt = PackedOptimizer(model.named_parameters(), kinds, "adamw")
    for k in range(K):
        loss = (ce_per_run + l2_penalty(kernels, l2)).sum(); loss.backward()
        opt.step(lr0 * schedule_factor(k, K, alpha, "cosine"), weight_decay, active)

The arithmetic follows Keras's own operation order (not PyTorch's optimizers):

* sgd:           w <- w - g*lr
* sgd_momentum:  v <- v*mu - g*lr;  w <- w + v                       (no Nesterov)
* adam:          alpha = lr*sqrt(1-b2^t)/(1-b1^t), t = iterations+1
                 m <- m + (g-m)*(1-b1);  v <- v + (g^2-v)*(1-b2);  w <- w - m*alpha/(sqrt(v)+1e-7)
* adamw:         w <- w - w*wd*lr on every variable first, then adam
* muon:          decay first on every variable; "dense" kernels take the Muon step
                 m <- m + (g + m*(mu-1)) (= 0.95 m + g);  u = g + 0.95 m;  O = NS5(u) in float32;
                 w <- w - lr*O*sqrt(max(rows, cols))*0.2;  every other variable takes adam.
* muon_conv:     as muon, and "conv" kernels also take the Muon step, flattened to
                 (c_out, c_in*kh*kw).

Our dense kernels are (out, in) where Keras's are (in, out); after the Newton-Schulz
"transpose if rows > cols" both orientations give the identical (min, max) matrix, so the
Muon step is the same computation as Keras's.  The iteration counter (adam's t) is shared by
the pack and advances on every step, also for runs marked inactive.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from initmem.config import OPTIMIZERS
from initmem.metrics import lr_schedule

KINDS = ("conv", "dense", "bias", "norm")

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
EPSILON = 1e-7              # Keras Adam/AdamW/Muon epsilon, added to sqrt(v)
MUON_MOMENTUM = 0.95
MUON_NS_STEPS = 5
MUON_ABC = (3.4445, -4.7750, 2.0315)
MUON_RMS_RATE = 0.2
NS_EPS = 1e-7               # added to the Frobenius norm before the NS iterations
NS_DTYPE = torch.float32    # SPEC: Newton-Schulz runs in float32 whatever the parameter dtype


def schedule_factor(k: int, total_steps: int, alpha: float, schedule: str) -> float:
    """lr_k / lr0 for update k (k = 0, 1, ...): Keras CosineDecay(decay_steps=K, alpha) or 1.
    The formula lives in initmem.metrics.lr_schedule (shared with the clocks)."""
    return lr_schedule(k, total_steps, 1.0, alpha, schedule)


def l2_penalty(kernels: Sequence[Tensor], l2: Tensor) -> Tensor:
    """Keras L2 penalty per run: l2[m] * sum over kernels of sum(W[m]**2); shape (M,).

    Summed the way Keras sums layer losses: sum over kernels of (l2 * sum(W**2)).
    Differentiable (train.py adds it to each run's loss; autograd gives 2*l2*W).
    """
    kernels = list(kernels)
    if not kernels:
        raise ValueError("l2_penalty needs at least one kernel")
    m = kernels[0].shape[0]
    total = None
    for w in kernels:
        if w.shape[0] != m:
            raise ValueError(f"kernel with run dimension {w.shape[0]} in a pack of {m}")
        c = torch.as_tensor(l2, dtype=w.dtype, device=w.device).reshape(-1).expand(m)
        term = c * w.reshape(m, -1).square().sum(dim=1)
        total = term if total is None else total + term
    return total


def newton_schulz5(u: Tensor, steps: int = MUON_NS_STEPS, dtype: torch.dtype | None = None) -> Tensor:
    """Keras Muon's zeropower_via_newtonschulz5 on a batch (M, rows, cols), per slice.

    Computed in ``dtype`` (default NS_DTYPE = float32) and returned in u's dtype.  Each slice is
    divided by its own Frobenius norm; the matmuls are batched, so slices never mix.
    """
    a, b, c = MUON_ABC
    out_dtype = u.dtype
    x = u.to(NS_DTYPE if dtype is None else dtype)
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.mT
    x = x / (torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True) + NS_EPS)
    for _ in range(steps):
        temp_a = x @ x.mT
        temp_b = b * temp_a + (c * temp_a) @ temp_a   # Keras: b * A + c * A @ A, left to right
        x = a * x + temp_b @ x
    if tall:
        x = x.mT
    return x.to(out_dtype)


class PackedOptimizer:
    """Keras update rules applied to packed parameters (leading run dimension M).

    ``param_kinds[name]`` is one of conv | dense | bias | norm; conv kernels are
    (M, C_out, C_in, kh, kw), dense kernels (M, out, in), the others (M, C).
    The iteration counter is shared by the pack (Keras ``iterations``; adam uses t = it + 1).
    A parameter whose ``.grad`` is None is skipped entirely (no decay), as Keras skips a
    variable without gradient.
    """

    def __init__(self, named_params: Iterable[tuple[str, Tensor]], param_kinds: dict[str, str],
                 optimizer: str, momentum: float = 0.9):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r} is not allowed: one of {list(OPTIMIZERS)}")
        self.optimizer = optimizer
        self.momentum = float(momentum)
        self.iterations = 0
        self.names: list[str] = []
        self.params: list[Tensor] = []
        self.kinds: list[str] = []
        self.state: dict[str, dict[str, Tensor]] = {}
        m_runs = None
        for name, p in named_params:
            if name in self.state:
                raise ValueError(f"parameter {name!r} given twice")
            if name not in param_kinds:
                raise ValueError(f"parameter {name!r} has no entry in param_kinds")
            kind = param_kinds[name]
            if kind not in KINDS:
                raise ValueError(f"param_kinds[{name!r}]={kind!r} is not allowed: one of {list(KINDS)}")
            want_ndim = {"conv": 5, "dense": 3}.get(kind, 2)
            if p.ndim != want_ndim:
                raise ValueError(f"parameter {name!r} of kind {kind!r} has shape {tuple(p.shape)};"
                                 f" expected {want_ndim} dims (leading run dimension M)")
            if m_runs is None:
                m_runs = p.shape[0]
            elif p.shape[0] != m_runs:
                raise ValueError(f"parameter {name!r} has {p.shape[0]} runs, others {m_runs}")
            self.names.append(name)
            self.params.append(p)
            self.kinds.append(kind)
            self.state[name] = {slot: torch.zeros_like(p, memory_format=torch.preserve_format)
                                for slot in self._slots(kind)}
        if not self.params:
            raise ValueError("PackedOptimizer needs at least one parameter")
        self.num_runs = int(m_runs)

    # --- routing ------------------------------------------------------------------------------
    def _uses_muon(self, kind: str) -> bool:
        if self.optimizer == "muon":
            return kind == "dense"
        if self.optimizer == "muon_conv":
            return kind in ("dense", "conv")
        return False

    def _slots(self, kind: str) -> tuple[str, ...]:
        if self.optimizer == "sgd":
            return ()
        if self.optimizer == "sgd_momentum":
            return ("velocity",)
        if self._uses_muon(kind):
            return ("m",)
        return ("m", "v")

    # --- the update -----------------------------------------------------------------------------
    def _per_run(self, x, what: str, p: Tensor, cache: dict) -> Tensor:
        """x as a (M, 1, ..., 1) tensor in p's dtype/device (one conversion per step and dtype)."""
        key = (what, p.device, p.dtype)
        t = cache.get(key)
        if t is None:
            dtype = torch.bool if what == "active" else p.dtype
            t = torch.as_tensor(x).to(device=p.device, dtype=dtype).reshape(-1)
            if t.numel() == 1:
                t = t.expand(self.num_runs)
            if t.numel() != self.num_runs:
                raise ValueError(f"{what} has {t.numel()} entries for a pack of {self.num_runs} runs")
            cache[key] = t
        return t.reshape((self.num_runs,) + (1,) * (p.ndim - 1))

    @staticmethod
    def _bias_correction(t: int, dtype: torch.dtype) -> tuple[float, float]:
        """(sqrt(1 - b2^t), 1 - b1^t) as Keras computes them: power(cast(beta), cast(t)) in the
        variable's dtype.  Done in NumPy on the host (no device round trip); the values are exact
        in that dtype.  Float matters: torch's integer-power path rounds differently, and
        1 - b2^t amplifies one ulp of b2^t to ~1e-5 relative."""
        f = np.float64 if dtype == torch.float64 else np.float32
        b1_power = f(ADAM_BETA_1) ** f(t)
        b2_power = f(ADAM_BETA_2) ** f(t)
        return float(np.sqrt(f(1) - b2_power)), float(f(1) - b1_power)

    @torch.no_grad()
    def step(self, lr: Tensor, weight_decay: Tensor, active: Tensor | None = None) -> None:
        """One update of every run: lr (M,) is lr0 * schedule_factor(k); weight_decay (M,).

        ``active`` (M,) bool: runs marked False keep parameters and state bit-for-bit.
        ``weight_decay`` is read only by adamw/muon/muon_conv (config forces 0 elsewhere).
        """
        opt = self.optimizer
        t = self.iterations + 1
        cache: dict = {}
        for name, p, kind in zip(self.names, self.params, self.kinds):
            g = p.grad
            if g is None:
                continue
            g = g.to(p.dtype)
            lr_b = self._per_run(lr, "lr", p, cache)
            mask = None if active is None else self._per_run(active, "active", p, cache)
            st = self.state[name]
            new: dict[str, Tensor] = {}
            w = p
            if opt == "sgd":
                w = w - g * lr_b
            elif opt == "sgd_momentum":
                vel = st["velocity"] * self.momentum - g * lr_b
                new["velocity"] = vel
                w = w + vel
            else:
                if opt != "adam":   # decoupled decay first, on every variable (Keras base optimizer)
                    wd_b = self._per_run(weight_decay, "weight_decay", p, cache)
                    w = w - w * wd_b * lr_b
                if self._uses_muon(kind):
                    w, new["m"] = self._muon(w, g, st["m"], lr_b)
                else:
                    w, new["m"], new["v"] = self._adam(w, g, st["m"], st["v"], lr_b,
                                                       *self._bias_correction(t, p.dtype))
            if mask is None:
                p.copy_(w)
                for slot, val in new.items():
                    st[slot].copy_(val)
            else:
                p.copy_(torch.where(mask, w, p))
                for slot, val in new.items():
                    st[slot].copy_(torch.where(mask, val, st[slot]))
        self.iterations += 1

    @staticmethod
    def _adam(w: Tensor, g: Tensor, m: Tensor, v: Tensor, lr_b: Tensor, sqrt_1m_b2t: float, one_m_b1t: float):
        alpha = lr_b * sqrt_1m_b2t / one_m_b1t
        m = m + (g - m) * (1 - ADAM_BETA_1)
        v = v + (g.square() - v) * (1 - ADAM_BETA_2)
        w = w - (m * alpha) / (torch.sqrt(v) + EPSILON)
        return w, m, v

    def _muon(self, w: Tensor, g: Tensor, m: Tensor, lr_b: Tensor):
        mu = MUON_MOMENTUM
        m = m + (g + m * (mu - 1))
        u = g + mu * m
        mat = u.reshape(u.shape[0], u.shape[1], -1)        # (M, rows, cols); conv: (M, c_out, c_in*kh*kw)
        rows, cols = mat.shape[1], mat.shape[2]
        o = newton_schulz5(mat).reshape(u.shape)
        w = w - (lr_b * o) * math.sqrt(max(rows, cols)) * MUON_RMS_RATE
        return w, m

    # --- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "iterations": int(self.iterations),
            "state": {name: {slot: t.detach().clone() for slot, t in slots.items()}
                      for name, slots in self.state.items()},
        }

    def load_state_dict(self, d: dict) -> None:
        if d.get("optimizer") != self.optimizer:
            raise ValueError(f"state is for optimizer {d.get('optimizer')!r}, not {self.optimizer!r}")
        state = d["state"]
        if set(state) != set(self.state):
            raise ValueError(f"state names differ: missing {sorted(set(self.state) - set(state))},"
                             f" unexpected {sorted(set(state) - set(self.state))}")
        for name, slots in self.state.items():
            if set(state[name]) != set(slots):
                raise ValueError(f"state slots of {name!r} differ: {sorted(state[name])} vs {sorted(slots)}")
            for slot, t in slots.items():
                src = state[name][slot]
                if tuple(src.shape) != tuple(t.shape):
                    raise ValueError(f"state {name}/{slot} has shape {tuple(src.shape)}, expected {tuple(t.shape)}")
                with torch.no_grad():
                    t.copy_(src)
        self.momentum = float(d.get("momentum", self.momentum))
        self.iterations = int(d["iterations"])
