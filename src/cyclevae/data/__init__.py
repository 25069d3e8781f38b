"""Data: corpus files -> :class:`Vocabulary` -> equal-length batches.

``sources`` knows the paper's data sets (``ptb:train`` etc.), ``corpus`` reads files,
``vocab`` maps tokens to indices, ``batching`` cuts encoded sentences into batches.
"""

from .batching import BatchedCorpus, encode_corpus
from .corpus import CorpusStats, read_labelled, read_sentences
from .sources import DATASETS, data_dir, download_dataset, file_sha256, resolve_data_path
from .vocab import Vocabulary

__all__ = [
    "DATASETS",
    "BatchedCorpus",
    "CorpusStats",
    "Vocabulary",
    "data_dir",
    "download_dataset",
    "encode_corpus",
    "file_sha256",
    "read_labelled",
    "read_sentences",
    "resolve_data_path",
]
