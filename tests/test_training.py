"""The Trainer end to end on a small PTB slice: metrics file, resume, determinism, refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from conftest import small_overrides, stop_after_step

from cyclevae import training
from cyclevae.cli import main
from cyclevae.config import load_config
from cyclevae.errors import UserError
from cyclevae.training import LAST, Trainer, TrainingInterrupted

TEST_KEYS = {"rec", "kl", "elbo", "ppl", "iw_nll", "iw_ppl", "mi", "marginal_kl", "active_units"}


def train(root: Path, out: Path, **extra: object) -> dict:
    config = load_config(None, small_overrides(root, **extra))
    return Trainer(config, out, progress=False).fit()


@pytest.fixture(scope="module")
def reference(ptb_slice, tmp_path_factory) -> tuple[Path, dict]:
    """One uninterrupted 2-epoch run of the small config, shared by the tests that read a
    finished run and the resume test that must reproduce it."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return out, train(ptb_slice, out)


def test_run_writes_metrics_and_logs(reference):
    run, metrics = reference
    assert metrics["epochs"] == 2 and metrics["seconds_per_epoch"] > 0
    assert TEST_KEYS <= set(metrics["test"])
    assert all(math.isfinite(metrics["test"][k]) for k in TEST_KEYS)
    assert metrics["test"]["iw_nll"] <= metrics["test"]["rec"] + metrics["test"]["kl"] + 1.0
    on_disk = json.loads((run / "metrics.json").read_text())
    assert on_disk["test"] == metrics["test"]
    assert on_disk["config"]["train"]["epochs"] == 2
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert {"train", "valid", "test"} <= set(epochs[0])
    # the beta logged rises within the first cycle (epoch 1 of 2, ratio 0.5)
    betas = [r["beta"] for r in records if r["kind"] == "train" and r["epoch"] == 1]
    assert betas == sorted(betas) and betas[0] < 1.0
    assert (run / "vocab.txt").is_file() and (run / LAST).is_file()


def test_resume_after_interrupt_matches_uninterrupted(reference, ptb_slice, tmp_path):
    """(Determinism of a fresh run with the same seed: tests/robustness/
    test_robust_determinism.py, which compares every logged number and the weights.)"""
    _, reference = reference
    config = load_config(None, small_overrides(ptb_slice))
    trainer = Trainer(config, tmp_path / "cut", progress=False)
    stop_after_step(trainer, 3)  # mid-epoch 1
    with pytest.raises(TrainingInterrupted, match="--resume"):
        trainer.fit()
    assert not (tmp_path / "cut" / "metrics.json").exists()
    resumed = Trainer(load_config(None, []), tmp_path / "cut", resume=True, progress=False).fit()
    for split in ("valid", "test"):
        for key, value in reference[split].items():
            assert resumed[split][key] == pytest.approx(value, rel=1e-6, abs=1e-6), (split, key)
    assert resumed["train"] == pytest.approx(reference["train"], rel=1e-6)


def test_resume_may_change_evaluation_settings_only(ptb_slice, tmp_path):
    """A run stopped before its final evaluation resumes with fewer importance samples; the
    training itself (any other key) cannot change on resume."""
    config = load_config(None, small_overrides(ptb_slice, **{"train.iw_samples": 20}))
    trainer = Trainer(config, tmp_path / "run", progress=False)
    trainer._finish = lambda: (_ for _ in ()).throw(KeyboardInterrupt)  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    with pytest.raises(UserError, match="only train.iw_samples"):
        Trainer(config, tmp_path / "run", resume=True, resume_overrides=["train.lr=0.5"])
    resumed = Trainer(config, tmp_path / "run", resume=True, progress=False,
                      resume_overrides=["train.iw_samples=3"])
    assert resumed.config.train.iw_samples == 3 and resumed.config.train.lr == config.train.lr
    metrics = resumed.fit()
    assert metrics["config"]["train"]["iw_samples"] == 3 and "iw_nll" in metrics["test"]


def test_cycles_shorter_than_an_epoch_with_step_units(ptb_slice, tmp_path):
    """A shortened run keeps M cycles in fewer epochs than cycles: beta and the cyclical lr
    both restart inside an epoch when their unit is the step."""
    metrics = train(ptb_slice, tmp_path / "run", **{
        "train.epochs": 1, "schedule.unit": "step", "schedule.n_cycles": 2,
        "lr_schedule.kind": "cyclical", "lr_schedule.unit": "step", "lr_schedule.n_cycles": 2,
        "train.log_every": 1, "train.iw_samples": 0})
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "train"]
    assert metrics["epochs"] == 1 and len(steps) >= 4
    betas, lrs = [r["beta"] for r in steps], [r["lr"] for r in steps]
    restarts = [i for i in range(1, len(steps)) if betas[i] < betas[i - 1]]
    assert len(restarts) == 1  # two cycles in one epoch
    assert lrs[restarts[0]] > lrs[restarts[0] - 1]  # the lr restarts with it


def test_output_directory_of_another_run_is_refused(ptb_slice, tmp_path):
    out = tmp_path / "run"
    train(ptb_slice, out, **{"train.epochs": 1, "schedule.n_cycles": 1})
    before = (out / "metrics.json").read_bytes()
    with pytest.raises(UserError, match="--resume .* or --overwrite"):
        train(ptb_slice, out, **{"train.epochs": 1, "schedule.n_cycles": 1})
    assert (out / "metrics.json").read_bytes() == before


def test_cli_train_on_a_plain_text_file_with_defaults(tmp_path, capsys):
    corpus = tmp_path / "mine.txt"
    corpus.write_text("the cat sat on the mat\n\n" * 20 + "a dog ran\r\n" * 20)
    code = main(["train", "--set", f"data.train={corpus}", "--set", "train.epochs=1",
                 "--set", "schedule.n_cycles=1", "--set", "train.iw_samples=0",
                 "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["data"]["train"]["blank"] == 20 and metrics["data"]["train"]["sentences"] == 40
    assert metrics["vocab_size"] == 4 + 8  # the cat sat on mat a dog ran


@pytest.mark.parametrize(
    "setup, args, fragment",
    [
        (None, ["--set", "data.train=MISSING"], "missing.txt: no such file"),
        ("", ["--set", "data.train=FILE"], "empty"),
        (b"abc\x00def\n", ["--set", "data.train=FILE"], "binary"),
        ("ok line\n", ["--set", "data.train=FILE", "--set", "train.colour=red"],
         "unknown config key 'train.colour'"),
    ],
)
def test_cli_bad_input_one_line_exit_2(tmp_path, capsys, setup, args, fragment):
    path = tmp_path / "corpus.txt"
    if isinstance(setup, bytes):
        path.write_bytes(setup)
    elif isinstance(setup, str):
        path.write_text(setup)
    args = [a.replace("FILE", str(path)).replace("MISSING", str(tmp_path / "missing.txt"))
            for a in args]
    out = tmp_path / "out"
    code = main(["train", *args, "--set", "train.epochs=1", "--set", "schedule.n_cycles=1",
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("cyclevae: error:") and "\n" not in err and fragment in err
    assert not out.exists() or not any(out.iterdir())


def test_git_commit_names_the_source_tree_and_marks_local_changes():
    import re
    import subprocess

    from cyclevae import training

    commit = training.git_commit()
    if commit is None:
        pytest.skip("not running from a git checkout")
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(training.__file__).parent,
                          capture_output=True, text=True, check=True).stdout.strip()
    assert commit.split("+")[0] == head


def test_best_checkpoint_of_the_last_epoch_reuses_its_test_record(ptb_slice, tmp_path):
    """The best-on-valid test numbers are the epoch record's when that epoch is the last, and
    are recomputed (to the same values, evaluation being seeded) when it is not."""
    config = load_config(None, small_overrides(ptb_slice, **{"train.epochs": 1,
                                                              "schedule.n_cycles": 1}))
    trainer = Trainer(config, tmp_path / "run", progress=False)
    calls: list[int] = []
    original = trainer.evaluate

    def counting_evaluate(corpus, name, iw_samples=0):
        calls.append(iw_samples)
        return original(corpus, name, iw_samples)

    trainer.evaluate = counting_evaluate  # type: ignore[method-assign]
    metrics = trainer.fit()
    record = trainer.state.history[-1]
    assert metrics["best"]["epoch"] == 1 and metrics["best"]["test"] == record["test"]
    assert calls == [0, 0, 8]  # valid and test at the epoch's end, then the final IW test pass
    trainer.state.epoch = 2  # pretend training went on: the checkpoint is no longer the last
    again = training._best_checkpoint_metrics(trainer, tmp_path / "run" / "checkpoint_best.pt",
                                              record)
    assert calls == [0, 0, 8, 0] and again["test"] == record["test"]


def test_epoch_records_carry_the_beta_and_lr_of_the_epochs_last_step(ptb_slice, tmp_path):
    """The epoch record's beta/lr are those the epoch's last step trained with, not the next
    epoch's first step's (which differ at every cycle restart: 1 -> 0 here)."""
    train(ptb_slice, tmp_path / "run", **{"train.log_every": 1, "lr_schedule.kind": "cyclical",
                                          "lr_schedule.n_cycles": 2})
    records = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    for epoch in (1, 2):
        last_step = [r for r in records if r["kind"] == "train" and r["epoch"] == epoch][-1]
        record = next(r for r in records if r["kind"] == "epoch" and r["epoch"] == epoch)
        assert last_step["step"] == record["step"]
        assert (record["beta"], record["lr"]) == (last_step["beta"], last_step["lr"])


def test_a_training_step_reads_to_the_host_once(ptb_slice, tmp_path, monkeypatch):
    """Issue 27, item 4: every host read is a device sync on a GPU. A step reads one thing
    (the gradient norm with the losses' finiteness); the logged numbers are read at the logged
    steps only. Counted on CPU by wrapping the tensor methods that copy to the host."""
    import torch

    config = load_config(None, small_overrides(ptb_slice, **{"train.epochs": 1,
                                                             "train.log_every": 1000}))
    trainer = Trainer(config, tmp_path / "run", progress=False)
    reads: list[str] = []
    inside = [False]

    def counted(name):
        original = getattr(torch.Tensor, name)

        def method(self, *args, **kwargs):
            if inside[0]:
                reads.append(name)
            return original(self, *args, **kwargs)
        return method

    for name in ("item", "tolist", "__bool__", "__float__", "__int__"):
        monkeypatch.setattr(torch.Tensor, name, counted(name))
    original_step = trainer.train_step
    per_step: list[list[str]] = []

    def step(batches, beta, seeds=None):
        reads.clear()
        inside[0] = True
        try:
            return original_step(batches, beta, seeds)
        finally:
            inside[0] = False
            per_step.append(list(reads))

    trainer.train_step = step
    trainer.fit()
    assert len(per_step) > 3
    assert all(r == ["tolist"] for r in per_step), per_step[:3]
