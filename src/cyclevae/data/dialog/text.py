"""SwDA transcription text -> Zhao et al.'s (2017) style of text, and the tokeniser.

The swda layout of ``../shared/data`` keeps the text as transcribed (mixed case, punctuation,
fillers, disfluency markup); :func:`clean_swda_text` makes it look like Zhao's text before it
is lower-cased and tokenised as Zhao's code does (:func:`tokenize_utterance`: NLTK's
``WordPunctTokenizer``). The ``zhao`` preparation (:data:`PREPARATIONS`) goes closer to
Zhao's utterances: :func:`merge_unfinished` and :func:`collapse_repeats`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from ...errors import UserError
from ..corpus import _iter_lines

__all__ = ["FILLERS", "PREPARATIONS", "clean_swda_text", "collapse_repeats", "merge_unfinished",
           "normalization_examples", "tokenize_utterance"]

_COMMENT = re.compile(r"\s\*.*$|^\*.*$")  # annotator comments: "... *two utts", "* spelling"
_ANGLE = re.compile(r"<+[^<>]*>+")  # <laughter>, <noise>, <<long pause>>
_REPAIR = re.compile(r"\[([^\[\]+]*)\+([^\[\]]*)\]")  # [ reparandum + repair ] -> repair
_BRACE = re.compile(r"\{[A-Z]\b")  # {F uh} {D well} {C and} {E i mean} {A aside}
_MARKS = re.compile(r"\(\(|\)\)|--|#|/|\+|[\[\]{}]")  # slash units, overlaps, brackets
_ACRONYM = re.compile(r"\b[A-Z](?:[ .]+[A-Z]\b\.?)+")  # T V, C N N, I B M
_NUMBER_WORDS = ("twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety",
                 "one|two|three|four|five|six|seven|eight|nine")
_NUMBER_HYPHEN = re.compile(rf"\b({_NUMBER_WORDS[0]})-({_NUMBER_WORDS[1]})\b", re.IGNORECASE)
_PUNCT = re.compile(r"[^\w\s'\-&]")  # everything but letters, digits, ' - &
_LOOSE_HYPHEN = re.compile(r"(?<![\w'])-+|-+(?![\w'])")  # hyphens not inside a word
#: fillers Zhao's text does not contain ("uh-huh", "um-hum", "oh", "well" stay)
FILLERS = frozenset({"uh", "um"})
#: text preparations of swda-layout files (``data.dialog.preparation``): ``swda``, each SwDA
#: utterance cleaned on its own (:func:`clean_swda_text`); ``zhao``, closer to Zhao et al.'s
#: text: that, with :func:`merge_unfinished` and :func:`collapse_repeats`
PREPARATIONS = ("swda", "zhao")
_FINISHED = re.compile(r"[.?!][\s\")']*$")  # a slash unit the transcriber ended


def _join_acronym(match: re.Match[str]) -> str:
    letters = re.findall(r"[A-Z]", match.group(0))
    if set(letters) == {"I"}:  # "I I": a repeated pronoun, not a spelled word
        return match.group(0)
    return "".join(letters)


def clean_swda_text(text: str) -> str:
    """SwDA transcription text -> text like Zhao et al.'s (before lower-casing/tokenising).

    Rules, in order (each seen in ``swda/`` or in raw SwDA markup): annotator comments
    (``*two utts``) removed; ``<laughter>``-style sounds removed; repairs ``[ a + b ]`` keep
    ``b``; disfluency braces ``{F uh}``, ``{D well}`` keep their words; ``/``, ``--``, ``#``,
    ``+``, ``((``/``))`` removed; spelled-out letters joined (``T V`` -> ``TV``, as Zhao's
    ``tv``, ``cnn``; ``I I`` kept); number words split at hyphens (``seventy-five`` ->
    ``seventy five``); punctuation other than apostrophes, word-internal hyphens and ``&``
    removed; the fillers ``uh`` and ``um`` removed (``uh-huh`` stays). Returns words separated
    by single spaces (possibly the empty string).
    """
    text = _COMMENT.sub("", text)
    text = _ANGLE.sub(" ", text)
    while True:  # innermost repairs first; nested ones unwrap from the inside out
        text, n = _REPAIR.subn(r" \2 ", text)
        if not n:
            break
    text = _BRACE.sub(" ", text)
    text = _MARKS.sub(" ", text)
    text = _ACRONYM.sub(_join_acronym, text)
    text = _NUMBER_HYPHEN.sub(r"\1 \2", text)
    text = _PUNCT.sub(" ", text)
    text = _LOOSE_HYPHEN.sub(" ", text)
    return " ".join(w for w in text.split() if w.lower() not in FILLERS)


def merge_unfinished(utterances: Sequence[tuple[str, str, str | None]]
                     ) -> tuple[list[tuple[str, str, str | None]], int]:
    """Join each SwDA utterance whose transcribed text is unfinished (it does not end in ``.``,
    ``?`` or ``!``: a slash unit cut by ``,`` or ``--``) with the same speaker's next utterance
    when that one follows at once. Zhao et al.'s units are often such runs (the aligned
    leakage pairs: ``Well, see our favorite T V show,`` + ``I, I, I live in a dorm`` is one
    utterance of theirs). ``utterances``: ``(speaker, raw text, act)``. Returns ``(utterances,
    number of utterances joined into the one before)``, each text cleaned
    (:func:`clean_swda_text`, part by part) and the parts separated by a space, the act the
    first part's."""
    out: list[tuple[str, str, str | None]] = []
    joined = 0
    open_turn = False  # the last unit is unfinished
    for speaker, text, act in utterances:
        clean = clean_swda_text(text)
        if out and open_turn and out[-1][0] == speaker:
            out[-1] = (speaker, f"{out[-1][1]} {clean}".strip(), out[-1][2])
            joined += 1
        else:
            out.append((speaker, clean, act))
        open_turn = not _FINISHED.search(_COMMENT.sub("", text))
    return out, joined


def collapse_repeats(tokens: Sequence[str]) -> list[str]:
    """A word said again at once is kept once (``and and and it`` -> ``and it``), as Zhao's
    text has the repair of such disfluencies without their reparandum. Only words repeat
    (the tokeniser's ``'`` and ``-`` pieces are kept: ``uh - huh`` stays)."""
    out: list[str] = []
    for token in tokens:
        if out and token == out[-1] and any(ch.isalnum() for ch in token):
            continue
        out.append(token)
    return out


@lru_cache(maxsize=1)
def _word_punct() -> Any:
    try:
        from nltk.tokenize import WordPunctTokenizer
    except ImportError:
        raise UserError("dialog data needs NLTK's tokenizer: pip install 'cyclevae[dialog]'"
                        ) from None
    return WordPunctTokenizer().tokenize


def tokenize_utterance(text: str, *, clean: bool) -> list[str]:
    """Utterance text -> tokens: :func:`clean_swda_text` if ``clean``, then lower case and
    NLTK's ``WordPunctTokenizer`` (Zhao's ``tokenize(utt.lower())``: ``it's`` -> ``it ' s``)."""
    if clean:
        text = clean_swda_text(text)
    return _word_punct()(text.lower())


def normalization_examples(path: str | os.PathLike[str], n: int = 8
                           ) -> list[tuple[str, str]]:
    """Before/after pairs of the swda-layout utterances of ``path`` (for the README).

    Returns up to ``n`` ``(raw text, normalised tokens joined by spaces)`` pairs, in file order,
    preferring one utterance per rule of :func:`clean_swda_text` that the file exercises
    (annotator comment, sounds, markup, spelled letters, number words, fillers, punctuation).
    """
    rules = [("comment", _COMMENT), ("sound", _ANGLE), ("markup", _MARKS),
             ("letters", _ACRONYM), ("number", _NUMBER_HYPHEN),
             ("filler", re.compile(r"\b(?:uh|um|Uh|Um)\b(?!-)")), ("punct", _PUNCT)]
    picked: dict[str, tuple[str, str]] = {}
    extra: list[tuple[str, str]] = []
    for lineno, line in _iter_lines(Path(path)):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from None
        for raw in record.get("utts", []) if isinstance(record, dict) else []:
            if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
                continue
            text = raw["text"]
            pair = (text, " ".join(tokenize_utterance(text, clean=True)))
            for name, pattern in rules:
                match = pattern.search(text)
                if name in picked or match is None:
                    continue
                if name == "letters" and _join_acronym(match) == match.group(0):
                    continue  # "I I" is left as it is
                picked[name] = pair
                break
            else:
                if len(extra) < n and pair[1] != text.lower():
                    extra.append(pair)
        if len(picked) == len(rules):
            break
    chosen = list(picked.values())
    return (chosen + [p for p in extra if p not in chosen])[:n]
