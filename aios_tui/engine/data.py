"""Tokenising and packing a dataset into fixed-length blocks, and the resumable block order.

Every document becomes ``[bos] + prompt + text + [eos]``; the documents are joined into one
stream and cut into ``max_seq_len`` blocks (the last one padded). Labels equal the input ids,
except -100 on bos, prompts and padding, so the loss falls only on what the model should
produce. A chat conversation is rendered by the model's chat template instead, which frames it
itself (no bos/eos added), with labels on its assistant turns only (``aios_tui.data.chat``).
The stream of a large file is kept in a token cache (``token_cache``), so a later start or resume
packs it without tokenising again; what changes the stream must bump ``token_cache.FORMAT``.
Blocks are split into train and eval by the run's seed. The train order is a fresh seeded
permutation per epoch, so the data position is two integers (epoch, cursor): that is
all a checkpoint needs to continue with exactly the batches an uninterrupted run would see.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aios_tui import notes
from aios_tui.config import RunConfig
from aios_tui.data import Document, dataset_path, read_documents
from aios_tui.data.chat import render_all
from aios_tui.engine import token_cache
from aios_tui.errors import UserError

IGNORE = -100
IDS = np.int32  # every vocabulary fits; half the memory of int64 on a dataset of many GB
_TEXT_CHUNK = 1 << 18  # plain text is tokenised in ~256 KiB pieces cut at line ends
# Texts go to the tokenizer in batches of at most this many pieces and characters: large enough
# that its per-call cost and threads pay off, small enough that its lists of Python ints (tens of
# bytes a token) stay a few hundred MB on a file of many GB.
_BATCH_PIECES, _BATCH_CHARS = 1024, 1 << 22


@dataclass
class PackedData:
    train_ids: torch.Tensor      # [n_train, L] int32
    train_labels: torch.Tensor   # [n_train, L] int32
    eval_ids: torch.Tensor       # [n_eval, L] int32 (n_eval may be 0)
    eval_labels: torch.Tensor
    summary: dict = field(default_factory=dict)

    @property
    def n_train(self) -> int:
        return int(self.train_ids.shape[0])

    @property
    def n_eval(self) -> int:
        return int(self.eval_ids.shape[0])


def _split_text(text: str, size: int = _TEXT_CHUNK):
    """``text`` in pieces of about ``size`` characters cut at line ends, one at a time."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            nl = text.rfind("\n", start, end)
            end = nl + 1 if nl > start else end
        yield text[start:end]
        start = end


def _encode_many(tokenizer, texts: list[str]) -> list[np.ndarray]:
    if not texts:
        return []
    out = []
    for i in range(0, len(texts), 1024):
        out += [np.asarray(ids, dtype=IDS) for ids in _encode(tokenizer, texts[i:i + 1024])]
    return out


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    # verbose=False: pieces longer than the model's context are expected; packing cuts them
    return tokenizer(texts, add_special_tokens=False, split_special_tokens=True, verbose=False)["input_ids"]


def _encode_chat(tokenizer, pieces: list[tuple[str, bool]]) -> tuple[np.ndarray, np.ndarray]:
    """One rendered conversation's ids and labels. The template's markers are meant as special
    tokens, so they are not split (as transformers' own apply_chat_template(tokenize=True))."""
    if not tokenizer.is_fast:  # no offsets: each piece on its own
        enc = tokenizer([text for text, _ in pieces], add_special_tokens=False, verbose=False)["input_ids"]
        ids = [np.asarray(p, dtype=IDS) for p in enc]
        labels = [p if trained else np.full_like(p, IGNORE) for p, (_, trained) in zip(ids, pieces)]
        return np.concatenate(ids), np.concatenate(labels)
    # The whole text at once, so the tokens are those of the conversation as the template wrote
    # it (a sentencepiece tokenizer would start each piece with a space of its own); a token is
    # trained when its first character lies in an assistant turn.
    text = "".join(t for t, _ in pieces)
    trained = np.concatenate([np.full(len(t), flag) for t, flag in pieces])
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    ids = np.asarray(enc["input_ids"], dtype=IDS)
    starts = np.asarray([start for start, _ in enc["offset_mapping"]], dtype=np.int64)
    on = trained[np.minimum(starts, len(text) - 1)] if len(ids) else np.zeros(0, dtype=bool)
    return ids, np.where(on, ids, IGNORE)


def tokenize_chats(docs: list[Document], tokenizer, source: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    """One stream of ids and its labels for chat documents (see ``tokenize_documents``)."""
    return _joined([_encode_chat(tokenizer, pieces) for pieces in render_all(docs, tokenizer, source, label)])


def _pieces(docs: list[Document], bos, eos):
    """What the stream is made of, in order: (text, trained) to tokenise, or (id, trained) for
    a special token."""
    for doc in docs:
        if bos is not None and bos != eos:
            yield bos, False
        if doc.prompt:
            yield doc.prompt, False
        # A long plain-text document is tokenised piece by piece to bound memory.
        for piece in _split_text(doc.text):
            yield piece, True
        if eos is not None:
            yield eos, True


def _batches(pieces):
    batch, texts, chars = [], 0, 0
    for piece in pieces:
        batch.append(piece)
        if isinstance(piece[0], str):
            texts += 1
            chars += len(piece[0])
            if texts >= _BATCH_PIECES or chars >= _BATCH_CHARS:
                yield batch
                batch, texts, chars = [], 0, 0
    if batch:
        yield batch


def _encode_batch(tokenizer, batch: list) -> tuple[np.ndarray, np.ndarray]:
    """The ids and labels of a batch of pieces, as one array each."""
    texts = [text for text, _ in batch if isinstance(text, str)]
    encoded = iter(_encode(tokenizer, texts) if texts else [])
    seqs = [next(encoded) if isinstance(item, str) else (item,) for item, _ in batch]
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    ids = np.fromiter(itertools.chain.from_iterable(seqs), dtype=IDS, count=int(lengths.sum()))
    labels = ids.copy()
    labels[np.repeat(np.fromiter((not trained for _, trained in batch), dtype=bool, count=len(batch)),
                     lengths)] = IGNORE
    return ids, labels


def tokenize_documents(docs: list[Document], tokenizer, source: str = "",
                       label: str = "") -> tuple[np.ndarray, np.ndarray]:
    """One stream of ids and its labels for all documents (``source`` names the tokenizer and
    ``label`` the dataset in a chat template's refusals)."""
    if docs and docs[0].turns:  # a file is chat throughout or not at all (data.reader)
        return tokenize_chats(docs, tokenizer, source, label)
    # Many documents go to the tokenizer at once (one call each costs more than the tokenising
    # of a short one); each text is tokenised on its own all the same, so the ids are the same.
    parts = [_encode_batch(tokenizer, batch)
             for batch in _batches(_pieces(docs, tokenizer.bos_token_id, tokenizer.eos_token_id))]
    return _joined(parts)


def _joined(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The parts' ids and labels end to end; each part is let go once copied."""
    ids = np.empty(sum(len(p[0]) for p in parts), dtype=IDS)
    labels = np.empty_like(ids)
    at = 0
    parts.reverse()
    while parts:
        part_ids, part_labels = parts.pop()
        ids[at:at + len(part_ids)] = part_ids
        labels[at:at + len(part_ids)] = part_labels
        at += len(part_ids)
    return ids, labels


def pack(ids: np.ndarray, labels: np.ndarray, block: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(1, -(-len(ids) // block))
    block_ids = np.full(n * block, pad_id, dtype=IDS)
    block_ids[:len(ids)] = ids
    block_labels = np.full(n * block, IGNORE, dtype=IDS)
    block_labels[:len(labels)] = labels
    return torch.from_numpy(block_ids).view(n, block), torch.from_numpy(block_labels).view(n, block)


def split_blocks(n: int, eval_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, eval indices): a seeded shuffle, the first share held out for eval."""
    order = list(range(n))
    random.Random(f"split-{seed}").shuffle(order)
    n_eval = 0
    if eval_fraction > 0 and n >= 2:
        n_eval = min(n - 1, max(1, round(n * eval_fraction)))
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def load_packed(cfg: RunConfig, tokenizer) -> PackedData:
    path = dataset_path(cfg.data.dataset_file)
    slot = token_cache.slot_for(path, tokenizer, _TEXT_CHUNK)
    hit = token_cache.load(slot) if slot is not None else None
    from_cache = hit is not None
    if hit is not None:
        docs, ids, labels, n_docs, chat = None, hit.ids, hit.labels, hit.documents, hit.chat
        notes.say(f"tokens from cache ({n_docs:,} document{'' if n_docs == 1 else 's'}, {len(ids):,} tokens, "
                  f"{hit.where}); {token_cache.ENV}=off tokenises afresh")
        del hit  # else it would keep the stream alive through the packing
    else:
        docs = read_documents(path)
        ids, labels = tokenize_documents(docs, tokenizer, cfg.model.model, str(path))
        n_docs, chat = len(docs), bool(docs[0].turns)  # a file is chat throughout or not at all
    if int((labels[1:] != IGNORE).sum()) < 1:
        docs = docs if docs is not None else read_documents(path)
        sample = next((d.text[:1000] for d in docs if d.text.strip()), None)
        if sample is not None and not _encode_many(tokenizer, [sample])[0].size:
            # the text is there: it is the tokenizer that makes nothing of it
            source = getattr(tokenizer, "name_or_path", "") or "of the model"
            raise UserError(f"model.model: the tokenizer {source} turns the dataset's text into no tokens; "
                            "point --model at a model whose tokenizer files are complete")
        raise UserError(f"dataset {path}: every token is in a prompt, so none carries a loss")
    if n_docs > 1 and not chat and tokenizer.bos_token_id is None and tokenizer.eos_token_id is None:
        notes.say("the tokenizer has no bos or eos token, so the documents run on into one another with "
                  "nothing between them; a model trained so never learns where a text ends")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    n_tokens = len(ids)
    del docs  # the text, the stream and the blocks are never all held at once
    if slot is not None and not from_cache:
        token_cache.store(slot, ids, labels, n_docs, chat)
    block_ids, block_labels = pack(ids, labels, cfg.data.max_seq_len, pad_id)
    del ids, labels
    train_idx, eval_idx = split_blocks(block_ids.shape[0], cfg.data.eval_fraction, cfg.train.seed)
    if eval_idx:
        data = PackedData(block_ids[train_idx], block_labels[train_idx],
                          block_ids[eval_idx], block_labels[eval_idx])
    else:  # every block trains, in order: the blocks themselves, not a copy
        data = PackedData(block_ids, block_labels, block_ids[:0], block_labels[:0])
    data.summary = {
        "path": str(Path(path).resolve()), "documents": n_docs, "tokens": int(n_tokens),
        "train_blocks": data.n_train, "eval_blocks": data.n_eval, "block": cfg.data.max_seq_len,
        "chat": chat,  # the console's "try it" asks such a run with --chat
    }
    return data


def size_notes(data: PackedData, cfg: RunConfig) -> list[str]:
    """A line when the data is smaller than one block (the rest of it is padding) or leaves no
    block for eval (eval_loss stays empty): the run goes ahead, and would not say so otherwise."""
    name = cfg.data.dataset_file.strip()
    label = (Path(name).name if "://" not in name else name) if name else "the bundled sample"
    tokens, block = data.summary.get("tokens", 0), data.summary.get("block", cfg.data.max_seq_len)
    short = tokens < block
    no_eval = data.n_eval == 0 and cfg.data.eval_fraction > 0 and cfg.train.eval_every > 0
    if not (short or no_eval):
        return []
    size = (f"gives {tokens} tokens, less than one {block}-token block" if short
            else f"makes {data.n_train + data.n_eval} {block}-token block(s)")
    return [f"{label} {size}" + ("; nothing is held out for eval (eval_loss stays empty)" if no_eval else "")]


def encode_prompt(tokenizer, text: str, chat: bool = False) -> list[int]:
    """A prompt for sampling, framed as the documents were in training: with ``chat``, one user
    turn the chat template frames (markers and all, as in training), else bos + the text."""
    if chat:
        from aios_tui.data.chat import generation_prompt

        framed = generation_prompt(tokenizer, text)
        return list(tokenizer(framed, add_special_tokens=False, verbose=False)["input_ids"])
    # verbose=False: transformers warns past model_max_length; check_room refuses such a prompt itself
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return ([bos] if bos is not None and bos != eos else []) + list(ids)


class BlockSampler:
    """Block indices for each micro-batch: a seeded permutation per epoch, resumable exactly."""

    def __init__(self, n_blocks: int, seed: int):
        if n_blocks < 1:
            raise ValueError("no blocks to sample from")
        self.n = n_blocks
        self.seed = seed
        self.epoch = 0
        self.cursor = 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(self.n))
        random.Random(f"order-{self.seed}-{epoch}").shuffle(order)
        return order

    def take(self, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            if self.cursor >= self.n:
                self.epoch += 1
                self.cursor = 0
                self._order = self._permutation(self.epoch)
            step = min(count - len(out), self.n - self.cursor)
            out += self._order[self.cursor:self.cursor + step]
            self.cursor += step
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor, "n": self.n, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state["n"] != self.n or state["seed"] != self.seed:
            raise UserError(f"the dataset now packs into {self.n} training blocks (seed {self.seed}); "
                            f"the checkpoint was made with {state['n']} (seed {state['seed']}); "
                            "resume needs the same dataset, max_seq_len, eval_fraction and seed")
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._order = self._permutation(self.epoch)


def make_batch(ids: torch.Tensor, labels: torch.Tensor, index: list[int], pad_id: int) -> dict:
    """A micro-batch on the CPU, with its token counts worked out here so the loop never syncs."""
    x = ids[index].long()
    y = labels[index].long()
    return {
        "input_ids": x,
        "labels": y,
        "n_targets": int((y[:, 1:] != IGNORE).sum()),
        "n_tokens": int((x != pad_id).sum()) if pad_id is not None else x.numel(),
    }


def eval_batches(data: PackedData, batch_size: int, n_batches: int, pad_id: int) -> list[dict]:
    """The fixed eval micro-batches: up to ``n_batches * batch_size`` eval blocks, each once."""
    order = list(range(min(n_batches * batch_size, data.n_eval)))
    return [make_batch(data.eval_ids, data.eval_labels, order[i:i + batch_size], pad_id)
            for i in range(0, len(order), batch_size)]
