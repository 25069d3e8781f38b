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


def test_missing_best_checkpoint_points_at_the_last_one(finished_run, capsys):
    """A run without data.valid keeps no checkpoint_best.pt; the README's generate command on
    it failed without a word about checkpoint_last.pt."""
    best = finished_run / "checkpoint_best.pt"
    code, _, err = run_cli(capsys, "generate", best, "--prior", "2")
    assert code == 2 and one_line_error(err).endswith(
        f"{best}: checkpoint not found; {finished_run} holds checkpoint_last.pt (a run without "
        "a validation split, data.valid, keeps no best checkpoint)")


def test_words_outside_the_vocabulary_are_named(finished_run, tmp_path, capsys):
    """``generate --interpolate/--reconstruct``: unknown words became <unk> silently."""
    last = finished_run / "checkpoint_last.pt"
    code, out, err = run_cli(capsys, "generate", last, "--interpolate", "the zzyzx of",
                             "of qqq the zzyzx", "--steps", "2")
    assert code == 0 and len(out.splitlines()) == 2
    assert ("cyclevae: warning: --interpolate: 2 word(s) not in the model's vocabulary, read "
            "as <unk>: 'zzyzx', 'qqq'") in err
    lines = tmp_path / "lines.txt"
    lines.write_text("the of\nblorp the\n")
    code, out, err = run_cli(capsys, "generate", last, "--reconstruct", lines)
    assert code == 0 and f"warning: {lines}: 1 word(s) not in the model's vocabulary, read " \
        "as <unk>: 'blorp'" in err
    code, _, err = run_cli(capsys, "generate", last, "--reconstruct", tiny_lines(tmp_path))
    assert code == 0 and "warning" not in err  # known words only: nothing said


def tiny_lines(tmp_path: Path) -> Path:
    path = tmp_path / "known.txt"
    path.write_text("the\n")
    return path


def test_runs_table_shows_the_settings_in_which_runs_differ(tmp_path, capsys):
    """Runs differing in free bits or dropout had the same schedule column and nothing else."""
    import yaml

    from cyclevae.config import load_config

    dirs = []
    for name, extra in (("a", []), ("b", ["train.free_bits=0.5", "model.dropout=0.3"])):
        run = tmp_path / name
        run.mkdir()
        config = load_config(None, ["data.train=x.txt", *extra])
        (run / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
        dirs.append(run)
    code, out, _ = run_cli(capsys, "runs", *dirs)
    assert code == 0
    header, _, row_a, row_b = out.splitlines()[:4]
    assert "| settings |" in header
    assert "| model.dropout=0.5, train.free_bits=0 |" in row_a
    assert "| model.dropout=0.3, train.free_bits=0.5 |" in row_b
    code, out, _ = run_cli(capsys, "runs", dirs[0])
    assert "settings" not in out  # one run: nothing differs


def test_schedule_csv_of_a_huge_run_is_strided(tmp_path, capsys, monkeypatch):
    """``--csv`` of 10^8 steps wrote 2.2 GB: rows are capped unless --stride says otherwise."""
    from cyclevae import cli

    monkeypatch.setattr(cli, "_MAX_ROWS", 100)
    out = tmp_path / "beta.csv"
    code, _, err = run_cli(capsys, "schedule", "--total-steps", 1000, "--csv", out)
    rows = out.read_text().splitlines()
    assert code == 0 and len(rows) == 101 and rows[2].startswith("10,")
    assert "every 10th step is written (--stride 1 for all)" in err
    code, _, err = run_cli(capsys, "schedule", "--total-steps", 1000, "--stride", 1, "--csv", out)
    assert code == 0 and len(out.read_text().splitlines()) == 1001 and err == ""
    code, _, err = run_cli(capsys, "schedule", "--total-steps", 1000, "--stride", 0, "--csv", out)
    assert code == 2 and "--stride must be >= 1, got 0" in one_line_error(err)
