"""pyproject.toml: lower bounds only, met by what is installed, and the README names the same versions."""

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]


def _requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]


def test_dependencies_have_a_lower_bound_and_no_upper_bound():
    reqs = _requirements()
    assert {r.name for r in reqs} >= {"torch", "torchvision", "numpy", "pandas", "pyarrow", "plotly", "pyyaml", "ray",
                                      "pytest"}
    for r in reqs:
        ops = [s.operator for s in r.specifier]
        assert ops == [">="], f"{r}: only a lower bound (>=) is allowed, no upper pin, got {ops}"


def test_installed_versions_meet_the_lower_bounds():
    for r in _requirements():
        assert Version(version(r.name)) in r.specifier, f"installed {r.name} {version(r.name)} does not meet {r}"


def test_readme_names_the_lower_bounds_as_the_versions_ci_runs():
    text = " ".join((REPO / "README.md").read_text().split())
    said = re.search(r"\*\*Versions\.\*\*(.*?)(?:\n\n|$)", text, re.S).group(1)
    names = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "pandas": "pandas",
             "pyarrow": "pyarrow", "plotly": "plotly", "pyyaml": "PyYAML", "threadpoolctl": "threadpoolctl", "ray": "Ray", "scipy": "SciPy", "pytest": "pytest", "pytest-xdist": "pytest-xdist",
             "pytest-timeout": "pytest-timeout", "duckdb": "duckdb", "selenium": "selenium",
             "mlflow": "MLflow", "tensorboard": "TensorBoard"}
    for r in _requirements():
        low = next(iter(r.specifier)).version
        assert f"{names[r.name]} {low}" in said, f"README's Versions paragraph does not say {names[r.name]} {low}"
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python.startswith(">=") and f"Python {python[2:]}" in said
