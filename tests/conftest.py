"""Shared fixtures: the real data sets live in ../shared/data beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CYCLEVAE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (PTB, Yelp, SwDA); the tests need it, as CI has it."""
    if not (SHARED_DATA / "ptb" / "train.txt").is_file():
        pytest.fail(f"{SHARED_DATA}: shared data sets not found (set CYCLEVAE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
