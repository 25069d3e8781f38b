"""The beta schedule in a real Lightning Trainer: the betas the module sees, the logged
values, and resuming from a checkpoint mid-cycle (cyclevae.integrations.lightning)."""

from __future__ import annotations

import csv
import importlib
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
    """The framework, skipped locally when it is not installed, required under CI (the
    ``lightning`` extra installs both namespaces)."""
    if os.environ.get("CI", "").lower() == "true":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} not installed "
                               "(pip install -e '.[lightning]')")


_require("lightning.pytorch")
from cyclevae.integrations.lightning import BetaCallback

STEPS, CYCLES, RATIO = 12, 3, 0.5  # cycles of 4 steps: 0, .5, 1, 1, 0, .5, ...


@pytest.fixture(params=["lightning.pytorch", "pytorch_lightning"])
def L(request: pytest.FixtureRequest):  # named like `import lightning.pytorch as L`
    """Both Lightning namespaces: the callback must run under either package's Trainer."""
    return _require(request.param)


def _module(L):
    class TinyVAE(L.LightningModule):
        """A linear "VAE" whose loss uses ``self.beta``; it records (global_step, beta)."""

        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(3, 3)
            self.beta = 0.0
            self.seen: list[tuple[int, float]] = []

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            (x,) = batch
            self.seen.append((self.trainer.global_step, self.beta))
            out = self.net(x)
            rec = ((out - x) ** 2).sum(-1)
            kl = (out**2).sum(-1)
            return (rec + self.beta * kl).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return TinyVAE()


def _loader() -> torch.utils.data.DataLoader:
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=2)


def _trainer(L, root: Path, callbacks: list, **kwargs):
    """A CPU Trainer of 12 optimizer steps (3 epochs of 4 batches) logging every step."""
    return L.Trainer(default_root_dir=root, max_steps=STEPS, accelerator="cpu", devices=1,
                     logger=L.loggers.CSVLogger(root, name="log", version=0),
                     log_every_n_steps=1, enable_progress_bar=False,
                     enable_model_summary=False, callbacks=callbacks, **kwargs)


def _schedule() -> np.ndarray:
    return beta_schedule(STEPS, n_cycles=CYCLES, ratio=RATIO)


def test_module_sees_and_logs_the_schedule(L, tmp_path: Path) -> None:
    module = _module(L)
    callback = BetaCallback(n_cycles=CYCLES, ratio=RATIO)  # total = the run's 12 steps
    _trainer(L, tmp_path, [callback], enable_checkpointing=False).fit(module, _loader())
    steps = [s for s, _ in module.seen]
    assert steps == list(range(STEPS))
    np.testing.assert_array_equal([b for _, b in module.seen], _schedule())
    assert callback.scheduler is not None and callback.scheduler.total == STEPS
    with open(tmp_path / "log" / "version_0" / "metrics.csv") as f:
        logged = {int(row["step"]): float(row["beta"]) for row in csv.DictReader(f)
                  if row.get("beta")}
    assert logged == pytest.approx({s: float(b) for s, b in enumerate(_schedule())})


def test_gradient_accumulation_keeps_beta_within_an_optimizer_step(L, tmp_path: Path) -> None:
    module = _module(L)
    _trainer(L, tmp_path, [BetaCallback(n_cycles=CYCLES, ratio=RATIO)], enable_checkpointing=False,
             accumulate_grad_batches=2).fit(module, _loader())
    betas = [b for _, b in module.seen]
    np.testing.assert_array_equal(betas, np.repeat(_schedule(), 2))


def test_resume_mid_cycle_continues_exactly(L, tmp_path: Path) -> None:
    every = 5  # step 5 is halfway up the second cycle's rise (beta 0.5)
    save = L.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=every,
                                       save_top_k=-1, filename="{step}")
    first = _module(L)
    _trainer(L, tmp_path / "a", [BetaCallback(n_cycles=CYCLES, ratio=RATIO), save]).fit(
        first, _loader())
    ckpt = tmp_path / "ckpt" / f"step={every}.ckpt"
    state = torch.load(ckpt, weights_only=False)["callbacks"]["BetaCallback"]
    assert state["last_step"] == every and state["total"] == STEPS

    # A callback built with other settings: the checkpoint's schedule replaces them.
    resumed = _module(L)
    callback = BetaCallback(n_cycles=1, ratio=0.25)
    _trainer(L, tmp_path / "b", [callback], enable_checkpointing=False).fit(
        resumed, _loader(), ckpt_path=ckpt)
    assert [s for s, _ in resumed.seen] == list(range(every, STEPS))
    np.testing.assert_array_equal([b for _, b in resumed.seen], _schedule()[every:])
    assert [b for _, b in first.seen][every:] == [b for _, b in resumed.seen]
    assert callback.settings["n_cycles"] == CYCLES


def test_schedule_in_units_of_several_steps(L, tmp_path: Path) -> None:
    """``steps_per_unit=4`` (e.g. epochs of 4 batches): the run is 3 units, beta rises within
    each as ``BetaScheduler`` stepped every batch says."""
    module = _module(L)
    callback = BetaCallback(n_cycles=2, ratio=0.5, steps_per_unit=4)
    _trainer(L, tmp_path, [callback], enable_checkpointing=False).fit(module, _loader())
    reference = BetaScheduler(3, n_cycles=2, ratio=0.5, steps_per_unit=4)
    expected = [reference.value] + [reference.step() for _ in range(STEPS - 1)]
    assert callback.scheduler.total == 3
    assert [b for _, b in module.seen] == expected


def test_module_without_the_attribute_is_refused(L, tmp_path: Path) -> None:
    module = _module(L)
    with pytest.raises(AttributeError, match="no attribute 'kl_weight'"):
        _trainer(L, tmp_path, [BetaCallback(attribute="kl_weight")],
                 enable_checkpointing=False).fit(module, _loader())


def test_bad_settings_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="ratio"):
        BetaCallback(ratio=1.5)
    with pytest.raises(ValueError, match="shape"):
        BetaCallback(total=10, shape="square")


def test_importing_cyclevae_imports_no_framework() -> None:
    code = ("import sys, cyclevae, cyclevae.schedules, cyclevae.integrations, cyclevae.cli; "
            "print(sorted(m for m in ('lightning', 'pytorch_lightning', 'transformers') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_missing_framework_names_the_extra() -> None:
    code = ("import sys; sys.modules['lightning'] = None; sys.modules['pytorch_lightning'] = None\n"
            "try:\n    import cyclevae.integrations.lightning\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert "pip install 'cyclevae[lightning]'" in out.stdout
