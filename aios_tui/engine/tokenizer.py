"""The byte-level tokenizer of the built-in ``tiny`` model, and the checks that a model's own
tokenizer is there and turns text into tokens.

Ids 0-255 are the byte values themselves, then <pad> 256, <s> 257, </s> 258 (``aios_tui.tiny``).
It is a ``tokenizers`` byte-level model with no merges wrapped in transformers' fast tokenizer,
so ``save_pretrained`` writes a plain ``tokenizer.json`` that ``AutoTokenizer.from_pretrained``
loads offline with no custom code.
"""

from __future__ import annotations

from pathlib import Path

from aios_tui.tiny import BOS_ID, BYTE_VOCAB, EOS_ID, PAD_ID

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
TINY_MAX_LEN = 2048  # the tiny config's max_position_embeddings

# What transformers reads a tokenizer from: its own serialisation, a BPE or WordPiece vocabulary,
# a sentencepiece or tiktoken model.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "vocab.txt",
                   "*.model", "*.tiktoken")
PROBE_TEXT = "Hello world. 123"


def missing_tokenizer_problem(name: str) -> str | None:
    """Why the model directory ``name`` cannot give a tokenizer: it holds none of its files.

    Without them transformers does not refuse: it builds an empty tokenizer from config.json's
    model type, which encodes every text to nothing, and the run would blame the dataset."""
    path = Path(name).expanduser()
    if not path.is_dir() or any(next(path.glob(pattern), None) for pattern in TOKENIZER_FILES):
        return None
    return (f"model.model: {name} has no tokenizer (no tokenizer.json, tokenizer_config.json, "
            "vocab/merges or sentencepiece model); copy the tokenizer files from the base model "
            "into it, or point --model at a directory that has them")


def empty_tokenizer_problem(tokenizer, source: str) -> str | None:
    """Why ``tokenizer`` (read from ``source``) cannot be trained with: it encodes text to nothing."""
    if tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]:
        return None
    return (f"model.model: the tokenizer in {source} turns text into no tokens ({len(tokenizer)} in its "
            "vocabulary: its files are incomplete); copy the tokenizer files from the base model "
            "into it, or point --model at a directory that has them")


def vocab_problem(tokenizer, embeddings: int | None, source: str) -> str | None:
    """Why ``tokenizer`` does not fit a model with ``embeddings`` token embeddings: its ids past
    them index beyond the embedding (an IndexError on the CPU, a device-side assert on CUDA)."""
    if not embeddings or len(tokenizer) <= embeddings:
        return None
    return (f"model.model: the tokenizer in {source} has {len(tokenizer):,} tokens but the model's embedding "
            f"only {embeddings:,}; the tokenizer belongs to another model: copy the tokenizer files "
            "of this model's base into it, or resize its embeddings to the tokenizer and save it again")


def _byte_to_char() -> dict[int, str]:
    """The GPT-2 byte -> printable character table that byte-level pre-tokenizers use."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def byte_tokenizer():
    """A fresh byte-level tokenizer (a transformers ``PreTrainedTokenizerFast``)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: b for b, ch in _byte_to_char().items()}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    # Added in this order so they get ids 256, 257, 258.
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (PAD, BOS, EOS)])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, bos_token=BOS, eos_token=EOS,
                                  model_max_length=TINY_MAX_LEN)
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (PAD_ID, BOS_ID, EOS_ID)
    assert len(tok) == BYTE_VOCAB + 3
    return tok

