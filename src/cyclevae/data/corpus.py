"""Reading sentence corpora: one sentence per line, tokens separated by whitespace, UTF-8.

Two formats: plain sentences (PTB) and ``LABEL<TAB>SENTENCE`` (Yelp). Both skip blank lines,
can drop sentences longer than ``max_length`` tokens, and return a :class:`CorpusStats` that
counts what was kept and what was dropped. Every problem with a file raises
:class:`~cyclevae.errors.UserError` with a one-line message naming the file and, where
relevant, the line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

__all__ = ["CorpusStats", "read_labelled", "read_sentences"]


@dataclass(frozen=True)
class CorpusStats:
    """What reading a corpus file found.

    Attributes:
        path: the file read.
        lines: lines in the file.
        sentences: sentences kept.
        blank: blank lines skipped.
        too_long: sentences dropped for having more than ``max_length`` tokens.
        tokens: tokens in the kept sentences (no ``<s>``/``</s>``).
    """

    path: Path
    lines: int
    sentences: int
    blank: int
    too_long: int
    tokens: int

    def summary(self) -> str:
        """One line for logs, e.g. ``train.txt: 42068 sentences, 887521 tokens (...)``."""
        return (f"{self.path.name}: {self.sentences} sentences, {self.tokens} tokens "
                f"({self.lines} lines, {self.blank} blank, {self.too_long} too long)")


def _open_checked(path: Path) -> None:
    """Raise UserError unless ``path`` is an existing, non-empty regular file."""
    if not path.exists():
        raise UserError(f"{path}: no such file, expected a text corpus")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, expected a text corpus file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: file is empty, expected one sentence per line")


def _utf16(head: bytes) -> str | None:
    """``"UTF-16"`` plus its byte order if the file's first bytes ``head`` are UTF-16 text (a
    byte-order mark, or ASCII-range text with every other byte NUL), else None."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "UTF-32 (with a byte-order mark)"
    if head.startswith(b"\xff\xfe"):
        return "UTF-16 (little-endian, with a byte-order mark)"
    if head.startswith(b"\xfe\xff"):
        return "UTF-16 (big-endian, with a byte-order mark)"
    pairs = len(head) // 2
    if pairs >= 4:
        even = sum(b == 0 for b in head[0:2 * pairs:2])
        odd = sum(b == 0 for b in head[1:2 * pairs:2])
        if odd >= 0.9 * pairs and even == 0:
            return "UTF-16 (little-endian)"
        if even >= 0.9 * pairs and odd == 0:
            return "UTF-16 (big-endian)"
    return None


def _interior_cr(raw: bytes) -> bool:
    """Whether a line read up to ``\\n`` holds a carriage return other than a CRLF ending."""
    body = raw[:-2] if raw.endswith(b"\r\n") else raw.rstrip(b"\n")
    return b"\r" in body


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every line, decoded from UTF-8, newline removed.

    Raises UserError on UTF-16/32 text (with how to convert it), NUL bytes (binary content),
    carriage returns inside a line (old Mac CR-only line endings) and invalid UTF-8, with the
    line number.
    """
    _open_checked(path)
    try:
        with path.open("rb") as f:
            encoding = _utf16(f.read(4096))
            if encoding is not None:
                raise UserError(f"{path}: {encoding} text, expected UTF-8; convert it, e.g. "
                                f"iconv -f {encoding.split()[0]} -t UTF-8 {path} > "
                                f"{path.with_name(path.stem + '.utf8' + path.suffix)}")
            f.seek(0)
            for lineno, raw in enumerate(f, start=1):
                if b"\x00" in raw:
                    raise UserError(f"{path}, line {lineno}: contains NUL bytes; this looks "
                                    "like a binary file, expected UTF-8 text")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UserError(f"{path}, line {lineno}: invalid UTF-8 (byte "
                                    f"0x{raw[e.start]:02x} at byte offset {e.start} of the "
                                    "line), expected UTF-8 text") from None
                if _interior_cr(raw):
                    raise UserError(f"{path}, line {lineno}: carriage return (CR) inside the "
                                    "line: old Mac (CR-only) line endings? expected LF or CRLF; "
                                    f"convert it, e.g. tr '\\r' '\\n' < {path} > "
                                    f"{path.with_name(path.stem + '.lf' + path.suffix)}")
                if lineno == 1 and text.startswith("\ufeff"):
                    text = text[1:]  # UTF-8 byte-order mark
                yield lineno, text
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None


def _tokenize(text: str, max_length: int | None) -> list[str] | None:
    """Whitespace tokens of ``text``, or None if there are more than ``max_length``.

    With a limit, at most ``max_length + 1`` pieces are split off, so a line of a million
    tokens costs no more than a short one.
    """
    if max_length is None:
        return text.split()
    tokens = text.split(maxsplit=max_length)
    if len(tokens) > max_length:
        return None
    return tokens


def _check_max_length(max_length: int | None) -> None:
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be >= 1 or None, got {max_length}")


#: a corpus is refused as not split into words when at least this share of its sentences is
#: one token and those tokens' median length is at least :data:`UNSEGMENTED_CHARS` characters
UNSEGMENTED_SHARE = 0.9
UNSEGMENTED_CHARS = 12


def _refuse_unsegmented(path: Path, sentences: list[list[str]]) -> None:
    """Raise UserError for text not split into words by spaces (Chinese, Japanese, Thai ...):
    read by whitespace it gives one long "word" per line, a vocabulary of whole sentences."""
    single = sorted(len(words[0]) for words in sentences if len(words) == 1)
    if not single or len(single) < UNSEGMENTED_SHARE * len(sentences):
        return
    median = single[len(single) // 2]
    if median >= UNSEGMENTED_CHARS:
        raise UserError(f"{path}: {len(single)} of {len(sentences)} sentences are a single "
                        f"'word' (median {median} characters): the text is not split into "
                        "words by spaces (e.g. Chinese, Japanese or Thai); expected tokens "
                        "separated by spaces: segment it first (e.g. jieba, MeCab) or put a "
                        "space between characters")


def _finish(path: Path, lines: int, sentences: list[list[str]], blank: int, too_long: int,
            max_length: int | None) -> CorpusStats:
    if not sentences:
        if too_long:
            raise UserError(f"{path}: no sentence has at most {max_length} tokens "
                            f"({too_long} longer ones dropped)")
        raise UserError(f"{path}: contains only blank lines ({blank}), expected one sentence "
                        "per line")
    _refuse_unsegmented(path, sentences)
    return CorpusStats(path=path, lines=lines, sentences=len(sentences), blank=blank,
                       too_long=too_long, tokens=sum(map(len, sentences)))


def _refuse_json_records(path: Path, lineno: int, text: str) -> None:
    """Raise UserError if the first sentence line ``text`` is a JSON object: a conversations
    file (JSON lines) read as sentences would be scored line by line as garbage."""
    if not text.lstrip().startswith("{"):
        return
    try:
        record = json.loads(text)
    except ValueError:
        return
    if isinstance(record, dict) and record:
        raise UserError(f"{path}, line {lineno}: a JSON record, not a sentence: this looks like "
                        "a conversations file (JSON lines), which only a dialog model "
                        "(model.kind cvae) reads; expected one sentence per line")


def read_sentences(
    path: str | os.PathLike[str],
    *,
    max_length: int | None = None,
) -> tuple[list[list[str]], CorpusStats]:
    """Read one sentence per line (whitespace-separated tokens, UTF-8, LF or CRLF).

    Blank lines are skipped and counted; with ``max_length``, sentences of more than
    ``max_length`` tokens are dropped and counted.

    Returns:
        ``(sentences, stats)``: the token lists in file order, and the counts.
    """
    _check_max_length(max_length)
    path = Path(path)
    sentences: list[list[str]] = []
    lines = blank = too_long = 0
    for lines, text in _iter_lines(path):
        tokens = _tokenize(text, max_length)
        if tokens is None:
            too_long += 1
        elif not tokens:
            blank += 1
        else:
            if not sentences:
                _refuse_json_records(path, lines, text)
            sentences.append(tokens)
    return sentences, _finish(path, lines, sentences, blank, too_long, max_length)


def read_labelled(
    path: str | os.PathLike[str],
    *,
    max_length: int | None = None,
) -> tuple[list[str], list[list[str]], CorpusStats]:
    """Read ``LABEL<TAB>SENTENCE`` lines (e.g. Yelp: ``1<TAB>the food was great .``).

    LABEL is any non-empty text without a tab (``0``/``1`` for Yelp, or ``sports``,
    ``neg`` ...), kept as a string with surrounding spaces removed. Blank lines are skipped and
    counted; a line without a tab, with an empty label or with an empty sentence is a
    :class:`UserError` naming the file and line. Sentences longer than ``max_length`` are
    dropped with their label.

    Returns:
        ``(labels, sentences, stats)`` with ``labels[i]`` the label of ``sentences[i]``.
    """
    _check_max_length(max_length)
    path = Path(path)
    labels: list[str] = []
    sentences: list[list[str]] = []
    lines = blank = too_long = 0
    for lines, text in _iter_lines(path):
        if not text.strip():
            blank += 1
            continue
        label_text, tab, sentence = text.partition("\t")
        if not tab:
            raise UserError(f"{path}, line {lines}: expected LABEL<TAB>SENTENCE, found no tab")
        label = label_text.strip()
        if not label:
            raise UserError(f"{path}, line {lines}: expected a label before the tab, found none")
        tokens = _tokenize(sentence, max_length)
        if tokens is None:
            too_long += 1
        elif not tokens:
            raise UserError(f"{path}, line {lines}: the sentence after the tab is empty")
        else:
            labels.append(label)
            sentences.append(tokens)
    return labels, sentences, _finish(path, lines, sentences, blank, too_long, max_length)
