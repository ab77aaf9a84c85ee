"""Device memory of a pack: training, evaluation, CUDA graph pools, int32 indexing (no torch import).

    python bench/bench_memory.py          # measures the train and eval peaks on CPU against this model

One model for the two floors that size things from memory: the planner's pack sizes
(tune_jobs/planner.py) and train_pack's evaluation chunks (initmem/train.py). Per run of a pack:

    state     weights, the optimizer's flat gradient / scratch / lr / index / mask buffers, its slots,
              and the gradients autograd is producing at the backward peak (OptimizerSpec.state_copies)
    train     one step's transient memory: saved activations, their gradients, the update's temporaries
              = b * per_image (MEASURED_RUN_BYTES where measured, else SAVED_PER_CONV floats per conv output)
    eval      one inference chunk: ModelSpec.eval_per_widest x the widest output per image, + the input copy
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

import math

from initmem.architectures import MODELS, cost
from initmem.config import ConfigError, RunConfig
from initmem.datasets import DATASETS
from initmem.optimizers import OPTIMIZERS

# Per-parameter copies held during training: OptimizerSpec.state_copies (initmem.optimizers).
# Activation floats kept for backward and the widest conv output: initmem.architectures.cost.
# Measured per-run bytes = state[optimizer] + per_image * batch_size, fp32, one step's peak tensor
# memory on CPU (bench/bench_memory.py --widths 1 0.5 --batches 16 64 128 --optimizers sgd adamw muon;
# allocation sizes are the same on a GPU, whose workspaces GPU_MEMORY_FRACTION leaves room for).
# Used instead of the analytic model where the (arch, width) and optimizer are in the table.
MEASURED_RUN_BYTES = {
    ("resnet9", 1.0): ({"sgd": 156.05e6, "adam": 208.84e6, "adamw": 208.84e6, "muon": 208.83e6}, 3.776e6),
    ("resnet9", 0.5): ({"sgd": 38.43e6, "adam": 51.61e6, "adamw": 51.61e6, "muon": 51.62e6}, 1.916e6),
}
# Inference peak per image, in units of the widest layer output: ModelSpec.eval_per_widest
# (initmem.architectures; measured for the ResNets by bench/bench_memory.py).
# Evaluation chunk (images per run per forward). CUDA: what fits in one training step's transient memory,
# within these bounds. CPU: the fastest measured (bench/bench_eval.py: per image, 200 vs 1000 images).
EVAL_CHUNK_MIN, EVAL_CHUNK_MAX = 32, 1000
EVAL_CHUNK_CPU = 200
INT32_ELEMENTS = 2**31 - 1   # the most elements one tensor may have


def widest_output(cfg: RunConfig) -> float:
    """Floats of the largest layer output of one image (c_out * side^2 for the ResNets)."""
    return cost(cfg).widest


def input_floats(cfg: RunConfig) -> int:
    """One image as the forward copies it (runs into channels): the dataset's C * H * W."""
    return math.prod(DATASETS[cfg.dataset].image_shape)


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
    return cost(cfg).params * OPTIMIZERS[cfg.optimizer].state_copies * _word(cfg)


def train_step_bytes(cfg: RunConfig) -> float:
    """One training step's transient memory per run (saved activations, their gradients, temporaries)."""
    measured = MEASURED_RUN_BYTES.get((cfg.arch, float(cfg.width)))
    scale = _bytes(cfg.effective_precision) / 4
    if measured is not None and cfg.optimizer in measured[0]:
        return measured[1] * cfg.batch_size * scale
    return cost(cfg).act_floats * cfg.batch_size * 4 * scale


def eval_image_bytes(cfg: RunConfig) -> float:
    """Inference peak per image per run (the widest layer's live tensors and the input copy)."""
    floats = MODELS[cfg.arch].eval_per_widest * widest_output(cfg) + input_floats(cfg)
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
    chunk = min(chunk, int(INT32_ELEMENTS // (n_runs * widest_output(cfg))))
    return max(1, min(chunk, cfg.n_eval))


def run_memory_bytes(cfg: RunConfig) -> float:
    """Device memory one run of a pack needs: its state, and the larger of a training step and an
    evaluation chunk (eager), or both plus the copied inputs (compiled on CUDA: CUDA graph pools)."""
    train = train_step_bytes(cfg)
    evaluation = eval_chunk(cfg, 1) * eval_image_bytes(cfg)
    if _compiled_on_cuda(cfg):
        inputs = (cfg.batch_size + eval_chunk(cfg, 1)) * input_floats(cfg) * _word(cfg)
        return state_bytes(cfg) + train + evaluation + inputs
    return state_bytes(cfg) + max(train, evaluation)


def data_bytes(cfg: RunConfig) -> float:
    """The splits held once on the device as floats."""
    return (cfg.n_train + 2 * cfg.n_eval) * input_floats(cfg) * _word(cfg)


def max_runs_int32(cfg: RunConfig) -> int:
    """The most runs a pack like cfg may hold before one of its tensors reaches 2**31 elements: the
    activations of a batch (B, M*C, H, W) and of the smallest evaluation chunk, and the flat buffers."""
    per_run = max(cfg.batch_size * widest_output(cfg), min(EVAL_CHUNK_MIN, cfg.n_eval) * widest_output(cfg),
                  cost(cfg).params)
    return max(1, int(INT32_ELEMENTS // per_run))
