"""Feedback when stderr is not a terminal (nohup, a log file, a job scheduler): one plain line
per epoch and per evaluation phase with its progress; a signal during the final evaluation is
answered at once."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import pytest

from cyclevae.reporter import Reporter
from cyclevae.training import Trainer
from robust_support import (  # noqa: F401 - fixtures
    overrides,
    reference_args,
    run_cli,
    set_args,
    tiny_data,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_mode_reports_a_phase_every_interval_and_at_its_end():
    clock, stream = FakeClock(), io.StringIO()
    reporter = Reporter("lines", interval=12, stream=stream, clock=clock)
    tick = reporter.phase("test IW-NLL K=300", 30, announce=True)
    for _ in range(30):
        clock.now += 1  # one second per batch
        tick()
    assert stream.getvalue().splitlines() == [
        "evaluating test IW-NLL K=300: 0% (0/30 batches, 0 s)",
        "evaluating test IW-NLL K=300: 40% (12/30 batches, 12 s)",
        "evaluating test IW-NLL K=300: 80% (24/30 batches, 24 s)",
        "evaluating test IW-NLL K=300: 100% (30/30 batches, 30 s)",
    ]
    quick = io.StringIO()  # a short phase, not announced: no line at all
    tick = Reporter("lines", interval=12, stream=quick, clock=clock).phase("valid", 5)
    for _ in range(5):
        clock.now += 1
        tick()
    assert quick.getvalue() == ""
    silent = io.StringIO()
    off = Reporter("off", stream=silent)
    off.line("epoch 1/1")
    off.phase("test", 3, announce=True)()
    assert silent.getvalue() == ""


def test_training_into_a_log_file_writes_a_line_per_epoch_and_evaluation_phase(tiny_data,
                                                                               tmp_path):
    """``cyclevae train ... > log 2>&1`` (no --no-progress): was silent until the final JSON."""
    log = tmp_path / "log"
    with open(log, "w") as handle:
        code = subprocess.call(
            [sys.executable, "-m", "cyclevae", "train", *reference_args(tiny_data),
             "--out", str(tmp_path / "run")], stdout=handle, stderr=subprocess.STDOUT,
            cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1"))
    text = log.read_text()
    assert code == 0, text
    lines = text.splitlines()
    assert [x.split(":")[0] for x in lines if x.startswith("epoch ")] == ["epoch 1/2",
                                                                         "epoch 2/2"]
    assert "evaluating test IW-NLL K=4: 0% (0/" in text
    assert any(x.startswith("evaluating test IW-NLL K=4: 100% (") for x in lines), text
    assert "\r" not in text and "\x1b" not in text  # no progress-bar control characters


@pytest.mark.parametrize("signals", [1, 2])
def test_signal_during_the_final_evaluation_is_answered(signals, tiny_data, tmp_path, capsys,
                                                        monkeypatch):
    """Was deferred without a word. Once: said, and the run finishes; twice: stopped, and
    ``--resume`` runs the evaluation again."""
    original = Trainer.evaluate

    def evaluate(self, corpus, name, iw_samples=0):
        if iw_samples > 0:  # the final evaluation: the person presses Ctrl-C
            for _ in range(signals):
                signal.raise_signal(signal.SIGINT)
        return original(self, corpus, name, iw_samples)

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", *reference_args(tiny_data), "--out", out,
                           "--no-progress")
    assert (f"cyclevae: SIGINT received during the final evaluation: training is complete and "
            f"saved in {out / 'checkpoint_last.pt'}") in err
    if signals == 1:
        assert code == 0 and (out / "metrics.json").is_file()
        return
    assert code == 130 and "SIGINT received again: final evaluation stopped" in err
    assert not (out / "metrics.json").exists()
    monkeypatch.setattr(Trainer, "evaluate", original)
    code, _, err = run_cli(capsys, "train", "--resume", "--out", out, "--no-progress")
    assert code == 0, err
    assert "iw_nll" in json.loads((out / "metrics.json").read_text())["test"]
