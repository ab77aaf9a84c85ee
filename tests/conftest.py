"""Shared fixtures. `shared` is the ../shared folder beside the checkout (CI has it).

Scheduling under pytest-xdist (the README's test command, `-n 2 --dist loadgroup`): every slow test
joins one xdist group, "serial", so they run one at a time on one worker, as their Ray clusters,
SLURM jobs and wall-time bounds need most of the machine; the fast tests and the slow tests marked
`no_cluster` (one process and its children, no Ray, no SLURM: a compile, a benchmark, a browser)
run on the other worker meanwhile, in the CPU time the serial tests leave idle. A plain
`python -m pytest` runs everything in order, as before.
"""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("no_cluster"):
            item.add_marker(pytest.mark.xdist_group("serial"))


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
