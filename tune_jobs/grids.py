"""User grids: an experiment of your own from a YAML or Python file, and lookup by name or path.

    python -m tune_jobs my_grid.yaml --preset full --dry-run

    from tune_jobs.grids import get_experiment
    exp = get_experiment("main_grid")              # the catalogue (initmem.study.EXPERIMENTS)
    exp = get_experiment("my_grid.yaml")           # a user grid: the same Experiment, validated

A user grid has the shape of USER_GRID_HELP; its fields are the RunConfig fields, and every run
of every preset is validated when the file is read, so a bad field fails before Ray starts.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping, Sequence

from initmem.config import ConfigError
from initmem.registry import load_plugin
from initmem.study import EXPERIMENTS, PRESETS, RUN_FIELDS, Experiment, Grid, minify, shrink

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
    # optional smoke preset (default: the full grids shrunk like the catalogue's smokes; the mini
    # preset is always the full grids cut like the catalogue's minis):
    # smoke: [{fixed: ..., axes: ...}]
    # plugins: [my_science.py]          # files (relative to this one) or modules registering models,
    #                                   # datasets, optimizers, inits (docs/extending.md)
"""

_USER_KEYS = {"name", "description", "fixed", "axes", "grids", "smoke", "plugins"}


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
    plugins = spec.get("plugins") or []
    if isinstance(plugins, str) or not isinstance(plugins, Sequence):
        raise ConfigError(f"{source}: plugins={plugins!r} is not allowed: a list of .py files or module names")
    here = os.path.dirname(os.path.abspath(source)) if os.path.isfile(source) else os.getcwd()
    for plugin in plugins:  # before the runs are validated: they may name what a plugin registers
        is_file = str(plugin).endswith(".py") or os.sep in str(plugin)
        load_plugin(os.path.join(here, plugin) if is_file and not os.path.isabs(plugin) else str(plugin))
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
    mini = tuple(m for g in full for m in minify(g))
    exp = Experiment(name, str(spec.get("description", "")), {"full": full, "smoke": smoke, "mini": mini}, None, source)
    for preset in sorted(PRESETS, key=lambda p: p != "full"):  # every run of every preset, the grid as written first
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
