"""Models by name: what each architecture is, whether it has a packed form, and what it costs.

    python -m initmem fields                      # the registered architectures (plugins included)
    python -m tune_jobs.main_grid --dry-run       # the planner's FLOPs and memory come from here

    from initmem.architectures import MODELS, register_model, cost
    cost(RunConfig(arch="resnet9"))               # Cost(params=6575370, flops=7.59e8 per image, ...)

A model is either *packed* (initmem.models: M runs side by side in one network, grouped
convolutions; the built-in ResNets) or *plain*: a builder `build(cfg) -> torch.nn.Module` for ONE
run, (B, C, H, W) images -> (B, classes) logits. A plain model is packed by initmem.generic through
torch.func (functional_call + vmap over the runs' stacked parameters) when it has no BatchNorm;
with BatchNorm (vmap cannot update running statistics in place) it trains in packs of one.

Cost, for the planner and the dry run: the ResNets' 3x3 convolutions are counted analytically
(conv_layers); a plain model declares `flops` (per image, forward, 2 per multiply-add), or it is
measured once by building it and counting a forward with torch.utils.flop_counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from initmem.datasets import DATASETS
from initmem.registry import Registry, resolve_ref

# Activation tensors kept for backward per conv layer, in output-sized floats: measured 2.5 (the fit's
# bytes per image / (4 x sum of conv output sizes), ResNet-9 at widths 0.5 and 1; bench/bench_memory.py).
SAVED_PER_CONV = 2.5


@dataclass(frozen=True)
class ModelSpec:
    """build: packed -> (cfg, n_runs, dtype, device) -> a packed network; plain -> (cfg) -> nn.Module of
    one run (a callable or a "module:attribute" reference). conv_layers: (width, (C, H, W)) ->
    ([(c_in, c_out, output side)], features) for the analytic cost of 3x3-conv nets; flops: (cfg) ->
    forward FLOPs per image when declared; batchnorm: whether a plain model holds BatchNorm (None:
    found out by building it); eval_per_widest: inference peak per image in units of the widest layer
    output (initmem.memory; measured for the ResNets, 2.5 assumed for a plain model)."""
    name: str
    build: Callable | str
    packed: bool
    description: str = ""
    conv_layers: Callable | None = None
    flops: Callable | None = None
    batchnorm: bool | None = None
    eval_per_widest: float = 2.5


MODELS: Registry[ModelSpec] = Registry("model", "arch")


def register_model(name: str, build: Callable | str, packed: bool = False, description: str = "",
                   flops: Callable | None = None, batchnorm: bool | None = None,
                   conv_layers: Callable | None = None, eval_per_widest: float = 2.5) -> ModelSpec:
    """Add an architecture (a plugin's too): RunConfig(arch=name) is then allowed everywhere. A plugin's
    model is usually plain: build(cfg) -> nn.Module for one run (use cfg.width, and the dataset's
    shape and classes: initmem.datasets.DATASETS[cfg.dataset])."""
    return MODELS.add(name, ModelSpec(name, build, packed, description, conv_layers, flops, batchnorm,
                                      eval_per_widest))


# --- the built-in ResNets, analytically -------------------------------------------------------------

def scaled(c: int, width: float) -> int:
    """Channel count under the width multiplier (the rule initmem.models builds with)."""
    return max(1, round(c * width))


def resnet9_layers(width: float, shape=(3, 32, 32)) -> tuple[list[tuple[int, int, int]], int]:
    c0, side = shape[0], shape[1]
    c64, c128, c256, c512 = (scaled(c, width) for c in (64, 128, 256, 512))
    s1, s2, s3 = side // 2, side // 4, side // 8         # after each max pool (floor, as nn.MaxPool2d)
    return [(c0, c64, side), (c64, c128, side), (c128, c128, s1), (c128, c128, s1),
            (c128, c256, s1), (c256, c512, s2), (c512, c512, s3), (c512, c512, s3)], c512


def cifar_resnet_layers(n: int) -> Callable:
    def layers(width: float, shape=(3, 32, 32)) -> tuple[list[tuple[int, int, int]], int]:
        widths = [scaled(c, width) for c in (16, 32, 64)]
        out, c_in, side = [(shape[0], widths[0], shape[1])], widths[0], shape[1]
        for stage, c_out in enumerate(widths):
            for i in range(n):
                if stage > 0 and i == 0:
                    side = -(-side // 2)  # stride-2 first conv of stages 2 and 3 (Keras 'same': ceil)
                out += [(c_in, c_out, side), (c_out, c_out, side)]
                c_in = c_out
        return out, c_in
    return layers


register_model("resnet9", "initmem.models:resnet9", True, "Myrtle ResNet-9, global max pool (the paper's)",
               conv_layers=resnet9_layers)
register_model("r9_avgpool", "initmem.models:r9_avgpool", True, "ResNet-9 with a global average pool",
               conv_layers=resnet9_layers)
# eval_per_widest, measured on CPU (bench/bench_memory.py, 2026-12-02, exact at widths 0.25, 0.5 and 1):
# ResNet-9 holds a conv's output and its norm's at once (+ half a map in pooling); a basic block also
# keeps its input for the shortcut.
register_model("resnet56", "initmem.models:resnet56", True, "CIFAR ResNet-56 (6n+2, n = 9), option-A shortcuts",
               conv_layers=cifar_resnet_layers(9), eval_per_widest=5.0)
register_model("resnet110", "initmem.models:resnet110", True, "CIFAR ResNet-110 (n = 18)",
               conv_layers=cifar_resnet_layers(18), eval_per_widest=5.0)


# --- what a run of a model costs ---------------------------------------------------------------------

@dataclass(frozen=True)
class Cost:
    params: int            # trainable parameters of one run
    flops: float           # forward FLOPs of one image (2 per multiply-add)
    act_floats: float      # floats one image keeps for the backward pass
    batchnorm: bool        # holds BatchNorm (a plain model with it trains in packs of one)
    widest: float          # floats of the largest layer output of one image
    layers: int            # weight layers (convolutions and the classifier): a CPU's per-layer cost counts them


def cost(cfg) -> Cost:
    """The cost of one run of cfg's architecture at its width on its dataset's image shape."""
    spec = MODELS[cfg.arch]
    data = DATASETS[cfg.dataset]
    if spec.conv_layers is not None:
        layers, feat = spec.conv_layers(cfg.width, data.image_shape)
        params = sum(9 * ci * co + co + 2 * co for ci, co, _ in layers) + feat * data.classes + data.classes
        flops = 2.0 * (sum(9 * ci * co * s * s for ci, co, s in layers) + feat * data.classes)
        acts = float(SAVED_PER_CONV * sum(co * s * s for _, co, s in layers))
        return Cost(params, flops, acts, True, float(max(co * s * s for _, co, s in layers)), len(layers) + 1)
    key = (cfg.arch, float(cfg.width), cfg.dataset)
    if key not in _MEASURED:
        _MEASURED[key] = _measure(cfg)
    measured = _MEASURED[key]
    flops = float(spec.flops(cfg)) if spec.flops is not None else measured.flops
    bn = spec.batchnorm if spec.batchnorm is not None else measured.batchnorm
    return Cost(measured.params, flops, measured.act_floats, bn, measured.widest, measured.layers)


_MEASURED: dict[tuple, Cost] = {}   # (arch, width, dataset) -> measured cost, once per process


def _measure(cfg) -> Cost:
    """Build one run of a plain model on the CPU and count: parameters, a forward's FLOPs
    (torch.utils.flop_counter), the floats of every module output (the activations backward keeps,
    as SAVED_PER_CONV does for the ResNets: x2.5), whether it holds BatchNorm, and its weight layers
    (modules with a weight of two or more dimensions: convolutions, linear layers)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    module = resolve_ref(MODELS[cfg.arch].build)(cfg)
    shape = DATASETS[cfg.dataset].image_shape
    outputs = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out.numel() if torch.is_tensor(out) else 0))
             for m in module.modules() if not list(m.children())]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(torch.zeros(1, *shape))
    for h in hooks:
        h.remove()
    params = sum(p.numel() for p in module.parameters() if p.requires_grad)
    bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
    weight_layers = sum(1 for m in module.modules()
                        if isinstance(getattr(m, "weight", None), torch.Tensor) and m.weight.dim() >= 2)
    return Cost(int(params), float(counter.get_total_flops()), float(SAVED_PER_CONV * sum(outputs)), bn,
                float(max(outputs, default=0)), max(1, weight_layers))
