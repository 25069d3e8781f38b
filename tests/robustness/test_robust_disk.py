"""A full or read-only output volume: one-line error (exit 2, no traceback) naming the file,
and the last complete checkpoint kept. Each fault is injected right after the epoch-1
checkpoint: by monkeypatching the failing system call (runs everywhere) and, where mount is
permitted, on a real tiny tmpfs that is filled up or remounted read-only."""

from __future__ import annotations

import builtins
import errno
import json
import os

import pytest

from cyclevae.checkpoint import load_checkpoint
from cyclevae.report import save_figure_atomic
from cyclevae.training import LAST, Trainer
from robust_support import (  # noqa: F401 - fixtures
    digest,
    fill_volume,
    log_records,
    one_line_error,
    overrides,
    remount_read_only,
    run_cli,
    set_args,
    tiny_data,
    tmpfs,
)


@pytest.fixture
def after_first_epoch(monkeypatch):
    """``after_first_epoch(action)``: call ``action(out)`` once the epoch-1 checkpoint is
    written; returns a dict that will hold that checkpoint's sha256 under ``"digest"``."""

    def arm(action) -> dict:
        seen: dict = {}
        original = Trainer.save

        def save(self, name=LAST):
            original(self, name)
            if name == LAST and not seen:
                seen["digest"] = digest(self.out / LAST)
                action(self.out)

        monkeypatch.setattr(Trainer, "save", save)
        return seen

    return arm


def _train(capsys, tiny_data, out, *extra):
    return run_cli(capsys, "train", *set_args(overrides(
        tiny_data / "train.txt", data__test=tiny_data / "test.txt", train__epochs=2)),
        *extra, "--out", out, "--no-progress")


def _assert_checkpoint_kept(out, seen):
    last = out / LAST
    assert digest(last) == seen["digest"]
    assert load_checkpoint(last)["progress"]["epoch"] == 1
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"
    assert not (out / "metrics.json").exists()


def _fail_fsync_of(monkeypatch, marker: str, code: int) -> None:
    """``os.fsync`` of a file whose name contains ``marker`` fails with ``code`` (delayed
    allocation reports a full disk at fsync)."""
    real = os.fsync

    def fsync(fd):
        if marker in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(code, os.strerror(code))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_checkpoint_write_on_full_disk(after_first_epoch, monkeypatch, tiny_data, tmp_path,
                                       capsys):
    seen = after_first_epoch(lambda out: _fail_fsync_of(monkeypatch, f".{LAST}.", errno.ENOSPC))
    out = tmp_path / "run"
    code, _, err = _train(capsys, tiny_data, out)
    assert code == 2
    assert (f"{out / LAST}: could not write checkpoint (No space left on device); the previous "
            "checkpoint, if any, is unchanged") in one_line_error(err)
    _assert_checkpoint_kept(out, seen)


def test_log_write_on_read_only_volume(after_first_epoch, monkeypatch, tiny_data, tmp_path,
                                       capsys):
    real_open = builtins.open

    def read_only(out):
        def fake_open(file, mode="r", *args, **kwargs):
            if str(file).endswith("log.jsonl") and mode != "r":
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
            return real_open(file, mode, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", fake_open)

    seen = after_first_epoch(read_only)
    out = tmp_path / "run"
    code, _, err = _train(capsys, tiny_data, out)
    assert code == 2
    assert (f"{out / 'log.jsonl'}: could not write the training log (Read-only file system); "
            f"the last complete checkpoint in {out} is kept") in one_line_error(err)
    _assert_checkpoint_kept(out, seen)


def test_metrics_write_on_full_disk(monkeypatch, tiny_data, tmp_path, capsys):
    _fail_fsync_of(monkeypatch, ".metrics.json.", errno.ENOSPC)
    out = tmp_path / "run"
    code, _, err = _train(capsys, tiny_data, out)
    assert code == 2
    assert (f"{out / 'metrics.json'}: could not write (No space left on device)"
            in one_line_error(err))
    assert not (out / "metrics.json").exists() and not list(out.glob(".*.tmp"))
    assert load_checkpoint(out / LAST)["progress"]["epoch"] == 2  # the finished run is kept
    code, _, err = _train(capsys, tiny_data, out, "--resume")  # so it can be finished later
    assert code == 2  # (the disk is still full)


def test_report_writes_on_read_only_volume(monkeypatch, tmp_path, capsys):
    def replace(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), src, None, dst)

    monkeypatch.setattr(os, "replace", replace)
    csv = tmp_path / "beta.csv"
    code, _, err = run_cli(capsys, "schedule", "--total-steps", "40", "--csv", csv)
    assert code == 2
    assert f"{csv}: could not write (Read-only file system)" in one_line_error(err)
    assert not csv.exists() and not list(tmp_path.glob(".*.tmp"))
    import matplotlib.pyplot as plt

    figure = tmp_path / "curves.png"
    with pytest.raises(Exception) as info:
        save_figure_atomic(plt.figure(), figure)
    assert type(info.value).__name__ == "UserError"
    assert str(info.value).startswith(f"{figure}: could not write (Read-only file system)")


def test_real_tmpfs_full_keeps_checkpoint_and_resumes(after_first_epoch, tmpfs, tiny_data,
                                                      capsys):
    volume = tmpfs("1m")
    seen = after_first_epoch(lambda out: fill_volume(volume))
    out = volume / "run"
    code, _, err = _train(capsys, tiny_data, out)
    assert code == 2
    message = one_line_error(err)
    assert "No space left on device" in message
    # torch.save reports the full disk as a RuntimeError; it must still come out as one line
    assert (f"{out / LAST}: could not write checkpoint" in message
            or f"{out / 'log.jsonl'}: could not write the training log" in message)
    _assert_checkpoint_kept(out, seen)
    (volume / "filler").unlink()  # space freed: the run continues from the kept checkpoint
    code, _, err = run_cli(capsys, "train", "--resume", "--out", out, "--no-progress")
    assert code == 0, err
    epochs = [r["epoch"] for r in log_records(out) if r["kind"] == "epoch"]
    assert epochs == [1, 2]  # the log agrees with the checkpoint: no epoch twice
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


def test_real_tmpfs_read_only(after_first_epoch, tmpfs, tiny_data, capsys):
    volume = tmpfs("1m")
    seen = after_first_epoch(lambda out: remount_read_only(volume))
    out = volume / "run"
    code, _, err = _train(capsys, tiny_data, out)
    assert code == 2
    message = one_line_error(err)
    assert str(out) in message and "Read-only file system" in message
    _assert_checkpoint_kept(out, seen)
    # and report writes on that volume fail the same way
    code, _, err = run_cli(capsys, "schedule", "--total-steps", "40", "--csv", volume / "b.csv")
    assert code == 2 and f"{volume / 'b.csv'}: could not write" in one_line_error(err)


def test_any_other_os_error_is_still_one_line(tmp_path, capsys):
    """The CLI's safety net: an OSError no layer put into words (here: the data directory
    lies under a regular file) is printed on one line with its file name, exit 2."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, "data", "download", "ptb", "--data-dir", blocker / "data")
    assert code == 2
    assert f"{blocker / 'data' / 'ptb'}: Not a directory" in one_line_error(err)
