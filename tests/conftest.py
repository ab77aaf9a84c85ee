"""Shared fixtures. `shared` is the ../shared folder beside the checkout (CI has it)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    return SHARED
