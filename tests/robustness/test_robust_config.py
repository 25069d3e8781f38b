"""Bad configuration and a busy output directory: one-line error, exit 2, nothing touched."""

from __future__ import annotations

import shutil

import pytest

from cyclevae.errors import UserError
from robust_support import (  # noqa: F401 - fixtures
    finished_run,
    one_line_error,
    overrides,
    run_cli,
    set_args,
    snapshot,
    tiny_data,
)


def _train(capsys, out, *args):
    return run_cli(capsys, "train", *args, "--out", out, "--no-progress")


@pytest.mark.parametrize("where", ["--set", "yaml"])
def test_unknown_config_key(where, tiny_data, tmp_path, capsys):
    args = set_args(overrides(tiny_data / "train.txt"))
    if where == "--set":
        args += ["--set", "model.hiden=32"]
        source = "--set"
    else:
        config = tmp_path / "run.yaml"
        config.write_text("model:\n  latent_dim: 2\n  hiden: 32\n")
        args += ["--config", str(config)]
        source = str(config)
    out = tmp_path / "out"
    code, _, err = _train(capsys, out, *args)
    message = one_line_error(err)
    assert code == 2
    assert f"{source}: unknown config key 'model.hiden' (fields of model:" in message
    assert "dec_hidden" in message  # the valid names are listed
    assert not out.exists()


@pytest.mark.parametrize("item, expected", [
    ("train.epochs=ten", "--set: train.epochs must be int, got 'ten'"),
    ("train.lr=[1, 2]", "--set: train.lr must be float, got [1, 2]"),
    ("data.max_length=yes", "--set: data.max_length must be int or null, got True"),
])
def test_wrong_type(item, expected, tiny_data, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _train(capsys, out, *set_args(overrides(tiny_data / "train.txt")),
                          "--set", item)
    assert code == 2 and expected in one_line_error(err)
    assert not out.exists()


@pytest.mark.parametrize("item, expected", [
    ("schedule.ratio=1.5", "schedule.ratio must be in [0, 1], got 1.5"),
    ("schedule.ratio=-0.1", "schedule.ratio must be in [0, 1], got -0.1"),
    ("schedule.n_cycles=0", "schedule.n_cycles must be in [1, total_steps"),
    ("schedule.shape=square", "schedule.shape must be one of linear, sigmoid, cosine"),
    ("schedule.start=2", "schedule.start must be <= stop"),
    ("schedule.stop=.nan", "schedule.stop"),
    ("schedule.unit=minute", "schedule.unit must be 'epoch' or 'step'"),
])
def test_out_of_range_schedule_arguments(item, expected, tiny_data, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _train(capsys, out, *set_args(overrides(tiny_data / "train.txt")),
                          "--set", "train.epochs=4", "--set", item)
    message = one_line_error(err)
    assert code == 2 and message.startswith("cyclevae: error: config: ") and expected in message
    assert not out.exists()


@pytest.mark.parametrize("items, expected", [
    # without interpolation beta changes only between epochs: 3 cycles cannot fit in 2
    (["train.epochs=2", "schedule.n_cycles=3", "schedule.interpolate=false"],
     "schedule.n_cycles=3 is more cycles than train.epochs=2"),
    (["lr_schedule.unit=batch"], "lr_schedule.unit must be 'epoch' or 'step'"),
    # 26 steps in all: 30 cycles cannot fit; known only once the data is read
    (["lr_schedule.kind=cyclical", "lr_schedule.unit=step", "lr_schedule.n_cycles=30"],
     "config: lr_schedule.n_cycles=30 is more cycles than the run has optimizer steps (26 = "
     "train.epochs=1 x 26 steps per epoch); each cycle needs at least one"),
    (["lr_schedule.kind=cyclical", "lr_schedule.n_cycles=30"],
     "lr_schedule.n_cycles=30 is more cycles than the run has optimizer steps (26 = "),
    (["schedule.unit=step", "schedule.n_cycles=30"],
     "schedule.n_cycles=30 is more cycles than the run has optimizer steps (26 = "),
    (["schedule.n_cycles=27"],
     "schedule.n_cycles=27 is more cycles than the run has optimizer steps (26 = "),
])
def test_cycle_longer_than_the_run(items, expected, tiny_data, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = _train(capsys, out, *set_args(overrides(tiny_data / "train.txt") + items))
    assert code == 2 and expected in one_line_error(err)
    assert not out.exists()


def test_resume_with_overwrite_is_refused(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    code, _, err = _train(capsys, run, "--resume", "--overwrite")
    assert code == 2 and "--resume and --overwrite contradict each other" in one_line_error(err)
    code, _, err = _train(capsys, run, "--resume", "--set", "train.lr=0.5")
    assert code == 2 and "a resumed run keeps its saved config" in one_line_error(err)
    code, _, err = _train(capsys, run, "--resume", "--config", str(run / "config.yaml"))
    assert code == 2 and "--resume continues the saved config" in one_line_error(err)
    assert snapshot(run) == before


def test_output_directory_of_another_run_is_refused_byte_identical(
        finished_run, tiny_data, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    code, _, err = _train(capsys, run, *set_args(overrides(tiny_data / "train.txt",
                                                           train__seed=7)))
    message = one_line_error(err)
    assert code == 2 and f"{run}: output directory holds another run" in message
    assert "--resume" in message and "--overwrite" in message
    assert snapshot(run) == before
    # a directory with only the start of a run (config written, no checkpoint) is a run too
    (run / "checkpoint_last.pt").unlink()
    (run / "log.jsonl").unlink()
    (run / "metrics.json").unlink()
    partial = snapshot(run)
    code, _, err = _train(capsys, run, *set_args(overrides(tiny_data / "train.txt")))
    assert code == 2 and "holds another run" in one_line_error(err)
    assert snapshot(run) == partial


def test_overwrite_with_bad_input_keeps_the_old_run(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine\n\xff\xfe\n")
    code, _, err = _train(capsys, run, "--overwrite", *set_args(overrides(bad)))
    assert code == 2 and f"{bad}, line 2: invalid UTF-8" in one_line_error(err)
    assert snapshot(run) == before


def test_bad_config_file(tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "missing.yaml"
    code, _, err = _train(capsys, out, "--config", missing)
    assert code == 2 and f"{missing}: config file not found" in one_line_error(err)
    broken = tmp_path / "broken.yaml"
    broken.write_text("train:\n  epochs: [1,\n")
    code, _, err = _train(capsys, out, "--config", broken)
    assert code == 2 and f"{broken}: not valid YAML" in one_line_error(err)
    listing = tmp_path / "list.yaml"
    listing.write_text("- train\n- epochs\n")
    code, _, err = _train(capsys, out, "--config", listing)
    assert code == 2 and f"{listing}: expected a mapping of sections" in one_line_error(err)
    assert not out.exists()


def test_resume_without_a_checkpoint(finished_run, tmp_path, capsys):
    missing = tmp_path / "typo"
    code, _, err = _train(capsys, missing, "--resume")
    assert code == 2
    assert one_line_error(err).endswith(f"{missing}: nothing to resume (no checkpoint_last.pt)")
    assert not missing.exists()
    run = tmp_path / "run"  # killed before its first checkpoint: config and vocabulary only
    run.mkdir()
    for name in ("config.yaml", "vocab.txt"):
        shutil.copy(finished_run / name, run / name)
    before = snapshot(run)
    code, _, err = _train(capsys, run, "--resume")
    assert code == 2 and "start it again with --overwrite" in one_line_error(err)
    assert snapshot(run) == before


@pytest.mark.parametrize("where", ["--set", "yaml"])
def test_numbers_written_as_people_write_them(where, tmp_path):
    """``1e-3`` is a float (YAML 1.1 reads it as text; YAML 1.2 and every user as a number)."""
    from cyclevae.config import load_config

    values = {"train.lr": ("1e-3", 1e-3), "schedule.stop": ("1E0", 1.0),
              "train.free_bits": ("+.5e1", 5.0), "train.clip": ("2.5e+0", 2.5)}
    if where == "--set":
        config = load_config(None, [f"{k}={text}" for k, (text, _) in values.items()])
    else:
        path = tmp_path / "run.yaml"
        path.write_text("train:\n  lr: 1e-3\n  free_bits: +.5e1\n  clip: 2.5e+0\n"
                        "schedule:\n  stop: 1E0\n")
        config = load_config(path)
    got = {k: getattr(getattr(config, k.split(".")[0]), k.split(".")[1]) for k in values}
    assert got == {k: v for k, (_, v) in values.items()}
    # an int field still refuses a float, and text stays text
    with pytest.raises(UserError, match=r"train.epochs must be int, got 1000.0"):
        load_config(None, ["train.epochs=1e3"])
    assert load_config(None, ["data.train=1e3x"]).data.train == "1e3x"


@pytest.mark.parametrize("seed", ["-1", str(2**66), str(2**32)])
def test_seed_out_of_range(seed, tiny_data, tmp_path, capsys):
    """Was a NumPy traceback, exit 1."""
    out = tmp_path / "out"
    code, _, err = _train(capsys, out, *set_args(overrides(tiny_data / "train.txt")),
                          "--set", f"train.seed={seed}")
    assert code == 2
    assert f"config: train.seed must be in [0, 2**32 - 1] (NumPy's seed range), got {seed}" \
        in one_line_error(err)
    assert not out.exists()


def test_largest_seed_trains(tiny_data, tmp_path, capsys):
    """The per-batch seeds derived from it stay inside torch's range."""
    code, _, err = _train(capsys, tmp_path / "out", *set_args(overrides(tiny_data / "train.txt")),
                          "--set", f"train.seed={2**32 - 1}")
    assert code == 0, err


def test_model_too_large_for_the_machine_is_refused_before_allocating(tiny_data, tmp_path,
                                                                      capsys, monkeypatch):
    """``model.dec_hidden=100000`` was an allocator traceback asking for 160 GB: the parameter
    memory is estimated on the meta device first (here against a 64 GB machine)."""
    from cyclevae import memory

    monkeypatch.setattr(memory, "device_memory_bytes", lambda device: 64 * 10**9)
    out = tmp_path / "out"
    code, _, err = _train(capsys, out, *set_args(overrides(tiny_data / "train.txt")),
                          "--set", "model.dec_hidden=100000")
    message = one_line_error(err)
    assert code == 2 and "config: the model.* sizes give " in message
    count = int(message.split(" sizes give ")[1].split(" parameters")[0].replace(",", ""))
    assert count > 4 * 100000 * 100000  # the decoder LSTM's 4 gates alone
    assert f"need about {count * 16 / 1e9:,.1f} GB to train" in message
    assert "more than this machine's 64.0 GB" in message
    assert not out.exists()


def test_finished_run_says_so_on_resume_and_trains_longer_with_more_epochs(
        finished_run, tmp_path, capsys):
    """``--resume`` of a finished run re-evaluated it silently (exit 0); a larger
    ``train.epochs`` was refused. Now: the first is refused saying the run is finished, the
    second trains it longer (beta held at its last value, every epoch logged once)."""
    import json

    from robust_support import log_records

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    code, _, err = _train(capsys, run, "--resume")
    assert code == 2 and one_line_error(err).endswith(
        f"{run}: the run is finished (1 of 1 epochs, metrics.json written); to train it "
        f"longer: cyclevae train --resume --out {run} --set train.epochs=N with N > 1")
    code, _, err = _train(capsys, run, "--resume", "--set", "train.epochs=0")
    assert code == 2 and "train.epochs can only grow on --resume" in one_line_error(err)
    assert snapshot(run) == before
    code, _, err = _train(capsys, run, "--resume", "--set", "train.epochs=3")
    assert code == 0, err
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["config"]["train"]["epochs"] == 3
    assert "epochs: 3" in (run / "config.yaml").read_text()
    records = log_records(run)
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    # one cycle planned over 1 epoch (ratio 0.5): its last step's beta 1.0 is held, not a new
    # cycle from 0
    betas = [r["beta"] for r in records if r["kind"] == "train" and r["epoch"] > 1]
    assert betas and all(b == 1.0 for b in betas)
    assert [r["kind"] for r in records].count("final") == 1
