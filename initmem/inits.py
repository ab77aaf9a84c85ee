"""Initialisation schemes: how a run's kernels, biases and norm parameters are drawn (SPEC Section 3).

    python -m initmem fields                        # init, sigma_first, sigma_last, bias_std, width_scaling
    python -m initmem train --init orthogonal --sigma-w 0.5 2.0 ...

    from initmem.inits import INITS, register_init, init_run
    init_run(params, kinds, run, generator)         # one run's parameters (per-run tensors), in place

The paper's scheme (init="paper", the default; its run_ids are the ones results were written with):
every conv and dense kernel W ~ N(0, sigma^2 / fan_in), fan_in = kh*kw*c_in (dense: inputs); every
bias ~ N(0, bias_std^2) (0.2, not scaled by sigma_w); norm gamma = 1, beta = 0. sigma is sigma_w,
except that the first kernel (model order) takes sigma_first and the last sigma_last when those are
set (>= 0; -1 = sigma_w). width_scaling="mup" scales the last kernel's std by 1/sqrt(width) (the
muP output layer: std ~ 1/fan_in instead of 1/sqrt(fan_in), equal to the paper's at width 1).

A scheme is a function (shape, std, generator) -> float64 tensor of that shape with that per-entry
scale; "orthogonal" draws Q from a QR of a Gaussian (rows orthonormal, or columns when rows > cols)
and scales it to ||W||_F^2 = rows * std^2 * fan_in, the Gaussian's expectation. A plugin registers
its own (register_init). Draws come from the run's own CPU generator in model order, in float64,
and are then cast to the parameter's dtype and device, so a run draws the same numbers in any pack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from initmem.registry import Registry

BIAS_STD = 0.2   # the paper's bias std (SPEC Section 3); RunConfig.bias_std's default


@dataclass(frozen=True)
class InitSpec:
    """draw(shape, std, generator) -> a float64 tensor: a kernel of `shape` (out, ...) whose entries
    have scale `std` = sigma / sqrt(fan_in)."""
    name: str
    draw: Callable
    description: str = ""


INITS: Registry[InitSpec] = Registry("init", "init")


def register_init(name: str, draw: Callable, description: str = "") -> InitSpec:
    """Add an initialisation scheme (a plugin's too): RunConfig(init=name) is then allowed."""
    return INITS.add(name, InitSpec(name, draw, description))


def _gaussian(shape, std, generator):
    import torch
    return torch.randn(shape, generator=generator, dtype=torch.float64) * std


def _orthogonal(shape, std, generator):
    import torch
    rows, cols = shape[0], math.prod(shape[1:])
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r))          # a uniform (Haar) draw, not QR's sign convention
    q = q.T if rows < cols else q                  # (rows, cols): orthonormal rows, or columns
    scale = std * math.sqrt(cols) * math.sqrt(rows / min(rows, cols))   # ||W||_F^2 = rows * cols * std^2
    return (q * scale).reshape(shape)


register_init("paper", _gaussian, "N(0, sigma^2 / fan_in) kernels (the paper, SPEC Section 3)")
register_init("orthogonal", _orthogonal, "orthogonal kernels with the paper's Frobenius norm")


@dataclass(frozen=True)
class RunInit:
    """The init fields of one run (RunConfig's, or the paper's defaults at a sigma_w)."""
    sigma_w: float
    init: str = "paper"
    sigma_first: float = -1.0
    sigma_last: float = -1.0
    bias_std: float = BIAS_STD
    width_scaling: str = "standard"
    width: float = 1.0

    @classmethod
    def of(cls, run) -> "RunInit":
        """From a RunConfig, or from a bare sigma_w (the paper's scheme)."""
        if isinstance(run, (int, float)):
            return cls(float(run))
        return cls(run.sigma_w, run.init, run.sigma_first, run.sigma_last, run.bias_std, run.width_scaling, run.width)

    def kernel_sigma(self, position: int, n_kernels: int) -> float:
        """sigma of the kernel at `position` (model order) of `n_kernels`."""
        if position == 0 and self.sigma_first >= 0:
            return self.sigma_first
        if position == n_kernels - 1 and self.sigma_last >= 0:
            return self.sigma_last
        return self.sigma_w


def init_run(params: Sequence[tuple[str, "object"]], kinds: dict[str, str], run, generator) -> None:
    """Initialise one run's parameters in place: `params` (name, tensor of the run's own shape) in
    model order, `kinds` name -> conv | dense | bias | norm | other ("norm" names ending in "weight"
    are gamma = 1, others beta = 0; "other" is left as it is), drawn from `generator` in that order."""
    import torch
    ri = RunInit.of(run)
    scheme = INITS[ri.init]
    kernels = [n for n, _ in params if kinds[n] in ("conv", "dense")]
    with torch.no_grad():
        for name, p in params:
            kind = kinds[name]
            if kind == "norm":
                p.fill_(1.0 if name.endswith("weight") else 0.0)
                continue
            if kind == "bias":
                p.copy_(_gaussian(tuple(p.shape), ri.bias_std, generator))
                continue
            if kind == "other":   # a plain model's own parameter: its constructor's value stays (initmem.generic)
                continue
            pos = kernels.index(name)
            std = ri.kernel_sigma(pos, len(kernels)) / math.sqrt(math.prod(p.shape[1:]))
            if ri.width_scaling == "mup" and pos == len(kernels) - 1:
                std /= math.sqrt(ri.width)
            p.copy_(scheme.draw(tuple(p.shape), std, generator))
