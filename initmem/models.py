"""Packed ResNets: M independent runs (a "pack") step together, each on its own batch.

    from initmem.models import build_model
    net = build_model(cfg, n_runs=4)                          # every parameter has a leading run dim M=4
    net.init_([0.5, 1.0, 1.5, 2.0], [torch.Generator().manual_seed(s) for s in (0, 1, 42, 123)])
    logits = net(x)                                           # (M, B, 3, H, W) -> (M, B, 10)

Mechanism (chosen by measuring, see bench/bench_packing.py): grouped convolutions. Inside the
network the activations of all runs sit side by side in the channel dimension, (B, M*C, H, W).
A conv is one F.conv2d with groups=M whose weight is a view of the (M, C_out, C_in, kh, kw)
parameter, so run m only ever reads its own C channels. Everything per channel (bias,
BatchNorm, ReLU, pooling) is then per run for free; LayerNorm and the option-A shortcut view the
activations as (B, M, C, H, W); the dense head is a batched matmul over runs. No op mixes runs,
so a run in a pack computes what it computes alone and a NaN in one run cannot reach another
(tests/test_models.py checks both).

Parameters are NaN until init_ is called: forgetting to initialise fails loudly.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from initmem.architectures import MODELS, scaled
from initmem.config import RunConfig
from initmem.registry import resolve_ref
from initmem.datasets import DATASETS
from initmem.inits import init_run

EPS = 1e-3            # Keras BatchNormalization / LayerNormalization epsilon
MOMENTUM = 0.99       # Keras BatchNormalization momentum: moving = 0.99*moving + 0.01*batch


def keras_same_pad(size: int, k: int, stride: int) -> tuple[int, int]:
    """Keras/TF 'same' padding (before, after): the odd pixel goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


# ---------------------------------------------------------------------------------------------
# Layers. Activations are (B, M*C, H, W); parameters are (M, ...).

class Conv(nn.Module):
    """3x3 conv with bias, Keras 'same' padding, one group per run."""

    def __init__(self, n_runs: int, c_in: int, c_out: int, stride: int = 1,
                 channels_last: bool = False, **dd):
        super().__init__()
        self.weight = nn.Parameter(torch.full((n_runs, c_out, c_in, 3, 3), math.nan, **dd))
        self.bias = nn.Parameter(torch.full((n_runs, c_out), math.nan, **dd))
        self.stride, self.channels_last = stride, channels_last

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.flatten(0, 1)  # (M*C_out, C_in, 3, 3): a view, grads flow to the (M, ...) param
        if self.channels_last:
            w = w.contiguous(memory_format=torch.channels_last)
        if self.stride == 1:
            padding = 1  # 'same' for 3x3 stride 1 is symmetric
        else:  # Keras pads 0 top/left, 1 bottom/right on even sizes; PyTorch's padding= is symmetric
            top, bottom = keras_same_pad(x.shape[2], 3, self.stride)
            left, right = keras_same_pad(x.shape[3], 3, self.stride)
            x = F.pad(x, (left, right, top, bottom))
            padding = 0
        return F.conv2d(x, w, self.bias.flatten(), self.stride, padding, groups=self.weight.shape[0])


class BatchNorm(nn.Module):
    """Keras BatchNormalization per run and channel (epsilon 1e-3, momentum 0.99).

    Training mode normalises with the batch mean and biased variance over (B, H, W) and moves
    the moving stats with the *biased* variance (as Keras; nn.BatchNorm uses the unbiased one,
    so its buffers are not used). Runs with active[m] = False keep their moving stats.
    """

    def __init__(self, n_runs: int, c: int, **dd):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_runs, c, **dd))   # gamma
        self.bias = nn.Parameter(torch.zeros(n_runs, c, **dd))    # beta
        self.register_buffer("moving_mean", torch.zeros(n_runs, c, **dd))
        self.register_buffer("moving_var", torch.ones(n_runs, c, **dd))
        self.active: Tensor | None = None  # set through PackedNet.active

    def forward(self, x: Tensor) -> Tensor:
        w, b = self.weight.flatten(), self.bias.flatten()
        if not self.training:
            return F.batch_norm(x, self.moving_mean.flatten(), self.moving_var.flatten(), w, b,
                                False, 0.0, EPS)
        # One fused pass normalises with the batch stats (biased var) and, with momentum 1, leaves
        # the batch mean and the *unbiased* batch variance in two scratch buffers.
        mean = torch.zeros_like(w)
        var = torch.zeros_like(w)
        y = F.batch_norm(x, mean, var, w, b, True, 1.0, EPS)
        with torch.no_grad():
            n = x.numel() // x.shape[1]
            self._ema_(self.moving_mean, mean)
            self._ema_(self.moving_var, var * ((n - 1) / n) if n > 1 else var)  # Keras: biased variance
        return y

    def _ema_(self, buf: Tensor, stat: Tensor) -> None:
        new = buf * MOMENTUM + stat.view_as(buf) * (1.0 - MOMENTUM)  # Keras' expression
        if self.active is not None:
            new = torch.where(self.active[:, None], new, buf)  # select, never multiply: NaN-safe
        buf.copy_(new)


class LayerNorm(nn.Module):
    """Keras LayerNormalization(axis=-1): each pixel of each run over its C channels, epsilon 1e-3."""

    def __init__(self, n_runs: int, c: int, **dd):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_runs, c, **dd))   # gamma
        self.bias = nn.Parameter(torch.zeros(n_runs, c, **dd))    # beta

    def forward(self, x: Tensor) -> Tensor:
        B, _, H, W = x.shape
        M, C = self.weight.shape
        xv = x.view(B, M, C, H, W)
        var, mean = torch.var_mean(xv, 2, keepdim=True, correction=0)
        y = (xv - mean) * torch.rsqrt(var + EPS)
        y = y * self.weight.view(1, M, C, 1, 1) + self.bias.view(1, M, C, 1, 1)
        return y.reshape(B, M * C, H, W)


class Dense(nn.Module):
    """Final dense layer: (B, M*C) features -> (M, B, 10) logits by a batched matmul over runs."""

    def __init__(self, n_runs: int, c_in: int, c_out: int, **dd):
        super().__init__()
        self.weight = nn.Parameter(torch.full((n_runs, c_out, c_in), math.nan, **dd))
        self.bias = nn.Parameter(torch.full((n_runs, c_out), math.nan, **dd))

    def forward(self, f: Tensor) -> Tensor:
        M, _, C = self.weight.shape
        f = f.view(f.shape[0], M, C).transpose(0, 1)  # (M, B, C)
        return torch.baddbmm(self.bias.unsqueeze(1), f, self.weight.transpose(1, 2))


NORMS = {"batchnorm": BatchNorm, "layernorm": LayerNorm}


class ConvNormReLU(nn.Module):
    def __init__(self, cfg: RunConfig, n_runs: int, c_in: int, c_out: int, **dd):
        super().__init__()
        self.conv = Conv(n_runs, c_in, c_out, 1, cfg.channels_last, **dd)
        self.norm = NORMS[cfg.norm](n_runs, c_out, **dd)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.norm(self.conv(x)))


class Residual(nn.Module):
    """Myrtle residual: x + block2(block1(x))."""

    def __init__(self, block1: nn.Module, block2: nn.Module):
        super().__init__()
        self.block1, self.block2 = block1, block2

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block2(self.block1(x))


class BasicBlock(nn.Module):
    """CIFAR ResNet basic block, conv-norm-relu-conv-norm + shortcut, relu; option-A shortcut."""

    def __init__(self, cfg: RunConfig, n_runs: int, c_in: int, c_out: int, stride: int, **dd):
        super().__init__()
        self.conv1 = Conv(n_runs, c_in, c_out, stride, cfg.channels_last, **dd)
        self.norm1 = NORMS[cfg.norm](n_runs, c_out, **dd)
        self.conv2 = Conv(n_runs, c_out, c_out, 1, cfg.channels_last, **dd)
        self.norm2 = NORMS[cfg.norm](n_runs, c_out, **dd)
        self.stride = stride
        self.downsample = stride != 1 or c_in != c_out
        # zero channels before/after: planes//4 on each side at the standard widths, as
        # akamaster/Keras option A; any odd extra channel from the width multiplier goes after
        extra = c_out - c_in
        self.pad = (extra // 2, extra - extra // 2)

    def shortcut(self, x: Tensor) -> Tensor:
        if not self.downsample:
            return x
        x = x[:, :, ::self.stride, ::self.stride]
        B, _, H, W = x.shape
        x = x.reshape(B, self.conv1.weight.shape[0], -1, H, W)  # (B, M, C_in, H, W): pad per run
        x = F.pad(x, (0, 0, 0, 0, *self.pad))
        return x.reshape(B, -1, H, W)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


# ---------------------------------------------------------------------------------------------

class PackedNet(nn.Module):
    """A body on (B, M*C, H, W) activations, a global pool and a dense head."""

    def __init__(self, body: nn.Module, c_feat: int, pool: str, n_runs: int,
                 channels_last: bool, classes: int, **dd):
        super().__init__()
        assert pool in ("max", "avg"), pool
        self.body = body
        self.head = Dense(n_runs, c_feat, classes, **dd)
        self.pool, self.n_runs, self.channels_last = pool, n_runs, channels_last
        self.param_kinds: dict[str, str] = {}
        for mod_name, mod in self.named_modules():
            for p_name, _ in mod.named_parameters(recurse=False):
                if isinstance(mod, (Conv, Dense)) and p_name == "weight":
                    kind = "conv" if isinstance(mod, Conv) else "dense"
                elif isinstance(mod, (Conv, Dense)):
                    kind = "bias"
                else:
                    kind = "norm"
                self.param_kinds[f"{mod_name}.{p_name}" if mod_name else p_name] = kind
        names = [n for n, _ in self.named_parameters()]  # model order
        assert sorted(names) == sorted(self.param_kinds)
        self.kernel_names: list[str] = [n for n in names if self.param_kinds[n] in ("conv", "dense")]
        self._active: Tensor | None = None

    @property
    def active(self) -> Tensor | None:
        return self._active

    @active.setter
    def active(self, mask: Tensor | None) -> None:
        """bool (M,): runs whose BN moving stats move in training mode; None = all."""
        if mask is not None:
            mask = torch.as_tensor(mask, dtype=torch.bool, device=self.head.weight.device)
            assert mask.shape == (self.n_runs,), f"active must have shape ({self.n_runs},), got {tuple(mask.shape)}"
        self._active = mask
        for m in self.modules():
            if isinstance(m, BatchNorm):
                m.active = mask

    def forward(self, x: Tensor) -> Tensor:
        M, B = x.shape[:2]
        assert M == self.n_runs, f"input has {M} runs, the pack has {self.n_runs}"
        h = x.transpose(0, 1).reshape(B, M * x.shape[2], x.shape[3], x.shape[4])  # runs into channels
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        h = self.body(h)
        f = h.amax((2, 3)) if self.pool == "max" else h.mean((2, 3))  # global pool: (B, M*C)
        return self.head(f)

    @torch.no_grad()
    def init_(self, runs: Sequence, generators: Sequence[torch.Generator]) -> None:
        """Initialise run m from generators[m] (CPU) by its init fields (initmem.inits.init_run): `runs`
        holds RunConfigs, or bare sigma_w values for the paper's scheme. Moving stats: mean 0, var 1."""
        M = self.n_runs
        if len(runs) != M or len(generators) != M:
            raise ValueError(f"init_ needs {M} runs (or sigma_w values) and {M} generators, "
                             f"got {len(runs)} and {len(generators)}")
        named = list(self.named_parameters())
        for m, (run, g) in enumerate(zip(runs, generators)):
            init_run([(n, p[m]) for n, p in named], self.param_kinds, run, g)
        for name, buf in self.named_buffers():
            buf.fill_(1.0 if name.endswith("moving_var") else 0.0)

    def n_params_per_run(self) -> int:
        return sum(p.numel() for p in self.parameters()) // self.n_runs


# ---------------------------------------------------------------------------------------------
# Architectures (SPEC Section 3). Each: (cfg, n_runs, **dd) -> PackedNet.

def _data_shape(cfg: RunConfig) -> tuple[int, int]:
    """(input channels, classes) of the run's dataset (initmem.datasets)."""
    spec = DATASETS[cfg.dataset]
    return spec.image_shape[0], spec.classes


def _resnet9(cfg: RunConfig, n_runs: int, pool: str, **dd) -> PackedNet:
    c64, c128, c256, c512 = (scaled(c, cfg.width) for c in (64, 128, 256, 512))
    cnr = lambda c_in, c_out: ConvNormReLU(cfg, n_runs, c_in, c_out, **dd)  # noqa: E731
    c_in, classes = _data_shape(cfg)
    body = nn.Sequential(OrderedDict(
        prep=cnr(c_in, c64),
        layer1=nn.Sequential(cnr(c64, c128), nn.MaxPool2d(2), Residual(cnr(c128, c128), cnr(c128, c128))),
        layer2=nn.Sequential(cnr(c128, c256), nn.MaxPool2d(2)),
        layer3=nn.Sequential(cnr(c256, c512), nn.MaxPool2d(2), Residual(cnr(c512, c512), cnr(c512, c512))),
    ))
    return PackedNet(body, c512, pool, n_runs, cfg.channels_last, classes, **dd)


def resnet9(cfg: RunConfig, n_runs: int, **dd) -> PackedNet:
    """Myrtle ResNet-9, global max pool."""
    return _resnet9(cfg, n_runs, "max", **dd)


def r9_avgpool(cfg: RunConfig, n_runs: int, **dd) -> PackedNet:
    """ResNet-9 with global average pool."""
    return _resnet9(cfg, n_runs, "avg", **dd)


def _cifar_resnet(cfg: RunConfig, n_runs: int, n: int, **dd) -> PackedNet:
    """CIFAR ResNet 6n+2: stem conv16-norm-relu, 3 stages of n basic blocks (16/32/64), avg pool."""
    widths = [scaled(c, cfg.width) for c in (16, 32, 64)]
    c_in, classes = _data_shape(cfg)
    stem = ConvNormReLU(cfg, n_runs, c_in, widths[0], **dd)
    blocks, c_in = [], widths[0]
    for stage, c_out in enumerate(widths):
        for i in range(n):
            stride = 2 if stage > 0 and i == 0 else 1
            blocks.append(BasicBlock(cfg, n_runs, c_in, c_out, stride, **dd))
            c_in = c_out
    body = nn.Sequential(OrderedDict(stem=stem, blocks=nn.Sequential(*blocks)))
    return PackedNet(body, c_in, "avg", n_runs, cfg.channels_last, classes, **dd)


def resnet56(cfg: RunConfig, n_runs: int, **dd) -> PackedNet:
    return _cifar_resnet(cfg, n_runs, 9, **dd)


def resnet110(cfg: RunConfig, n_runs: int, **dd) -> PackedNet:
    return _cifar_resnet(cfg, n_runs, 18, **dd)


def build_model(cfg: RunConfig, n_runs: int, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> nn.Module:
    """The pack's network for cfg.arch (initmem.architectures.MODELS) with n_runs runs: a packed
    architecture's own builder, or a plain model packed through torch.func (initmem.generic.FuncPack).
    Call init_ before use."""
    if n_runs < 1:
        raise ValueError(f"n_runs={n_runs!r} is not allowed: an integer >= 1")
    spec = MODELS[cfg.arch]
    build = resolve_ref(spec.build)
    if spec.packed:
        return build(cfg, n_runs, dtype=dtype, device=torch.device(device))
    from initmem.generic import FuncPack
    return FuncPack(build, cfg, n_runs, dtype=dtype, device=torch.device(device))
