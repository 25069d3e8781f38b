"""Helpers and fixtures shared by the robustness suite (docs/robustness.md lists its cases).

Import the fixtures into a test module to use them (``from robust_support import tiny_data``).
Every run here is a tiny model on a few dozen PTB sentences, so a training run costs well
under a second; subprocesses are used only where a real signal or exit status is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cyclevae.cli import main

# A model of a few hundred parameters per word, one epoch, no importance sampling.
TINY = {
    "data.batch_size": 8, "model.emb_dim": 8, "model.enc_hidden": 8, "model.dec_hidden": 8,
    "model.latent_dim": 2, "train.epochs": 1, "schedule.n_cycles": 1, "train.iw_samples": 0,
    "train.num_threads": 1, "train.log_every": 5,
}


def overrides(train: Path | str, **extra: object) -> list[str]:
    """``key=value`` strings of the tiny model on ``train`` (plus ``extra``; ``None`` drops)."""
    values: dict[str, object] = {"data.train": train, **TINY}
    for key, value in extra.items():
        key = key.replace("__", ".")
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return [f"{k}={v}" for k, v in values.items()]


def set_args(items: list[str]) -> list[str]:
    """``["--set", "a=1", "--set", "b=2"]`` from ``["a=1", "b=2"]``."""
    return [x for item in items for x in ("--set", item)]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Run ``cyclevae ARGV`` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line_error(err: str) -> str:
    """The stderr of a failed command: exactly one line ``cyclevae: error: ...``, no traceback."""
    text = err.strip()
    assert text.startswith("cyclevae: error: "), err
    assert "\n" not in text and "Traceback" not in text, err
    return text


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (relative path -> bytes), to prove nothing changed."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def log_records(run: Path) -> list[dict]:
    """``run/log.jsonl`` parsed line by line (fails on a damaged line)."""
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def without_timings(metrics: dict) -> dict:
    """``metrics.json`` minus the fields that measure time."""
    drop = {"seconds_per_epoch", "tokens_per_s", "seconds"}
    return {k: v for k, v in metrics.items() if k not in drop}


def python_cyclevae(*argv: object, cwd: Path) -> subprocess.Popen:
    """``python -m cyclevae ARGV`` as a real process (stdout/stderr captured)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "cyclevae", *map(str, argv)], cwd=cwd,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="session")
def tiny_data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train.txt`` (60 PTB sentences, 26 batches of the tiny config) and ``test.txt`` (20)."""
    root = tmp_path_factory.mktemp("tiny_data")
    for split, source, n in (("train", "train", 60), ("test", "valid", 20)):
        lines = (shared_data / "ptb" / f"{source}.txt").read_text().splitlines()[:n]
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def finished_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run (1 epoch): copy it before changing anything in it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    code = main(["train", *set_args(overrides(tiny_data / "train.txt",
                                              data__test=tiny_data / "test.txt")),
                 "--out", str(out), "--no-progress"])
    assert code == 0
    return out


# The reference run of the resume and determinism cases: 2 epochs, one cycle, a test split
# evaluated with importance sampling (the most random part of the metrics).
REFERENCE = {"train__epochs": 2, "train__iw_samples": 4, "train__iw_chunk": 2}


def reference_args(tiny_data: Path) -> list[str]:
    return set_args(overrides(tiny_data / "train.txt", data__test=tiny_data / "test.txt",
                              **REFERENCE))


@pytest.fixture(scope="session")
def reference_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of :data:`REFERENCE` (do not change files in it)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", *reference_args(tiny_data), "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def tmpfs(tmp_path: Path):
    """``make(size)`` mounts a tmpfs of ``size`` (e.g. ``"4m"``) and returns its path, so a
    test can fill it up or remount it read-only; skipped where mount is not permitted."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        point = tmp_path / f"volume-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                                 str(point)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'}); "
                        "the monkeypatched variant of this case still runs")
        mounted.append(point)
        return point

    yield make
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True, capture_output=True)


def fill_volume(point: Path) -> None:
    """Write a filler file until the volume is full."""
    with open(point / "filler", "wb", buffering=0) as handle:
        try:
            while handle.write(b"\0" * 4096):
                pass
        except OSError:
            pass
