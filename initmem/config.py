"""Run configuration: one frozen dataclass whose fields are the Parquet columns and Tune keys.

    from initmem.config import RunConfig
    cfg = RunConfig(optimizer="adam", sigma_w=0.5, seed=42)   # validated on construction
    cfg.run_id                                                  # stable 16-hex hash of the science fields

A *run* is one model trained from one initialisation (SPEC Section 1).  A *pack* is a set of
runs that share `pack_key` (everything that fixes tensor shapes and the optimizer family) and
differ only in the per-run scalars `PER_RUN_FIELDS`; a pack trains its runs in lockstep.

Every value is checked in `__post_init__`, so a bad field fails before any data is read or any
tensor allocated, with an error that names the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

from initmem.errors import ConfigError
from initmem.architectures import MODELS
from initmem.datasets import DATASETS
from initmem.inits import INITS
from initmem.fields import (FieldDoc, check_fields, check_value, coerce, fail, field_docs, markdown_table, meta,
                            option)
from initmem.optimizers import OPTIMIZERS, decoupled
from initmem.registry import did_you_mean

NORMS = ("batchnorm", "layernorm")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "fp64", "fp32", "tf32", "bf16")
# What precision="auto" runs as: TF32 on CUDA (TensorFlow's default on Ampere+, what the paper ran,
# SPEC Section 3), fp32 on CPU (where TF32 does not exist).
AUTO_PRECISION = {"cuda": "tf32", "cpu": "fp32"}

# Fields that may differ between the runs of one pack (each run carries its own value).
PER_RUN_FIELDS = ("sigma_w", "seed", "lr0", "l2", "weight_decay", "init", "sigma_first", "sigma_last", "bias_std",
                  "width_scaling")
# Fields added after results were first written: they enter run_id only when set away from their
# default, so every run written before keeps its identity (tests/test_study.py pins the paper's ids).
LATER_FIELDS = ("init", "sigma_first", "sigma_last", "bias_std", "width_scaling")
WIDTH_SCALINGS = ("standard", "mup")
# Fields that say *where/how fast* a run is computed, not *what* is computed: left out of run_id
# so that moving a sweep from CPU to GPU, or into another experiment, never recomputes a run.
EXECUTION_FIELDS = ("experiment", "device", "channels_last", "compile")

TRAIN_SIZE = DATASETS["cifar10"].train_size  # 40,000: CIFAR-10's train split after the seed-42 hold-out
EVAL_SIZE = DATASETS["cifar10"].eval_size    # 10,000 validation and test images, each


_field = option  # RunConfig's fields are options (initmem.fields): meaning, unit, allowed, check


def _name_ok(v: str) -> bool:
    return bool(v) and not any(ch in v for ch in "/\\ \t\n")


def _device_ok(v: str) -> bool:
    return v in ("cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit())


@dataclass(frozen=True)
class RunConfig:
    experiment: str = _field("adhoc", "experiment name: the results folder label (not part of run_id)",
                             allowed="a non-empty name without spaces or slashes", check=_name_ok)
    arch: str = _field("resnet9", "network architecture (SPEC Section 1; initmem.architectures)", choices=MODELS)
    norm: str = _field("batchnorm", "normalisation layer (Keras BatchNorm: momentum 0.99, eps 1e-3)",
                       choices=NORMS)
    augment: bool = _field(False, "train-time augmentation: horizontal flip + 4-px reflect pad + random 32x32 crop",
                           allowed="true or false")
    optimizer: str = _field("sgd", "update rule (Keras semantics; sgd_momentum uses `momentum`; initmem.optimizers)",
                            choices=OPTIMIZERS)
    batch_size: int = _field(128, "images per update", "images",
                             "an integer >= 1 (at most train_subset when that is set)", check=lambda v: v >= 1)
    epochs: int = _field(300, "passes over the train split", "epochs", "an integer >= 1", check=lambda v: v >= 1)
    schedule: str = _field("cosine", "learning-rate schedule: cosine decay per update to alpha * lr0, or constant",
                           choices=SCHEDULES)
    lr0: float = _field(1e-3, "peak learning rate", "per update", "a number > 0", check=lambda v: v > 0)
    alpha: float = _field(0.01, "cosine floor as a fraction of lr0", "fraction of lr0", "a number in [0, 1]",
                          check=lambda v: 0 <= v <= 1)
    sigma_w: float = _field(1.0, "kernel init scale: std = sigma_w / sqrt(fan_in)", "", "a number > 0",
                            check=lambda v: v > 0)
    seed: int = _field(0, "seed of init, data order and augmentation", "", "an integer in [0, 2**31)",
                       check=lambda v: 0 <= v < 2**31)
    l2: float = _field(0.0, "Keras L2 penalty coefficient on conv/dense kernels (added to the loss)", "",
                       "a number >= 0", check=lambda v: v >= 0)
    weight_decay: float = _field(-1.0, "decoupled weight decay, w <- w - lr * weight_decay * w; -1 = the "
                                 "optimizer's default (adamw, muon, muon_conv: 1e-4; others: 0), resolved "
                                 "when the config is built (the column holds the value used)",
                                 "",
                                 lambda: "a number >= 0 (or -1 for the optimizer default); > 0 only for "
                                 f"{', '.join(decoupled())}", check=lambda v: v >= 0)
    momentum: float = _field(0.9, "momentum coefficient (sgd_momentum only)", "", "a number in [0, 1)",
                             check=lambda v: 0 <= v < 1)
    patience: int = _field(0, "early stopping on val loss after this many epochs without improvement; "
                           "0 = off", "epochs", "an integer >= 0 (0 = no early stopping)", check=lambda v: v >= 0)
    precision: str = _field("auto", "arithmetic: auto (tf32 on CUDA, as TensorFlow runs the paper's GPUs; fp32 "
                            "on CPU), fp32 (strict, TF32 off), tf32 (CUDA TF32 matmul/conv), bf16 (bfloat16 "
                            "autocast, fp32 master weights), fp64 (tests); run_id hashes the precision that "
                            "runs", choices=PRECISIONS)
    device: str = _field("cpu", "device the pack trains on (not part of run_id)", "",
                         "'cpu', 'cuda' or 'cuda:N'", check=_device_ok)
    channels_last: bool = _field(True, "channels-last (NHWC) activations, faster convolutions and max pools on "
                                 "CPU (oneDNN) and CUDA; false: NCHW (not part of run_id)",
                                 allowed="true or false")
    compile: bool = _field(False, "torch.compile the packed model (CUDA: reduce-overhead mode; not part of run_id)",
                           allowed="true or false")
    dataset: str = _field("cifar10", "data (initmem.datasets): CIFAR-10 (the paper's), CIFAR-100, SVHN, Fashion-MNIST, "
                          "or a small synthetic set (tests; no files)", choices=DATASETS)
    train_subset: int = _field(0, f"first N images of the train split (CIFAR-10: {TRAIN_SIZE:,}); 0 = all", "images",
                               "an integer >= 0, at most the dataset's train split (0 = all)", check=lambda v: v >= 0)
    eval_subset: int = _field(0, f"first N val and N test images (CIFAR-10: {EVAL_SIZE:,} each); 0 = all", "images",
                              "an integer >= 0, at most the dataset's validation split (0 = all)",
                              check=lambda v: v >= 0)
    width: float = _field(1.0, "channel multiplier of the network (1/8 for smoke networks)", "",
                          "a number in (0, 4]", check=lambda v: 0 < v <= 4)
    # --- initialisation beyond sigma_w (initmem.inits; fields added after the first results: LATER_FIELDS)
    init: str = _field("paper", "kernel initialisation scheme: paper = N(0, sigma^2 / fan_in) (SPEC Section 3); "
                       "orthogonal = orthogonal kernels with the same Frobenius norm; plugins add more",
                       choices=INITS)
    sigma_first: float = _field(-1.0, "init scale of the first kernel (model order); -1 = sigma_w", "",
                                "a number > 0, or -1 for sigma_w", check=lambda v: v > 0 or v == -1.0)
    sigma_last: float = _field(-1.0, "init scale of the last kernel (the classifier); -1 = sigma_w", "",
                               "a number > 0, or -1 for sigma_w", check=lambda v: v > 0 or v == -1.0)
    bias_std: float = _field(0.2, "std of every bias at init (not scaled by sigma_w)", "", "a number >= 0",
                             check=lambda v: v >= 0)
    width_scaling: str = _field("standard", "init width scaling: standard, or mup (the last kernel's std "
                                "/ sqrt(width): muP's output layer, the paper's at width 1)",
                                choices=WIDTH_SCALINGS)

    def __post_init__(self) -> None:
        if self.weight_decay == -1.0:
            spec = OPTIMIZERS[self.optimizer] if self.optimizer in OPTIMIZERS else None  # else _validate names it
            object.__setattr__(self, "weight_decay", spec.default_weight_decay if spec else 0.0)
        _validate(self)

    # --- identity -------------------------------------------------------------------------
    @functools.cached_property
    def run_id(self) -> str:
        """Stable hash of every field that changes what is computed (not EXECUTION_FIELDS)."""
        science = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS
                   and not (k in LATER_FIELDS and v == _DEFAULTS[k])}
        science["precision"] = self.effective_precision  # auto hashes as what it runs: tf32 on CUDA
        blob = json.dumps(science, sort_keys=True, default=repr)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @functools.cached_property
    def pack_key(self) -> tuple:
        """Fields that must be equal for runs to share a pack (all but PER_RUN_FIELDS)."""
        return tuple((k, v) for k, v in self.to_dict().items()
                     if k not in PER_RUN_FIELDS and k != "experiment")

    # --- derived quantities -----------------------------------------------------------------
    @property
    def effective_precision(self) -> str:
        """The precision this run computes in: precision, with auto resolved for the device."""
        if self.precision != "auto":
            return self.precision
        return AUTO_PRECISION["cuda" if self.device.startswith("cuda") else "cpu"]

    @property
    def n_train(self) -> int:
        """Train images per epoch: the subset, else the whole train split of the dataset."""
        return self.train_subset or DATASETS[self.dataset].train_size

    @property
    def n_eval(self) -> int:
        """Validation images, and test images, evaluated every epoch."""
        return self.eval_subset or DATASETS[self.dataset].eval_size

    @property
    def steps_per_epoch(self) -> int:
        """ceil(n_train / b): the last partial batch is kept (SPEC Section 3)."""
        return math.ceil(self.n_train / self.batch_size)

    @property
    def total_steps(self) -> int:
        """K = epochs * ceil(n_train / b): the cosine horizon."""
        return self.epochs * self.steps_per_epoch

    def to_dict(self) -> dict[str, Any]:
        # every field is a scalar (str, int, float, bool, None): a shallow dict, not asdict's deep copy
        return {name: getattr(self, name) for name in _FIELDS}

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        """Build from a mapping; unknown keys are an error naming them."""
        known = _FIELDS.keys()
        unknown = sorted(set(d) - known)
        if unknown:
            hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
            raise ConfigError(f"unknown config field(s) {unknown}{hint}; allowed fields: {sorted(known)}")
        return cls(**{k: _coerce(k, v) for k, v in d.items()})


_FIELDS = {f.name: f for f in fields(RunConfig)}  # in definition order
_DEFAULTS = {name: f.default for name, f in _FIELDS.items()}


def _coerce(name: str, value: Any) -> Any:
    """Accept strings from CLIs/YAML for numeric and boolean fields, with a clear error."""
    f = _FIELDS[name]
    return coerce(name, value, f.type, f.metadata)


def _validate(c: RunConfig) -> None:
    """Each field against its definition (type, then `allowed`), then the rules across fields."""
    check_fields(c)
    if c.weight_decay > 0 and not OPTIMIZERS[c.optimizer].decoupled_decay:
        fail("weight_decay", c.weight_decay,
              f"0 for optimizer {c.optimizer!r} (decoupled decay exists for {list(decoupled())};"
              " use l2 for a coupled penalty)")
    data = DATASETS[c.dataset]
    if data.read is not None:  # files of fixed size (a generated set, synthetic, has any size)
        if c.train_subset > data.train_size:
            fail("train_subset", c.train_subset,
                 f"{FIELD_DOCS['train_subset'].allowed}: {data.train_size} for {c.dataset}")
        if c.eval_subset > data.eval_size:
            fail("eval_subset", c.eval_subset, f"{FIELD_DOCS['eval_subset'].allowed}: {data.eval_size} for {c.dataset}")
    if c.train_subset and c.batch_size > c.train_subset:
        fail("batch_size", c.batch_size, f"at most train_subset={c.train_subset}")


# --- the field definitions as documentation -------------------------------------------------------
PARQUET_TYPES = {"str": "string", "int": "int64", "float": "float64", "bool": "bool"}  # pyarrow aliases: results.CONFIG_FIELDS


FIELD_DOCS: dict[str, FieldDoc] = field_docs(RunConfig, PER_RUN_FIELDS)


def fields_markdown() -> str:
    """The table of RunConfig columns in docs/results.md (a test checks that the two agree;
    `python -m initmem fields --markdown` prints it)."""
    return markdown_table(FIELD_DOCS, "column", PARQUET_TYPES)


# --- how often a pack checkpoints (the trainer's option; both command lines show this definition) -------
CHECKPOINT_EVERY = meta("epochs between checkpoints of a pack (a crash loses at most this many)", "epochs",
                        "an integer >= 1", check=lambda v: v >= 1,
                        default_text="epochs // 30, at least 1 (about 30 checkpoints per run)")


def checkpoint_interval(every: int | None, epochs: int) -> int:
    """Epochs between checkpoints: `every` when given (an integer >= 1, else a ConfigError), else
    epochs // 30 and at least 1, so a crash loses at most ~3% of a pack's work."""
    if every is None:
        return max(1, epochs // 30)
    check_value("checkpoint_every", every, "int", CHECKPOINT_EVERY)
    return every


def group_by_pack_key(runs: Iterable[RunConfig]) -> dict[tuple, list[RunConfig]]:
    """Runs that may share a pack, in first-seen order of their pack_key and of the runs."""
    groups: dict[tuple, list[RunConfig]] = {}
    for r in runs:
        groups.setdefault(r.pack_key, []).append(r)
    return groups


def group_into_packs(runs: Iterable[RunConfig], max_pack_size: int) -> list[list[RunConfig]]:
    """Group runs by pack_key, keep the input order inside a group, split at max_pack_size."""
    if max_pack_size < 1:
        raise ConfigError(f"max_pack_size={max_pack_size!r} is not allowed: an integer >= 1")
    packs = []
    for members in group_by_pack_key(runs).values():
        for i in range(0, len(members), max_pack_size):
            packs.append(members[i:i + max_pack_size])
    return packs


def check_pack(runs: Sequence[RunConfig]) -> None:
    """A pack is non-empty, shares one pack_key and holds each run_id once."""
    if not runs:
        raise ConfigError("a pack needs at least one run")
    key = runs[0].pack_key
    for r in runs[1:]:
        if r.pack_key != key:
            diff = sorted(k for (k, v), (_, w) in zip(key, r.pack_key) if v != w)
            raise ConfigError(f"runs in one pack must agree on {diff}; only {list(PER_RUN_FIELDS)} may differ")
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise ConfigError("a pack holds the same run twice (identical run_id)")


def pack_id(runs: Sequence[RunConfig]) -> str:
    """Stable id of a pack: hash of its sorted run_ids."""
    blob = ",".join(sorted(r.run_id for r in runs))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
