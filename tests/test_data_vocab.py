"""Vocabulary: build order, encode/decode, save/load round trip, malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cyclevae.data.corpus import read_sentences
from cyclevae.data.vocab import Vocabulary
from cyclevae.errors import UserError

SENTENCES = [
    ["the", "cat", "sat"],
    ["the", "dog", "sat", "<unk>"],
    ["a", "cat", "<unk>"],
    ["the", "bird"],
]


def test_specials_have_fixed_indices() -> None:
    v = Vocabulary()
    assert len(v) == 4
    assert v.tokens == ["<pad>", "<s>", "</s>", "<unk>"]
    assert (v.PAD_INDEX, v.BOS_INDEX, v.EOS_INDEX, v.UNK_INDEX) == (0, 1, 2, 3)


def test_build_orders_by_count_then_alphabetically() -> None:
    v = Vocabulary.build(SENTENCES)
    # the:3, cat:2, sat:2, then a, bird, dog (1 each, alphabetical); <unk> not duplicated.
    assert v.tokens[4:] == ["the", "cat", "sat", "a", "bird", "dog"]
    assert v.tokens.count("<unk>") == 1
    assert len(v) == 10


def test_build_is_independent_of_sentence_order() -> None:
    assert Vocabulary.build(SENTENCES) == Vocabulary.build(list(reversed(SENTENCES)))


def test_build_max_size_counts_words_only_and_min_count() -> None:
    v = Vocabulary.build(SENTENCES, max_size=2)
    assert len(v) == 4 + 2 and v.tokens[4:] == ["the", "cat"]
    assert Vocabulary.build(SENTENCES, min_count=2).tokens[4:] == ["the", "cat", "sat"]
    assert len(Vocabulary.build(SENTENCES, max_size=0)) == 4
    with pytest.raises(ValueError):
        Vocabulary.build(SENTENCES, min_count=0)


def test_encode_decode() -> None:
    v = Vocabulary.build(SENTENCES)
    ids = v.encode(["the", "cat", "zebra", "<unk>"])
    assert ids == [v.index("the"), v.index("cat"), v.UNK_INDEX, v.UNK_INDEX]
    assert v.decode(ids) == ["the", "cat", "<unk>", "<unk>"]
    # Literal structure tokens in text are unknown words, never BOS/EOS/PAD.
    assert v.encode(["<s>", "</s>", "<pad>"]) == [v.UNK_INDEX] * 3
    row = torch.tensor([v.BOS_INDEX, *ids, v.EOS_INDEX, v.PAD_INDEX])
    assert v.decode(row) == ["the", "cat", "<unk>", "<unk>"]
    assert v.decode(row, strip_special=False)[0] == "<s>"
    assert v.decode([v.BOS_INDEX, ids[0], v.EOS_INDEX, ids[1]], stop_at_eos=True) == ["the"]
    with pytest.raises(ValueError):
        v.decode([len(v)])


def test_bad_words_rejected() -> None:
    with pytest.raises(ValueError):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError):
        Vocabulary(["two words"])
    with pytest.raises(ValueError):
        Vocabulary(["<s>"])


def test_save_load_round_trip(tmp_path: Path) -> None:
    v = Vocabulary.build(SENTENCES + [["café", "naïve"]])
    path = tmp_path / "sub" / "vocab.txt"
    v.save(path)
    assert Vocabulary.load(path) == v
    assert path.read_text(encoding="utf-8").splitlines() == v.tokens
    assert [p.name for p in path.parent.iterdir()] == ["vocab.txt"]  # no temp file left


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("the\ncat\n", "special tokens"),
        ("<pad>\n<s>\n<unk>\n</s>\nthe\n", "special tokens"),
        ("<pad>\n<s>\n</s>\n<unk>\nthe\ncat\nthe\n", "line 7: duplicate"),
        ("<pad>\n<s>\n</s>\n<unk>\n\nthe\n", "line 5"),
    ],
)
def test_load_malformed(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "vocab.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError, match=message) as info:
        Vocabulary.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_missing_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        Vocabulary.load(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"<pad>\n<s>\n</s>\n<unk>\n\xff\n")
    with pytest.raises(UserError, match="UTF-8"):
        Vocabulary.load(bad)


def test_ptb_vocabulary_size(shared_data: Path) -> None:
    """The paper's V = 10,002: 9,998 PTB words + <pad> <s> </s> <unk> (about 0.5 s)."""
    sentences, _ = read_sentences(shared_data / "ptb" / "train.txt")
    v = Vocabulary.build(sentences)
    assert len(v) == 10_002
    assert v.tokens[4:7] == ["the", "N", "of"]
