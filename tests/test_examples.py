"""The scripts in examples/ run as users run them (``python examples/NAME.py``), fast, and do
what they say: the betas their models saw are the schedule's."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO

from cyclevae.schedules import beta_schedule

pytestmark = pytest.mark.usefixtures("one_thread")

EXAMPLES = REPO / "examples"


def _run(name: str, *args: str, needs: str | None = None, cwd: Path | None = None) -> dict:
    """Run ``examples/NAME.py ARGS`` in a subprocess; its last stdout line is a JSON summary.
    ``needs``: the optional framework it imports (skipped locally without it, required in CI)."""
    if needs and importlib.util.find_spec(needs) is None:
        message = f"{needs} not installed (pip install -e '.[test]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], cwd=cwd,
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, f"{name}: {out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_plain_loop_is_the_readme_loop() -> None:
    readme = (REPO / "README.md").read_text()
    block = readme.split("## Use the schedule in your own training loop", 1)[1]
    block = block.split("```python", 1)[1].split("```", 1)[0]
    script = {line.split("#")[0].strip()
              for line in (EXAMPLES / "plain_pytorch_loop.py").read_text().splitlines()}
    missing = [line for line in block.splitlines()
               if line.split("#")[0].strip() and line.split("#")[0].strip() not in script]
    assert not missing, f"README loop lines not in examples/plain_pytorch_loop.py: {missing}"


def test_plain_pytorch_loop(tmp_path: Path) -> None:
    summary = _run("plain_pytorch_loop", "--epochs", "2", "--out", str(tmp_path / "toy.pt"))
    assert summary["steps"] == 16  # 256 codes in batches of 32, 2 epochs
    assert summary["betas"] == beta_schedule(16, n_cycles=4, ratio=0.5).tolist()
    assert math.isfinite(summary["final_loss"])
    saved = torch.load(tmp_path / "toy.pt", weights_only=True)
    assert saved["beta"]["last_step"] == 16 and set(saved) == {"model", "optimizer", "beta"}


def test_lightning_example(tmp_path: Path) -> None:
    summary = _run("lightning_vae", "--epochs", "2", "--cycles", "2", "--out", str(tmp_path),
                   needs="lightning")
    assert summary["steps"] == summary["total"] == 16
    assert summary["betas"] == beta_schedule(16, n_cycles=2, ratio=0.5).tolist()
    assert math.isfinite(summary["final_loss"])


def test_transformers_example(tmp_path: Path) -> None:
    summary = _run("transformers_vae", "--epochs", "2", "--cycles", "2", "--out", str(tmp_path),
                   needs="transformers")
    expected = beta_schedule(16, n_cycles=2, ratio=0.5).tolist()
    assert summary["steps"] == summary["total"] == 16
    assert summary["betas"] == expected and summary["logged_betas"] == expected
    assert (tmp_path / "checkpoint-16" / "trainer_state.json").is_file()


def test_train_own_text_example(tmp_path: Path) -> None:
    summary = _run("train_own_text", "--epochs", "2", "--out", str(tmp_path / "run"))
    corpus = [line for line in (EXAMPLES / "tiny_corpus.txt").read_text().splitlines() if line]
    assert summary["result"]["epochs"] == 2
    assert summary["result"]["data"]["train"]["sentences"] == len(corpus) - len(corpus) // 10
    assert len(summary["samples"]) == 5 and all(summary["samples"])
    vocab = {word for line in corpus for word in line.split()} | {"<unk>"}
    assert all(set(s.split()) <= vocab for s in summary["samples"])
    assert [r.split("\t")[0] for r in summary["reconstructions"]] == corpus[:3]
    assert (tmp_path / "run" / "checkpoint_best.pt").is_file()
