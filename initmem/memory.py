"""Device memory of a pack: training, evaluation, CUDA graph pools, int32 indexing (no torch import).

    python bench/bench_memory.py          # measures the train and eval peaks on CPU against this model

One model for the two floors that size things from memory: the planner's pack sizes
(tune_jobs/planner.py) and train_pack's evaluation chunks (initmem/train.py). Per run of a pack:

    state     weights, the optimizer's flat gradient / scratch / lr / index / mask buffers, its slots,
              and the gradients autograd is producing at the backward peak (STATE_COPIES per parameter)
    train     one step's transient memory: saved activations, their gradients, the update's temporaries
              = b * per_image (MEASURED_RUN_BYTES where measured, else SAVED_PER_CONV floats per conv output)
    eval      one inference chunk: EVAL_PER_WIDEST x the widest conv output per image, + the input copy
    run       state + max(train, eval)               eager: the caching allocator reuses the freed blocks
              state + train + eval + input copies     compiled on CUDA: CUDA graph trees keep each recorded
                                                      graph's transient memory and copy inputs into static buffers

Evaluation runs in chunks that fit in what the training step already needs (eval_chunk), so it adds
nothing to an eager pack (issue 17: all 10,000 images at once needed ~1.3 GB per run at width 1, twice a
step at b = 128). The int32 cap: no tensor of a pack may reach 2**31 elements (cuDNN and many CUDA
kernels index with 32 bits), which bounds the runs per pack at large batches on large GPUs.
Measured on CPU with bench/bench_memory.py (tensor allocations are the same on a GPU; cuDNN workspaces
and allocator rounding are what the planner's GPU_MEMORY_FRACTION leaves room for).
"""

from __future__ import annotations

from initmem.config import ConfigError, RunConfig

# Per-parameter copies held during training: weights, the optimizer's flat gradient and scratch
# buffers, lr per element, the int32 run index and the bool active mask, optimizer slots, and the
# gradients autograd is producing at the backward peak. Measured on CPU with bench/bench_memory.py
# (the fit's state term / (4 bytes x parameters) at widths 0.5 and 1, 2026-12-02): sgd 5.9,
# adamw 7.9, muon 7.9; sgd_momentum (+velocity) and muon_conv (+Newton-Schulz input and work
# buffer of the conv kernels) by one copy more.
STATE_COPIES = {"sgd": 5.9, "sgd_momentum": 6.9, "adam": 7.9, "adamw": 7.9, "muon": 7.9, "muon_conv": 8.9}
# Activation tensors kept for backward per conv layer, in output-sized floats: measured 2.5 (the
# fit's bytes per image / (4 x sum of conv output sizes), ResNet-9 at widths 0.5 and 1).
SAVED_PER_CONV = 2.5
# Measured per-run bytes = state[optimizer] + per_image * batch_size, fp32, one step's peak tensor
# memory on CPU (bench/bench_memory.py --widths 1 0.5 --batches 16 64 128 --optimizers sgd adamw muon;
# allocation sizes are the same on a GPU, whose workspaces GPU_MEMORY_FRACTION leaves room for).
# Used instead of the analytic model where the (arch, width) and optimizer are in the table.
MEASURED_RUN_BYTES = {
    ("resnet9", 1.0): ({"sgd": 156.05e6, "adam": 208.84e6, "adamw": 208.84e6, "muon": 208.83e6}, 3.776e6),
    ("resnet9", 0.5): ({"sgd": 38.43e6, "adam": 51.61e6, "adamw": 51.61e6, "muon": 51.62e6}, 1.916e6),
}
# Inference peak per image, in units of the widest conv output (c_out * side^2 floats): measured on CPU
# (bench/bench_memory.py, 2026-12-02, exact at widths 0.25, 0.5 and 1): ResNet-9 holds a conv's output
# and its norm's at once (+ half a map in pooling); a basic block also keeps its input for the shortcut.
EVAL_PER_WIDEST = {"resnet9": 2.5, "r9_avgpool": 2.5, "resnet56": 5.0, "resnet110": 5.0}
INPUT_FLOATS = 3 * 32 * 32   # one image as the forward copies it (runs into channels)
# Evaluation chunk (images per run per forward). CUDA: what fits in one training step's transient memory,
# within these bounds. CPU: the fastest measured (bench/bench_eval.py: per image, 200 vs 1000 images).
EVAL_CHUNK_MIN, EVAL_CHUNK_MAX = 32, 1000
EVAL_CHUNK_CPU = 200
INT32_ELEMENTS = 2**31 - 1   # the most elements one tensor may have


# --- architectures, analytically ------------------------------------------------------------------

def scaled(c: int, width: float) -> int:
    """Channel count under the width multiplier (same rule as initmem.models.scaled)."""
    return max(1, round(c * width))


def conv_layers(arch: str, width: float = 1.0) -> tuple[list[tuple[int, int, int]], int]:
    """The 3x3 convs of an architecture as (c_in, c_out, output side), and the dense input size."""
    if arch in ("resnet9", "r9_avgpool"):
        c64, c128, c256, c512 = (scaled(c, width) for c in (64, 128, 256, 512))
        return [(3, c64, 32), (c64, c128, 32), (c128, c128, 16), (c128, c128, 16),
                (c128, c256, 16), (c256, c512, 8), (c512, c512, 4), (c512, c512, 4)], c512
    if arch in ("resnet56", "resnet110"):
        n = {"resnet56": 9, "resnet110": 18}[arch]
        widths = [scaled(c, width) for c in (16, 32, 64)]
        layers, c_in, side = [(3, widths[0], 32)], widths[0], 32
        for stage, c_out in enumerate(widths):
            for i in range(n):
                if stage > 0 and i == 0:
                    side //= 2  # stride-2 first conv of stages 2 and 3
                layers += [(c_in, c_out, side), (c_out, c_out, side)]
                c_in = c_out
        return layers, c_in
    raise ConfigError(f"arch={arch!r} is not allowed: one of resnet9, r9_avgpool, resnet56, resnet110")


def n_params(arch: str, width: float = 1.0) -> int:
    """Trainable parameters of one run: conv kernels + biases + 2 norm parameters per channel, dense."""
    layers, c_feat = conv_layers(arch, width)
    return sum(9 * ci * co + co + 2 * co for ci, co, _ in layers) + c_feat * 10 + 10


def activation_floats(arch: str, width: float = 1.0) -> float:
    """Floats one image keeps for the backward pass (SAVED_PER_CONV tensors per conv output)."""
    layers, _ = conv_layers(arch, width)
    return float(SAVED_PER_CONV * sum(co * s * s for _, co, s in layers))


def widest_output(arch: str, width: float = 1.0) -> int:
    """Floats of the largest conv output of one image (c_out * side^2)."""
    layers, _ = conv_layers(arch, width)
    return max(co * s * s for _, co, s in layers)


# --- bytes per run ----------------------------------------------------------------------------------

def _bytes(precision: str) -> int:
    return {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2}[precision]


def _word(cfg: RunConfig) -> int:
    """Bytes of a parameter (fp32 master weights under bf16)."""
    return 8 if cfg.effective_precision == "fp64" else 4


def state_bytes(cfg: RunConfig) -> float:
    """What one run holds for the whole training: weights, gradients, optimizer buffers and slots."""
    measured = MEASURED_RUN_BYTES.get((cfg.arch, float(cfg.width)))
    if measured is not None and cfg.optimizer in measured[0]:
        return measured[0][cfg.optimizer] * _word(cfg) / 4
    return n_params(cfg.arch, cfg.width) * STATE_COPIES[cfg.optimizer] * _word(cfg)


def train_step_bytes(cfg: RunConfig) -> float:
    """One training step's transient memory per run (saved activations, their gradients, temporaries)."""
    measured = MEASURED_RUN_BYTES.get((cfg.arch, float(cfg.width)))
    scale = _bytes(cfg.effective_precision) / 4
    if measured is not None and cfg.optimizer in measured[0]:
        return measured[1] * cfg.batch_size * scale
    return activation_floats(cfg.arch, cfg.width) * cfg.batch_size * 4 * scale


def eval_image_bytes(cfg: RunConfig) -> float:
    """Inference peak per image per run (the widest layer's live tensors and the input copy)."""
    floats = EVAL_PER_WIDEST[cfg.arch] * widest_output(cfg.arch, cfg.width) + INPUT_FLOATS
    return floats * _bytes(cfg.effective_precision)


def _compiled_on_cuda(cfg: RunConfig) -> bool:
    return cfg.compile and cfg.device.startswith("cuda")


def eval_chunk(cfg: RunConfig, n_runs: int) -> int:
    """Images per evaluation forward (each run sees the same chunk). CUDA: as many as fit in one training
    step's transient memory (so evaluation adds nothing to an eager pack), EVAL_CHUNK_MIN..MAX; CPU:
    EVAL_CHUNK_CPU. Never more than the val/test split, nor so many that a tensor reaches 2**31 elements."""
    if n_runs < 1:
        raise ConfigError(f"n_runs={n_runs!r} is not allowed: an integer >= 1")
    if cfg.device.startswith("cuda"):
        fit = int(train_step_bytes(cfg) // eval_image_bytes(cfg))
        chunk = min(EVAL_CHUNK_MAX, max(EVAL_CHUNK_MIN, fit))
    else:
        chunk = EVAL_CHUNK_CPU
    chunk = min(chunk, INT32_ELEMENTS // (n_runs * widest_output(cfg.arch, cfg.width)))
    return max(1, min(chunk, cfg.n_eval))


def run_memory_bytes(cfg: RunConfig) -> float:
    """Device memory one run of a pack needs: its state, and the larger of a training step and an
    evaluation chunk (eager), or both plus the copied inputs (compiled on CUDA: CUDA graph pools)."""
    train = train_step_bytes(cfg)
    evaluation = eval_chunk(cfg, 1) * eval_image_bytes(cfg)
    if _compiled_on_cuda(cfg):
        inputs = (cfg.batch_size + eval_chunk(cfg, 1)) * INPUT_FLOATS * _word(cfg)
        return state_bytes(cfg) + train + evaluation + inputs
    return state_bytes(cfg) + max(train, evaluation)


def data_bytes(cfg: RunConfig) -> float:
    """The splits held once on the device as floats."""
    return (cfg.n_train + 2 * cfg.n_eval) * INPUT_FLOATS * _word(cfg)


def max_runs_int32(cfg: RunConfig) -> int:
    """The most runs a pack like cfg may hold before one of its tensors reaches 2**31 elements: the
    activations of a batch (B, M*C, H, W) and of the smallest evaluation chunk, and the flat buffers."""
    per_run = max(cfg.batch_size * widest_output(cfg.arch, cfg.width),
                  min(EVAL_CHUNK_MIN, cfg.n_eval) * widest_output(cfg.arch, cfg.width),
                  n_params(cfg.arch, cfg.width))
    return max(1, INT32_ELEMENTS // per_run)
