"""Commands given something they cannot use: a one-line error naming what is wrong, exit 2,
never a traceback or a silently wrong number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cyclevae.cli import main
from robust_support import (  # noqa: F401 - fixtures
    finished_run,
    one_line_error,
    overrides,
    run_cli,
    set_args,
    tiny_data,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def conversations(shared_data: Path, tmp_path_factory) -> Path:
    """Three swda conversations cut to 20 utterances (``train.jsonl``, ``test.jsonl``)."""
    root = tmp_path_factory.mktemp("conversations")
    for split, n in (("train", 3), ("test", 1)):
        records = []
        for line in (shared_data / "swda" / f"{split}.jsonl").read_text().splitlines()[:n]:
            record = json.loads(line)
            record["utts"] = record["utts"][:20]
            records.append(json.dumps(record) + "\n")
        (root / f"{split}.jsonl").write_text("".join(records), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def dialog_run(conversations: Path, tmp_path_factory) -> Path:
    """A tiny dialog CVAE trained for one epoch."""
    out = tmp_path_factory.mktemp("dialog") / "run"
    sizes = {"model.kind": "cvae", "data.batch_size": 16, "model.cvae.emb_dim": 8,
             "model.cvae.utt_hidden": 8, "model.cvae.ctx_hidden": 8,
             "model.cvae.latent_dim": 2, "model.cvae.dec_hidden": 8,
             "model.cvae.prior_hidden": 8, "model.cvae.bow_hidden": 8, "train.epochs": 1,
             "schedule.n_cycles": 1, "train.iw_samples": 0, "train.response_samples": 0,
             "data.train": conversations / "train.jsonl"}
    assert main(["train", *set_args([f"{k}={v}" for k, v in sizes.items()]), "--out",
                 str(out), "--no-progress"]) == 0
    return out


def test_embed_of_a_dialog_checkpoint_is_one_line(dialog_run, tiny_data, tmp_path, capsys):
    """Was a traceback (``'TextBatch' object has no attribute 'utterances'``), exit 1."""
    checkpoint = dialog_run / "checkpoint_last.pt"
    code, _, err = run_cli(capsys, "embed", checkpoint, "--data", tiny_data / "test.txt",
                           "--out", tmp_path / "codes.npy")
    message = one_line_error(err)
    assert code == 2 and f"{checkpoint}: a dialog model (model.kind cvae)" in message
    assert "a sentence model (vae, ae, savae, svi)" in message
    assert not (tmp_path / "codes.npy").exists()


def test_conversations_file_given_to_a_sentence_model_is_refused(finished_run, conversations,
                                                                 tmp_path, capsys):
    """Was exit 0 with Rec 38,139 nats over "2 sentences" (each JSON line a sentence)."""
    jsonl = conversations / "test.jsonl"
    code, out, err = run_cli(capsys, "evaluate", finished_run / "checkpoint_last.pt", "--data",
                             jsonl, "--iw-samples", "0")
    message = one_line_error(err)
    assert code == 2 and not out
    assert f"{jsonl}, line 1: a JSON record, not a sentence: this looks like a conversations " \
           "file (JSON lines), which only a dialog model (model.kind cvae) reads" in message
    run = tmp_path / "run"  # training a sentence VAE on it: the same line, nothing written
    code, _, err = run_cli(capsys, "train", *set_args(overrides(conversations / "train.jsonl")),
                           "--out", run, "--no-progress")
    assert code == 2 and "a JSON record, not a sentence" in one_line_error(err)
    assert not run.exists()


def test_collapsed_training_ends_with_a_warning(tiny_data, tmp_path, capsys):
    """The tiny model ends with no active unit (KL ~0.001 nats): was said nowhere."""
    from cyclevae.diagnose import collapse_warning

    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", *set_args(overrides(
        tiny_data / "train.txt", data__test=tiny_data / "test.txt")), "--out", out,
        "--no-progress")
    metrics = json.loads((out / "metrics.json").read_text())
    assert code == 0 and metrics["test"]["active_units"] == 0
    assert ("cyclevae: warning: the posterior collapsed: no latent unit is active on the test "
            f"set (KL {metrics['test']['kl']:.3g}, MI ") in err
    assert f"`cyclevae diagnose {out / 'checkpoint_last.pt'}`" in err
    healthy = {"test": {**metrics["test"], "active_units": 1}}
    assert collapse_warning(healthy, out) is None
    assert "on the valid set" in collapse_warning({"valid": metrics["test"]}, out)


def test_diagnose_prints_its_verdict_before_the_tables(finished_run, tmp_path, capsys):
    """Was after the per-dimension table (32 rows for a PTB model)."""
    code, out, err = run_cli(capsys, "diagnose", finished_run / "checkpoint_last.pt", "--out",
                             tmp_path / "diag")
    assert code == 0, err
    assert out.count("**Verdict:") == 1
    assert out.index("**Verdict:") < out.index("## Latent statistics") < out.index(
        "## Per latent dimension")
