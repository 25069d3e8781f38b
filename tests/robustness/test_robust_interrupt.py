"""Interruption: SIGINT/SIGTERM checkpoint and exit 130; kill -9 at any moment (even during a
checkpoint write) leaves the last complete checkpoint loadable; ``--resume`` then finishes
with the numbers of an uninterrupted run."""

from __future__ import annotations

import io
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cyclevae.checkpoint import load_checkpoint
from cyclevae.cli import main
from cyclevae.rundir import METRICS
from cyclevae.training import LAST
from robust_support import (  # noqa: F401 - fixtures
    digest,
    log_records,
    one_line_error,
    overrides,
    python_cyclevae,
    reference_args,
    reference_run,
    run_cli,
    set_args,
    tiny_data,
)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def assert_same_result(run: Path, reference: Path) -> None:
    """Same final numbers (within 1e-6) and a log that agrees: every epoch once, every step
    logged at most once, every line complete."""
    got, want = _metrics(run), _metrics(reference)
    assert got["steps"] == want["steps"] and got["epochs"] == want["epochs"]
    assert got["skipped_batches"] == want["skipped_batches"] == 0
    for key in ("train", "test"):
        if key in want:
            assert got[key] == pytest.approx(want[key], rel=1e-6, abs=1e-6), key
    records = log_records(run)  # fails on a torn line
    epochs = [r["epoch"] for r in records if r["kind"] == "epoch"]
    assert epochs == list(range(1, want["epochs"] + 1))
    steps = [r["step"] for r in records if r["kind"] == "train"]
    assert steps == sorted(set(steps)), "a step was logged twice"
    assert [r["kind"] for r in records].count("final") == 1
    assert not list(run.glob(".*.tmp")), "a temporary file of a killed write was left behind"


def _wait(condition, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"cyclevae ended early ({proc.returncode}): {err[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("cyclevae did not start training in time")
        time.sleep(0.01)


def _training(out: Path) -> bool:
    log = out / "log.jsonl"
    return log.is_file() and '"kind": "train"' in log.read_text()


# --------------------------------------------------------------------------- SIGINT / SIGTERM
@pytest.fixture(scope="module")
def slow_epoch(ptb_slice: Path, tiny_data: Path, tmp_path_factory) -> tuple[list[str], Path]:
    """Settings with one long epoch (240 sentences, batches of 2) and its uninterrupted run."""
    args = set_args(overrides(ptb_slice / "train.txt", data__test=tiny_data / "test.txt",
                              data__batch_size=2, data__max_length=25, train__log_every=1))
    out = tmp_path_factory.mktemp("slow_reference") / "run"
    assert main(["train", *args, "--out", str(out), "--no-progress"]) == 0
    return args, out


def test_sigint_or_sigterm_mid_epoch_checkpoints_exits_130_and_resumes(
        slow_epoch, tmp_path, capsys):
    args, reference = slow_epoch
    steps = _metrics(reference)["steps"]
    runs = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / sig.name
        runs[sig] = (out, python_cyclevae("train", *args, "--out", out, "--no-progress",
                                          cwd=tmp_path))
    waiting = dict(runs)
    deadline = time.monotonic() + 90
    while waiting:  # signal each process as soon as its log shows it is training
        for sig, (out, proc) in list(waiting.items()):
            if _training(out):
                proc.send_signal(sig)
                del waiting[sig]
            elif proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{sig.name} run ended or stalled: {proc.communicate()[1][-2000:]}")
        time.sleep(0.01)
    for sig, (out, proc) in runs.items():
        stdout, stderr = proc.communicate(timeout=90)
        assert proc.returncode == 130, stderr
        assert stdout == "" and "Traceback" not in stderr
        progress = load_checkpoint(out / LAST)["progress"]
        assert progress["epoch"] == 0 and 0 < progress["batch"] < steps  # mid-epoch
        assert stderr.strip().splitlines()[-1] == (
            f"cyclevae: {sig.name} received: checkpoint written to {out / LAST} at epoch 1, "
            f"step {progress['batch']} of {steps}; continue with "
            f"`cyclevae train --resume --out {out}`")
        assert not (out / "metrics.json").exists()
    out = runs[signal.SIGINT][0]
    code, _, err = run_cli(capsys, "train", "--resume", "--out", out, "--no-progress")
    assert code == 0, err
    assert_same_result(out, reference)


# --------------------------------------------------------------------------- kill -9
class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs in the training process."""


def test_kill_during_checkpoint_write_keeps_last_and_resume_matches(
        reference_run, tiny_data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real_save = torch.save
    seen: dict = {}

    def dying_save(obj, handle, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("progress", {}).get("epoch") == 2:
            buffer = io.BytesIO()
            real_save(obj, buffer)
            seen["partial"] = buffer.getvalue()[: len(buffer.getvalue()) // 2]
            handle.write(seen["partial"])  # half the epoch-2 checkpoint is on disk ...
            handle.flush()
            seen["digest"] = digest(out / LAST)
            raise Killed  # ... when the process dies
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(Killed):
        main(["train", *reference_args(tiny_data), "--out", str(out), "--no-progress"])
    monkeypatch.setattr(torch, "save", real_save)
    assert digest(out / LAST) == seen["digest"]  # the epoch-1 checkpoint, untouched
    assert load_checkpoint(out / LAST)["progress"]["epoch"] == 1
    # what SIGKILL leaves besides: the temporary file, and a log line cut short
    (out / f".{LAST}.k9dead.tmp").write_bytes(seen["partial"])
    with open(out / "log.jsonl", "a") as log:
        log.write('{"kind": "train", "epoch": 2, "st')
    code, _, err = run_cli(capsys, "train", "--resume", "--out", out, "--no-progress")
    assert code == 0, err
    assert_same_result(out, reference_run)


@pytest.fixture(scope="module")
def many_epochs(tiny_data: Path, tmp_path_factory) -> tuple[list[str], Path]:
    """Short epochs, a checkpoint after each: kills often land in or near a write."""
    args = set_args(overrides(tiny_data / "train.txt", train__epochs=12, train__log_every=1))
    out = tmp_path_factory.mktemp("many_epochs_reference") / "run"
    assert main(["train", *args, "--out", str(out), "--no-progress"]) == 0
    return args, out


def test_sigkill_at_random_moments_then_resume_matches(many_epochs, tmp_path, capsys):
    args, reference = many_epochs
    out = tmp_path / "run"
    rng = random.Random()
    moments = []
    for round_ in range(2):
        started = time.time_ns()
        proc = python_cyclevae("train", *(["--resume"] if round_ else args), "--out", out,
                               "--no-progress", cwd=tmp_path)
        log, last = out / "log.jsonl", out / LAST
        # kill once this process has written something and a first checkpoint exists
        _wait(lambda: last.is_file() and log.is_file() and log.stat().st_mtime_ns > started,
              proc)
        moments.append(rng.uniform(0.0, 0.4))
        time.sleep(moments[-1])
        proc.kill()  # SIGKILL
        proc.communicate(timeout=30)
        state = load_checkpoint(out / LAST)  # loadable after every kill
        assert state["progress"]["epoch"] <= 12, moments
    # a kill can come after the run finished (a fast CPU trains 12 tiny epochs within 0.4 s);
    # resuming a finished run is refused by design, so resume only what the kills cut short
    if not (out / METRICS).is_file():
        code, _, err = run_cli(capsys, "train", "--resume", "--out", out, "--no-progress")
        assert code == 0, (moments, err)
    assert_same_result(out, reference)


# --------------------------------------------------------------------------- one run per directory
def test_directory_in_use_is_refused_and_a_killed_holder_does_not_block_resume(
        tiny_data, tmp_path, capsys):
    """Two trainings into one --out (issue: seeds 0 and 1 both ran and mixed their files): the
    second is refused at once, naming the first's pid; after ``kill -9`` of the first, its lock
    (released by the kernel) does not block ``--resume``."""
    args = set_args(overrides(tiny_data / "train.txt", train__epochs=10, train__log_every=1))
    out = tmp_path / "run"
    proc = python_cyclevae("train", *args, "--out", out, "--no-progress", cwd=tmp_path)
    try:
        _wait(lambda: (out / LAST).is_file(), proc)  # trained an epoch: there is a run here
        for second in (set_args(overrides(tiny_data / "train.txt", train__seed=1)),
                       ["--resume"], ["--overwrite", *args]):
            code, _, err = run_cli(capsys, "train", *second, "--out", out, "--no-progress")
            message = one_line_error(err)
            assert code == 2, second
            assert f"{out}: in use by another training (pid {proc.pid} on " in message, message
        assert proc.poll() is None, "the refused commands must not disturb the running one"
    finally:
        proc.kill()  # SIGKILL: the lock file stays, the lock itself is gone
        proc.communicate(timeout=30)
    assert (out / ".lock").read_text().startswith(f"pid {proc.pid} on ")
    code, _, err = run_cli(capsys, "train", "--resume", "--out", out, "--no-progress")
    assert code == 0, err
    assert [r["epoch"] for r in log_records(out) if r["kind"] == "epoch"] == list(range(1, 11))


def test_directory_taken_between_check_and_start_is_refused(tiny_data, tmp_path, capsys,
                                                            monkeypatch):
    """The race the early check cannot see (both runs found the directory free): the lock
    taken before the first write refuses the second."""
    from cyclevae.runlock import RunLock

    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from cyclevae.runlock import RunLock; "
         "lock = RunLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(RunLock, "check_free", lambda self: None)  # as if not yet taken
        code, _, err = run_cli(capsys, "train", *set_args(overrides(tiny_data / "train.txt")),
                               "--out", out, "--no-progress")
        assert code == 2 and f"in use by another training (pid {holder.pid} " in \
            one_line_error(err)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing written
    finally:
        holder.kill()
        holder.communicate(timeout=30)
