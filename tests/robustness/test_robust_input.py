"""Bad input files: one-line error naming file (and line), exit 2, nothing written; or, for the
harmless and usual cases (blank lines, CRLF, over-long lines), handled and counted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cyclevae.data.corpus import read_labelled
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

BAD_FILES = {
    # id: (content or None for missing or "DIR", message fragment after the path)
    "missing": (None, ": no such file"),
    "empty": (b"", ": file is empty, expected one sentence per line"),
    "directory": ("DIR", ": is a directory, expected a text corpus file"),
    "binary": (b"the cat sat\nthe \x00\x01\x02 dog\n", ", line 2: contains NUL bytes"),
    "invalid-utf8": (b"ok line\nsecond line\ncaf\xe9 au lait\n", ", line 3: invalid UTF-8"),
    "only-blank-lines": (b"\n   \n\t\r\n\n", ": contains only blank lines (4), expected one"),
    # was "contains NUL bytes; this looks like a binary file"
    "utf16-bom": ("the cat sat\nthe dog ran\n".encode("utf-16"),
                  ": UTF-16 (little-endian, with a byte-order mark) text, expected UTF-8; "
                  "convert it, e.g. iconv -f UTF-16 -t UTF-8 "),
    "utf16-be-no-bom": ("the cat sat\nthe dog ran\n".encode("utf-16-be"),
                        ": UTF-16 (big-endian) text, expected UTF-8"),
    # was one 43,797-token "sentence" and an error blaming schedule.n_cycles
    "cr-only-line-endings": (b"the cat sat\rthe dog ran\rprices fell\r",
                             ", line 1: carriage return (CR) inside the line: old Mac "
                             "(CR-only) line endings? expected LF or CRLF; convert it, e.g. tr"),
    # was trained silently with one token per line
    "no-spaces": ("\n".join(["我们今天下午一起去公园散步了", "天气很好所以很多人都在外面玩",
                             "他说明天还要继续去那里看看花"] * 3 + ["the cat sat"]).encode(),
                  ": 9 of 10 sentences are a single 'word' (median 14 characters): the text is "
                  "not split into words by spaces"),
}


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_corpus_file_is_one_line_exit_2_and_writes_nothing(
        case, split, tiny_data, tmp_path, capsys):
    content, fragment = BAD_FILES[case]
    bad = tmp_path / "corpus.txt"
    if content == "DIR":
        bad.mkdir()
    elif content is not None:
        bad.write_bytes(content)
    good = tiny_data / "train.txt"
    settings = overrides(bad) if split == "train" else overrides(good, data__test=bad)
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "train", *set_args(settings), "--out", out,
                                "--no-progress")
    assert code == 2 and stdout == ""
    assert f"{bad}{fragment}" in one_line_error(err)
    assert not out.exists()  # the output directory is created only once the inputs are good


def _train_to(capsys, out: Path, train: Path, tiny_data: Path, **extra) -> dict:
    code, _, err = run_cli(capsys, "train", *set_args(overrides(
        train, data__test=tiny_data / "test.txt", **extra)), "--out", out, "--no-progress")
    assert code == 0, err
    return json.loads((out / "metrics.json").read_text())


def _same_numbers(a: dict, b: dict) -> None:
    for key in ("train", "test", "vocab_size", "steps", "skipped_batches"):
        assert a[key] == b[key], key


def test_blank_lines_are_skipped_and_counted(tiny_data, finished_run, tmp_path, capsys):
    lines = (tiny_data / "train.txt").read_text().splitlines()
    with_blanks = [x for i, line in enumerate(lines) for x in ([line, ""] if i % 6 == 0
                                                              else [line])] + ["  \t", ""]
    corpus = tmp_path / "blanks.txt"
    corpus.write_text("\n".join(with_blanks) + "\n")
    metrics = _train_to(capsys, tmp_path / "out", corpus, tiny_data)
    assert metrics["data"]["train"]["blank"] == 12
    assert metrics["data"]["train"]["sentences"] == 60
    _same_numbers(metrics, json.loads((finished_run / "metrics.json").read_text()))


def test_windows_line_endings_are_handled(tiny_data, finished_run, tmp_path, capsys):
    corpus = tmp_path / "crlf.txt"
    corpus.write_bytes((tiny_data / "train.txt").read_bytes().replace(b"\n", b"\r\n"))
    out = tmp_path / "out"
    metrics = _train_to(capsys, out, corpus, tiny_data)
    assert (out / "vocab.txt").read_bytes() == (finished_run / "vocab.txt").read_bytes()
    _same_numbers(metrics, json.loads((finished_run / "metrics.json").read_text()))


def test_million_token_line_is_dropped_and_counted_with_max_length(
        tiny_data, finished_run, tmp_path, capsys):
    lines = (tiny_data / "train.txt").read_text().splitlines()
    corpus = tmp_path / "long.txt"
    corpus.write_text("\n".join(lines[:30] + ["w " * 1_000_000] + lines[30:]) + "\n")
    out = tmp_path / "out"
    metrics = _train_to(capsys, out, corpus, tiny_data, data__max_length=100)
    assert metrics["data"]["train"]["too_long"] == 1
    assert metrics["data"]["train"]["sentences"] == 60 and metrics["data"]["train"]["lines"] == 61
    assert (out / "vocab.txt").read_bytes() == (finished_run / "vocab.txt").read_bytes()
    _same_numbers(metrics, json.loads((finished_run / "metrics.json").read_text()))


def _other_vocabulary(run: Path) -> None:
    """Swap lines 5 and 6 of ``run/vocab.txt``: a valid vocabulary file, not the run's."""
    tokens = (run / "vocab.txt").read_text().splitlines()
    tokens[4], tokens[5] = tokens[5], tokens[4]
    (run / "vocab.txt").write_text("\n".join(tokens) + "\n")


def test_vocabulary_file_not_matching_checkpoint_is_refused_by_evaluate(
        finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    _other_vocabulary(run)
    code, stdout, err = run_cli(capsys, "evaluate", run / "checkpoint_last.pt",
                                "--iw-samples", "0")
    assert code == 2 and stdout == ""
    message = one_line_error(err)
    assert f"{run / 'vocab.txt'}, line 5: token" in message
    assert "does not match the vocabulary of" in message


def test_vocabulary_file_not_matching_checkpoint_is_refused_on_resume(
        finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    tokens = (run / "vocab.txt").read_text().splitlines()
    (run / "vocab.txt").write_text("\n".join(tokens[:-3]) + "\n")  # three words short
    before = snapshot(run)
    code, _, err = run_cli(capsys, "train", "--resume", "--out", run, "--no-progress")
    assert code == 2
    message = one_line_error(err)
    assert f"{run / 'vocab.txt'}: {len(tokens) - 3} tokens" in message
    assert f"has {len(tokens)}" in message
    assert snapshot(run) == before


def test_damaged_checkpoint_is_one_line_exit_2(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    ckpt = run / "checkpoint_last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # a torn write
    before = snapshot(run)
    code, _, err = run_cli(capsys, "evaluate", ckpt, "--iw-samples", "0")
    assert code == 2 and f"{ckpt}: not a cyclevae checkpoint" in one_line_error(err)
    code, _, err = run_cli(capsys, "train", "--resume", "--out", run, "--no-progress")
    assert code == 2 and f"{ckpt}: not a cyclevae checkpoint" in one_line_error(err)
    assert snapshot(run) == before


def _labelled_error(tmp_path: Path, content: str) -> str:
    path = tmp_path / "data.tsv"
    path.write_text(content)
    with pytest.raises(UserError) as info:
        read_labelled(path)
    message = str(info.value)
    assert message.startswith(f"{path}, line ") and "\n" not in message
    return message


def test_tsv_missing_label(tmp_path):
    message = _labelled_error(tmp_path, "1\tgood food\n\n\tno label before the tab\n")
    assert ", line 3: expected a label before the tab, found none" in message
    message = _labelled_error(tmp_path, "1\tgood food\nno tab at all\n")
    assert ", line 2: expected LABEL<TAB>SENTENCE, found no tab" in message


def test_tsv_empty_sentence(tmp_path):
    message = _labelled_error(tmp_path, "1\tgood\r\n0\tbad\r\npositive\t \r\n")
    assert ", line 3: the sentence after the tab is empty" in message


def test_tsv_file_with_a_bad_line_through_train(tiny_data, tmp_path, capsys):
    """``train`` reads ``.tsv`` files as LABEL<TAB>SENTENCE (the labels are not used)."""
    bad = tmp_path / "train.tsv"
    bad.write_text("positive\tthe food was good\nno tab here\n")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "train", *set_args(overrides(bad)), "--out", out,
                           "--no-progress")
    assert code == 2
    assert f"{bad}, line 2: expected LABEL<TAB>SENTENCE, found no tab" in one_line_error(err)
    assert not out.exists()
