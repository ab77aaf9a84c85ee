"""The experiments of the study (SPEC Section 2) as data, their smoke presets, and user grids.

    from tune_jobs.catalogue import get_experiment
    exp = get_experiment("main_grid")              # or a path: get_experiment("my_grid.yaml")
    runs = exp.runs("full")                          # 6,250 validated RunConfigs
    runs = exp.runs("smoke")                         # same shape, tiny: 2 sigmas, 1 seed, >= 300 updates

An experiment is a union of grids. A grid is `fixed` fields plus `axes`, each axis a list of
values; its runs are the cartesian product of the axes (first axis outermost) on top of the fixed
fields and the RunConfig defaults (lr0 1e-3, cosine alpha 0.01, 300 epochs, no augmentation,
BatchNorm, no L2). Every run is validated when it is built, so a bad field fails before Ray starts.

The smoke preset of an experiment has the same grids with every axis cut to a few values (the
sigmas 1.0 and 2.5, the first seed, the batch sizes 16 and 32) and the fixed fields of SMOKE
(width 1/8, 2,400 train and 500 val/test images), trained for enough epochs that every run
makes at least SMOKE_UPDATES = 300 updates (b=16: 2 epochs, b=32: 4): by then Keras BatchNorm's
moving statistics (momentum 0.99) keep 0.99**300 = 5% of their initial values, and the networks
learn (main grid smoke, better sigma: >= 20% test accuracy, >= 30% for adam/adamw/muon). Plain
sgd at lr0 1e-3 barely moves in 300 updates (14.6% test accuracy), so the smokes train plain sgd
at SMOKE_SGD_LR0 = 1e-2 where the full grid has 1e-3 (main_grid, long_sgd, norm_aug; the one
learning rate a smoke changes; lr_l2's lr0 axis is kept). Each smoke finishes on 2 CPU cores in
about 3 minutes at most (bench/bench_smoke.py) and exercises every code path of the full preset;
depth's and norm_aug's smokes train b=16 only and depth's adam only, to stay within that.

A user grid is a YAML or Python file of the same shape (see USER_GRID_HELP); its fields are the
RunConfig fields.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

from initmem.config import ConfigError, RunConfig

SEEDS10 = (0, 1, 42, 123, 456, 789, 999, 2024, 2025, 2026)
SEEDS5 = SEEDS10[:5]
SIGMA25 = tuple(round(0.1 * i, 2) for i in range(1, 26))   # 0.1, 0.2, ..., 2.5 (exact decimals)
SIGMA5 = (0.1, 0.5, 1.0, 1.8, 2.5)
OPT5 = ("sgd", "sgd_momentum", "adam", "adamw", "muon")
BATCH5 = (16, 32, 64, 128, 256)
PRESETS = ("smoke", "full")

# Fixed fields of every smoke run: a narrow network on a data subset; epochs follow SMOKE_UPDATES.
SMOKE = {"width": 0.125, "train_subset": 2400, "eval_subset": 500}
SMOKE_UPDATES = 300   # updates per smoke run, at least: BN moving statistics (momentum 0.99) settle
SMOKE_MIN_EPOCHS = 2  # epochs per smoke run, at least: a curve, not a point
# The smoke's sigmas where the grid has them (else its smallest and largest): after 300 updates a
# sigma_w = 0.1 or 0.5 network learns in training mode (train acc 35-50%) but sits at chance in
# inference mode (test acc 10.8%), whose BN moving statistics have not caught up with it.
SMOKE_SIGMA = (1.0, 2.5)
SMOKE_BATCH = (16, 32)  # the smoke's batch sizes where the full grid has several (fewest images per update)
SMOKE_SGD_LR0 = 1e-2  # plain sgd's lr0 in a smoke where the full grid has 1e-3 and no lr0 axis (per update)

RUN_FIELDS = {f.name for f in fields(RunConfig)}


@dataclass(frozen=True)
class Grid:
    """fixed fields + the cartesian product of axes (first axis outermost)."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    axes: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    def points(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        return [{**self.fixed, **dict(zip(names, combo))}
                for combo in itertools.product(*(self.axes[n] for n in names))]


@dataclass(frozen=True)
class Experiment:
    """A named union of grids with a full and a smoke preset."""
    name: str
    description: str
    full: tuple[Grid, ...]
    smoke: tuple[Grid, ...]
    expected_runs: int | None = None   # SPEC Section 2 count of the full preset (checked in tests)
    source: str = "catalogue"          # catalogue, or the user file it came from

    def grids(self, preset: str) -> tuple[Grid, ...]:
        if preset not in PRESETS:
            raise ConfigError(f"preset={preset!r} is not allowed: one of {list(PRESETS)}")
        return self.full if preset == "full" else self.smoke

    def label(self, preset: str) -> str:
        """The folder under --storage: the name, or name_smoke, so a smoke never mixes into the full
        results. Runs of both presets carry RunConfig.experiment = name (the analysis keys its
        sections on it; a smoke run differs from a full one in its science fields and run_id)."""
        return self.name if preset == "full" else f"{self.name}_smoke"

    def runs(self, preset: str = "full", overrides: Mapping[str, Any] | None = None) -> list[RunConfig]:
        """Every run of the preset, validated; `overrides` replace fields in every run."""
        overrides = dict(overrides or {})
        if "experiment" in overrides:
            raise ConfigError("experiment cannot be overridden: it is the experiment's name")
        runs, seen = [], set()
        for gi, grid in enumerate(self.grids(preset)):
            for point in grid.points():
                values = {**point, **overrides, "experiment": self.name}
                try:
                    cfg = RunConfig.from_dict(values)
                except ConfigError as e:
                    where = f"{self.source}: " if self.source != "catalogue" else ""
                    raise ConfigError(f"{where}experiment {self.name!r} ({preset}), grid {gi + 1}: {e}") from None
                if cfg.run_id in seen:
                    raise ConfigError(f"experiment {self.name!r} ({preset}) holds the same run twice: "
                                      f"{ {k: v for k, v in values.items() if k in grid.axes} }")
                seen.add(cfg.run_id)
                runs.append(cfg)
        return runs


def smoke_epochs(batch_size: int, n_train: int = SMOKE["train_subset"]) -> int:
    """Epochs of a smoke run: at least SMOKE_MIN_EPOCHS and enough for SMOKE_UPDATES updates."""
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        return SMOKE_MIN_EPOCHS  # not a batch size: RunConfig's validation names it
    return max(SMOKE_MIN_EPOCHS, math.ceil(SMOKE_UPDATES / math.ceil(n_train / batch_size)))


def shrink(grid: Grid, **axes: Sequence[Any]) -> tuple[Grid, ...]:
    """The smoke version of a grid: SMOKE fixed fields, axes cut to a few values; one grid per
    batch size, each with smoke_epochs(b) epochs (an `epochs` axis of the grid is kept instead).

    sigma_w -> SMOKE_SIGMA if the grid has both, else (smallest, largest); seed -> first; several
    batch sizes -> SMOKE_BATCH (one is kept); plain sgd at lr0 1e-3 (no lr0 axis) -> SMOKE_SGD_LR0;
    other axes are kept unless given in `axes`.
    """
    cut: dict[str, Sequence[Any]] = {}
    for name, values in grid.axes.items():
        if name in axes:
            cut[name] = tuple(axes[name])
        elif name == "sigma_w":
            cut[name] = SMOKE_SIGMA if set(SMOKE_SIGMA) <= set(values) else \
                (min(values), max(values)) if len(values) > 1 else tuple(values)
        elif name == "seed":
            cut[name] = tuple(values[:1])
        elif name == "batch_size" and len(values) > 1:
            cut[name] = SMOKE_BATCH
        else:
            cut[name] = tuple(values)
    fixed = {**grid.fixed, **SMOKE}
    batches = cut.pop("batch_size", (fixed.get("batch_size", RunConfig().batch_size),))
    optimizers = cut.get("optimizer", (fixed.get("optimizer", RunConfig().optimizer),))
    if "sgd" in optimizers and "lr0" not in cut and fixed.get("lr0", RunConfig().lr0) == RunConfig().lr0:
        if "optimizer" in cut:  # plain sgd gets its own grid with the smoke lr0, the others keep theirs
            others = tuple(o for o in optimizers if o != "sgd")
            parts = [({**fixed, "optimizer": "sgd", "lr0": SMOKE_SGD_LR0}, {**cut, "optimizer": ("sgd",)})]
            if others:
                parts.append((fixed, {**cut, "optimizer": others}))
        else:
            parts = [({**fixed, "lr0": SMOKE_SGD_LR0}, cut)]
    else:
        parts = [(fixed, cut)]
    grids = []
    for b in batches:
        for f, a in parts:
            epochs = {} if "epochs" in a else {"epochs": smoke_epochs(b, f["train_subset"])}
            grids.append(Grid(fixed={**f, **epochs, "batch_size": b}, axes=a))
    return tuple(grids)


def _experiment(name: str, description: str, grids: Sequence[Grid], expected: int,
                **smoke_axes: Sequence[Any]) -> Experiment:
    grids = tuple(grids)
    return Experiment(name, description, grids, tuple(s for g in grids for s in shrink(g, **smoke_axes)), expected)


# --- SPEC Section 2 -----------------------------------------------------------------------------
# Defaults everywhere (RunConfig): lr0 1e-3, cosine with alpha 0.01, 300 epochs, no augmentation,
# BatchNorm, no L2; adamw/muon take decoupled decay 1e-4 from RunConfig.

MAIN_GRID = _experiment(
    "main_grid", "ResNet-9 x SIGMA25 x OPT5 x b in {16,32,64,128,256} x 10 seeds",
    [Grid({"arch": "resnet9"},
          {"optimizer": OPT5, "batch_size": BATCH5, "sigma_w": SIGMA25, "seed": SEEDS10})],
    6_250)

LONG_SGD = _experiment(
    "long_sgd", "sgd, constant lr 1e-3, 5,000 epochs, SIGMA5 x b in {16,128}, seed 42",
    [Grid({"arch": "resnet9", "optimizer": "sgd", "schedule": "constant", "lr0": 1e-3, "epochs": 5_000},
          {"batch_size": (16, 128), "sigma_w": SIGMA5, "seed": (42,)})],
    10)

LR_L2 = _experiment(
    "lr_l2", "sgd, 300 ep cosine, lr0 {1e-3,1e-2,1e-1} x l2 {0,1e-3,5e-3,1e-2} x SIGMA5 x b {16,128} x 10 seeds",
    [Grid({"arch": "resnet9", "optimizer": "sgd"},
          {"lr0": (1e-3, 1e-2, 1e-1), "l2": (0.0, 1e-3, 5e-3, 1e-2), "batch_size": (16, 128),
           "sigma_w": SIGMA5, "seed": SEEDS10})],
    1_200, lr0=(1e-3, 1e-1), l2=(0.0, 1e-2))

NORM_AUG = _experiment(
    "norm_aug", "{BatchNorm, LayerNorm} + augmentation x {sgd, adam} x SIGMA5 x b {16,128} x 5 seeds",
    [Grid({"arch": "resnet9", "augment": True},
          {"norm": ("batchnorm", "layernorm"), "optimizer": ("sgd", "adam"), "batch_size": (16, 128),
           "sigma_w": SIGMA5, "seed": SEEDS5})],
    200, batch_size=(16,))  # smoke: b=16 only; LayerNorm packs cost ~2.3x BatchNorm ones (b 16+32: 440 CPU s)

BEST_RECIPE = _experiment(
    "best_recipe", "200 ep cosine + augmentation: sgd_momentum (lr0 0.1, mu 0.9, L2 5e-4) vs adam (1e-3), "
                   "sigma {0.1,2.5} x b {16,128,256} x 10 seeds",
    # L2 here is the Keras penalty (l2), not decoupled decay: RunConfig rejects weight_decay for sgd_momentum.
    [Grid({"arch": "resnet9", "augment": True, "epochs": 200, "optimizer": "sgd_momentum",
           "lr0": 0.1, "momentum": 0.9, "l2": 5e-4},
          {"batch_size": (16, 128, 256), "sigma_w": (0.1, 2.5), "seed": SEEDS10}),
     Grid({"arch": "resnet9", "augment": True, "epochs": 200, "optimizer": "adam", "lr0": 1e-3},
          {"batch_size": (16, 128, 256), "sigma_w": (0.1, 2.5), "seed": SEEDS10})],
    120)

DEPTH = _experiment(
    "depth", "{ResNet-56, ResNet-110, R9-AvgPool} x OPT5 x SIGMA5 x b {16,128} x 10 seeds; "
             "ResNet-56/110 early-stop with patience 30 on val loss, R9-AvgPool does not",
    [Grid({"patience": 30},
          {"arch": ("resnet56", "resnet110"), "optimizer": OPT5, "batch_size": (16, 128),
           "sigma_w": SIGMA5, "seed": SEEDS10}),
     Grid({"arch": "r9_avgpool", "patience": 0},
          {"optimizer": OPT5, "batch_size": (16, 128), "sigma_w": SIGMA5, "seed": SEEDS10})],
    1_500, optimizer=("adam",), batch_size=(16,))  # smoke: one pack per architecture, resnet110 ~110 CPU s

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in
                                      (MAIN_GRID, LONG_SGD, LR_L2, NORM_AUG, BEST_RECIPE, DEPTH)}


# --- user-defined experiments -------------------------------------------------------------------

USER_GRID_HELP = """\
A user grid is a YAML file (.yaml/.yml) or a Python file (.py defining EXPERIMENT = {...}):

    name: my_sweep                       # folder under --storage; RunConfig.experiment label
    description: sgd vs adam at two widths
    fixed: {epochs: 50, augment: true}   # fields shared by every run (RunConfig fields)
    axes:                                # cartesian product, each a list of values
      optimizer: [sgd, adam]
      width: [0.5, 1.0]
      sigma_w: [0.1, 1.0, 2.5]
      seed: [0, 1, 2]
    # instead of fixed/axes, a union:  grids: [{fixed: ..., axes: ...}, ...]
    # optional smoke preset (default: the full grids shrunk like the catalogue's smokes):
    # smoke: [{fixed: ..., axes: ...}]
"""

_USER_KEYS = {"name", "description", "fixed", "axes", "grids", "smoke"}


def _grid_from(spec: Any, where: str) -> Grid:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: a grid is a mapping with 'fixed' and 'axes', got {type(spec).__name__}")
    unknown = sorted(set(spec) - {"fixed", "axes"})
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} in a grid; allowed: ['axes', 'fixed']")
    fixed, axes = dict(spec.get("fixed") or {}), dict(spec.get("axes") or {})
    for name in list(fixed) + list(axes):
        if name not in RUN_FIELDS:
            raise ConfigError(f"{where}: unknown run field {name!r}; allowed fields: {sorted(RUN_FIELDS)}")
        if name == "experiment":
            raise ConfigError(f"{where}: 'experiment' is set from the grid's name, not a field to vary")
    for name, values in axes.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"{where}: axis {name}={values!r} is not allowed: a non-empty list of values")
    return Grid(fixed, {k: tuple(v) for k, v in axes.items()})


def experiment_from_spec(spec: Mapping[str, Any], source: str = "user grid") -> Experiment:
    """A user Experiment from a dict of the USER_GRID_HELP shape; every run is validated."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{source}: expected a mapping at the top level\n{USER_GRID_HELP}")
    unknown = sorted(set(spec) - _USER_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; allowed: {sorted(_USER_KEYS)}")
    name = spec.get("name") or os.path.splitext(os.path.basename(source))[0]
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ \t\n"):
        raise ConfigError(f"{source}: name={name!r} is not allowed: a non-empty name without spaces or slashes")
    if name in EXPERIMENTS:
        raise ConfigError(f"{source}: name={name!r} is taken by the catalogue; choose another name")
    if "grids" in spec and ("fixed" in spec or "axes" in spec):
        raise ConfigError(f"{source}: give either 'grids' or 'fixed'/'axes', not both")
    raw = spec["grids"] if "grids" in spec else [{"fixed": spec.get("fixed"), "axes": spec.get("axes")}]
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)) or not raw:
        raise ConfigError(f"{source}: grids must be a non-empty list of {{fixed, axes}} mappings")
    full = tuple(_grid_from(g, f"{source}: grid {i + 1}") for i, g in enumerate(raw))
    if "smoke" in spec:
        raw_smoke = spec["smoke"] if isinstance(spec["smoke"], Sequence) else [spec["smoke"]]
        smoke = tuple(_grid_from(g, f"{source}: smoke grid {i + 1}") for i, g in enumerate(raw_smoke))
    else:
        smoke = tuple(s for g in full for s in shrink(g))
    exp = Experiment(name, str(spec.get("description", "")), full, smoke, None, source)
    for preset in PRESETS:  # validate every run of both presets now, before anything starts
        exp.runs(preset)
    return exp


def load_user_experiment(path: str) -> Experiment:
    """Read a user grid from a .yaml/.yml or .py file (see USER_GRID_HELP)."""
    if not os.path.isfile(path):
        raise ConfigError(f"experiment file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    if ext in (".yaml", ".yml"):
        import yaml
        with open(path) as f:
            try:
                spec = yaml.safe_load(f)
            except yaml.YAMLError as e:
                raise ConfigError(f"{path}: not valid YAML: {e}") from None
    elif ext == ".py":
        mod_spec = importlib.util.spec_from_file_location(f"_user_grid_{abs(hash(path))}", path)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
        if isinstance(getattr(module, "EXPERIMENT", None), Experiment):
            return module.EXPERIMENT
        if not isinstance(getattr(module, "EXPERIMENT", None), Mapping):
            raise ConfigError(f"{path}: a Python grid defines EXPERIMENT = {{...}}\n{USER_GRID_HELP}")
        spec = module.EXPERIMENT
    else:
        raise ConfigError(f"{path}: an experiment file is .yaml, .yml or .py, not {ext or 'extensionless'}")
    return experiment_from_spec(spec, source=path)


def get_experiment(name_or_path: str) -> Experiment:
    """A catalogue experiment by name, or a user grid from a file path."""
    if name_or_path in EXPERIMENTS:
        return EXPERIMENTS[name_or_path]
    if name_or_path.endswith((".yaml", ".yml", ".py")) or os.sep in name_or_path:
        return load_user_experiment(name_or_path)
    raise ConfigError(f"unknown experiment {name_or_path!r}: one of {list(EXPERIMENTS)}, "
                      "or the path of a .yaml/.py grid file")
