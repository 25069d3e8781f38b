"""Checkpoints hold tensors and plain data only; a file crafted to run code is refused unrun."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from cyclevae.checkpoint import (load_checkpoint, load_model, rng_state, save_checkpoint,
                                 set_rng_state)
from cyclevae.config import load_config
from cyclevae.errors import UserError
from cyclevae.rundir import LAST
from cyclevae.training import Trainer
from conftest import small_overrides

pytestmark = pytest.mark.usefixtures("one_thread")


class _TouchOnLoad:
    """Unpickling this calls ``open(marker, "w")``: the file appears if the pickle ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {}, "payload": _TouchOnLoad(str(marker))}, evil)
    # the payload is live: unpickling it the unsafe way creates the file
    torch.load(evil, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UserError) as info:
        load_checkpoint(evil)
    assert not marker.exists()
    message = str(info.value)
    assert "\n" not in message and str(evil) in message and "io.open" in message
    with pytest.raises(UserError):  # the same through the inference loader
        load_model(evil)
    assert not marker.exists()


def test_rng_state_is_plain_data_and_restores_every_generator():
    state = rng_state()
    assert isinstance(state["numpy"]["key"], torch.Tensor)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
    # the NumPy tuple of checkpoints of earlier versions is still accepted
    set_rng_state({**state, "numpy": np.random.get_state()})


def test_checkpoint_written_by_training_loads_weights_only(ptb_slice, tmp_path):
    config = load_config(None, small_overrides(ptb_slice, **{"train.epochs": 1}))
    Trainer(config, tmp_path / "run", progress=False).fit()
    path = tmp_path / "run" / LAST
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    torch.load(path, weights_only=True)  # no allow-list needed
    model, vocab, loaded, checkpoint = load_model(path)
    assert loaded.to_dict() == config.to_dict() and checkpoint["progress"]["epoch"] == 1


def test_checkpoint_of_the_previous_format_still_loads(tmp_path):
    """Earlier versions saved NumPy's RNG state as its tuple with a uint32 array."""
    old = tmp_path / "old.pt"
    state = {"model": {"w": torch.ones(2)}, "config": {},
             "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                     "torch": torch.get_rng_state()}}
    with open(old, "wb") as handle:
        torch.save(state, handle)
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(old)
    loaded = load_checkpoint(old)
    np.testing.assert_array_equal(loaded["rng"]["numpy"][1], state["rng"]["numpy"][1])
    set_rng_state(loaded["rng"])


def test_a_file_that_is_not_a_checkpoint_is_one_line(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="not a cyclevae checkpoint"):
        load_checkpoint(junk)
    plain = tmp_path / "plain.pt"
    save_checkpoint({"weights": torch.ones(1)}, plain)
    with pytest.raises(UserError, match="missing model/config"):
        load_checkpoint(plain)
