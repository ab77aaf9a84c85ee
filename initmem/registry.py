"""Registries: choose a model, dataset, optimizer or initialisation by name; plugins add their own.

    python -m initmem fields                      # the registered names of every kind, plugins included
    python -m initmem train --plugin my_science.py --optimizer lion ...

    from initmem.registry import Registry
    MODELS = Registry("model", "arch")            # kind, and the RunConfig field that names an entry
    MODELS.add("mlp", MlpSpec(...))               # or @MODELS.register("mlp") on a builder
    MODELS["mlp"]                                 # the entry; an unknown name is a ConfigError that
                                                  # lists the registered names and suggests the closest

One registry per kind (initmem.models, initmem.datasets, initmem.optimizers, initmem.inits); an entry
declares everything the rest of the system needs from it, so adding one touches one file. A plugin
is a Python file or module that registers entries when imported (load_plugins); the sweeps ship it
to their workers. Registries import no torch: the specs are data, and what needs torch (a model
builder, an update rule) is a callable or a "module:attribute" reference resolved on first use.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import os
import sys
from typing import Any, Generic, Iterator, TypeVar

from initmem.errors import ConfigError

T = TypeVar("T")
_REGISTRIES: list["Registry"] = []   # every registry made (what unload_plugin looks through)


def did_you_mean(name: str, allowed) -> str:
    """' (did you mean 'sgd'?)' for the closest allowed name, '' when none is close."""
    close = difflib.get_close_matches(str(name), [str(a) for a in allowed], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Named entries of one kind, in registration order (built-ins first, then plugins)."""

    def __init__(self, kind: str, field: str):
        self.kind, self.field = kind, field      # e.g. "optimizer", and the RunConfig field naming it
        self._entries: dict[str, T] = {}
        self._origin: dict[str, str] = {}         # name -> the module or file that registered it
        _REGISTRIES.append(self)

    def add(self, name: str, entry: T) -> T:
        """Register `entry` under `name` (from the plugin being loaded, else the package); registering
        one name from two places is an error naming both."""
        if not isinstance(name, str) or not name or any(c in name for c in " /\\\t\n"):
            raise ConfigError(f"{self.kind} name {name!r} is not allowed: a non-empty name without spaces or slashes")
        where = _loading or "initmem"
        if name in self._entries and self._origin[name] != where:
            raise ConfigError(f"{self.kind} {name!r} is registered twice: by {self._origin[name]} and by {where}")
        self._entries[name] = entry
        self._origin[name] = where
        return entry

    def remove(self, name: str) -> None:
        """Take an entry out again (tests that register their own and leave the registry as it was)."""
        self._entries.pop(name, None)
        self._origin.pop(name, None)

    def hint(self, name: str) -> str:
        """What to say after the allowed names when `name` is not one: the closest, else the plugin route."""
        return did_you_mean(name, self._entries) or f" (a plugin's {self.kind}? pass --plugin PATH_OR_MODULE)"

    def __getitem__(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(f"{self.field}={name!r} is not allowed: one of {list(self._entries)}{self.hint(name)}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def origin(self, name: str) -> str:
        return self._origin[name]

    def __repr__(self) -> str:
        return f"Registry({self.kind}: {list(self._entries)})"


def resolve_ref(ref: Any) -> Any:
    """A callable, or a "module:attribute" reference imported now (so specs stay import-light)."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


# --- plugins ---------------------------------------------------------------------------------------

PLUGIN_ENV = "INITMEM_PLUGINS"   # os.pathsep-separated plugins every process loads (set for Ray workers)
_loaded: dict[str, str] = {}     # plugin as given -> module name it was imported as
_loading: str | None = None      # the plugin being imported now (where its entries come from)


def load_plugin(plugin: str) -> str:
    """Import a plugin: a path to a .py file, or an importable module name. Its top level registers
    entries (initmem.models.register_model, ...). Returns the module name; loading twice is a no-op."""
    global _loading
    if plugin in _loaded:
        return _loaded[plugin]
    _loading = plugin
    try:
        name = _import_plugin(plugin)
    finally:
        _loading = None
    _loaded[plugin] = name
    return name


def _import_plugin(plugin: str) -> str:
    if plugin.endswith(".py") or os.sep in plugin:
        path = os.path.abspath(os.path.expanduser(plugin))
        if not os.path.isfile(path):
            raise ConfigError(f"--plugin {plugin!r} is not allowed: an existing .py file or an importable module name "
                              "(the file does not exist)")
        name = "initmem_plugin_" + os.path.splitext(os.path.basename(path))[0].replace("-", "_")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module   # registered entries can be pickled by reference to this module
        try:
            spec.loader.exec_module(module)
        except ConfigError:
            del sys.modules[name]
            raise
        except Exception as e:  # noqa: BLE001 - a plugin's own error, reported with its file
            del sys.modules[name]
            raise ConfigError(f"--plugin {plugin!r} failed to load: {type(e).__name__}: {e}") from e
    else:
        try:
            importlib.import_module(plugin)
        except ImportError as e:
            raise ConfigError(f"--plugin {plugin!r} is not allowed: an existing .py file or an importable module "
                              f"name ({e})") from None
        name = plugin
    return name


def unload_plugin(plugin: str) -> None:
    """Take out every entry a plugin registered and forget that it was loaded, so that the registries
    are as before and a later load_plugin imports it again (tests that load a plugin in-process)."""
    name = _loaded.pop(plugin, None)
    for registry in _REGISTRIES:
        for entry in [n for n in registry if registry.origin(n) == plugin]:
            registry.remove(entry)
    if name is not None and name.startswith("initmem_plugin_"):
        sys.modules.pop(name, None)


def load_plugins(plugins=(), env: bool = True) -> list[str]:
    """Load the given plugins and (env=True) those named in $INITMEM_PLUGINS; returns all loaded, in order."""
    items = list(plugins)
    if env and os.environ.get(PLUGIN_ENV):
        items += [p for p in os.environ[PLUGIN_ENV].split(os.pathsep) if p]
    for p in dict.fromkeys(items):
        load_plugin(p)
    return list(_loaded)


def loaded_plugins() -> list[str]:
    """The plugins loaded in this process, as they were given (paths are absolute where given as paths)."""
    return list(_loaded)


PLUGIN_HELP = ("import a Python file or module that registers models, datasets, optimizers or inits before anything "
               "else (repeatable; a sweep ships it to its workers); default: none")


def add_plugin_option(parser) -> None:
    """--plugin PATH_OR_MODULE on a command line (see load_plugin)."""
    parser.add_argument("--plugin", action="append", default=[], metavar="PATH_OR_MODULE", help=PLUGIN_HELP)


def plugins_in_argv(argv) -> list[str]:
    """The --plugin values of a command line, read before its parser is built (so that --help and the
    choices of every field list the plugins' names)."""
    argv = list(argv)
    out = []
    for i, a in enumerate(argv):
        if a == "--plugin" and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif a.startswith("--plugin="):
            out.append(a.split("=", 1)[1])
    return out


def plugin_sources() -> list[tuple[str, str | None]]:
    """The loaded plugins as (as given, file text or None for a module), to ship to other processes."""
    out = []
    for given in _loaded:
        if given.endswith(".py") or os.sep in given:
            with open(os.path.abspath(os.path.expanduser(given)), encoding="utf-8") as f:
                out.append((given, f.read()))
        else:
            out.append((given, None))
    return out


def load_shipped(sources, folder: str) -> None:
    """Load plugins shipped by plugin_sources() in another process: files are written under `folder`
    (their text, by the name they had) and imported; modules are imported by name."""
    for given, text in sources:
        if text is None:
            load_plugin(given)
            continue
        path = os.path.join(folder, os.path.basename(given))
        if not os.path.exists(path):
            os.makedirs(folder, exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        load_plugin(path)


def parse_with_plugins(parser, argv=None):
    """parser.parse_args with --plugin added and the plugins loaded first (a bad plugin: its error,
    exit status 2). For the command lines whose input may name a plugin's entries (the analysis's)."""
    import sys
    add_plugin_option(parser)
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        load_plugins(plugins_in_argv(argv))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return parser.parse_args(argv)
