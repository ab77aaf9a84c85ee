"""Settings defined once: each field's meaning, unit and allowed values make its --help, its error
and its row in the docs (RunConfig's fields, the sweep's options).

    python -m initmem fields                       # RunConfig's fields, from these definitions
    python -m tune_jobs.main_grid --help           # the sweep options, from these definitions

    from initmem.fields import option, check_fields, field_docs
    @dataclass
    class Options:
        cpus: float = option(1.0, "CPUs per trial", "CPUs", "a number > 0", check=lambda v: v > 0)
    check_fields(Options(cpus=0))                  # ConfigError: cpus=0 is not allowed: a number > 0

A field's `type` is its annotation as a string (from __future__ import annotations): "str", "int",
"float", "bool", or "int | None" / "float | None" / "str | None" for an option whose default None
means "decided later" (`default_text` says what). Strings from a command line or a YAML file are
converted by `coerce` with the same error.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from initmem.errors import ConfigError
from initmem.registry import did_you_mean

PY_TYPES = {"str": str, "bool": bool, "int": int, "float": (int, float)}


def meta(meaning: str, unit: str = "", allowed: str | Callable[[], str] = "", choices: Sequence[str] | None = None,
         check: Callable[[Any], bool] | None = None, default_text: str | None = None,
         flag: str | None = None, metavar: str | None = None) -> dict[str, Any]:
    """A setting's documentation. meaning: what it is; unit: e.g. "updates"; allowed: the values
    allowed as the error states them (`choices` make it "one of [...]", read when asked, so a
    registry's plugins are listed; a callable is called then too); check(value) -> bool enforces
    `allowed`; default_text: how --help shows the default (e.g. for None); flag: the command-line
    flag when it is not --<name with dashes>; metavar: its value's name in --help (default: the unit)."""
    return {"meaning": meaning, "unit": unit, "allowed": allowed, "choices": choices, "check": check,
            "default_text": default_text, "flag": flag, "metavar": metavar}


def option(default: Any, meaning: str, unit: str = "", allowed: str | Callable[[], str] = "",
           choices: Sequence[str] | None = None, check: Callable[[Any], bool] | None = None,
           default_text: str | None = None, flag: str | None = None, metavar: str | None = None) -> Any:
    """A dataclass field with its documentation (meta)."""
    return dataclasses.field(default=default, metadata=meta(meaning, unit, allowed, choices, check, default_text, flag,
                                                            metavar))


def allowed_text(meta: Mapping[str, Any]) -> str:
    """The `allowed` of a field's metadata as text, now (registries may have grown)."""
    if meta["choices"] is not None:
        return f"one of {list(meta['choices'])}"
    return meta["allowed"]() if callable(meta["allowed"]) else meta["allowed"]


@functools.lru_cache(maxsize=None)
def base_type(typ: str) -> tuple[str, bool]:
    """("int", True) for "int | None": the value type and whether None is allowed."""
    parts = [p.strip() for p in typ.split("|")]
    optional = "None" in parts
    rest = [p for p in parts if p != "None"]
    return (rest[0] if rest else "str"), optional


def fail(name: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{name}={value!r} is not allowed: {allowed}")


def check_value(name: str, value: Any, typ: str, meta: Mapping[str, Any]) -> None:
    """One value against its definition: choices, else type, finiteness and `check`."""
    kind, optional = base_type(typ)
    if value is None and optional:
        return
    if meta["choices"] is not None:
        if value not in meta["choices"]:
            hint = getattr(meta["choices"], "hint", None)   # a registry says how to add a name
            fail(name, value, allowed_text(meta) + (hint(value) if hint else did_you_mean(value, meta["choices"])))
        return
    want = PY_TYPES[kind]
    names = want.__name__ if isinstance(want, type) else " or ".join(t.__name__ for t in want)
    if isinstance(value, bool) and kind in ("int", "float"):
        fail(name, value, f"{allowed_text(meta)} (expected {names}, got a bool)")
    if not isinstance(value, want):
        fail(name, value, f"{allowed_text(meta)} (expected {names}, got {type(value).__name__})")
    if kind == "float" and not math.isfinite(value):
        fail(name, value, "a finite number")
    if meta["check"] is not None and not meta["check"](value):
        fail(name, value, allowed_text(meta))


def check_fields(obj: Any) -> None:
    """Every field of a dataclass instance against its definition."""
    for f in dataclasses.fields(obj):
        if "meaning" in f.metadata:
            check_value(f.name, getattr(obj, f.name), f.type, f.metadata)


def coerce(name: str, value: Any, typ: str, meta: Mapping[str, Any]) -> Any:
    """A string from a command line or a file as the field's type, with a clear error."""
    kind, optional = base_type(typ)
    if not isinstance(value, str) or kind == "str":
        return value
    if optional and value.strip().lower() in ("none", ""):
        return None
    try:
        if kind == "bool":
            low = value.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a valid {kind}; allowed: {allowed_text(meta)}") from None
    return value


@dataclass(frozen=True)
class FieldDoc:
    """One field as the command lines and the docs show it."""
    name: str
    type: str        # str | int | float | bool (optionally "| None"): the CLI's metavar, the column type
    default: Any
    meaning: str
    unit: str
    meta: Mapping[str, Any]
    per_run: bool = False   # RunConfig: may differ between the runs of a pack

    @property
    def allowed(self) -> str:
        """The allowed values, now (a registry's plugins included)."""
        return allowed_text(self.meta)

    @property
    def kind(self) -> str:
        return base_type(self.type)[0]

    @property
    def flag(self) -> str:
        return self.meta.get("flag") or "--" + self.name.replace("_", "-")

    @property
    def default_text(self) -> str:
        """The default as it is typed on a command line: false, 'adhoc', 0.001, 128."""
        if self.meta.get("default_text"):
            return self.meta["default_text"]
        if isinstance(self.default, bool):
            return str(self.default).lower()
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)

    def describe(self) -> str:
        """One line: meaning [unit]; allowed: ...; default: ..."""
        unit = f" [{self.unit}]" if self.unit else ""
        return f"{self.meaning}{unit}; allowed: {self.allowed}; default: {self.default_text}"


def field_docs(cls: type, per_run: Sequence[str] = ()) -> dict[str, FieldDoc]:
    """The documented fields of a dataclass, in definition order."""
    return {f.name: FieldDoc(f.name, f.type, f.default, f.metadata["meaning"], f.metadata["unit"], f.metadata,
                             f.name in per_run)
            for f in dataclasses.fields(cls) if "meaning" in f.metadata}


def markdown_table(docs: Mapping[str, FieldDoc], first: str = "field", types: Mapping[str, str] | None = None) -> str:
    """A docs table of fields: name (or flag), type, unit, meaning, allowed, default."""
    lines = [f"| {first} | type | unit | meaning | allowed | default |", "| --- | --- | --- | --- | --- | --- |"]
    for d in docs.values():
        name = d.flag if first == "option" else d.name
        typ = (types or {}).get(d.kind, d.kind)
        cells = (name, typ, d.unit, d.meaning + (" (per run)" if d.per_run else ""), d.allowed, f"`{d.default_text}`")
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
