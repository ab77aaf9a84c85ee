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

ARCHS = ("resnet9", "r9_avgpool", "resnet56", "resnet110")
NORMS = ("batchnorm", "layernorm")
OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adamw", "muon", "muon_conv")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "fp64", "fp32", "tf32", "bf16")
# What precision="auto" runs as: TF32 on CUDA (TensorFlow's default on Ampere+, what the paper ran,
# SPEC Section 3), fp32 on CPU (where TF32 does not exist).
AUTO_PRECISION = {"cuda": "tf32", "cpu": "fp32"}
DATASETS = ("cifar10", "synthetic")

# Decoupled weight decay each optimizer uses when the config does not say (paper Table 1).
DEFAULT_WEIGHT_DECAY = {"sgd": 0.0, "sgd_momentum": 0.0, "adam": 0.0,
                        "adamw": 1e-4, "muon": 1e-4, "muon_conv": 1e-4}
OPTIMIZERS_WITH_DECAY = ("adamw", "muon", "muon_conv")

# Fields that may differ between the runs of one pack (each run carries its own value).
PER_RUN_FIELDS = ("sigma_w", "seed", "lr0", "l2", "weight_decay")
# Fields that say *where/how fast* a run is computed, not *what* is computed: left out of run_id
# so that moving a sweep from CPU to GPU, or into another experiment, never recomputes a run.
EXECUTION_FIELDS = ("experiment", "device", "channels_last", "compile")

TRAIN_SIZE = 40_000  # CIFAR-10 train split after the seed-42 validation hold-out (SPEC Section 3)
EVAL_SIZE = 10_000   # CIFAR-10 validation and test images, each
SYNTHETIC_TRAIN_SIZE = 640  # train images of dataset="synthetic" when train_subset is 0 (tests)
SYNTHETIC_EVAL_SIZE = 200   # its val and test images, each, when eval_subset is 0


class ConfigError(ValueError):
    """A configuration value is not allowed. The message names field, value and what is allowed."""


@dataclass(frozen=True)
class RunConfig:
    experiment: str = "adhoc"       # experiment name (label only, not part of run_id)
    arch: str = "resnet9"           # one of ARCHS
    norm: str = "batchnorm"         # one of NORMS
    augment: bool = False           # flip + 4-px reflect pad + random crop
    optimizer: str = "sgd"          # one of OPTIMIZERS (Keras update rules)
    batch_size: int = 128           # images per update
    epochs: int = 300               # passes over the train split
    schedule: str = "cosine"        # cosine (per update) or constant
    lr0: float = 1e-3               # peak learning rate, per update
    alpha: float = 0.01             # cosine floor as a fraction of lr0
    sigma_w: float = 1.0            # kernel init std = sigma_w / sqrt(fan_in)
    seed: int = 0                   # fixes init, data order and augmentation
    l2: float = 0.0                 # Keras L2 penalty coefficient on conv/dense kernels
    weight_decay: float = -1.0      # decoupled decay; -1 = optimizer default (adamw/muon 1e-4, else 0)
    momentum: float = 0.9           # sgd_momentum only
    patience: int = 0               # early stopping on val loss; 0 = off (schedule unchanged)
    precision: str = "auto"         # auto (tf32 on CUDA, fp32 on CPU) | fp64 | fp32 (strict) | tf32 | bf16
    device: str = "cpu"             # cpu | cuda | cuda:N
    channels_last: bool = False     # memory format for conv inputs (CUDA)
    compile: bool = False           # torch.compile the packed model (CUDA)
    dataset: str = "cifar10"        # cifar10 | synthetic (tests)
    train_subset: int = 0           # first N train images of the 40k split; 0 = all
    eval_subset: int = 0            # first N val and N test images; 0 = all 10k each
    width: float = 1.0              # channel multiplier (1/8 for smoke networks)

    def __post_init__(self) -> None:
        if self.weight_decay == -1.0:
            object.__setattr__(self, "weight_decay", DEFAULT_WEIGHT_DECAY.get(self.optimizer, 0.0))
        _validate(self)

    # --- identity -------------------------------------------------------------------------
    @functools.cached_property
    def run_id(self) -> str:
        """Stable hash of every field that changes what is computed (not EXECUTION_FIELDS)."""
        science = {k: v for k, v in self.to_dict().items() if k not in EXECUTION_FIELDS}
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
        return self.train_subset or (SYNTHETIC_TRAIN_SIZE if self.dataset == "synthetic" else TRAIN_SIZE)

    @property
    def n_eval(self) -> int:
        """Validation images, and test images, evaluated every epoch."""
        return self.eval_subset or (SYNTHETIC_EVAL_SIZE if self.dataset == "synthetic" else EVAL_SIZE)

    @property
    def steps_per_epoch(self) -> int:
        """ceil(n_train / b): the last partial batch is kept (SPEC Section 3)."""
        return math.ceil(self.n_train / self.batch_size)

    @property
    def total_steps(self) -> int:
        """K = epochs * ceil(n_train / b): the cosine horizon."""
        return self.epochs * self.steps_per_epoch

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunConfig":
        """Build from a mapping; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; allowed fields: {sorted(known)}")
        return cls(**{k: _coerce(k, v) for k, v in d.items()})


def _coerce(name: str, value: Any) -> Any:
    """Accept strings from CLIs/YAML for numeric and boolean fields, with a clear error."""
    typ = {f.name: f.type for f in fields(RunConfig)}[name]
    if not isinstance(value, str) or typ == "str":
        return value
    try:
        if typ == "bool":
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ == "int":
            return int(value)
        if typ == "float":
            return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a valid {typ}") from None
    return value


def _fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name}={value!r} is not allowed: {allowed}")


def _check_type(name: str, value: Any, typ: type | tuple) -> None:
    if isinstance(value, bool) and typ in (int, float, (int, float)):
        _fail(name, value, f"expected a {'number' if typ != int else 'integer'}, got a bool")
    if not isinstance(value, typ):
        names = typ.__name__ if isinstance(typ, type) else " or ".join(t.__name__ for t in typ)
        _fail(name, value, f"expected {names}, got {type(value).__name__}")


def _validate(c: RunConfig) -> None:
    for name, choices in (("arch", ARCHS), ("norm", NORMS), ("optimizer", OPTIMIZERS),
                          ("schedule", SCHEDULES), ("precision", PRECISIONS), ("dataset", DATASETS)):
        value = getattr(c, name)
        if value not in choices:
            _fail(name, value, f"one of {list(choices)}")
    for name in ("augment", "channels_last", "compile"):
        _check_type(name, getattr(c, name), bool)
    for name in ("batch_size", "epochs", "seed", "patience", "train_subset", "eval_subset"):
        _check_type(name, getattr(c, name), int)
    for name in ("lr0", "alpha", "sigma_w", "l2", "weight_decay", "momentum", "width"):
        _check_type(name, getattr(c, name), (int, float))
        if not math.isfinite(getattr(c, name)):
            _fail(name, getattr(c, name), "a finite number")
    _check_type("experiment", c.experiment, str)
    if not c.experiment or any(ch in c.experiment for ch in "/\\ \t\n"):
        _fail("experiment", c.experiment, "a non-empty name without spaces or slashes")
    if c.batch_size < 1:
        _fail("batch_size", c.batch_size, "an integer >= 1")
    if c.epochs < 1:
        _fail("epochs", c.epochs, "an integer >= 1")
    if c.seed < 0 or c.seed >= 2**31:
        _fail("seed", c.seed, "an integer in [0, 2**31)")
    if c.lr0 <= 0:
        _fail("lr0", c.lr0, "a number > 0")
    if not 0 <= c.alpha <= 1:
        _fail("alpha", c.alpha, "a number in [0, 1]")
    if c.sigma_w <= 0:
        _fail("sigma_w", c.sigma_w, "a number > 0")
    if c.l2 < 0:
        _fail("l2", c.l2, "a number >= 0")
    if c.weight_decay < 0:
        _fail("weight_decay", c.weight_decay, "a number >= 0 (or -1 for the optimizer default)")
    if c.weight_decay > 0 and c.optimizer not in OPTIMIZERS_WITH_DECAY:
        _fail("weight_decay", c.weight_decay,
              f"0 for optimizer {c.optimizer!r} (decoupled decay exists for {list(OPTIMIZERS_WITH_DECAY)};"
              " use l2 for a coupled penalty)")
    if not 0 <= c.momentum < 1:
        _fail("momentum", c.momentum, "a number in [0, 1)")
    if c.patience < 0:
        _fail("patience", c.patience, "an integer >= 0 (0 = no early stopping)")
    if c.train_subset < 0 or c.train_subset > TRAIN_SIZE:
        _fail("train_subset", c.train_subset, f"an integer in [0, {TRAIN_SIZE}] (0 = all)")
    if c.eval_subset < 0 or c.eval_subset > EVAL_SIZE:
        _fail("eval_subset", c.eval_subset, f"an integer in [0, {EVAL_SIZE}] (0 = all)")
    if c.train_subset and c.batch_size > c.train_subset:
        _fail("batch_size", c.batch_size, f"at most train_subset={c.train_subset}")
    if not 0 < c.width <= 4:
        _fail("width", c.width, "a number in (0, 4]")
    if not (c.device in ("cpu", "cuda") or (c.device.startswith("cuda:") and c.device[5:].isdigit())):
        _fail("device", c.device, "'cpu', 'cuda' or 'cuda:N'")


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
