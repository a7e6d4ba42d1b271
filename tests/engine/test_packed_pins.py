"""The packed blocks of small datasets pinned to fixed fingerprints: how a file is read,
tokenised and packed may change for speed or memory, never what a run trains on (a changed
fingerprint would also refuse every resume of a run made before)."""

from __future__ import annotations

import json
import random

import pytest

from aios_tui.config import resolve


def _words(n: int, seed: int) -> str:
    rng = random.Random(seed)
    vocab = ["adapter", "rank", "alpha", "loss", "step", "é", "日本", "\t", "  ", "1234", "x"]
    lines = []
    for _ in range(n):
        lines.append(" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 12))))
    return "\n".join(lines) + "\n"


def _files(tmp_path):
    plain = tmp_path / "plain.txt"  # over two 256 KiB pieces, so it is tokenised in several
    plain.write_text(_words(12000, 1), encoding="utf-8")
    mixed = tmp_path / "mixed.jsonl"
    rng = random.Random(2)
    rows = [{"text": _words(rng.randint(1, 4), i)} if i % 3 else
            {"prompt": _words(1, -i), "completion": _words(rng.randint(0, 2), i)} for i in range(300)]
    rows.insert(5, {"text": ""})
    mixed.write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n", encoding="utf-8")
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"{a}+{b}"}, {"role": "assistant", "content": str(a + b)}]}) + "\n"
        for a in range(20) for b in range(7)), encoding="utf-8")
    return {"plain": plain, "mixed": mixed, "chat": chat}


PINS = {
    ("plain", 64, 0.1): ("8a8b39478166329e32111fc31525a5ac", 4742, 527, 337211),
    ("plain", 50, 0.0): ("037f2de1c6c5c31a3b49aa33caf74e1b", 6745, 0, 337211),
    ("mixed", 32, 0.2): ("e3483f6db05d47349fa3e930391a9a0b", 477, 119, 19045),
    ("chat", 16, 0.1): ("8484a02c7dab2066dd255cb2a0163b0e", 191, 21, 3381),
}


def _setup(tmp_path, name, block, eval_fraction):
    from aios_tui.engine.tokenizer import byte_tokenizer

    tok = byte_tokenizer()
    tok.chat_template = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>{% endfor %}"
                         "{% if add_generation_prompt %}<s>assistant\n{% endif %}")
    cfg = resolve(overrides={"dataset_file": str(_files(tmp_path)[name]), "max_seq_len": block,
                             "eval_fraction": eval_fraction, "seed": 5})
    return tok, cfg


@pytest.mark.parametrize("name,block,eval_fraction", list(PINS))
def test_packed_blocks_are_pinned(tmp_path, name, block, eval_fraction):
    from aios_tui.engine.data import load_packed
    from aios_tui.engine.train import data_digest

    tok, cfg = _setup(tmp_path, name, block, eval_fraction)
    data = load_packed(cfg, tok)
    got = (data_digest(data), data.n_train, data.n_eval, data.summary["tokens"])
    assert got == PINS[(name, block, eval_fraction)]


@pytest.mark.parametrize("name,block,eval_fraction", list(PINS))
def test_blocks_from_the_token_cache_are_the_pinned_ones(tmp_path, monkeypatch, capsys, name, block, eval_fraction):
    # text, prompt/completion and chat: a second start packs the cached stream, never the file
    from aios_tui.engine import data as data_mod
    from aios_tui.engine import token_cache
    from aios_tui.engine.train import data_digest

    monkeypatch.setattr(token_cache, "MIN_BYTES", 0)
    tok, cfg = _setup(tmp_path, name, block, eval_fraction)
    first = data_mod.load_packed(cfg, tok)
    assert "tokens from cache" not in capsys.readouterr().err

    def no_tokenising(*a, **k):
        raise AssertionError("tokenised again")

    monkeypatch.setattr(data_mod, "tokenize_documents", no_tokenising)
    again = data_mod.load_packed(cfg, tok)
    assert "note: tokens from cache (" in capsys.readouterr().err
    want = PINS[(name, block, eval_fraction)]
    for data in (first, again):
        assert (data_digest(data), data.n_train, data.n_eval, data.summary["tokens"]) == want
    assert again.summary == first.summary
