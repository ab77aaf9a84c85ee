"""Shared fixtures. `shared` is the ../shared folder beside the checkout (CI has it).

Scheduling under pytest-xdist (the README's test command, `-n 2 --dist loadgroup`): the slow tests
that start a Ray cluster, a SLURM job or a sweep run one at a time within their xdist group, as each
needs most of the machine: group "smokes" (tests/test_smoke.py marks its real-data smoke presets,
whose wall-time bounds scale with the load) on one worker, group "clusters" (every other such test:
multi-node loopback clusters, SLURM, `ray job submit`, exports) on the other, so at most two run at
once, each Ray on its own free ports and temp dir. The fast tests and the slow tests marked
`no_cluster` (one process and its children: a compile, a benchmark, a browser, `initmem train`)
fill whichever worker is free. A plain `python -m pytest` runs everything in order, as before.
"""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("slow") and not (item.get_closest_marker("no_cluster")
                                                     or item.get_closest_marker("xdist_group")):
            item.add_marker(pytest.mark.xdist_group("clusters"))


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


def load_bench(name: str):
    """A script of bench/ as a module (bench/ is not a package): load_bench("bench_gpu")."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def bench_script():
    """load_bench as a fixture: bench_script("gpu_checks")."""
    return load_bench


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run fastest on one thread; two OpenMP threads on a loaded 2-core machine
    stall (seen: the same epoch 3 s or 36 s). Ray workers are separate processes, unaffected."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
