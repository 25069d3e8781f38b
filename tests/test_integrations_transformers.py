"""The beta schedule in a real Transformers Trainer: the betas the model sees, the log records,
and resuming from a Trainer checkpoint mid-cycle (cyclevae.integrations.transformers)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cyclevae.schedules import BetaScheduler, beta_schedule

pytestmark = pytest.mark.usefixtures("one_thread")


def _require(module: str):
    """The framework, skipped locally when it is not installed, required under CI."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} not installed "
                               "(pip install -e '.[transformers]')")


transformers = _require("transformers")
_require("accelerate")  # the Trainer needs it
from cyclevae.integrations.transformers import BetaCallback

STEPS, CYCLES, RATIO = 12, 3, 0.5  # cycles of 4 steps: 0, .5, 1, 1, 0, .5, ...


class TinyVAE(torch.nn.Module):
    """A linear "VAE" whose loss uses ``self.beta``; it records the beta of every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(3, 3)
        self.beta = 0.0
        self.seen: list[float] = []

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training:
            self.seen.append(self.beta)
        out = self.net(x)
        rec = ((out - x) ** 2).sum(-1)
        kl = (out**2).sum(-1)
        return {"loss": (rec + self.beta * kl).mean()}


class Points(torch.utils.data.Dataset):
    """Eight random points in R^3 as ``{"x": tensor}`` examples."""

    def __init__(self) -> None:
        self.x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i]}


def _trainer(out: Path, model: TinyVAE, callback: BetaCallback, *, batch: int = 2,
             accumulate: int = 1, **kwargs) -> transformers.Trainer:
    """A CPU Trainer of 12 optimizer steps, logging every step, checkpoints every 5 steps."""
    args = transformers.TrainingArguments(
        output_dir=str(out), max_steps=STEPS, per_device_train_batch_size=batch,
        gradient_accumulation_steps=accumulate, learning_rate=0.01, logging_steps=1,
        save_strategy="steps", save_steps=5, report_to="none", use_cpu=True,
        disable_tqdm=True, dataloader_num_workers=0, seed=0, **kwargs)
    return transformers.Trainer(model=model, args=args, train_dataset=Points(),
                                callbacks=[callback])


def _schedule() -> np.ndarray:
    return beta_schedule(STEPS, n_cycles=CYCLES, ratio=RATIO)


def test_model_sees_and_logs_the_schedule(tmp_path: Path) -> None:
    model = TinyVAE()
    trainer = _trainer(tmp_path, model, BetaCallback(n_cycles=CYCLES, ratio=RATIO))
    trainer.train()
    np.testing.assert_array_equal(model.seen, _schedule())
    logged = {r["step"]: r["beta"] for r in trainer.state.log_history if "loss" in r}
    assert logged == {s + 1: float(b) for s, b in enumerate(_schedule())}  # after step s


def test_gradient_accumulation_keeps_beta_within_an_optimizer_step(tmp_path: Path) -> None:
    model = TinyVAE()
    _trainer(tmp_path, model, BetaCallback(n_cycles=CYCLES, ratio=RATIO), batch=1,
             accumulate=2).train()
    np.testing.assert_array_equal(model.seen, np.repeat(_schedule(), 2))


def test_resume_mid_cycle_continues_exactly(tmp_path: Path) -> None:
    first = TinyVAE()
    _trainer(tmp_path, first, BetaCallback(n_cycles=CYCLES, ratio=RATIO)).train()
    ckpt = tmp_path / "checkpoint-5"  # halfway up the second cycle's rise (beta 0.5)
    saved = json.loads((ckpt / "trainer_state.json").read_text())
    assert saved["global_step"] == 5
    assert saved["stateful_callbacks"]["BetaCallback"]["args"]["total"] == STEPS

    resumed = TinyVAE()
    _trainer(tmp_path / "b", resumed, BetaCallback(n_cycles=CYCLES, ratio=RATIO)).train(
        resume_from_checkpoint=str(ckpt))
    np.testing.assert_array_equal(resumed.seen, _schedule()[5:])
    assert resumed.seen == first.seen[5:]


def test_restored_callback_state_replaces_other_settings(tmp_path: Path) -> None:
    _trainer(tmp_path, TinyVAE(), BetaCallback(n_cycles=CYCLES, ratio=RATIO)).train()
    resumed = TinyVAE()
    trainer = _trainer(tmp_path / "b", resumed, BetaCallback(total=100, n_cycles=1),
                       restore_callback_states_from_checkpoint=True)
    trainer.train(resume_from_checkpoint=str(tmp_path / "checkpoint-5"))
    np.testing.assert_array_equal(resumed.seen, _schedule()[5:])


def test_schedule_in_units_of_several_steps(tmp_path: Path) -> None:
    model = TinyVAE()
    callback = BetaCallback(n_cycles=2, ratio=0.5, steps_per_unit=4)
    _trainer(tmp_path, model, callback).train()
    reference = BetaScheduler(3, n_cycles=2, ratio=0.5, steps_per_unit=4)
    expected = [reference.value] + [reference.step() for _ in range(STEPS - 1)]
    assert callback.total == 3 and model.seen == expected


def test_model_without_the_attribute_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AttributeError, match="no attribute 'kl_weight'"):
        _trainer(tmp_path, TinyVAE(), BetaCallback(attribute="kl_weight")).train()


def test_missing_framework_names_the_extra() -> None:
    code = ("import sys; sys.modules['transformers'] = None\n"
            "try:\n    import cyclevae.integrations.transformers\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert "pip install 'cyclevae[transformers]'" in out.stdout
