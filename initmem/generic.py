"""Any PyTorch model of one run, trained in packs: the runs' parameters stacked, the forward vmapped.

    python -m initmem train --plugin my_model.py --arch my_mlp --sigma-w 0.5 2.0 ...

    from initmem.generic import FuncPack
    net = FuncPack(build, cfg, n_runs=4)            # build(cfg) -> nn.Module: (B, C, H, W) -> (B, classes)
    net.init_(runs, generators)                     # the run's init scheme (initmem.inits), per run
    logits = net(x)                                 # (M, B, C, H, W) -> (M, B, classes)

The interface is the packed networks' (initmem.models.PackedNet): every parameter has a leading run
dimension M (torch.func.stack_module_state of M instances), `param_kinds` says what each parameter
is (conv / dense kernels and their biases take the paper's init and the L2 penalty; norm layers'
weight = 1, bias = 0; anything else ("other") keeps the value the module's constructor gave it,
built under a seed drawn from the run's init generator), and the forward is
torch.vmap(functional_call) over the runs, so run m only ever reads its own parameters.

BatchNorm updates its running statistics in place, which vmap cannot do: a model with BatchNorm
trains in packs of one (the planner plans it so; here n_runs > 1 is refused). The modules' own
randomness (dropout) is refused by vmap too (randomness="error"): use a model without it.
"""

from __future__ import annotations

import copy
from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch import Tensor

from initmem.inits import init_run

NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
SEP = "__"  # "a.b.weight" -> parameter "a__b__weight" (module attribute names cannot hold dots)


def kind_of(module: nn.Module, p_name: str) -> str:
    """conv | dense | bias | norm | other: what a parameter of `module` is to the optimizer and the init."""
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv" if p_name == "weight" else "bias"
    if isinstance(module, nn.Linear):
        return "dense" if p_name == "weight" else "bias"
    if isinstance(module, NORM_TYPES):
        return "norm"
    return "other"


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class FuncPack(nn.Module):
    """M runs of a plain model (see the module docstring)."""

    def __init__(self, build: Callable, cfg, n_runs: int, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu"):
        super().__init__()
        self.build, self.cfg, self.n_runs = build, cfg, n_runs
        modules = [build(cfg).to(dtype=dtype, device=device) for _ in range(n_runs)]
        self.batchnorm = has_batchnorm(modules[0])
        if self.batchnorm and n_runs > 1:
            raise ValueError(f"arch={cfg.arch!r} holds BatchNorm, whose running statistics vmap cannot update: it "
                             f"trains in packs of one (got {n_runs} runs; use --max-pack-size 1)")
        params, buffers = torch.func.stack_module_state(modules)
        self._names = list(params)                               # the module's own names, model order
        for name in self._names:
            self.register_parameter(name.replace(".", SEP), nn.Parameter(params[name]))
        for name, b in buffers.items():
            self.register_buffer(name.replace(".", SEP), b)
        self._buffer_names = list(buffers)
        kinds = {f"{mn}.{pn}" if mn else pn: kind_of(m, pn)
                 for mn, m in modules[0].named_modules() for pn, _ in m.named_parameters(recurse=False)}
        self.param_kinds = {n.replace(".", SEP): kinds[n] for n in self._names}
        self.kernel_names = [n for n in self.param_kinds if self.param_kinds[n] in ("conv", "dense")]
        base = copy.deepcopy(modules[0]).to("meta")              # the structure only: its tensors come from here
        object.__setattr__(self, "_base", base)                  # not a submodule: no parameters of its own
        self.active: Tensor | None = None                        # the packed nets' BN mask: nothing to mask here

    def train(self, mode: bool = True) -> "FuncPack":
        super().train(mode)
        self._base.train(mode)
        return self

    def _tensors(self) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        p = {n: getattr(self, n.replace(".", SEP)) for n in self._names}
        b = {n: getattr(self, n.replace(".", SEP)) for n in self._buffer_names}
        return p, b

    def forward(self, x: Tensor) -> Tensor:
        """x (M, B, C, H, W) -> logits (M, B, classes)."""
        assert x.shape[0] == self.n_runs, f"input has {x.shape[0]} runs, the pack has {self.n_runs}"
        params, buffers = self._tensors()
        if self.n_runs == 1:   # no vmap: BatchNorm's running statistics update in place in the buffers
            one = ({k: v[0] for k, v in params.items()}, {k: v[0] for k, v in buffers.items()})
            return torch.func.functional_call(self._base, one, (x[0],)).unsqueeze(0)

        def run(p, b, xb):
            return torch.func.functional_call(self._base, (p, b), (xb,))
        return torch.vmap(run, randomness="error")(params, buffers, x)

    @torch.no_grad()
    def init_(self, runs: Sequence, generators: Sequence[torch.Generator]) -> None:
        """Per run: a fresh module built under a seed from its init generator gives the "other"
        parameters and the buffers; then the run's init scheme draws kernels, biases and norms."""
        if len(runs) != self.n_runs or len(generators) != self.n_runs:
            raise ValueError(f"init_ needs {self.n_runs} runs and generators, got {len(runs)} and {len(generators)}")
        params, buffers = self._tensors()
        for m, (run, g) in enumerate(zip(runs, generators)):
            seed = int(torch.randint(0, 2**62, (1,), generator=g))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                fresh = self.build(self.cfg)
            own = dict(fresh.named_parameters())
            for n in self._names:
                if self.param_kinds[n.replace(".", SEP)] == "other":
                    params[n][m].copy_(own[n])
            for n, b in dict(fresh.named_buffers()).items():
                buffers[n][m].copy_(b)
            init_run([(n.replace(".", SEP), params[n][m]) for n in self._names], self.param_kinds, run, g)

    def n_params_per_run(self) -> int:
        return sum(p.numel() for p in self.parameters()) // self.n_runs
