"""The study's experiments (SPEC Section 2) as data: grids, presets and the catalogue.

    python -m tune_jobs --list                     # the catalogue, as the sweep command shows it

    from initmem.study import EXPERIMENTS
    exp = EXPERIMENTS["main_grid"]
    runs = exp.runs("full")                          # 6,250 validated RunConfigs
    runs = exp.runs("smoke")                         # same shape, tiny: 2 sigmas, 1 seed, >= 300 updates

This is the study's vocabulary, so it lives in the core: the sweeps (tune_jobs) run these
experiments, and the analysis keys its report sections, titles and synthetic data on EXPERIMENTS,
so an experiment added here gets a sweep command and a report section with no other edit. User
grid files (YAML / Python) are parsed in tune_jobs/grids.py into the same Experiment.

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
the smokes but main_grid's and long_sgd's train b=16 only (a b=32 run costs twice a b=16 one: the
same 300 updates of twice the images; batch size is not a code path) and depth's adam only, to stay
well within that (lr_l2: 16 -> 8 runs, measured 162 s -> 64 s; best_recipe 8 -> 4 runs, 100 s -> 49 s).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

from initmem.config import ConfigError, RunConfig

SEEDS10 = (0, 1, 42, 123, 456, 789, 999, 2024, 2025, 2026)
SEEDS5 = SEEDS10[:5]
SIGMA25 = tuple(round(0.1 * i, 2) for i in range(1, 26))   # 0.1, 0.2, ..., 2.5 (exact decimals)
SIGMA5 = (0.1, 0.5, 1.0, 1.8, 2.5)
OPT5 = ("sgd", "sgd_momentum", "adam", "adamw", "muon")
BATCH5 = (16, 32, 64, 128, 256)
PRESETS = ("smoke", "mini", "full")  # every catalogue experiment has these; a user grid may add its own smoke

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
    """A named union of grids per preset (PRESETS: full, the paper's; smoke, its tiny cut)."""
    name: str
    description: str
    presets: Mapping[str, tuple[Grid, ...]]
    expected_runs: int | None = None   # SPEC Section 2 count of the full preset (checked in tests)
    source: str = "catalogue"          # catalogue, or the user file it came from
    title: str = ""                    # the report section's heading (default: "Experiment <name>")

    @property
    def heading(self) -> str:
        return self.title or f"Experiment {self.name}"

    @property
    def full(self) -> tuple[Grid, ...]:
        return self.presets["full"]

    def grids(self, preset: str) -> tuple[Grid, ...]:
        if preset not in self.presets:
            raise ConfigError(f"preset={preset!r} is not allowed: one of {list(self.presets)}")
        return self.presets[preset]

    def restrict(self, **values: Sequence[Any]) -> "Experiment":
        """The same experiment with some fields limited to `values` in every preset (cut_grids): an
        axis of a grid takes the given values instead of its own; a grid whose fixed (or default)
        value of the field is not among them is left out. E.g. restrict(sigma_w=[0.1, 2.5], seed=[0])."""
        presets = {p: cut_grids(g, **values) for p, g in self.presets.items()}
        return dataclasses.replace(self, presets=presets, expected_runs=None)

    def label(self, preset: str) -> str:
        """The folder under --storage: the name for the full preset, else name_<preset>, so a smoke
        never mixes into the full results. Runs of every preset carry RunConfig.experiment = name
        (the analysis keys its sections on it; a smoke run differs from a full one in its science
        fields and run_id)."""
        return self.name if preset == "full" else f"{self.name}_{preset}"

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
                    grids = self.grids(preset)
                    which = f", grid {gi + 1} of {len(grids)}" if len(grids) > 1 else ""
                    kind = f" ({preset} preset)" if preset != "full" else ""
                    raise ConfigError(f"{where}experiment {self.name!r}{kind}{which}: {e}") from None
                if cfg.run_id in seen:
                    raise ConfigError(f"experiment {self.name!r} ({preset}) holds the same run twice: "
                                      f"{ {k: v for k, v in values.items() if k in grid.axes} }")
                seen.add(cfg.run_id)
                runs.append(cfg)
        return runs


def cut_grids(grids: Sequence[Grid], **values: Sequence[Any]) -> tuple[Grid, ...]:
    """Grids with fields limited to `values` (see Experiment.restrict); unknown fields are an error."""
    unknown = sorted(set(values) - RUN_FIELDS)
    if unknown:
        raise ConfigError(f"unknown run field(s) {unknown}; allowed fields: {sorted(RUN_FIELDS)}")
    out = []
    for g in grids:
        axes, keep = dict(g.axes), True
        for name, vals in values.items():
            if name in axes:
                axes[name] = tuple(vals)
            else:
                keep &= g.fixed.get(name, getattr(RunConfig(), name)) in tuple(vals)
        if keep:
            out.append(Grid(g.fixed, axes))
    return tuple(out)


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


# --- the mini preset: the paper's questions on a laptop ----------------------------------------------
# Sizes for 2 CPU cores (docs/mini_study.md has the measured times). Training costs per image there, not
# per step (width 1/8: ~1.1 ms per image forward + backward at any batch size, ~0.7 ms per evaluated image),
# so the budget is images: ResNet-9 at width 1/8 on 256 training images, 200 validation and 200 test
# images, 40 epochs (b=16: 640 updates; b=128: 80), the five-point sigma set, three seeds, batch sizes 16
# and 128. Width 1/16 halves the cost but does not train (train loss 1.2 at sigma 0.1 after 40 epochs at
# b=16, measured), so the width stays. Learning rates are the paper's. A longer run (long_sgd's 5,000
# epochs) is 10 x MINI_EPOCHS; other epoch counts (and patience) scale by MINI_EPOCHS / 300.
MINI = {"width": 0.125, "train_subset": 256, "eval_subset": 200}
MINI_EPOCHS = 40          # the paper's 300 epochs at mini scale
MINI_LONG = 10            # long_sgd: this many times MINI_EPOCHS (the paper: 5,000 / 300 = 16.7)
MINI_SEEDS = 3
MINI_BATCH = (16, 128)
# The main grid's mini leaves out muon: no finding reads it (F1 compares SGD with adam and adamw, F6 SGD
# with sgd_momentum), and it is a fifth of the grid's cost.
MINI_MAIN_OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adamw")
# lr_l2 at mini scale: T_L2 = l2 * sum eta needs ~1e5 updates to pass 1 with the paper's coefficients
# (lr0 1e-2, l2 1e-2: T_L2 4.7 at b=128 after 93,900 updates); the mini makes 640. So it adds one
# setting beyond the paper, lr0 0.1 with l2 0.6 (T_L2 ~ 19 at b=16), the only way to reach T_L2 >> 1 at
# this size; it is labelled by its l2 in every table. The paper's axes are cut to lr0 {1e-3, 1e-1} (lr
# alone: the smallest and the largest) and l2 {0, 1e-2}.
MINI_L2_EXTRA = {"lr0": 0.1, "l2": 0.6}


def mini_epochs(epochs: int) -> int:
    """A grid's epochs at mini scale: the paper's 300 -> MINI_EPOCHS, a long run (> 300) -> MINI_LONG x
    MINI_EPOCHS, others in proportion (best_recipe's 200 -> 27)."""
    if epochs > 300:
        return MINI_LONG * MINI_EPOCHS
    return max(1, round(epochs * MINI_EPOCHS / 300))


def minify(grid: Grid, **axes: Sequence[Any]) -> tuple[Grid, ...]:
    """The mini version of a grid: MINI fixed fields; sigma_w -> SIGMA5 where the grid has them (else its
    own), seeds -> the first MINI_SEEDS, batch sizes -> MINI_BATCH where the grid has both (else its
    smallest and largest); epochs and patience scaled (mini_epochs); other axes kept unless in `axes`."""
    cut: dict[str, Sequence[Any]] = {}
    for name, values in grid.axes.items():
        if name in axes:
            cut[name] = tuple(axes[name])
        elif name == "sigma_w":
            cut[name] = SIGMA5 if set(SIGMA5) <= set(values) else tuple(values)
        elif name == "seed":
            cut[name] = tuple(values[:MINI_SEEDS])
        elif name == "batch_size" and len(values) > 1:
            cut[name] = MINI_BATCH if set(MINI_BATCH) <= set(values) else (min(values), max(values))
        else:
            cut[name] = tuple(values)
    fixed = {**grid.fixed, **MINI}
    if "epochs" not in cut:
        fixed["epochs"] = mini_epochs(fixed.get("epochs", RunConfig().epochs))
    if fixed.get("patience"):
        fixed["patience"] = max(1, round(fixed["patience"] * MINI_EPOCHS / 300))
    return (Grid(fixed, cut),)


def _experiment(name: str, title: str, description: str, grids: Sequence[Grid], expected: int,
                smoke_axes: Mapping[str, Sequence[Any]] | None = None, mini_axes: Mapping[str, Sequence[Any]] | None = None,
                mini_extra: Sequence[Grid] = ()) -> Experiment:
    grids = tuple(grids)
    smoke = tuple(s for g in grids for s in shrink(g, **(smoke_axes or {})))
    mini = tuple(m for g in grids for m in minify(g, **(mini_axes or {}))) + tuple(mini_extra)
    return Experiment(name, description, {"full": grids, "smoke": smoke, "mini": mini}, expected, title=title)


# --- SPEC Section 2 -----------------------------------------------------------------------------
# Defaults everywhere (RunConfig): lr0 1e-3, cosine with alpha 0.01, 300 epochs, no augmentation,
# BatchNorm, no L2; adamw/muon take decoupled decay 1e-4 from RunConfig.

MAIN_GRID = _experiment(
    "main_grid", "Main grid: optimizer x batch size x sigma_w (Figures 1-3, 6; Tables 2-3)",
    "ResNet-9 x SIGMA25 x OPT5 x b in {16,32,64,128,256} x 10 seeds",
    [Grid({"arch": "resnet9"},
          {"optimizer": OPT5, "batch_size": BATCH5, "sigma_w": SIGMA25, "seed": SEEDS10})],
    6_250, mini_axes={"optimizer": MINI_MAIN_OPTIMIZERS})

LONG_SGD = _experiment(
    "long_sgd", "Long SGD: constant lr for many epochs",
    "sgd, constant lr 1e-3, 5,000 epochs, SIGMA5 x b in {16,128}, seed 42",
    [Grid({"arch": "resnet9", "optimizer": "sgd", "schedule": "constant", "lr0": 1e-3, "epochs": 5_000},
          {"batch_size": (16, 128), "sigma_w": SIGMA5, "seed": (42,)})],
    10)

LR_L2 = _experiment(
    "lr_l2", "Learning rate x L2 for SGD (Figure 4, Table 4)",
    "sgd, 300 ep cosine, lr0 {1e-3,1e-2,1e-1} x l2 {0,1e-3,5e-3,1e-2} x SIGMA5 x b {16,128} x 10 seeds",
    [Grid({"arch": "resnet9", "optimizer": "sgd"},
          {"lr0": (1e-3, 1e-2, 1e-1), "l2": (0.0, 1e-3, 5e-3, 1e-2), "batch_size": (16, 128),
           "sigma_w": SIGMA5, "seed": SEEDS10})],
    1_200, smoke_axes={"lr0": (1e-3, 1e-1), "l2": (0.0, 1e-2), "batch_size": (16,)}, mini_axes={"lr0": (1e-3, 1e-1), "l2": (0.0, 1e-2)},
    mini_extra=[Grid({"arch": "resnet9", "optimizer": "sgd", **MINI_L2_EXTRA, **MINI, "epochs": MINI_EPOCHS},
                     {"batch_size": MINI_BATCH, "sigma_w": SIGMA5, "seed": SEEDS10[:MINI_SEEDS]})])

NORM_AUG = _experiment(
    "norm_aug", "Normalisation and augmentation (Figure 8, Table 6)",
    "{BatchNorm, LayerNorm} + augmentation x {sgd, adam} x SIGMA5 x b {16,128} x 5 seeds",
    [Grid({"arch": "resnet9", "augment": True},
          {"norm": ("batchnorm", "layernorm"), "optimizer": ("sgd", "adam"), "batch_size": (16, 128),
           "sigma_w": SIGMA5, "seed": SEEDS5})],
    200, smoke_axes={"batch_size": (16,)})  # smoke: b=16 only; LayerNorm packs cost ~2.3x BatchNorm ones (b 16+32: 440 CPU s)

BEST_RECIPE = _experiment(
    "best_recipe", "Best recipe: standard SGD vs Adam (Table 7)",
    "200 ep cosine + augmentation: sgd_momentum (lr0 0.1, mu 0.9, L2 5e-4) vs adam (1e-3), "
                   "sigma {0.1,2.5} x b {16,128,256} x 10 seeds",
    # L2 here is the Keras penalty (l2), not decoupled decay: RunConfig rejects weight_decay for sgd_momentum.
    [Grid({"arch": "resnet9", "augment": True, "epochs": 200, "optimizer": "sgd_momentum",
           "lr0": 0.1, "momentum": 0.9, "l2": 5e-4},
          {"batch_size": (16, 128, 256), "sigma_w": (0.1, 2.5), "seed": SEEDS10}),
     Grid({"arch": "resnet9", "augment": True, "epochs": 200, "optimizer": "adam", "lr0": 1e-3},
          {"batch_size": (16, 128, 256), "sigma_w": (0.1, 2.5), "seed": SEEDS10})],
    120, smoke_axes={"batch_size": (16,)})

DEPTH = _experiment(
    "depth", "Depth: ResNet-56 / ResNet-110 / R9-AvgPool (Figures 5, 7; Table 5)",
    "{ResNet-56, ResNet-110, R9-AvgPool} x OPT5 x SIGMA5 x b {16,128} x 10 seeds; "
             "ResNet-56/110 early-stop with patience 30 on val loss, R9-AvgPool does not",
    [Grid({"patience": 30},
          {"arch": ("resnet56", "resnet110"), "optimizer": OPT5, "batch_size": (16, 128),
           "sigma_w": SIGMA5, "seed": SEEDS10}),
     Grid({"arch": "r9_avgpool", "patience": 0},
          {"optimizer": OPT5, "batch_size": (16, 128), "sigma_w": SIGMA5, "seed": SEEDS10})],
    1_500, smoke_axes={"optimizer": ("adam",), "batch_size": (16,)},  # smoke: one pack per architecture, resnet110 ~110 CPU s
    mini_axes={"optimizer": ("sgd", "adam")})  # mini: the paper's depth claims are SGD's; Adam for contrast

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in
                                      (MAIN_GRID, LONG_SGD, LR_L2, NORM_AUG, BEST_RECIPE, DEPTH)}
