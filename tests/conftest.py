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
    """``../shared/data`` (PTB, Yelp, SwDA). Tests that need it skip with the reason when it
    is absent, except under CI (``CI=true``), where it must be there and its absence fails."""
    if not (SHARED_DATA / "ptb" / "train.txt").is_file():
        message = f"{SHARED_DATA}: shared data sets not found (set CYCLEVAE_SHARED_DATA)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def ptb_slice(tmp_path_factory, shared_data) -> Path:
    """The first lines of each PTB split: big enough to train on, small enough to be fast."""
    root = tmp_path_factory.mktemp("ptb_slice")
    for split, n in (("train", 240), ("valid", 40), ("test", 40)):
        lines = (shared_data / "ptb" / f"{split}.txt").read_text().splitlines()[:n]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def small_overrides(root: Path, **extra: object) -> list[str]:
    """``--set`` values of a tiny model on :func:`ptb_slice` (2 epochs, 2 cycles)."""
    values = {
        "data.train": root / "train.txt", "data.valid": root / "valid.txt",
        "data.test": root / "test.txt", "data.max_length": 25, "data.batch_size": 16,
        "model.emb_dim": 16, "model.enc_hidden": 16, "model.dec_hidden": 16,
        "model.latent_dim": 4, "train.epochs": 2, "schedule.n_cycles": 2,
        "train.iw_samples": 8, "train.iw_chunk": 4, "train.log_every": 5,
    }
    values.update(extra)
    return [f"{k}={v}" for k, v in values.items()]


def stop_after_step(trainer, step: int) -> None:
    """Make ``trainer`` behave as if SIGTERM arrived right after global step ``step``: its
    ``fit()`` then writes the mid-epoch checkpoint and raises ``TrainingInterrupted``."""
    import signal

    original = trainer.train_step

    def interrupting_step(batches, beta, seeds=None):
        result = original(batches, beta, seeds)
        if trainer.state.global_step == step:
            trainer._stop_signal = signal.SIGTERM
        return result

    trainer.train_step = interrupting_step


@pytest.fixture
def one_thread():
    """Tiny models: one thread is faster and immune to a busy machine's other jobs (use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config) -> None:
    """Under pytest-xdist (the default ``-n auto``: one worker per core) each worker computes
    on one thread: two workers of two threads each on two cores wait on each other's
    threads (a busy machine's run of a few tests took 17 minutes instead of 2)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
