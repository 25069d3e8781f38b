"""Numerical faults: a NaN/Inf loss or gradient is caught at the step it happens; the run stops
(exit 1, message naming step and beta, last good checkpoint unchanged) or, with
``train.nonfinite=skip``, skips the batch and counts it in metrics.json."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import pytest
import torch

from cyclevae import training
from cyclevae.checkpoint import load_checkpoint
from cyclevae.training import Trainer
from robust_support import (  # noqa: F401 - fixtures
    digest,
    log_records,
    one_line_error,
    overrides,
    run_cli,
    set_args,
    tiny_data,
)

# 26 steps per epoch; beta rises over both epochs (ratio 1), so every step has its own beta.
TWO_EPOCHS = {"train__epochs": 2, "schedule__ratio": 1.0}


@dataclass
class Fault:
    """What the injector saw at the faulty steps."""

    kind: str  # loss | grad | param
    steps: tuple[int, ...]  # 1-based global steps
    beta: dict[int, float] = field(default_factory=dict)
    checkpoint_digest: dict[int, str] = field(default_factory=dict)
    weights_finite_after: dict[int, bool] = field(default_factory=dict)
    active: bool = False
    poisoned: str = ""  # the parameter set to NaN (kind "param")


@pytest.fixture
def inject(monkeypatch):
    """``inject(kind, *steps)``: make the given optimisation steps non-finite."""

    def arm(kind: str, *steps: int) -> Fault:
        fault = Fault(kind, steps)
        original_step = Trainer.train_step
        original_loss = training.beta_vae_loss

        def train_step(self, tokens, beta, seeds=None):
            step = self.state.global_step + 1
            if step in fault.steps:
                fault.beta[step] = beta
                last = self.out / training.LAST
                fault.checkpoint_digest[step] = digest(last) if last.exists() else ""
                fault.active = True
                if kind == "param":
                    fault.poisoned, weight = list(self.model.named_parameters())[-1]
                    with torch.no_grad():
                        weight.view(-1)[0] = math.nan
            try:
                return original_step(self, tokens, beta, seeds)
            finally:
                if step in fault.steps:
                    fault.active = False
                    fault.weights_finite_after[step] = all(
                        bool(torch.isfinite(p).all()) for n, p in self.model.named_parameters()
                        if n != fault.poisoned)

        def beta_vae_loss(*args, **kwargs):
            loss = original_loss(*args, **kwargs)
            if fault.active and kind == "loss":
                return loss * math.nan
            if fault.active and kind == "grad":  # finite loss, infinite gradient
                loss.register_hook(lambda g: g * math.inf)
            return loss

        monkeypatch.setattr(Trainer, "train_step", train_step)
        monkeypatch.setattr(training, "beta_vae_loss", beta_vae_loss)
        return fault

    return arm


def _train(capsys, tiny_data, out, **extra):
    return run_cli(capsys, "train", *set_args(overrides(
        tiny_data / "train.txt", data__test=tiny_data / "test.txt", **TWO_EPOCHS, **extra)),
        "--out", out, "--no-progress")


def _assert_stopped(code, err, out, fault, step, problem):
    assert code == 1
    message = one_line_error(err)
    assert (f"non-finite value at step {step} (epoch 2, step {step - 26} of the epoch, "
            f"beta {fault.beta[step]:.4g}): {problem}") in message
    assert 0 < fault.beta[step] < 1
    # the epoch-1 checkpoint is the last good one, unchanged, loadable, weights finite
    last = out / training.LAST
    assert fault.checkpoint_digest[step] and digest(last) == fault.checkpoint_digest[step]
    state = load_checkpoint(last)
    assert state["progress"]["global_step"] == 26
    assert all(bool(torch.isfinite(v).all()) for v in state["model"].values())
    assert f"last good checkpoint kept in {last}" in message
    assert not (out / "metrics.json").exists()
    return message


def test_nan_loss_stops_at_that_step(inject, tiny_data, tmp_path, capsys):
    fault = inject("loss", 30)
    out = tmp_path / "run"
    code, _, err = _train(capsys, tiny_data, out)
    _assert_stopped(code, err, out, fault, 30, "loss is nan")
    assert fault.weights_finite_after[30]  # no optimizer step was taken with the NaN


def test_infinite_gradient_stops_at_that_step(inject, tiny_data, tmp_path, capsys):
    fault = inject("grad", 31)
    out = tmp_path / "run"
    code, _, err = _train(capsys, tiny_data, out)
    message = _assert_stopped(code, err, out, fault, 31, "gradient norm is")
    assert "loss is" not in message  # the loss itself was finite
    assert fault.weights_finite_after[31]


def test_skip_mode_skips_and_counts(inject, tiny_data, tmp_path, capsys):
    fault = inject("loss", 5, 30)
    out = tmp_path / "run"
    code, _, err = _train(capsys, tiny_data, out, train__nonfinite="skip", train__log_every=1)
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skipped_batches"] == 2 and metrics["steps"] == 52
    assert all(math.isfinite(v) for v in metrics["test"].values())
    assert fault.weights_finite_after == {5: True, 30: True}
    records = log_records(out)
    skipped = [r for r in records if r["kind"] == "skipped"]
    assert [r["step"] for r in skipped] == [5, 30]
    assert f"beta {fault.beta[30]:.4g}" in skipped[1]["message"]
    train_steps = [r["step"] for r in records if r["kind"] == "train"]
    assert 5 not in train_steps and 30 not in train_steps and 6 in train_steps


def test_skip_mode_stops_on_non_finite_weights(inject, tiny_data, tmp_path, capsys):
    fault = inject("param", 30)
    out = tmp_path / "run"
    code, _, err = _train(capsys, tiny_data, out, train__nonfinite="skip")
    message = _assert_stopped(code, err, out, fault, 30, "loss is nan")
    assert fault.poisoned and f"parameter {fault.poisoned} is non-finite" in message


def test_stop_before_the_first_checkpoint_says_there_is_none(tiny_data, tmp_path, capsys):
    """``train.lr=.inf`` breaks the weights at step 1: the message must not name a checkpoint
    that was never written, and must say how to start again."""
    out = tmp_path / "run"
    code, _, err = _train(capsys, tiny_data, out, train__lr=".inf")
    message = one_line_error(err)
    assert code == 1 and "non-finite value at step 2 (epoch 1" in message
    assert not (out / training.LAST).exists()
    assert "checkpoint kept" not in message
    assert (f"no checkpoint was written yet (the first is written at the end of epoch 1), so "
            f"{out} holds only this run's start") in message
    assert "start again with --overwrite, which loses nothing" in message
    code, _, err = _train(capsys, tiny_data, out, train__lr="0.001")
    assert code == 2  # the directory holds the stopped run's start ...
    code, _, err = run_cli(capsys, "train", *set_args(overrides(tiny_data / "train.txt")),
                           "--out", out, "--no-progress", "--overwrite")
    assert code == 0, err  # ... which --overwrite replaces
