"""Dialog data: conversation files -> normalised utterances -> (context, response) batches.

A conversations file is JSON lines, one conversation per line, in either layout of
``../shared/data``:

- ``swda``: ``{"conversation": ID, "utts": [{"speaker": "A", "text": "...", "act": "sd"}, ...]}``
  (the standard SwDA split; text as transcribed: mixed case, punctuation, fillers);
- ``zhao``: ``{"topic", "A", "B", "prompt", "utts": [[speaker, text, [act, [sentiment]]], ...]}``
  (Zhao et al. 2017's preparation: lower-cased, no punctuation, no "uh"/"um").

Text is normalised as Zhao's code does (lower case, NLTK ``WordPunctTokenizer``); the swda
layout is first cleaned so that it looks like Zhao's text (:func:`clean_swda_text`). As in
Zhao's code, every conversation starts with a beginning-of-dialog utterance ``<d>``; an example
is one utterance (the response) with the up to 9 utterances before it (the context), each
utterance cut to 40 tokens counting ``<s>`` and ``</s>`` (38 words + ``</s>`` kept, Zhao's
``pad_to``). The speaker feature of a context utterance is Zhao's *floor*: 1 if it was said by
the response's speaker, 0 otherwise (and for ``<d>``).

Speed: an utterance sits in the contexts of up to 9 examples. :class:`DialogBatcher` puts
runs of consecutive examples of one conversation into the same batch, and a
:class:`DialogBatch` carries each distinct utterance of the batch once (``utterances``) with
index maps from context slots and responses to it, so the model encodes each utterance once.

Conversation features (kgCVAE, :mod:`cyclevae.models.cvae`'s ``use_topic`` / ``use_caller``):
a line may carry its ``topic`` (``"\"AIR POLLUTION\""``) and its callers' metadata ``"A"`` and
``"B"`` (``{"age": 46, "education": " 2", "sex": " \"FEMALE\""}``), as swda-zhao/ lines do
(swda/ lines do not; the same optional keys are read on them). Quotes and spaces are cleaned
(:func:`parse_topic`, :func:`parse_caller`). Per example, :func:`encode_dialogs` gives the
topic id (:func:`build_topic_vocabulary`; a topic not seen in training, or none, is
:data:`TOPIC_UNK`, id 0) and Zhao's 4-d caller vectors ``[age / 100, education / 3] + sex
one-hot`` of the responding speaker ("my") and of the other caller, carried by
:class:`DialogBatch` as ``topics`` and ``callers`` (None when the features are off).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import UserError, check_fields
from .batching import epoch_batch_order
from .corpus import _iter_lines
from .splits import CorpusFiles
from .vocab import Vocabulary

__all__ = [
    "CALLER_DIM",
    "CALLER_KEYS",
    "DIALOG_START",
    "TOPIC_UNK",
    "Conversation",
    "DialogBatch",
    "DialogBatcher",
    "DialogCorpora",
    "DialogCorpus",
    "DialogData",
    "DialogDataConfig",
    "DialogFiles",
    "ReadStats",
    "Utterance",
    "batch_from_context",
    "build_act_vocabulary",
    "build_topic_vocabulary",
    "build_vocabulary",
    "check_features",
    "clean_swda_text",
    "collapse_repeats",
    "drop_leaked",
    "encode_dialogs",
    "find_leaked",
    "load_dialog_corpora",
    "load_dialog_split",
    "merge_unfinished",
    "normalization_examples",
    "parse_caller",
    "parse_context",
    "parse_topic",
    "prepare_dialog_data",
    "read_conversations",
    "tokenize_utterance",
    "training_overlap",
    "word_set_jaccard",
]

#: the beginning-of-dialog utterance's one word (Zhao's ``<d>``); a vocabulary word
DIALOG_START = "<d>"
#: the topic of id 0: a topic the training conversations do not have (or none)
TOPIC_UNK = "<unk>"
#: the line keys of the two callers' metadata (SwDA's speakers)
CALLER_KEYS = ("A", "B")
#: size of one caller's vector: [age / 100, education / 3, male, female] (Zhao's meta)
CALLER_DIM = 4


# --------------------------------------------------------------------------- normalisation
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


# --------------------------------------------------------------------------- reading
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


# --------------------------------------------------------------------------- leakage
def _word_set(conversation: Conversation) -> frozenset[str]:
    return frozenset(tok for utt in conversation.utterances for tok in utt.tokens)


def word_set_jaccard(a: Conversation, b: Conversation) -> float:
    """|W(a) & W(b)| / |W(a) | W(b)| of the two conversations' sets of tokens."""
    wa, wb = _word_set(a), _word_set(b)
    union = len(wa | wb)
    return len(wa & wb) / union if union else 0.0


def find_leaked(train: Sequence[Conversation], evaluation: Sequence[Conversation],
                threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Training conversations that are (almost) evaluation conversations.

    Returns ``(train index, evaluation index, Jaccard)`` for every training conversation whose
    word-set Jaccard with some evaluation conversation is > ``threshold``, with its best match.
    (On the shared data, 26 of the 62 swda-zhao test conversations match one of swda/train;
    matches score 0.59-0.97, non-matches at most 0.35.)
    """
    eval_sets = [_word_set(c) for c in evaluation]
    found = []
    for i, conv in enumerate(train):
        words = _word_set(conv)
        best, best_j = -1, 0.0
        for j, other in enumerate(eval_sets):
            union = len(words | other)
            score = len(words & other) / union if union else 0.0
            if score > best_j:
                best, best_j = j, score
        if best_j > threshold:
            found.append((i, best, best_j))
    return found


def drop_leaked(train: Sequence[Conversation], evaluations: Sequence[Sequence[Conversation]],
                threshold: float = 0.5) -> tuple[list[Conversation], int]:
    """``train`` without the conversations :func:`find_leaked` matches in any of
    ``evaluations``; returns ``(kept, number dropped)`` (the caller logs the number)."""
    leaked: set[int] = set()
    for evaluation in evaluations:
        leaked.update(i for i, _, _ in find_leaked(train, evaluation, threshold))
    return [c for i, c in enumerate(train) if i not in leaked], len(leaked)


# --------------------------------------------------------------------------- vocabularies
def _with_start(conversations: Sequence[Conversation]) -> Iterator[Sequence[str]]:
    for conv in conversations:
        yield (DIALOG_START,)
        for utt in conv.utterances:
            yield utt.tokens


def build_vocabulary(conversations: Sequence[Conversation], max_size: int = 10_000,
                     min_count: int = 1) -> Vocabulary:
    """The ``max_size`` most frequent tokens of the (training) conversations, ``<d>``
    counted once per conversation as in Zhao's code, plus the four specials."""
    return Vocabulary.build(_with_start(conversations), max_size=max_size, min_count=min_count)


def build_act_vocabulary(conversations: Sequence[Conversation]) -> list[str]:
    """The dialog-act labels of the conversations, sorted (index = act id)."""
    return sorted({u.act for c in conversations for u in c.utterances if u.act is not None})


def build_topic_vocabulary(conversations: Sequence[Conversation]) -> list[str]:
    """The topic labels (index = topic id): :data:`TOPIC_UNK` (id 0, for topics the
    (training) conversations do not have), then their topics, sorted."""
    return [TOPIC_UNK, *sorted({c.topic for c in conversations
                                if c.topic is not None and c.topic != TOPIC_UNK})]


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


# --------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class DialogBatch:
    """A batch of (context, response) examples, each distinct utterance stored once.

    Attributes:
        utterances: LongTensor ``[U, L]``, the batch's distinct utterances, rows
            ``<s> w_1 .. w_n </s>`` padded with ``<pad>`` (0).
        lengths: LongTensor ``[U]``, tokens per row (``<s>`` and ``</s>`` included, >= 2).
        context: LongTensor ``[B, C]``, row of ``utterances`` of each context slot, oldest
            first; slots ``>= context_lengths[b]`` hold 0 and must not be read.
        context_lengths: LongTensor ``[B]``, context utterances per example (1..C).
        floors: LongTensor ``[B, C]``, 1 where the context utterance is by the response's
            speaker (Zhao's floor), else 0 (and 0 in unused slots).
        response: LongTensor ``[B]``, row of ``utterances`` of each example's response.
        acts: LongTensor ``[B]``, the response's dialog-act id (-1: unknown).
        topics: LongTensor ``[B]``, the conversation's topic id (0: :data:`TOPIC_UNK`), or
            None when the topic feature is off.
        callers: FloatTensor ``[B, 2, CALLER_DIM]``, the responding speaker's ("my") and the
            other caller's vectors (:func:`parse_caller`), or None when the feature is off.

    ``repeat``/``repeat_each`` repeat the index maps only (the utterances are shared).
    """

    utterances: torch.Tensor
    lengths: torch.Tensor
    context: torch.Tensor
    context_lengths: torch.Tensor
    floors: torch.Tensor
    response: torch.Tensor
    acts: torch.Tensor
    topics: torch.Tensor | None = None
    callers: torch.Tensor | None = None

    def _rows(self, fn) -> DialogBatch:
        return DialogBatch(self.utterances, self.lengths, fn(self.context),
                           fn(self.context_lengths), fn(self.floors), fn(self.response),
                           fn(self.acts), None if self.topics is None else fn(self.topics),
                           None if self.callers is None else fn(self.callers))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DialogBatch:
        """The same batch on ``device``."""
        return DialogBatch(*(None if getattr(self, f) is None else
                             getattr(self, f).to(device, non_blocking=non_blocking)
                             for f in self.__dataclass_fields__))

    def repeat(self, n: int) -> DialogBatch:
        """Examples stacked ``n`` times (rows ``i, i + B, ...`` are example ``i``)."""
        return self._rows(lambda t: t.repeat(n, *([1] * (t.dim() - 1))))

    def repeat_each(self, n: int) -> DialogBatch:
        """Every example repeated ``n`` times in place (rows ``n i .. n i + n - 1``)."""
        return self._rows(lambda t: t.repeat_interleave(n, dim=0))

    def select(self, index: torch.Tensor) -> DialogBatch:
        """The examples ``index`` (LongTensor ``[M]``, repeats allowed)."""
        return self._rows(lambda t: t[index])

    @property
    def device(self) -> torch.device:
        return self.utterances.device

    @property
    def num_examples(self) -> int:
        """B, examples (responses) in the batch."""
        return int(self.response.shape[0])

    @property
    def num_tokens(self) -> int:
        """Predicted response tokens: the words plus one ``</s>`` per response."""
        return int((self.lengths[self.response] - 1).sum())

    @property
    def num_words(self) -> None:
        """None: the tokens are the words (:class:`~cyclevae.data.batching.Batch`)."""
        return None

    @property
    def max_context(self) -> int:
        """C, context slots per example."""
        return int(self.context.shape[1])

    def response_tokens(self) -> torch.Tensor:
        """LongTensor ``[B, Lr]``: the responses ``<s> .. </s>`` padded with ``<pad>``, ``Lr``
        the longest response."""
        longest = int(self.lengths[self.response].max())
        return self.utterances[self.response, :longest]


@dataclass
class DialogCorpus:
    """Encoded conversations and the examples over them (:func:`encode_dialogs`).

    Attributes:
        utterances: every encoded utterance, ``<s> .. </s>`` (``<d>`` utterances included),
            conversation after conversation; global index = position in this list.
        speakers: ``[n_utts]`` int speaker id of each utterance within its conversation
            (-1 for ``<d>``).
        acts: ``[n_utts]`` int act id (-1: unknown or ``<d>``).
        examples: ``[N, 2]`` int, ``(context start, response)`` global utterance indices: the
            context is utterances ``start .. response - 1``.
        conversation_of: ``[N]`` int, the conversation (position in the input) of each example.
        topics: ``[N]`` int topic id of each example's conversation (0: unknown), or None.
        callers: ``[N, 2, CALLER_DIM]`` float32, "my" (the response's speaker) and "other"
            caller vectors of each example, or None.
        topic_labels: the topic ids' labels (:func:`build_topic_vocabulary`; empty: off).
    """

    utterances: list[np.ndarray]
    speakers: np.ndarray
    acts: np.ndarray
    examples: np.ndarray
    conversation_of: np.ndarray
    max_context: int
    act_labels: list[str] = field(default_factory=list)
    topics: np.ndarray | None = None
    callers: np.ndarray | None = None
    topic_labels: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.examples.shape[0])

    @property
    def num_tokens(self) -> int:
        """Predicted response tokens of all examples (words + ``</s>``)."""
        lengths = np.fromiter((len(u) for u in self.utterances), np.int64,
                              count=len(self.utterances))
        return int((lengths[self.examples[:, 1]] - 1).sum())

    def example_ids(self, min_context: int = 1) -> np.ndarray:
        """Examples with at least ``min_context`` context utterances (the evaluation of
        sampled responses uses ``min_context=2``: contexts of a single utterance, ``<d>``
        alone with ``dialog_start``, are skipped)."""
        return np.flatnonzero(self.examples[:, 1] - self.examples[:, 0] >= min_context)

    def batch(self, example_ids: Sequence[int]) -> DialogBatch:
        """The :class:`DialogBatch` of the examples ``example_ids`` (in that order)."""
        ids = np.asarray(example_ids, dtype=np.int64)
        ex = self.examples[ids]
        starts, responses = ex[:, 0], ex[:, 1]
        ctx_len = responses - starts
        # distinct utterances: the union of [start, response] of every example
        needed = np.unique(np.concatenate([np.arange(s, r + 1) for s, r in ex]))
        local = {int(g): i for i, g in enumerate(needed)}
        lengths = np.fromiter((len(self.utterances[g]) for g in needed), np.int64,
                              count=len(needed))
        tokens = np.zeros((len(needed), int(lengths.max())), dtype=np.int64)
        for i, g in enumerate(needed):
            tokens[i, : lengths[i]] = self.utterances[g]
        width = int(ctx_len.max())
        context = np.zeros((len(ex), width), dtype=np.int64)
        floors = np.zeros((len(ex), width), dtype=np.int64)
        for b, (s, r) in enumerate(ex):
            slots = np.arange(s, r)
            context[b, : r - s] = [local[int(g)] for g in slots]
            spk = self.speakers[slots]
            floors[b, : r - s] = (spk == self.speakers[r]) & (spk >= 0)
        return DialogBatch(
            utterances=torch.from_numpy(tokens), lengths=torch.from_numpy(lengths),
            context=torch.from_numpy(context), context_lengths=torch.from_numpy(ctx_len),
            floors=torch.from_numpy(floors),
            response=torch.tensor([local[int(r)] for r in responses], dtype=torch.long),
            acts=torch.from_numpy(self.acts[responses].astype(np.int64)),
            topics=None if self.topics is None else torch.from_numpy(self.topics[ids]),
            callers=None if self.callers is None else torch.from_numpy(self.callers[ids]))

    def context_tokens(self, example: int) -> list[tuple[int, list[int]]]:
        """``(floor, ids)`` of each context utterance of ``example`` (for reports)."""
        s, r = (int(v) for v in self.examples[example])
        return [(int(self.speakers[g] == self.speakers[r] and self.speakers[g] >= 0),
                 self.utterances[g].tolist()) for g in range(s, r)]

    def response_ids(self, example: int) -> list[int]:
        """The response of ``example`` as ids, ``<s>`` and ``</s>`` included."""
        return self.utterances[int(self.examples[example, 1])].tolist()


def _encode_utterance(vocab: Vocabulary, tokens: Sequence[str], max_length: int) -> np.ndarray:
    ids = vocab.encode(tokens)[: max_length - 2]
    return np.array([Vocabulary.BOS_INDEX, *ids, Vocabulary.EOS_INDEX], dtype=np.int64)


def encode_dialogs(conversations: Sequence[Conversation], vocab: Vocabulary, *,
                   max_context: int = 9, max_utterance_length: int = 40,
                   dialog_start: bool = True, act_labels: Sequence[str] = (),
                   topic_labels: Sequence[str] | None = None, callers: bool = False
                   ) -> DialogCorpus:
    """Conversations -> :class:`DialogCorpus` of (context, response) examples.

    Every utterance is a response (with ``dialog_start``, the first one too, whose context is
    the ``<d>`` utterance alone); its context is the up to ``max_context`` utterances before
    it. Utterances are cut to ``max_utterance_length`` ids counting ``<s>``/``</s>``
    (Zhao: 40). ``act_labels`` (:func:`build_act_vocabulary`) gives the act ids; acts not in
    it are -1. ``topic_labels`` (:func:`build_topic_vocabulary`; None or empty: no topics)
    gives each example its conversation's topic id, 0 (:data:`TOPIC_UNK`) for a topic not in
    it or none. ``callers``: each example gets its "my" (the response's speaker) and "other"
    caller vectors; a conversation without caller metadata is then a :class:`UserError` (check
    files first with :func:`check_features`, whose message names the file).
    """
    if max_context < 1:
        raise ValueError(f"max_context must be >= 1, got {max_context}")
    if max_utterance_length < 3:
        raise ValueError(f"max_utterance_length must be >= 3, got {max_utterance_length}")
    act_index = {a: i for i, a in enumerate(act_labels)}
    topic_index = {t: i for i, t in enumerate(topic_labels or ())}
    topic_ids: list[int] = []
    caller_rows: list[np.ndarray] = []
    start_utt = _encode_utterance(vocab, [DIALOG_START], max_utterance_length)
    utterances: list[np.ndarray] = []
    speakers: list[int] = []
    acts: list[int] = []
    examples: list[tuple[int, int]] = []
    conv_of: list[int] = []
    for c, conv in enumerate(conversations):
        base = len(utterances)
        if dialog_start:
            utterances.append(start_utt)
            speakers.append(-1)
            acts.append(-1)
        speaker_ids: dict[str, int] = {}
        for utt in conv.utterances:
            utterances.append(_encode_utterance(vocab, utt.tokens, max_utterance_length))
            speakers.append(speaker_ids.setdefault(utt.speaker, len(speaker_ids)))
            acts.append(act_index.get(utt.act, -1) if utt.act is not None else -1)
        first = len(examples)
        for r in range(base + 1, len(utterances)):
            examples.append((max(base, r - max_context), r))
            conv_of.append(c)
        if topic_index:
            topic_ids.extend([topic_index.get(conv.topic, 0)] * (len(examples) - first))
        if callers:
            caller_rows.extend(_caller_pairs(conv, dialog_start))
    if not examples:
        raise UserError("no (context, response) example: every conversation has a single "
                        "utterance (and dialog_start is off)")
    return DialogCorpus(
        utterances, np.array(speakers, dtype=np.int64), np.array(acts, dtype=np.int64),
        np.array(examples, dtype=np.int64), np.array(conv_of, dtype=np.int64), max_context,
        list(act_labels),
        topics=np.array(topic_ids, dtype=np.int64) if topic_index else None,
        callers=(np.stack(caller_rows).astype(np.float32) if caller_rows
                 else np.zeros((0, 2, CALLER_DIM), np.float32)) if callers else None,
        topic_labels=list(topic_labels or ()))


def _caller_pairs(conv: Conversation, dialog_start: bool) -> list[np.ndarray]:
    """``[2, CALLER_DIM]`` ("my", "other") per example of ``conv``, in example order (every
    utterance is a response; without ``dialog_start`` the first one is not)."""
    if conv.callers is None:
        raise UserError(f"conversation {conv.id}: no caller metadata 'A' and 'B' "
                        "(model.cvae.use_caller needs it)")
    vectors = {k: np.asarray(v, dtype=np.float32) for k, v in conv.callers.items()}
    responses = conv.utterances if dialog_start else conv.utterances[1:]
    out = []
    for utt in responses:
        if utt.speaker not in vectors:
            raise UserError(f"conversation {conv.id}: speaker {utt.speaker!r} has no caller "
                            "metadata")
        other = next((k for k in vectors if k != utt.speaker), None)
        if other is None:
            raise UserError(f"conversation {conv.id}: caller metadata for one caller only")
        out.append(np.stack([vectors[utt.speaker], vectors[other]]))
    return out


def parse_context(text: str, source: str = "context") -> list[tuple[str, list[str]]]:
    """A typed context, one ``SPEAKER: utterance`` per line (blank lines skipped), ->
    ``(speaker, tokens)`` per utterance (text cleaned and tokenised like swda-layout files).
    A line without ``:`` or with an empty speaker is a one-line :class:`UserError` naming
    ``source`` and the line."""
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        speaker, colon, utterance = line.partition(":")
        if not colon or not speaker.strip():
            raise UserError(f"{source}, line {lineno}: expected 'SPEAKER: utterance', got "
                            f"{line.strip()[:40]!r}")
        out.append((speaker.strip(), tokenize_utterance(utterance, clean=True)))
    if not out:
        raise UserError(f"{source}: the context is empty: give at least one "
                        "'SPEAKER: utterance' line")
    return out


def batch_from_context(context: Sequence[tuple[str, Sequence[str]]], vocab: Vocabulary, *,
                       responder: str | None = None, max_context: int = 9,
                       max_utterance_length: int = 40, dialog_start: bool = True
                       ) -> DialogBatch:
    """A one-example :class:`DialogBatch` for a typed context (``cyclevae generate
    --respond``): ``context`` is ``(speaker, tokens)`` per utterance, oldest first (tokens
    from :func:`tokenize_utterance`). The floor is 1 for utterances by ``responder`` (None:
    anyone but the last speaker). The response is an empty placeholder (``<s> </s>``).
    """
    if not context:
        raise UserError("the context is empty: give at least one 'SPEAKER: utterance' line")
    if responder is None:
        last = context[-1][0]
        same = [speaker != last for speaker, _ in context]
    else:
        same = [speaker == responder for speaker, _ in context]
    rows = [_encode_utterance(vocab, tokens, max_utterance_length) for _, tokens in context]
    if dialog_start:
        rows.insert(0, _encode_utterance(vocab, [DIALOG_START], max_utterance_length))
        same.insert(0, False)
    rows, same = rows[-max_context:], same[-max_context:]
    rows.append(np.array([Vocabulary.BOS_INDEX, Vocabulary.EOS_INDEX], dtype=np.int64))
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    tokens = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.from_numpy(r)
    n = len(rows) - 1
    return DialogBatch(tokens, lengths, torch.arange(n).unsqueeze(0), torch.tensor([n]),
                       torch.tensor([same], dtype=torch.long), torch.tensor([n]),
                       torch.tensor([-1]))


class _LazyBatches(Sequence[DialogBatch]):
    """A list of batches built on access (a corpus's padded batches would take ~100 MB)."""

    def __init__(self, corpus: DialogCorpus, groups: list[np.ndarray]) -> None:
        self._corpus, self._groups = corpus, groups

    def __len__(self) -> int:
        return len(self._groups)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return _LazyBatches(self._corpus, self._groups[i])
        return self._corpus.batch(self._groups[i])


class DialogBatcher:
    """Examples of a :class:`DialogCorpus` cut into batches, deterministic given ``seed``.

    Composition (fixed at construction): each conversation's examples are cut into runs of
    ``run_length`` consecutive examples (the first run of a conversation is 1..run_length
    long, drawn with the seed), runs are shuffled with the seed, cut into pools of
    ``pool_batches * batch_size`` examples, and within a pool sorted by their longest
    response and shortest context (bucketing), then cut every ``batch_size`` examples. Consecutive examples share 9 of their 10
    utterances, so a run of r examples needs r + 9 distinct utterances instead of 10 r.
    ``run_length=1`` gives independent examples. The order of the batches in an epoch is a
    permutation drawn from ``(seed, epoch)``.
    """

    def __init__(self, corpus: DialogCorpus, batch_size: int = 30, seed: int = 0, *,
                 run_length: int = 5, pool_batches: int = 100) -> None:
        for name, value in (("batch_size", batch_size), ("run_length", run_length),
                            ("pool_batches", pool_batches)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if len(corpus) == 0:
            raise UserError("cannot batch an empty dialog corpus: no examples")
        self.corpus, self.batch_size, self.seed = corpus, batch_size, seed
        rng = np.random.default_rng(seed)
        conv = corpus.conversation_of
        bounds = np.flatnonzero(np.diff(conv)) + 1
        runs: list[np.ndarray] = []
        for ids in np.split(np.arange(len(corpus)), bounds):
            first = int(rng.integers(1, run_length + 1)) if run_length > 1 else 1
            cuts = list(range(first, len(ids), run_length))
            runs.extend(np.split(ids, cuts))
        order = rng.permutation(len(runs))
        lengths = np.fromiter((len(u) for u in corpus.utterances), np.int64,
                              count=len(corpus.utterances))
        resp_len = lengths[corpus.examples[:, 1]]
        ctx_len = corpus.examples[:, 1] - corpus.examples[:, 0]
        run_key = np.array([resp_len[r].max() * 64 + ctx_len[r].min() for r in runs])
        flat = np.concatenate([runs[r] for r in order])  # examples, runs in shuffled order
        key = np.concatenate([np.full(len(runs[r]), run_key[r]) for r in order])
        pool = pool_batches * batch_size
        groups: list[np.ndarray] = []
        for start in range(0, len(flat), pool):  # a run may straddle two pools
            part = slice(start, start + pool)
            # stable: a run's examples stay together, equal keys keep the shuffled order
            sorted_ids = flat[part][np.argsort(key[part], kind="stable")]
            groups.extend(np.split(sorted_ids, range(batch_size, len(sorted_ids), batch_size)))
        self._groups = groups

    def __len__(self) -> int:
        """Batches in one epoch (all ranks together)."""
        return len(self._groups)

    @property
    def num_examples(self) -> int:
        return len(self.corpus)

    @property
    def num_tokens(self) -> int:
        """Predicted response tokens per epoch."""
        return self.corpus.num_tokens

    def _batch_ids(self, epoch: int, shuffle: bool, rank: int, world_size: int,
                   drop_last: bool) -> list[int]:
        return epoch_batch_order(len(self._groups), self.seed, epoch, shuffle=shuffle,
                                 rank=rank, world_size=world_size, drop_last=drop_last)

    def batches(self, epoch: int = 0, *, shuffle: bool = True, rank: int = 0,
                world_size: int = 1, drop_last: bool = True) -> Sequence[DialogBatch]:
        """The batches of one epoch for one process (same arguments and distribution rules as
        :meth:`cyclevae.data.batching.BatchedCorpus.batches`); built on access."""
        ids = self._batch_ids(epoch, shuffle, rank, world_size, drop_last)
        return _LazyBatches(self.corpus, [self._groups[i] for i in ids])

    def batch_indices(self, epoch: int = 0, *, shuffle: bool = True, rank: int = 0,
                      world_size: int = 1, drop_last: bool = True) -> list[np.ndarray]:
        """Example ids (rows of ``corpus.examples``) of each batch, aligned with
        :meth:`batches`."""
        ids = self._batch_ids(epoch, shuffle, rank, world_size, drop_last)
        return [self._groups[i] for i in ids]


# --------------------------------------------------------------------------- one call
@dataclass
class DialogData:
    """Everything a dialog run reads (:func:`prepare_dialog_data`).

    Attributes: vocab; act_labels; train (the training :class:`DialogCorpus`, leaked
    conversations removed); evaluations (name -> :class:`DialogCorpus`, e.g. ``valid``,
    ``test``); stats (name -> :class:`ReadStats`, ``train`` included); leaked (training
    conversations dropped for overlapping an evaluation file); leaked_by (evaluation name ->
    training conversations matching one of its conversations; a conversation may match
    several files, so these can add up to more than ``leaked``); topic_labels
    (:func:`build_topic_vocabulary`, empty when the topic feature is off).
    """

    vocab: Vocabulary
    act_labels: list[str]
    train: DialogCorpus
    evaluations: dict[str, DialogCorpus]
    stats: dict[str, ReadStats]
    leaked: int
    leaked_by: dict[str, int] = field(default_factory=dict)
    topic_labels: list[str] = field(default_factory=list)


def prepare_dialog_data(train: str | os.PathLike[str],
                        evaluations: dict[str, str | os.PathLike[str]], *,
                        max_vocab: int | None = 10_000, max_context: int = 9,
                        max_utterance_length: int = 40, drop_leakage: bool = True,
                        leakage_threshold: float = 0.5, vocab: Vocabulary | None = None,
                        act_labels: Sequence[str] | None = None,
                        leakage_against: Sequence[str] | None = None,
                        min_count: int = 1, use_topic: bool = False, use_caller: bool = False,
                        topic_labels: Sequence[str] | None = None, preparation: str = "swda"
                        ) -> DialogData:
    """Read the training file and the evaluation files, drop from training the conversations
    that (almost) occur in an evaluation file (:func:`find_leaked`, if ``drop_leakage``;
    ``leakage_against``: the names of the evaluations to check, default all), build the
    vocabulary (``max_vocab`` most frequent tokens, None: all; ``min_count``) and act labels
    from what remains (unless given, e.g. from a checkpoint) and encode every file. The caller
    logs ``leaked``, ``leaked_by`` and each ``stats``.

    ``use_topic`` / ``use_caller``: the conversation features the model conditions on
    (:func:`check_features`: every training conversation must have them, an evaluation file
    its callers; one-line :class:`UserError` naming the file otherwise); the topic labels are
    built from the remaining training conversations unless given (``topic_labels``).
    ``preparation``: the text preparation of swda-layout files (:data:`PREPARATIONS`,
    :func:`read_conversations`)."""
    conversations, stats = {}, {}
    conversations["train"], stats["train"] = read_conversations(train, preparation)
    check_features(conversations["train"], train, use_topic=use_topic, use_caller=use_caller)
    for name, path in evaluations.items():
        conversations[name], stats[name] = read_conversations(path, preparation)
        check_features(conversations[name], path, use_topic=use_topic, use_caller=use_caller,
                       training=False)
    leaked, leaked_by = 0, {}
    against = list(evaluations) if leakage_against is None else list(leakage_against)
    if drop_leakage and against:
        found: set[int] = set()
        for name in against:
            ids = {i for i, _, _ in find_leaked(conversations["train"], conversations[name],
                                               leakage_threshold)}
            leaked_by[name] = len(ids)
            found |= ids
        conversations["train"] = [c for i, c in enumerate(conversations["train"])
                                  if i not in found]
        leaked = len(found)
        if not conversations["train"]:
            raise UserError(f"{train}: every training conversation also occurs in an "
                            "evaluation file")
    if vocab is None:
        vocab = build_vocabulary(conversations["train"], max_size=max_vocab,
                                 min_count=min_count)
    acts = list(act_labels) if act_labels is not None else build_act_vocabulary(
        conversations["train"])
    topics: list[str] = []
    if use_topic:
        topics = (list(topic_labels) if topic_labels else
                  build_topic_vocabulary(conversations["train"]))

    def encode(name: str) -> DialogCorpus:
        return encode_dialogs(conversations[name], vocab, max_context=max_context,
                              max_utterance_length=max_utterance_length, act_labels=acts,
                              topic_labels=topics, callers=use_caller)

    return DialogData(vocab, acts, encode("train"), {n: encode(n) for n in evaluations},
                      stats, leaked, leaked_by, topics)


# --------------------------------------------------------------------------- a run's data
@dataclass
class DialogDataConfig:
    """The dialog settings of a run's ``data`` section (``data.dialog.*``; used when
    ``model.kind`` is ``cvae``; the vocabulary size is ``data.max_vocab``, the batch size
    ``data.batch_size``).

    ``max_context``: context utterances per example (Zhao: 9, a window of 10 with the
    response). ``utterance_length``: tokens kept per utterance counting ``<s>`` and ``</s>``
    (Zhao: 40; longer ones are cut). ``drop_leakage``: drop from training every conversation
    whose word-set Jaccard with a conversation of the valid or test file (when that is another
    file than the training one) exceeds ``leakage_threshold``; the count is logged.
    ``run_length``: consecutive examples of a conversation batched together
    (:class:`DialogBatcher`; 1 = independent examples). ``preparation``: the text of
    swda-layout files, ``swda`` (each SwDA utterance cleaned on its own, as the 3-pass rows
    were trained) or ``zhao`` (closer to Zhao et al.'s text: unfinished utterances joined with
    the speaker's next one, repeated words collapsed; :func:`read_conversations`).
    """

    max_context: int = 9
    utterance_length: int = 40
    drop_leakage: bool = True
    leakage_threshold: float = 0.5
    run_length: int = 5
    preparation: str = "swda"

    def validate(self, prefix: str = "data.dialog") -> None:
        """Raise :class:`UserError` naming the first out-of-range field."""
        check_fields(self, prefix, [
            (self.max_context >= 1, "max_context", ">= 1"),
            (self.utterance_length >= 3, "utterance_length", ">= 3 (<s>, a word, </s>)"),
            (0.0 <= self.leakage_threshold < 1.0, "leakage_threshold", "in [0, 1)"),
            (self.run_length >= 1, "run_length", ">= 1"),
            (self.preparation in PREPARATIONS, "preparation",
             " or ".join(map(repr, PREPARATIONS))),
        ])


class DialogFiles(CorpusFiles, Protocol):
    """The settings of a run's ``data`` section the dialog readers use: the files, batch size
    and vocabulary limits of :class:`~cyclevae.data.splits.CorpusFiles` and ``dialog``."""

    dialog: DialogDataConfig


def _split_stats(stats: ReadStats, corpus: DialogCorpus, spec: str) -> dict[str, Any]:
    """The JSON statistics of one split (metrics.json ``data``): ``conversations`` and
    ``utterances`` kept (after the leakage filter), ``conversations_read`` from the file;
    with the topic feature, ``unknown_topic_conversations`` (topic id 0)."""
    extra: dict[str, Any] = {}
    if corpus.topics is not None:
        unknown = np.unique(corpus.conversation_of[corpus.topics == 0])
        extra["unknown_topic_conversations"] = len(unknown)
    return {"file": spec, "layout": stats.layout,
            "conversations": len(np.unique(corpus.conversation_of)),
            "conversations_read": stats.conversations,
            "utterances": len(corpus), "examples": len(corpus),
            "tokens": corpus.num_tokens,
            "skipped_conversations": stats.skipped_conversations,
            "empty_utterances": stats.empty_utterances, "blank_lines": stats.blank_lines,
            "joined_utterances": stats.joined, "collapsed_utterances": stats.collapsed,
            **extra}


@dataclass
class DialogCorpora:
    """A dialog run's data, shaped like :class:`cyclevae.data.splits.Corpora` for the Trainer:
    ``train``/``valid``/``test`` are :class:`DialogBatcher` (None where the config names no
    file), ``stats`` the JSON statistics (per split, and ``leakage``: ``dropped``,
    ``threshold``, ``against`` and ``by_file``), ``corpora`` the unbatched
    :class:`DialogCorpus` of each split (for the sampled-response evaluation),
    ``topic_labels`` the topic ids' labels (empty when the topic feature is off)."""

    vocab: Vocabulary
    act_labels: list[str]
    train: DialogBatcher
    valid: DialogBatcher | None
    test: DialogBatcher | None
    stats: dict[str, Any]
    corpora: dict[str, DialogCorpus]
    topic_labels: list[str] = field(default_factory=list)

    @property
    def leakage(self) -> dict[str, Any]:
        return self.stats["leakage"]


def load_dialog_corpora(data: DialogFiles, *, seed: int, vocab: Vocabulary | None = None,
                        act_labels: Sequence[str] | None = None, use_topic: bool = False,
                        use_caller: bool = False, topic_labels: Sequence[str] | None = None
                        ) -> DialogCorpora:
    """The conversation files a run's ``data`` section names (paths or ``swda:SPLIT``,
    ``swda-zhao:SPLIT``), read, leakage-filtered (``data.dialog``), encoded and batched
    (``data.batch_size``, ``seed``). ``vocab``/``act_labels``/``topic_labels``: a resumed
    run's (else built from the training conversations that remain). ``use_topic`` /
    ``use_caller``: the model's conversation features (:func:`prepare_dialog_data`)."""
    from .sources import data_dir, resolve_data_path

    if not data.train:
        raise UserError("config: data.train must name a conversations file or a data set "
                        "(e.g. swda:train)")
    root = data_dir(data.data_dir)
    d: DialogDataConfig = data.dialog
    train_path = resolve_data_path(data.train, root)
    specs = {split: spec for split, spec in (("valid", data.valid), ("test", data.test))
             if spec}
    paths = {split: resolve_data_path(spec, root) for split, spec in specs.items()}
    against = [s for s, p in paths.items() if p.resolve() != train_path.resolve()]
    prepared = prepare_dialog_data(
        train_path, paths, max_vocab=data.max_vocab, max_context=d.max_context,
        max_utterance_length=d.utterance_length, drop_leakage=d.drop_leakage,
        leakage_threshold=d.leakage_threshold, vocab=vocab, act_labels=act_labels,
        leakage_against=against, min_count=data.min_count, use_topic=use_topic,
        use_caller=use_caller, topic_labels=topic_labels, preparation=d.preparation)

    def batched(corpus: DialogCorpus) -> DialogBatcher:
        return DialogBatcher(corpus, data.batch_size, seed, run_length=d.run_length)

    corpora = {"train": prepared.train, **prepared.evaluations}
    stats: dict[str, Any] = {
        split: _split_stats(prepared.stats[split], corpus,
                            data.train if split == "train" else specs[split])
        for split, corpus in corpora.items()}
    stats["leakage"] = {
        "dropped": prepared.leaked, "threshold": d.leakage_threshold,
        "enabled": d.drop_leakage,
        "against": {s: specs[s] for s in against} if d.drop_leakage else {},
        "by_file": prepared.leaked_by,
        "training_conversations_read": prepared.stats["train"].conversations}
    evals = {s: batched(c) for s, c in prepared.evaluations.items()}
    return DialogCorpora(prepared.vocab, prepared.act_labels, batched(prepared.train),
                         evals.get("valid"), evals.get("test"), stats, corpora,
                         prepared.topic_labels)


def load_dialog_split(data: DialogFiles, spec: str, vocab: Vocabulary, act_labels: Sequence[str], *,
                      seed: int, data_dir: str | None = None,
                      topic_labels: Sequence[str] | None = None, use_caller: bool = False
                      ) -> tuple[DialogBatcher, DialogCorpus, dict[str, Any]]:
    """One conversations file (or ``NAME:SPLIT``) encoded and batched as a run's ``data``
    section says, with the run's vocabulary, act labels and, for a model with conversation
    features, its topic labels (a checkpoint's ``topic_labels``; topics it lacks are
    :data:`TOPIC_UNK`) and ``use_caller`` (the file must then have caller metadata):
    ``(batches, corpus, stats)``."""
    from .sources import data_dir as default_data_dir
    from .sources import resolve_data_path

    path = resolve_data_path(spec, default_data_dir(data_dir or data.data_dir))
    d: DialogDataConfig = data.dialog
    conversations, read = read_conversations(path, d.preparation)
    check_features(conversations, path, use_caller=use_caller, training=False)
    corpus = encode_dialogs(conversations, vocab, max_context=d.max_context,
                            max_utterance_length=d.utterance_length, act_labels=act_labels,
                            topic_labels=topic_labels, callers=use_caller)
    return (DialogBatcher(corpus, data.batch_size, seed, run_length=d.run_length), corpus,
            _split_stats(read, corpus, spec))


def training_overlap(data: DialogFiles, spec: str, *, data_dir: str | None = None
                     ) -> dict[str, Any]:
    """How many conversations of the evaluation file ``spec`` also occur in a run's training
    data as the run filtered it (``data``: the run's ``data`` section; its training file read
    again, minus the conversations it dropped for its own valid/test files). Returns
    ``{"file", "conversations_in_training", "threshold"}``, or ``{"file", "checked": False,
    "reason"}`` when the training file cannot be read here. The run's own valid/test files
    have none by construction (when its leakage filter was on)."""
    from .sources import data_dir as default_data_dir
    from .sources import resolve_data_path

    d: DialogDataConfig = data.dialog
    root = default_data_dir(data_dir or data.data_dir)
    try:
        train_path = resolve_data_path(data.train, root)
        train, _ = read_conversations(train_path, d.preparation)
        own = {s: resolve_data_path(p, root) for s, p in (("valid", data.valid),
                                                          ("test", data.test)) if p}
    except UserError as exc:
        return {"file": spec, "checked": False, "reason": str(exc)}
    target = resolve_data_path(spec, root)
    if d.drop_leakage:
        others = [read_conversations(p, d.preparation)[0] for p in own.values()
                  if p.resolve() != train_path.resolve()]
        train, _ = drop_leaked(train, others, d.leakage_threshold)
    evaluation, _ = read_conversations(target, d.preparation)
    matched = {j for _, j, _ in find_leaked(train, evaluation, d.leakage_threshold)}
    return {"file": spec, "conversations": len(evaluation),
            "conversations_in_training": len(matched), "threshold": d.leakage_threshold}
