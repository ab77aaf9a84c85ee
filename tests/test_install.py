"""pyproject.toml: lower bounds only, met by what is installed, and the README names the same versions;
.ci/run runs the README's test command."""

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
    names = {"pyyaml": "PyYAML", "ray": "Ray", "scipy": "SciPy", "mlflow": "MLflow", "tensorboard": "TensorBoard"}
    for r in _requirements():
        low = next(iter(r.specifier)).version
        name = names.get(r.name, r.name)  # as the project spells itself
        assert f"{name} {low}" in said, f"README's Versions paragraph does not say {name} {low}"
    python = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python.startswith(">=") and f"Python {python[2:]}" in said


def test_ci_runs_exactly_the_readme_test_command():
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S).group(1)
    readme_tests = block.strip().splitlines()[1]
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == readme_tests, f".ci/run ends with {ci[-1]!r}, the README's test command is {readme_tests!r}"
