"""Word vocabulary: token <-> index, with four special tokens at fixed positions.

On Penn Treebank (Mikolov's ``ptb.train.txt``) ``len(Vocabulary.build(train))`` is **10,002**:
the training file has 9,999 word types, ``<unk>`` included (Mikolov's 10,000-word vocabulary
counts ``<eos>``, which the files do not contain); ``<unk>`` becomes the special ``UNK``, so
9,998 ordinary words + ``<pad>``, ``<s>``, ``</s>``, ``<unk>`` = 10,002. That is the paper's
V = 10,002 (the vocabulary of Kim et al.'s SA-VAE preprocessing, which the authors reused, has
the same four specials). Valid and test contain no word outside the training vocabulary.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch

from ..atomic import write_text_atomic
from ..errors import UserError

__all__ = ["Vocabulary"]


class Vocabulary:
    """A fixed list of tokens; index ``i`` is ``tokens[i]``.

    Positions 0-3 always hold ``<pad>``, ``<s>``, ``</s>``, ``<unk>``. Words follow, most
    frequent first (ties broken alphabetically) when built with :meth:`build`.
    """

    PAD = "<pad>"
    BOS = "<s>"
    EOS = "</s>"
    UNK = "<unk>"
    PAD_INDEX = 0
    BOS_INDEX = 1
    EOS_INDEX = 2
    UNK_INDEX = 3
    SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)

    def __init__(self, words: Iterable[str] = ()) -> None:
        """Create a vocabulary of the specials followed by ``words`` (in that order).

        Raises ``ValueError`` if a word is a special token, is repeated, is empty or contains
        whitespace (it could not be saved one per line and read back).
        """
        self._itos: list[str] = list(self.SPECIALS)
        self._stoi: dict[str, int] = {tok: i for i, tok in enumerate(self._itos)}
        self._encode_map: dict[str, int] | None = None
        for word in words:
            if not word or word != word.strip() or len(word.split()) != 1:
                raise ValueError(f"vocabulary words must be non-empty without whitespace: {word!r}")
            if word in self._stoi:
                raise ValueError(f"duplicate vocabulary word {word!r}")
            self._stoi[word] = len(self._itos)
            self._itos.append(word)

    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        max_size: int | None = None,
        min_count: int = 1,
    ) -> Vocabulary:
        """Count words in ``sentences`` and keep the most frequent.

        Args:
            sentences: token lists.
            max_size: keep at most this many words, not counting the four specials
                (``None``: keep all).
            min_count: drop words seen fewer times than this.

        Words are ordered by decreasing count, ties alphabetically, so the result does not
        depend on the order of the corpus. Literal special tokens in the corpus (``<unk>``
        in PTB) are not counted as words: they keep their fixed indices.
        """
        if max_size is not None and max_size < 0:
            raise ValueError(f"max_size must be >= 0 or None, got {max_size}")
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(sentence)
        for special in cls.SPECIALS:
            counts.pop(special, None)
        ranked = sorted((item for item in counts.items() if item[1] >= min_count),
                        key=lambda item: (-item[1], item[0]))
        if max_size is not None:
            ranked = ranked[:max_size]
        return cls(word for word, _ in ranked)

    @property
    def tokens(self) -> list[str]:
        """All tokens, specials first (a copy)."""
        return list(self._itos)

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._itos == other._itos

    def __hash__(self) -> int:
        return hash(tuple(self._itos))

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens)"

    def index(self, token: str) -> int:
        """Index of ``token``; ``UNK_INDEX`` if it is not a word of the vocabulary."""
        return self._stoi.get(token, self.UNK_INDEX)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Token list -> index list; unknown words map to ``UNK_INDEX``.

        Literal ``<pad>``, ``<s>`` and ``</s>`` in the input are treated as unknown words,
        so that text can never inject structure tokens; ``<unk>`` maps to ``UNK_INDEX``.
        """
        lookup, unk = self._encode_lookup(), self.UNK_INDEX
        return [lookup(tok, unk) for tok in tokens]

    def _encode_lookup(self) -> Callable[[str, int], int]:
        """``dict.get`` of token -> index with ``<pad>``, ``<s>``, ``</s>`` sent to UNK."""
        if self._encode_map is None:
            self._encode_map = dict(self._stoi)
            for special in (self.PAD, self.BOS, self.EOS):
                self._encode_map[special] = self.UNK_INDEX
        return self._encode_map.get

    def decode(
        self,
        ids: Iterable[int],
        strip_special: bool = True,
        *,
        stop_at_eos: bool = False,
    ) -> list[str]:
        """Index list (or 1-D tensor) -> token list.

        Args:
            ids: indices, e.g. one row of a batch or a generated sequence.
            strip_special: drop ``<pad>``, ``<s>`` and ``</s>`` (``<unk>`` is kept: it stands
                for a word).
            stop_at_eos: stop at the first ``</s>`` (for generated sequences).
        """
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out: list[str] = []
        n = len(self._itos)
        for raw in ids:
            i = int(raw)
            if not 0 <= i < n:
                raise ValueError(f"token index {i} out of range for a vocabulary of {n}")
            if i == self.EOS_INDEX and stop_at_eos:
                break
            if strip_special and i < self.UNK_INDEX:
                continue
            out.append(self._itos[i])
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write one token per line (UTF-8), atomically (:mod:`cyclevae.atomic`)."""
        write_text_atomic(path, "\n".join(self._itos) + "\n", what="vocabulary file")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a file written by :meth:`save`.

        Raises :class:`UserError` naming the file if it is missing, not UTF-8, empty, has a
        blank line, lacks the specials in positions 0-3, or repeats a token.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{path}: vocabulary file not found") from None
        except IsADirectoryError:
            raise UserError(f"{path}: is a directory, expected a vocabulary file") from None
        except UnicodeDecodeError as e:
            raise UserError(f"{path}: vocabulary file is not valid UTF-8 ({e.reason})") from None
        except OSError as e:
            raise UserError(f"{path}: cannot read vocabulary file ({e.strerror})") from None
        lines = text.splitlines()
        if not lines:
            raise UserError(f"{path}: vocabulary file is empty")
        for lineno, token in enumerate(lines, start=1):
            if not token.strip() or len(token.split()) != 1 or token != token.strip():
                raise UserError(f"{path}, line {lineno}: expected one token without "
                                f"whitespace, got {token!r}")
        if tuple(lines[:4]) != cls.SPECIALS:
            raise UserError(f"{path}: expected the special tokens {' '.join(cls.SPECIALS)} on "
                            f"lines 1-4, got {' '.join(lines[:4])}")
        seen: dict[str, int] = {}
        for lineno, token in enumerate(lines, start=1):
            if token in seen:
                raise UserError(f"{path}, line {lineno}: duplicate token {token!r} "
                                f"(first on line {seen[token]})")
            seen[token] = lineno
        return cls(lines[4:])
