"""Shared fixtures. `shared` is the ../shared folder beside the checkout (CI has it)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run fastest on one thread; two OpenMP threads on a loaded 2-core machine
    stall (seen: the same epoch 3 s or 36 s). Ray workers are separate processes, unaffected."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
