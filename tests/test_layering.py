"""The three floors' rules, read from the import graph (every import statement, top level or inside a
function): initmem imports no Ray, tune_jobs or analysis; analysis never imports tune_jobs; tune_jobs
imports analysis in one place only (building the report when a sweep ends). DESIGN.md, "Floors"."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def imports(package: str) -> dict[str, set[str]]:
    """module path -> the top-level packages it imports (relative imports resolved to the package)."""
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                names.add(package if node.level else (node.module or "").split(".")[0])
        out[str(path.relative_to(REPO))] = names
    return out


def test_the_core_imports_no_ray_no_sweeps_no_analysis():
    bad = {m: sorted(n & {"ray", "tune_jobs", "analysis"}) for m, n in imports("initmem").items()
           if n & {"ray", "tune_jobs", "analysis"}}
    assert not bad, bad


def test_analysis_never_imports_the_sweeps_nor_ray():
    bad = {m: sorted(n & {"tune_jobs", "ray"}) for m, n in imports("analysis").items() if n & {"tune_jobs", "ray"}}
    assert not bad, bad


def test_the_sweeps_import_analysis_in_one_place():
    users = sorted(m for m, n in imports("tune_jobs").items() if "analysis" in n)
    assert users == ["tune_jobs/cli.py"], users
    tree = ast.parse((REPO / "tune_jobs" / "cli.py").read_text())
    where = [f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
             for node in ast.walk(f) if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("analysis")]
    assert where == ["build_report"], where


def test_the_rules_are_checked_on_something():
    """The scan sees the modules it guards (a wrong path would make every rule above pass vacuously)."""
    for package, known in (("initmem", "initmem/train.py"), ("analysis", "analysis/report.py"),
                           ("tune_jobs", "tune_jobs/runner.py")):
        found = imports(package)
        assert known in found and len(found) >= 8, (package, sorted(found))
    assert "ray" in imports("tune_jobs")["tune_jobs/runner.py"] | imports("tune_jobs")["tune_jobs/cluster.py"]
