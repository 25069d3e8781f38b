"""Corpus reading: counts, CRLF, blank and long lines, and every kind of bad file."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cyclevae.data.corpus import CorpusStats, read_labelled, read_sentences
from cyclevae.errors import UserError


def write(tmp_path: Path, content: str | bytes, name: str = "corpus.txt") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def test_sentences_and_stats(tmp_path: Path) -> None:
    path = write(tmp_path, " the cat sat \n\n  \na dog\n")
    sentences, stats = read_sentences(path)
    assert sentences == [["the", "cat", "sat"], ["a", "dog"]]
    assert stats == CorpusStats(path=path, lines=4, sentences=2, blank=2, too_long=0, tokens=5)
    assert "2 sentences" in stats.summary()


def test_crlf_and_no_final_newline(tmp_path: Path) -> None:
    path = write(tmp_path, "the cat\r\n\r\ncafé au lait")
    sentences, stats = read_sentences(path)
    assert sentences == [["the", "cat"], ["café", "au", "lait"]]
    assert (stats.lines, stats.blank) == (3, 1)


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    sentences, _ = read_sentences(write(tmp_path, "\ufeffhello world\n"))
    assert sentences == [["hello", "world"]]


def test_max_length_drops_and_counts(tmp_path: Path) -> None:
    path = write(tmp_path, "a b c\na b\na b c d\n")
    sentences, stats = read_sentences(path, max_length=3)
    assert sentences == [["a", "b", "c"], ["a", "b"]]
    assert (stats.too_long, stats.tokens) == (1, 5)
    with pytest.raises(ValueError):
        read_sentences(path, max_length=0)


def test_million_token_line(tmp_path: Path) -> None:
    path = write(tmp_path, "short line\n" + "w " * 1_000_000 + "\nlast one\n")
    start = time.perf_counter()
    sentences, stats = read_sentences(path, max_length=50)
    assert time.perf_counter() - start < 2.0
    assert sentences == [["short", "line"], ["last", "one"]] and stats.too_long == 1
    sentences, stats = read_sentences(path)
    assert len(sentences[1]) == 1_000_000 and stats.too_long == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n  \r\n\n", "only blank lines"),
        (b"fine line\nbin\x00ary\n", "line 2: contains NUL"),
        (b"ok\nalso ok\ncaf\xe9\n", r"line 3: invalid UTF-8 \(byte 0xe9"),
    ],
)
def test_bad_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(UserError, match=message) as info:
        read_sentences(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        read_sentences(tmp_path / "missing.txt")
    with pytest.raises(UserError, match="is a directory"):
        read_sentences(tmp_path)
    with pytest.raises(UserError, match="no such file"):
        read_labelled(tmp_path / "missing.tsv")


def test_all_too_long(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no sentence has at most 1 tokens"):
        read_sentences(write(tmp_path, "a b\nc d\n"), max_length=1)


def test_labelled(tmp_path: Path) -> None:
    path = write(tmp_path, "1\tthe food was great .\r\n\n0\tawful\n\n sports \tnot long at all\n",
                 "data.tsv")
    labels, sentences, stats = read_labelled(path, max_length=4)
    assert labels == ["0", "sports"]
    assert sentences == [["awful"], ["not", "long", "at", "all"]]
    assert (stats.lines, stats.blank, stats.too_long, stats.sentences) == (5, 2, 1, 2)
    labels, sentences, _ = read_labelled(path)
    assert labels == ["1", "0", "sports"] and sentences[0] == ["the", "food", "was", "great", "."]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1\tgood\nno tab here\n", "line 2: expected LABEL<TAB>SENTENCE, found no tab"),
        ("1\tgood\n\n \tgood\n", "line 3: expected a label before the tab"),
        ("1\tgood\n0\t  \n", "line 2: the sentence after the tab is empty"),
    ],
)
def test_labelled_errors(tmp_path: Path, content: str, message: str) -> None:
    path = write(tmp_path, content, "data.tsv")
    with pytest.raises(UserError, match=message) as info:
        read_labelled(path)
    assert str(path) in str(info.value)


def test_real_files(shared_data: Path) -> None:
    sentences, stats = read_sentences(shared_data / "ptb" / "valid.txt")
    assert (stats.sentences, stats.tokens, stats.blank) == (3370, 70390, 0)
    labels, sentences, stats = read_labelled(shared_data / "yelp" / "valid.tsv")
    assert stats.sentences == 6347 == len(labels) and set(labels) == {"0", "1"}
