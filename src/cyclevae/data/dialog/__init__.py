"""Dialog data: conversation files -> normalised utterances -> (context, response) batches.

One module per step, each importing only those before it:

- :mod:`.text`: SwDA transcription text cleaned to look like Zhao et al.'s (2017), the
  ``zhao`` preparation (unfinished utterances joined, repeated words collapsed), the
  tokeniser (NLTK's ``WordPunctTokenizer``, as Zhao's code);
- :mod:`.reading`: conversations files (JSON lines, swda or zhao layout) with their topics
  and callers' metadata -> :class:`Conversation`;
- :mod:`.leakage`: training conversations that are (almost) evaluation conversations;
- :mod:`.vocabularies`: words (with ``<d>``), dialog acts and topics of the training data;
- :mod:`.batch`: :class:`DialogBatch`, each distinct utterance of a batch stored once;
- :mod:`.examples`: conversations -> :class:`DialogCorpus` of (context, response) examples;
- :mod:`.batcher`: :class:`DialogBatcher`, the seeded batches of an epoch;
- :mod:`.prepare`: :func:`prepare_dialog_data`, all of the above for a run's files;
- :mod:`.settings`: :class:`DialogDataConfig`, the ``data.dialog`` section of a run's config.

A run's data (files named by its config, statistics, batching with the run's seed) is read by
its family, :mod:`cyclevae.families.dialog`; a typed context for ``cyclevae generate
--respond`` by :mod:`cyclevae.inference`.
"""

from .batch import DialogBatch
from .batcher import DialogBatcher
from .examples import DialogCorpus, encode_dialogs, encode_utterance
from .leakage import drop_leaked, find_leaked
from .prepare import DialogData, prepare_dialog_data
from .reading import (
    CALLER_DIM,
    CALLER_KEYS,
    Conversation,
    ReadStats,
    Utterance,
    check_features,
    parse_caller,
    parse_topic,
    read_conversations,
)
from .settings import DialogDataConfig
from .text import (
    FILLERS,
    PREPARATIONS,
    clean_swda_text,
    collapse_repeats,
    merge_unfinished,
    normalization_examples,
    tokenize_utterance,
)
from .vocabularies import (
    DIALOG_START,
    TOPIC_UNK,
    build_act_vocabulary,
    build_topic_vocabulary,
    build_vocabulary,
)

__all__ = [
    "CALLER_DIM",
    "CALLER_KEYS",
    "DIALOG_START",
    "FILLERS",
    "PREPARATIONS",
    "TOPIC_UNK",
    "Conversation",
    "DialogBatch",
    "DialogBatcher",
    "DialogCorpus",
    "DialogData",
    "DialogDataConfig",
    "ReadStats",
    "Utterance",
    "build_act_vocabulary",
    "build_topic_vocabulary",
    "build_vocabulary",
    "check_features",
    "clean_swda_text",
    "collapse_repeats",
    "drop_leaked",
    "encode_dialogs",
    "encode_utterance",
    "find_leaked",
    "merge_unfinished",
    "normalization_examples",
    "parse_caller",
    "parse_topic",
    "prepare_dialog_data",
    "read_conversations",
    "tokenize_utterance",
]
