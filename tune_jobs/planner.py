"""Runs -> packs -> Tune trials, and what they will cost, without training anything.

    python -m tune_jobs.main_grid --preset full --dry-run            # prints this module's plan
    python -m tune_jobs.main_grid --preset full --dry-run --device cuda --gpu-memory-gb 80

A pack is the runs that share RunConfig.pack_key (config.group_into_packs), split at a maximum
pack size that defaults from the device:
  - cuda: as many runs as fit in GPU memory (GPU_MEMORY_FRACTION of it, after the data), from the
    memory model of initmem/memory.py (weights + gradients + optimizer state, and the larger of a
    training step's activations and an evaluation chunk; with compile, the CUDA graph pools of both),
    and no more than keep every tensor under 2**31 elements; a group too big for one GPU is split
    into equal packs;
  - cpu: CPU_PACK_SIZE = 1 run: packing never pays on a CPU (issue 10: bench/bench_train.py on 2 cores,
    M = 4 cost 1.34x per run of bare runs, M = 1 1.01x; the profile puts the extra time in oneDNN's
    grouped convolutions, 2.2x slower in inference than 4 separate convolutions), and a CPU has no
    launch overhead for a pack to amortise. --max-pack-size still packs on CPU.
Each pack is one Tune trial.

Cost: FLOPs per run are counted analytically from the architecture (3x3 conv multiply-adds at
each layer's output size, x2 FLOPs per MAC; dense head; norms, pools and the optimizer ignored):
    FLOPs/run = F * [epochs * (3 * n_train + 2 * n_eval) + n_train + 2 * n_eval]
F the forward FLOPs of one image, 3x for a training step (forward + backward), val and test
evaluated after every epoch, the train split once more at epoch 0. Early stopping is ignored
(an upper bound). Device-hours = FLOPs / (peak * efficiency); on a CPU each weight layer adds
CPU_LAYER_FLOPS per forward-equivalent image (per-layer overhead, measured), on a GPU a step costs at
least its kernel launches (GPU_STEP_FLOOR_S). The peaks and the efficiency are stated in the
printout and overridable (--efficiency).
"""

from __future__ import annotations

import heapq
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

from initmem.architectures import MODELS, cost
from initmem.config import AUTO_PRECISION, ConfigError, RunConfig, group_by_pack_key, group_into_packs, pack_id
from initmem.memory import data_bytes, eval_chunk, max_runs_int32, run_memory_bytes  # the memory model (train_pack's too)

CPU_PACK_SIZE = 1            # default max pack size on CPU workers (packing does not pay there)
GPU_MEMORY_FRACTION = 0.75   # share of GPU memory packs may plan to use (allocator slack, cuDNN workspaces)
DEFAULT_GPU_MEMORY_GB = 80.0  # assumed when no GPU is visible to the planner (H100 / A100 80GB)
# GPU memory by Ray's accelerator_type resource (what a cluster's GPU nodes advertise).
GPU_MEMORY_GB = {"H100": 80.0, "H200": 141.0, "A100-80G": 80.0, "A100-40G": 40.0, "A100": 40.0, "L40S": 48.0,
                 "A10G": 24.0, "L4": 24.0, "V100": 16.0, "T4": 16.0}
DEFAULT_EFFICIENCY = {"cuda": 0.40, "cpu": 0.25}  # achieved fraction of peak (packed small convs; CPU: below)
# Dense peak FLOP/s of the reference devices by precision (NVIDIA H100 SXM datasheet; fp32 without
# TF32 runs on the CUDA cores). A CPU core:
GPU_PEAK_TFLOPS = {"fp64": 67.0, "fp32": 67.0, "tf32": 495.0, "bf16": 990.0}
# (AVX-512: 2 FMA units x 16 fp32 lanes x 2 FLOPs at ~2.3 GHz.)
CPU_CORE_PEAK_GFLOPS = {"fp64": 75.0, "fp32": 150.0, "tf32": 150.0, "bf16": 150.0}
# A CPU also pays per layer and image, whatever the FLOPs (BatchNorm, ReLU, the residual add, op
# dispatch, narrow convolutions that fill few SIMD lanes). bench/bench_cpu_rate.py fits
#     time = FLOPs / R + weight layers x forward-equivalent images x t
# to train_pack alone (one thread, 2026-12-04): ResNet-9, ResNet-56 and ResNet-110 at width 1/8, b=16
# and 128: R = 94-107 GFLOP/s, t = 12-17 us (1.3-1.6 MFLOP at R); the fit then predicted ResNet-9 at
# widths 1/4 and 1, ResNet-56 at 1/2 and 1 and ResNet-110 at 1/4 within 9%, where FLOPs alone are off
# 7x between them (ResNet-110 x1/4 made 13 GFLOP/s, ResNet-9 x1 90). LayerNorm (per-image statistics
# over each layer's output) costs 2.8x BatchNorm's time in ResNet-9 x1/8 and 3.3x in ResNet-56 x1/8
# (augmentation +2%): 5.5 MFLOP per layer puts both within 15%. The layer term by the run's norm, in
# FLOPs at the device's rate (a plain model counts as its norm field says):
CPU_LAYER_FLOPS = {"batchnorm": 1.5e6, "layernorm": 5.5e6}
# The default CPU efficiency: the mini study's trials (ResNet-9 x1/8, two at once on 2 cores, training
# plus evaluation) made 17-19 GFLOP/s per core, measured from their wall times; with their layer term
# (9 layers x 1.5 MFLOP beside 12.2 MFLOP forward per image) that is 25% of the peak above.


# --- architectures: their cost is initmem.architectures.cost (analytic for the ResNets, measured otherwise)

def n_params(arch: str, width: float = 1.0, dataset: str = "cifar10") -> int:
    """Trainable parameters of one run."""
    return cost(RunConfig(arch=arch, width=width, dataset=dataset)).params


def forward_flops(arch: str, width: float = 1.0, dataset: str = "cifar10") -> float:
    """FLOPs of one image's forward pass (2 per multiply-add)."""
    return cost(RunConfig(arch=arch, width=width, dataset=dataset)).flops


def forward_images(cfg: RunConfig) -> int:
    """Forward-equivalent images of one run to its last epoch (a trained image counts 3: forward and
    backward; val and test every epoch, the train split once more at epoch 0; early stopping ignored)."""
    n_train, n_eval = cfg.n_train, cfg.n_eval
    return cfg.epochs * (3 * n_train + 2 * n_eval) + n_train + 2 * n_eval


def run_flops(cfg: RunConfig) -> float:
    """FLOPs to train and evaluate one run to its last epoch (early stopping ignored)."""
    return cost(cfg).flops * forward_images(cfg)


# --- devices ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    """What one trial runs on: the basis of the pack size and the cost estimate."""
    kind: str              # cpu | cuda
    name: str              # for the printout
    memory_gb: float       # memory one trial may plan with (GPU memory; host RAM on CPU)
    cores: int = 1         # CPU cores per trial (cpu)
    efficiency: float = 0.0
    slots: int = 0         # trials that can run at once (0 = unknown)

    def peak_flops(self, precision: str) -> float:
        if self.kind == "cuda":
            return GPU_PEAK_TFLOPS[precision] * 1e12
        return CPU_CORE_PEAK_GFLOPS[precision] * 1e9 * self.cores


def detect_device(kind: str = "auto", gpu_memory_gb: float | None = None, cpus_per_trial: float = 1,
                  slots: int = 0, cluster_gpus: float | None = None, efficiency: float | None = None) -> Device:
    """The trial device: `kind` cpu/cuda, or auto = a GPU if the cluster (or this machine) has one."""
    if kind not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device={kind!r} is not allowed: 'auto', 'cpu' or 'cuda'")
    name = None
    if kind == "auto":
        if cluster_gpus is not None:
            kind = "cuda" if cluster_gpus > 0 else "cpu"
        else:
            kind, name, local_mem = _local_gpu()
            gpu_memory_gb = gpu_memory_gb or local_mem
    if kind == "cuda":
        mem = gpu_memory_gb or DEFAULT_GPU_MEMORY_GB
        name = name or f"GPU ({mem:g} GB{'' if gpu_memory_gb else ', assumed'})"
        return Device("cuda", name, mem, 1, efficiency or DEFAULT_EFFICIENCY["cuda"], slots)
    ram_gb = _host_ram_gb()
    cores = max(1, int(cpus_per_trial))
    return Device("cpu", f"CPU ({cores} core{'s' if cores > 1 else ''} per trial)", ram_gb / 2, cores,
                  efficiency or DEFAULT_EFFICIENCY["cpu"], slots)


def gpu_memory_from_resources(resources: dict) -> float | None:
    """The smallest GPU memory among the cluster's accelerator types (None if none is known)."""
    mems = [GPU_MEMORY_GB[k.split(":", 1)[1]] for k in resources
            if k.startswith("accelerator_type:") and k.split(":", 1)[1] in GPU_MEMORY_GB]
    return min(mems) if mems else None


def _local_gpu() -> tuple[str, str | None, float | None]:
    if not (os.path.exists("/dev/nvidiactl") or os.environ.get("CUDA_VISIBLE_DEVICES")):
        return "cpu", None, None  # no NVIDIA driver: skip importing torch (keeps the dry run fast)
    import torch
    if not torch.cuda.is_available():
        return "cpu", None, None
    props = torch.cuda.get_device_properties(0)
    return "cuda", f"{props.name} ({props.total_memory / 1e9:.0f} GB)", props.total_memory / 1e9


def _host_ram_gb() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return 8.0


def max_pack_size(cfg: RunConfig, device: Device) -> int:
    """The largest pack of runs like cfg that the device holds (initmem.memory: training, evaluation,
    CUDA graph pools), and whose tensors all stay under 2**31 elements (CPU: at most CPU_PACK_SIZE; a
    plain model with BatchNorm: 1, initmem.generic). The run is sized on the device's kind (its
    evaluation chunks are the device's)."""
    if not MODELS[cfg.arch].packed and cost(cfg).batchnorm:
        return 1
    cfg = _on_device(cfg, device.kind)
    per_run = run_memory_bytes(cfg)
    if device.kind == "cpu":
        usable = device.memory_gb * 1e9
        return max(1, min(CPU_PACK_SIZE, int(usable // per_run), max_runs_int32(cfg)))
    usable = device.memory_gb * 1e9 * GPU_MEMORY_FRACTION - data_bytes(cfg)
    return max(1, min(int(usable // per_run), max_runs_int32(cfg)))


# --- plans ------------------------------------------------------------------------------------------

@dataclass
class Plan:
    experiment: str              # the folder under the storage (name, or name_smoke)
    preset: str
    runs: list[RunConfig]
    packs: list[list[RunConfig]]
    device: Device
    max_pack_size: int | None    # explicit cap, None = from the device per group
    description: str = ""
    replaced: dict[str, list[str]] = field(default_factory=dict)  # pack id -> the ids it was split into

    @cached_property
    def pack_ids(self) -> list[str]:
        """pack_id of each pack, in pack order (hashed once per plan)."""
        return [pack_id(p) for p in self.packs]

    @property
    def total_flops(self) -> float:
        return sum(run_flops(r) for r in self.runs)

    def device_hours(self) -> float:
        return sum(self.pack_seconds) / 3600.0

    @cached_property
    def pack_seconds(self) -> list[float]:
        """Estimated time of each pack (trial): its runs' FLOPs at the device's rate, and on a GPU at
        least its steps' kernel launches (pack_floor_seconds: small packed nets are launch-bound)."""
        return [pack_seconds(p, self.device) for p in self.packs]

    def makespan_hours(self, slots: int) -> float:
        """Wall-clock of the sweep with `slots` trials at once: longest-first greedy schedule of the
        pack times (LPT, within 4/3 of the optimum)."""
        return lpt_makespan(self.pack_seconds, slots) / 3600.0


# A GPU step of a pack costs at least its kernel launches: ~350 ops dispatched per eager step
# (tests/test_step.py) at ~6 us each; an evaluation chunk ~1/3 of that. An estimate, not a measurement.
GPU_STEP_FLOOR_S = 350 * 6e-6


def pack_seconds(pack: Sequence[RunConfig], device: Device) -> float:
    """Estimated seconds of one pack: the FLOPs of its runs at the device's rate; on a GPU at least
    GPU_STEP_FLOOR_S per training step (and a third of it per evaluation chunk), whatever the pack size."""
    flops_s = sum(run_seconds(r, device) for r in pack)
    if device.kind != "cuda":
        return flops_s
    r = pack[0]
    chunks = math.ceil(r.n_eval / eval_chunk(r, len(pack))) * 2 * r.epochs + math.ceil(r.n_train / eval_chunk(r, len(pack)))
    return max(flops_s, (r.total_steps + chunks / 3) * GPU_STEP_FLOOR_S)


def run_seconds(cfg: RunConfig, device: Device) -> float:
    """Estimated device-seconds of one run: its FLOPs (on a CPU plus CPU_LAYER_FLOPS per weight layer
    and image) at the device's peak for the run's precision times the efficiency."""
    c = cost(cfg)
    per_image = c.flops + (c.layers * CPU_LAYER_FLOPS[cfg.norm] if device.kind == "cpu" else 0.0)
    return per_image * forward_images(cfg) / (device.peak_flops(cfg.effective_precision) * device.efficiency)


def lpt_makespan(seconds: Sequence[float], slots: int) -> float:
    """Makespan of jobs on `slots` identical machines, longest first onto the least loaded one."""
    if slots < 1:
        raise ConfigError(f"slots={slots!r} is not allowed: an integer >= 1")
    loads = [0.0] * min(slots, max(1, len(seconds)))
    heapq.heapify(loads)
    for t in sorted(seconds, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + t)
    return max(loads)


def make_packs(runs: Sequence[RunConfig], device: Device, cap: int | None = None) -> list[list[RunConfig]]:
    """Group by pack key (first-seen order); split each group into equal packs of at most the cap
    (explicit, or max_pack_size for the group on the device). The packs pass config.check_pack by
    construction: one pack key each, and Experiment.runs holds no run twice.

    Makespan: with device.slots = N trials at once, a group is also split into enough equal packs
    that none takes longer than the ideal makespan, total work / N (a group of one run cannot be
    split: that run is then the floor of the makespan)."""
    if cap is not None and cap < 1:
        raise ConfigError(f"max_pack_size={cap!r} is not allowed: an integer >= 1")
    groups = list(group_by_pack_key(runs).values())
    ideal = None
    if device.slots > 0 and device.efficiency > 0:
        ideal = sum(run_seconds(r, device) for r in runs) / device.slots
    packs = []
    for members in groups:
        limit = cap or max_pack_size(members[0], device)
        n = math.ceil(len(members) / limit)
        if ideal:
            group_s = sum(run_seconds(r, device) for r in members)
            floor = pack_seconds(members[:1], device) if device.kind == "cuda" else 0.0  # a split pack's least time
            useful = max(1, int(group_s // floor)) if floor > 0 else len(members)       # splits below it gain nothing
            n = max(n, min(len(members), useful, math.ceil(group_s / ideal * (1 - 1e-9))))
        packs += group_into_packs(members, math.ceil(len(members) / n))  # equal sizes, not limit + rest
    return packs


def _on_device(r: RunConfig, kind: str) -> RunConfig:
    """r moved to the device kind with precision=auto resolved for it (one replace: it validates).
    A CPU run keeps auto (it hashes and runs as fp32 there; no new object, no new hash)."""
    changes = {} if r.device == kind else {"device": kind}
    if r.precision == "auto" and (changes or kind == "cuda"):
        changes["precision"] = AUTO_PRECISION[kind]
    return r.replace(**changes) if changes else r


def make_plan(label: str, preset: str, runs: Sequence[RunConfig], device: Device,
              max_pack: int | None = None, description: str = "") -> Plan:
    """Runs moved to the device kind, precision=auto resolved for it (tf32 on CUDA, fp32 on CPU: the
    run_id is the same either way, and a trial that lands elsewhere keeps what was planned), packed."""
    runs = [_on_device(r, device.kind) for r in runs]
    return Plan(label, preset, list(runs), make_packs(runs, device, max_pack), device, max_pack, description)


def group_names(packs: Sequence[Sequence[RunConfig]]) -> list[str]:
    """Per pack, a short readable name of its pack-key group: the pack-key fields that differ between packs."""
    keys = [dict(p[0].pack_key) for p in packs]
    varying = [k for k in keys[0] if k != "device" and len({repr(d[k]) for d in keys}) > 1] if keys else []
    short = {"batch_size": "b", "optimizer": "", "arch": "", "norm": "", "augment": "aug", "epochs": "ep",
             "width": "w", "precision": ""}
    base = []
    for d in keys:
        parts = []
        for k in varying:
            v = d[k]
            if isinstance(v, bool):
                parts.append(k if v else f"no{k}")
            else:
                parts.append(f"{short.get(k, k + '=')}{v}")
        base.append("-".join(parts) or "pack")
    return base


def pack_labels(packs: Sequence[Sequence[RunConfig]]) -> list[str]:
    """Short readable names: the group name, plus i-of-n when a group has several packs."""
    base = group_names(packs)
    totals, seen = Counter(base), Counter()
    labels = []
    for b in base:
        seen[b] += 1
        labels.append(b if totals[b] == 1 else f"{b}-{seen[b]}of{totals[b]}")
    return labels


def _fmt_flops(x: float) -> str:
    for unit, scale in (("EFLOP", 1e18), ("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} FLOP"


def describe_runs(runs: Sequence[RunConfig]) -> tuple[dict[str, list], dict[str, object]]:
    """Fields that vary across the runs (with their distinct values) and those that do not."""
    cols: dict[str, list] = {}
    for r in runs:
        for k, v in r.to_dict().items():
            cols.setdefault(k, []).append(v)
    varying, fixed = {}, {}
    for k, vals in cols.items():
        distinct = list(dict.fromkeys(vals))
        if len(distinct) > 1:
            varying[k] = sorted(distinct, key=lambda v: (str(type(v)), v))
        else:
            fixed[k] = distinct[0]
    return varying, fixed


def format_plan(plan: Plan, skipped_packs: int = 0, max_lines: int = 40) -> str:
    """The dry-run printout: runs, packs, trials and the cost estimate."""
    dev = plan.device
    varying, fixed = describe_runs(plan.runs)
    if plan.preset == "full":
        about = f": {plan.description}" if plan.description else ""
    else:
        about = ", cut from the full grid" + (f" ({plan.description})" if plan.description else "") + " to the runs below"
    lines = [f"experiment  {plan.experiment} ({plan.preset} preset){about}",
             f"runs        {len(plan.runs):,}"]
    for k, vals in varying.items():
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in vals[:12])
        more = f", ... ({len(vals)} values)" if len(vals) > 12 else f"  ({len(vals)})"
        lines.append(f"  vary      {k}: {shown}{more}")
    lines.append("  fixed     " + " ".join(f"{k}={v}" for k, v in fixed.items() if k != "experiment"))
    cap = (f"at most {plan.max_pack_size} (--max-pack-size)" if plan.max_pack_size else
           f"memory bound on {dev.name}, {GPU_MEMORY_FRACTION:.0%} usable" if dev.kind == "cuda" else
           f"at most {CPU_PACK_SIZE} on CPU")
    groups: dict[str, list[int]] = {}
    for name, p in zip(group_names(plan.packs), plan.packs):
        groups.setdefault(name, []).append(len(p))
    lines.append(f"packs       {len(plan.packs):,} packs from {len(groups):,} pack-key groups; pack size {cap}")
    lines.append(f"trials      {len(plan.packs) - skipped_packs:,} Tune trials (one per pack"
                 + (f"; {skipped_packs:,} packs already finished are skipped)" if skipped_packs else ")"))
    lines.append(f"  {'group':<34} {'runs':>6}  packs x runs")
    for i, (g, sizes) in enumerate(groups.items()):
        if i == max_lines:
            lines.append(f"  ... {len(groups) - max_lines} more groups")
            break
        size_txt = ", ".join(f"{n} x {s}" for s, n in sorted(Counter(sizes).items(), reverse=True))
        lines.append(f"  {g:<34} {sum(sizes):>6}  {size_txt}")
    per_arch, example = Counter(), {}
    for r in plan.runs:
        per_arch[(r.arch, r.width, r.dataset)] += 1
        example.setdefault((r.arch, r.width, r.dataset), r)
    for (arch, width, dataset), n in per_arch.items():
        c = cost(example[(arch, width, dataset)])
        on = "" if dataset == "cifar10" else f" on {dataset}"
        lines.append(f"cost        {arch} x{width:g}{on}: {c.params:,} params, "
                     f"{_fmt_flops(c.flops)} forward per image ({n:,} runs)")
    total = plan.total_flops
    hours = plan.device_hours()
    precisions = sorted({r.effective_precision for r in plan.runs})
    peak = ", ".join(f"{dev.peak_flops(p) / 1e12:g} TFLOP/s {p}" for p in precisions)
    unit = "on one GPU" if dev.kind == "cuda" else f"on one trial slot ({dev.cores} CPU core{'s' if dev.cores > 1 else ''})"
    lines.append(f"            total {_fmt_flops(total)} (3x forward per trained image, val+test every epoch, "
                 f"early stopping ignored) = {_fmt_flops(total / max(1, len(plan.runs)))} per run on average")
    layer = f", {_cpu_layer_text()}" if dev.kind == "cpu" else ""
    lines.append(f"            ~ {_fmt_hours(hours)} {unit} at {dev.efficiency:.0%} of peak ({peak}){layer}")
    other = Device("cpu", "CPU", 0.0, 1, DEFAULT_EFFICIENCY["cpu"]) if dev.kind == "cuda" else \
        Device("cuda", "GPU", DEFAULT_GPU_MEMORY_GB, 1, DEFAULT_EFFICIENCY["cuda"])
    moved = make_packs([_on_device(r, other.kind) for r in plan.runs], other)  # auto precision resolves per device
    other_h = sum(pack_seconds(p, other) for p in moved) / 3600.0
    what = (f"on one CPU core ({_cpu_layer_text()})" if other.kind == "cpu" else
            f"on one GPU (H100-class: {len(moved)} packs; FLOPs at {other.efficiency:.0%} of peak, or at least "
            f"{GPU_STEP_FLOOR_S * 1e3:.1f} ms of kernel launches per step)")
    lines.append(f"            ~ {_fmt_hours(other_h)} {what}, for comparison")
    if dev.slots:
        what = "GPUs" if dev.kind == "cuda" else "trial slots"
        longest = max(plan.pack_seconds, default=0.0) / 3600.0
        lines.append(f"makespan    ~ {_fmt_hours(plan.makespan_hours(dev.slots))} wall-clock on {dev.slots} {what} "
                     f"(ideal {_fmt_hours(hours / dev.slots)} = total / {dev.slots}; longest trial "
                     f"{_fmt_hours(longest)}; trials longer than the ideal are split where a group allows)")
    elif dev.kind == "cuda":
        lines.append("makespan    pass --gpus N (or run on the cluster) for the wall-clock estimate on N GPUs")
    if dev.kind == "cpu" and plan.preset == "full":
        lines.append("            (planned for CPU workers; --device cuda plans packs and GPU-hours for a GPU cluster)")
    return "\n".join(lines)


def _cpu_layer_text() -> str:
    bn, ln = (CPU_LAYER_FLOPS[n] / 1e6 for n in ("batchnorm", "layernorm"))
    return f"plus {bn:g} MFLOP per layer and image, {ln:g} with LayerNorm"


def _fmt_hours(h: float) -> str:
    return f"{h:,.1f} h" if h >= 1 else f"{h * 60:.1f} min" if h >= 1 / 60 else f"{h * 3600:.0f} s"
