"""Conversation files (JSON lines, swda or zhao layout) -> :class:`Conversation` objects.

A conversations file is JSON lines, one conversation per line, in either layout of
``../shared/data``:

- ``swda``: ``{"conversation": ID, "utts": [{"speaker": "A", "text": "...", "act": "sd"}, ...]}``
  (the standard SwDA split; text as transcribed: mixed case, punctuation, fillers);
- ``zhao``: ``{"topic", "A", "B", "prompt", "utts": [[speaker, text, [act, [sentiment]]], ...]}``
  (Zhao et al. 2017's preparation: lower-cased, no punctuation, no "uh"/"um").

swda-layout text is cleaned as :mod:`cyclevae.data.dialog.text` says. Conversation features
(kgCVAE, :mod:`cyclevae.models.cvae`'s ``use_topic`` / ``use_caller``): a line may carry its
``topic`` (``"\"AIR POLLUTION\""``) and its callers' metadata ``"A"`` and ``"B"``
(``{"age": 46, "education": " 2", "sex": " \"FEMALE\""}``), as swda-zhao/ lines do (swda/
lines do not; the same optional keys are read on them). Quotes and spaces are cleaned
(:func:`parse_topic`, :func:`parse_caller`); :func:`check_features` refuses files that lack a
feature the model conditions on.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError
from ..corpus import _iter_lines
from .text import PREPARATIONS, collapse_repeats, merge_unfinished, tokenize_utterance

__all__ = ["CALLER_DIM", "CALLER_KEYS", "Conversation", "ReadStats", "Utterance",
           "check_features", "parse_caller", "parse_topic", "read_conversations"]

#: the line keys of the two callers' metadata (SwDA's speakers)
CALLER_KEYS = ("A", "B")
#: size of one caller's vector: [age / 100, education / 3, male, female] (Zhao's meta)
CALLER_DIM = 4


@dataclass(frozen=True)
class Utterance:
    """One turn: ``speaker`` (as in the file), ``tokens`` (normalised, no ``<s>``/``</s>``),
    ``act`` (the dialog-act label, None if the file has none)."""

    speaker: str
    tokens: tuple[str, ...]
    act: str | None = None


@dataclass(frozen=True)
class Conversation:
    """A conversation: ``id`` (the file's ``conversation``, else ``line N``),
    its non-empty utterances in order, the file's ``topic`` (cleaned, :func:`parse_topic`;
    None if absent) and ``callers`` (speaker -> :data:`CALLER_DIM` floats,
    :func:`parse_caller`, for both of :data:`CALLER_KEYS`; None if the line has none)."""

    id: str
    utterances: tuple[Utterance, ...]
    topic: str | None = None
    callers: Mapping[str, tuple[float, ...]] | None = None


@dataclass(frozen=True)
class ReadStats:
    """What :func:`read_conversations` found.

    Attributes: path; layout (``"swda"``, ``"zhao"`` or ``"mixed"``); conversations kept;
    utterances kept; skipped_conversations (no utterance, or none left after cleaning);
    empty_utterances (utterances with no word after cleaning, e.g. ``"Uh."``, dropped);
    blank_lines; with the ``zhao`` preparation, ``joined`` (swda-layout utterances joined into
    the one before, :func:`merge_unfinished`) and ``collapsed`` (utterances whose repeated
    words were collapsed, :func:`collapse_repeats`).
    """

    path: Path
    layout: str
    conversations: int
    utterances: int
    skipped_conversations: int
    empty_utterances: int
    blank_lines: int
    joined: int = 0
    collapsed: int = 0

    def summary(self) -> str:
        """One line for logs."""
        return (f"{self.path.name}: {self.conversations} conversations, {self.utterances} "
                f"utterances ({self.layout} layout; {self.skipped_conversations} conversations "
                f"without utterances skipped, {self.empty_utterances} empty utterances dropped)")


def _utterance_fields(raw: Any, where: str) -> tuple[str, str, str | None]:
    """``(speaker, text, act)`` of one raw utterance of either layout."""
    if isinstance(raw, dict):  # swda layout
        for key in ("speaker", "text"):
            if key not in raw:
                raise UserError(f"{where}: missing key {key!r}")
        speaker, text, act = raw["speaker"], raw["text"], raw.get("act")
    elif isinstance(raw, list):  # zhao layout: [speaker, text, [act, [sentiment]]]
        if len(raw) < 2:
            raise UserError(f"{where}: expected [speaker, text, ...], got a list of "
                            f"{len(raw)} item(s)")
        speaker, text = raw[0], raw[1]
        act = raw[2][0] if len(raw) > 2 and isinstance(raw[2], list) and raw[2] else None
    else:
        raise UserError(f"{where}: expected an utterance object or list, got "
                        f"{type(raw).__name__}")
    if not isinstance(speaker, str) or not isinstance(text, str):
        raise UserError(f"{where}: speaker and text must be strings")
    if act is not None and not isinstance(act, str):
        act = str(act)
    return speaker.strip(), text, act


def _clean_value(text: str) -> str:
    """Zhao's metadata strings without their quotes and stray spaces: ``' "FEMALE"'`` ->
    ``FEMALE``; inner runs of spaces become one."""
    return " ".join(text.strip().strip('"').split())


def parse_topic(raw: Any, where: str) -> str | None:
    """A line's ``topic`` cleaned (``'"AIR POLLUTION"'`` -> ``AIR POLLUTION``); None if it is
    absent, null or empty after cleaning. A number is taken as its text (a topic code); any
    other type is a one-line :class:`UserError` naming ``where`` and the field."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise UserError(f"{where}: field 'topic': expected a string, got "
                        f"{type(raw).__name__}")
    return _clean_value(str(raw)) or None


def _number(raw: Any, where: str, name: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise UserError(f"{where}: field {name!r}: expected a number, got "
                        f"{type(raw).__name__}")
    try:
        value = float(_clean_value(raw)) if isinstance(raw, str) else float(raw)
    except ValueError:
        raise UserError(f"{where}: field {name!r}: expected a number, got {raw!r}") from None
    if not np.isfinite(value) or value < 0:
        raise UserError(f"{where}: field {name!r}: expected a number >= 0, got {raw!r}")
    return value


def parse_caller(raw: Any, where: str, key: str = "A") -> tuple[float, float, float, float]:
    """One caller's metadata (a line's ``"A"`` or ``"B"``: ``{"age", "education", "sex"}``,
    other keys such as ``dialect`` ignored) -> Zhao's vector ``(age / 100, education / 3,
    male, female)``, sex one-hot ``(1, 0)`` male, ``(0, 1)`` female. Values may be numbers or
    text with stray quotes and spaces (``" 2"``, ``' "FEMALE"'``, any case). A field that is
    missing or does not parse is a one-line :class:`UserError` naming ``where`` and the field
    (``A.age``). SwDA's education code 9 (unknown) is kept as 9 / 3, as Zhao's code does."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: field {key!r}: expected an object with age, education and "
                        f"sex, got {type(raw).__name__}")
    for name in ("age", "education", "sex"):
        if raw.get(name) is None:
            raise UserError(f"{where}: field '{key}.{name}' missing (caller metadata needs "
                            "age, education and sex)")
    age = _number(raw["age"], where, f"{key}.age")
    education = _number(raw["education"], where, f"{key}.education")
    sex = raw["sex"]
    cleaned = _clean_value(sex).upper() if isinstance(sex, str) else None
    if cleaned not in ("MALE", "FEMALE"):
        raise UserError(f"{where}: field '{key}.sex': expected MALE or FEMALE, got {sex!r}")
    female = float(cleaned == "FEMALE")
    return (age / 100.0, education / 3.0, 1.0 - female, female)


def _read_callers(record: dict[str, Any], where: str, speakers: set[str]
                  ) -> dict[str, tuple[float, ...]] | None:
    """The callers of one line (:func:`parse_caller` of each of :data:`CALLER_KEYS`), None if
    it has neither (absent, null or ``{}``); one without the other, or a speaker who is
    neither, is a UserError."""
    present = [k for k in CALLER_KEYS if record.get(k) is not None and record.get(k) != {}]
    if not present:
        return None
    if len(present) < len(CALLER_KEYS):
        missing = next(k for k in CALLER_KEYS if k not in present)
        raise UserError(f"{where}: caller metadata {present[0]!r} without {missing!r} "
                        "(give both callers or neither)")
    strangers = sorted(speakers - set(CALLER_KEYS))
    if strangers:
        raise UserError(f"{where}: speaker {strangers[0]!r} has no caller metadata (the line's "
                        f"callers are {' and '.join(map(repr, CALLER_KEYS))})")
    return {k: parse_caller(record[k], where, k) for k in CALLER_KEYS}


def read_conversations(path: str | os.PathLike[str], preparation: str = "swda"
                       ) -> tuple[list[Conversation], ReadStats]:
    """Read a conversations file (JSON lines, either layout, detected per line).

    swda-layout text is cleaned (:func:`clean_swda_text`); with ``preparation="zhao"`` its
    unfinished utterances are first joined with the speaker's next one
    (:func:`merge_unfinished`) and repeated words collapsed after tokenising
    (:func:`collapse_repeats`). zhao-layout text is only lower-cased and tokenised, as Zhao's
    code does. Blank lines are skipped. Raises :class:`UserError`
    naming the file and line for a malformed JSON line, a line that is not an object, a missing
    ``utts`` / ``speaker`` / ``text`` key or a value of the wrong type, and for a ``topic`` or
    caller field (``"A"``, ``"B"``) that does not parse (:func:`parse_topic`,
    :func:`parse_caller`). A conversation without utterances (or whose utterances all clean to
    nothing) is skipped and counted.
    """
    if preparation not in PREPARATIONS:
        raise ValueError(f"preparation must be one of {PREPARATIONS}, got {preparation!r}")
    zhao = preparation == "zhao"
    path = Path(path)
    conversations: list[Conversation] = []
    layouts: set[str] = set()
    skipped = empty = blank = joined = collapsed = 0
    for lineno, text in _iter_lines(path):
        if not text.strip():
            blank += 1
            continue
        where = f"{path}, line {lineno}"
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(record, dict):
            raise UserError(f"{where}: expected a JSON object (one conversation), got "
                            f"{type(record).__name__}")
        if "utts" not in record:
            raise UserError(f"{where}: missing key 'utts' (the list of utterances)")
        raw_utts = record["utts"]
        if not isinstance(raw_utts, list):
            raise UserError(f"{where}: 'utts' must be a list, got {type(raw_utts).__name__}")
        utterances = []
        speakers: set[str] = set()
        fields = [_utterance_fields(raw, f"{where}, utterance {k + 1}")
                  for k, raw in enumerate(raw_utts)]
        swda = [isinstance(raw, dict) for raw in raw_utts]
        layouts.update("swda" if x else "zhao" for x in swda)
        merged = zhao and bool(swda) and all(swda)
        if merged:  # cleaned here, part by part
            fields, n = merge_unfinished(fields)
            joined += n
            swda = [True] * len(fields)
        for (speaker, utt_text, act), clean in zip(fields, swda):
            speakers.add(speaker)
            tokens = tokenize_utterance(utt_text, clean=clean and not merged)
            if zhao and clean:
                kept = collapse_repeats(tokens)
                collapsed += len(kept) < len(tokens)
                tokens = kept
            if tokens:
                utterances.append(Utterance(speaker, tuple(tokens), act))
            else:
                empty += 1
        topic = parse_topic(record.get("topic"), where)
        callers = _read_callers(record, where, speakers)
        if not utterances:
            skipped += 1
            continue
        conv_id = record.get("conversation")
        conversations.append(Conversation(str(conv_id) if conv_id is not None
                                          else f"line {lineno}", tuple(utterances), topic,
                                          callers))
    if not conversations:
        raise UserError(f"{path}: no conversation with utterances ({skipped} without "
                        "utterances skipped)")
    layout = "mixed" if len(layouts) > 1 else next(iter(layouts))
    stats = ReadStats(path, layout, len(conversations),
                      sum(len(c.utterances) for c in conversations), skipped, empty, blank,
                      joined, collapsed)
    return conversations, stats


def check_features(conversations: Sequence[Conversation], path: str | os.PathLike[str], *,
                   use_topic: bool = False, use_caller: bool = False,
                   training: bool = True) -> None:
    """Raise a one-line :class:`UserError` if a feature the model conditions on is missing.

    Training conversations (``training``) must all have a topic (``use_topic``) and caller
    metadata (``use_caller``). At evaluation a missing topic is allowed (it is the
    :data:`TOPIC_UNK` topic), missing callers are not (there is no "unknown" caller vector).
    """
    checks = [("use_topic", use_topic and training, "a 'topic'",
               lambda c: c.topic is not None),
              ("use_caller", use_caller, "caller metadata 'A' and 'B'",
               lambda c: c.callers is not None)]
    for key, on, what, has in checks:
        if not on:
            continue
        lacking = [c for c in conversations if not has(c)]
        if not lacking:
            continue
        role = "training" if training else "evaluated"
        where = (f"{path} has none" if len(lacking) == len(conversations) else
                 f"{path}: conversation {lacking[0].id} has none ({len(lacking)} of "
                 f"{len(conversations)} lack it)")
        raise UserError(f"model.cvae.{key} needs {what} on every {role} conversation; {where}")
