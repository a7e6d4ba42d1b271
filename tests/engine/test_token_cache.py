"""The token cache: a large dataset is tokenised once, and what comes back is exactly what a
fresh tokenise gives; a stale, torn or unwritable cache costs at most a note."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from aios_tui.config import resolve


@pytest.fixture
def cached(monkeypatch):
    """Every dataset file counts as large enough to cache."""
    from aios_tui.engine import token_cache

    monkeypatch.setattr(token_cache, "MIN_BYTES", 0)
    return token_cache


def _entries() -> list[Path]:
    root = Path(os.environ["AIOS_TUI_TOKEN_CACHE"])
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def _load(path, block=32, **extra):
    from aios_tui.engine.data import load_packed
    from aios_tui.engine.tokenizer import byte_tokenizer

    return load_packed(resolve(overrides={"dataset_file": str(path), "max_seq_len": block, **extra}),
                       byte_tokenizer())


def _blocks(data):
    from aios_tui.engine.train import data_digest

    return data_digest(data), data.n_train, data.n_eval, data.summary


def test_small_files_and_the_sample_are_not_cached(text_file, capsys):
    _load(text_file)
    _load("")
    assert _entries() == [] and "token cache" not in capsys.readouterr().err


def test_one_entry_serves_every_block_size_and_split(cached, text_file, capsys):
    fresh = {b: _blocks(_load(text_file, b, eval_fraction=0.2)) for b in (16, 48)}
    assert len(_entries()) == 1
    capsys.readouterr()
    for b in (16, 48):
        assert _blocks(_load(text_file, b, eval_fraction=0.2)) == fresh[b]
    err = capsys.readouterr().err
    assert err.count("note: tokens from cache (1 document, ") == 2, err
    meta = json.loads((_entries()[0] / "meta.json").read_text())
    assert np.load(_entries()[0] / "ids.npy").dtype == np.uint16 and meta["tokens"] == fresh[16][3]["tokens"]


def test_a_changed_file_or_tokenizer_is_a_miss(cached, text_file, tmp_path, capsys):
    from aios_tui.engine.data import load_packed
    from aios_tui.engine.tokenizer import byte_tokenizer

    data = tmp_path / "data.txt"
    data.write_text(text_file.read_text())
    before = _blocks(_load(data))
    data.write_text(text_file.read_text().replace("count", "COUNT"))  # same size, other text
    after = _blocks(_load(data))
    assert after[0] != before[0] and len(_entries()) == 2
    tok = byte_tokenizer()
    tok.add_tokens(["count"])  # tokenises the same file differently
    load_packed(resolve(overrides={"dataset_file": str(text_file), "max_seq_len": 32}), tok)
    assert len(_entries()) == 3 and "tokens from cache" not in capsys.readouterr().err
    # the same bytes under another name are the same entry
    assert _blocks(_load(text_file))[:3] == before[:3] and len(_entries()) == 3
    assert "tokens from cache" in capsys.readouterr().err


@pytest.fixture
def reads(cached, monkeypatch):
    """Every file counts as settled (written long enough ago to trust its stat); returns the list
    of files the cache read to digest."""
    monkeypatch.setattr(cached, "SETTLED_NS", -(1 << 62))
    seen, digest = [], cached._file_digest
    monkeypatch.setattr(cached, "_file_digest", lambda path: seen.append(path) or digest(path))
    return seen


def test_a_hit_on_an_unchanged_file_does_not_read_it_again(reads, text_file, tmp_path, capsys):
    data = tmp_path / "data.txt"
    data.write_bytes(text_file.read_bytes())
    want = _blocks(_load(data))
    assert reads == [data]
    capsys.readouterr()
    assert _blocks(_load(data)) == want and _blocks(_load(data, 48)) == _blocks(_load(data, 48))
    assert reads == [data] and "tokens from cache" in capsys.readouterr().err


def test_a_brain_s_dataset_record_takes_the_remembered_digest(reads, cached, text_file, tmp_path):
    import hashlib

    data = tmp_path / "data.txt"
    data.write_bytes(text_file.read_bytes())
    _load(data)
    want = hashlib.sha256(data.read_bytes()).hexdigest()
    assert cached.dataset_sha256(data) == want and reads == [data]  # not read a second time
    data.write_bytes(data.read_bytes() + b"more")
    assert cached.dataset_sha256(data) == hashlib.sha256(data.read_bytes()).hexdigest()
    assert reads == [data, data]


def _rewrite(path: Path, how: str, text: str) -> None:
    """``path`` given other contents of the same size, with its old mtime put back."""
    old = path.stat()
    if how == "in place":
        with open(path, "r+b") as f:
            f.write(text.encode())
    else:
        (path.parent / "new").write_text(text)
        os.replace(path.parent / "new", path)
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))
    while path.stat().st_ctime_ns == old.st_ctime_ns:  # as any write a clock tick later would have
        os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns))


@pytest.mark.parametrize("how", ["in place", "replaced"])
def test_a_rewritten_file_never_hits_the_stale_entry(reads, text_file, tmp_path, monkeypatch, how):
    data = tmp_path / "data.txt"
    data.write_text(text_file.read_text())
    _load(data)
    _rewrite(data, how, text_file.read_text().replace("count", "COUNT"))
    after = _blocks(_load(data))
    assert reads == [data, data] and len(_entries()) == 2
    monkeypatch.setenv("AIOS_TUI_TOKEN_CACHE", "off")
    assert after == _blocks(_load(data))  # what a fresh tokenise of the new text gives


def test_a_file_written_moments_ago_is_read_again(cached, text_file, tmp_path, monkeypatch):
    # its stat may not change if it is written again within the same clock tick
    seen, digest = [], cached._file_digest
    monkeypatch.setattr(cached, "_file_digest", lambda path: seen.append(path) or digest(path))
    data = tmp_path / "data.txt"
    data.write_bytes(text_file.read_bytes())
    _load(data)
    _load(data)
    assert seen == [data, data] and not (_entries()[0].parent / cached.DIGESTS).exists()


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-mask", "bad-meta"])
def test_a_torn_or_corrupt_entry_is_ignored_and_replaced(cached, text_file, capsys, damage):
    want = _blocks(_load(text_file))
    entry = _entries()[0]
    ids = entry / "ids.npy"
    if damage == "flip":
        raw = bytearray(ids.read_bytes())
        raw[-3] ^= 0x01
        ids.write_bytes(bytes(raw))
    elif damage == "truncate":
        ids.write_bytes(ids.read_bytes()[:-10])
    elif damage == "no-mask":
        (entry / "mask.npy").unlink()
    else:
        (entry / "meta.json").write_text("{")
    capsys.readouterr()
    assert _blocks(_load(text_file)) == want
    assert "tokens from cache" not in capsys.readouterr().err
    assert _blocks(_load(text_file)) == want  # the replacement is a good entry
    assert "tokens from cache" in capsys.readouterr().err


def test_ids_beyond_uint16_round_trip_exactly(cached, tmp_path):
    from aios_tui.engine.token_cache import Slot, load, store

    src = tmp_path / "src.txt"
    src.write_text("x")
    st = src.stat()
    rng = np.random.default_rng(0)
    for high, dtype in ((1 << 16, np.uint16), (200_000, np.int32)):
        ids = rng.integers(0, high, size=1003, dtype=np.int32)
        labels = np.where(rng.random(1003) < 0.3, -100, ids).astype(np.int32)
        slot = Slot(tmp_path / "cache", f"k{high}", src, (st.st_size, st.st_mtime_ns))
        store(slot, ids, labels, documents=7)
        hit = load(slot)
        assert hit is not None and hit.ids.dtype == dtype and hit.documents == 7
        assert np.array_equal(hit.ids, ids) and np.array_equal(hit.labels, labels)


def test_the_entries_used_longest_ago_go_first(cached, tmp_path, monkeypatch):
    from aios_tui.engine.token_cache import Slot, load, store

    src = tmp_path / "src.txt"
    src.write_text("x")
    st = src.stat()
    root = tmp_path / "cache"
    ids = np.arange(1000, dtype=np.int32)
    slots = [Slot(root, f"k{i}", src, (st.st_size, st.st_mtime_ns)) for i in range(4)]
    for i, slot in enumerate(slots[:3]):
        store(slot, ids, ids, documents=1)
        os.utime(slot.dir / "meta.json", (1000 + i, 1000 + i))
    assert load(slots[0]) is not None  # now the most recently used
    entry = sum(f.stat().st_size for f in slots[0].dir.iterdir())
    monkeypatch.setenv("AIOS_TUI_TOKEN_CACHE_GB", str(3.5 * entry / (1 << 30)))
    store(slots[3], ids, ids, documents=1)
    assert sorted(p.name for p in root.iterdir()) == ["k0", "k2", "k3"]


def test_an_unwritable_cache_costs_one_note_and_off_writes_nothing(cached, text_file, tmp_path, monkeypatch, capsys):
    want = _blocks(_load(text_file, eval_fraction=0.0))
    capsys.readouterr()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("AIOS_TUI_TOKEN_CACHE", str(blocker / "tokens"))  # cannot be created
    assert _blocks(_load(text_file, eval_fraction=0.0)) == want
    err = capsys.readouterr().err
    assert err.count("note: ") == 1 and f"note: token cache {blocker / 'tokens'}: not written (" in err, err
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("AIOS_TUI_TOKEN_CACHE", "off")
    assert _blocks(_load(text_file, eval_fraction=0.0)) == want
    monkeypatch.delenv("AIOS_TUI_TOKEN_CACHE")
    assert not (tmp_path / "xdg-cache").exists()
    _load(text_file, eval_fraction=0.0)
    monkeypatch.setenv("AIOS_TUI_TOKEN_CACHE", str(tmp_path / "xdg-cache" / "aios-tui" / "tokens"))
    assert len(_entries()) == 1  # (beside it the digest memo, once the file is old enough)


@pytest.mark.slow
def test_resume_reads_the_cache_and_still_refuses_changed_data(cached, make_cfg, text_file, tmp_path, cli):
    data = tmp_path / "data.txt"
    data.write_text(text_file.read_text())
    common = ["--model", str(make_cfg().model.model), "--dataset-file", str(data), "--max-seq-len", "32",
              "--batch-size", "4", "--steps", "4", "--device", "cpu", "--save-every", "0", "--eval-every", "0"]
    code, _, err = cli("train", *common, "--check")
    assert code == 0 and _entries() == [], err  # --check creates nothing, a cache entry included
    run = tmp_path / "run"
    code, _, err = cli("train", *common, "--run-dir", str(run), "--stop-after", "2", "--progress", "none")
    assert code == 0 and "tokens from cache" not in err and len(_entries()) == 1, err
    # the resume's tokenizer comes from the run's copy of the base: the same tokens, so a hit
    code, _, err = cli("train", "--resume", str(run), "--stop-after", "1", "--progress", "none")
    assert code == 0 and "note: tokens from cache (" in err, err
    data.write_text(text_file.read_text().replace("count", "COUNT"))  # same size, other text
    code, _, err = cli("train", "--resume", str(run), "--progress", "none")
    assert code == 2 and "its contents changed since step-000003" in err and "tokens from cache" not in err


def test_the_data_summary_says_whether_a_run_trains_on_chat_fresh_or_from_the_cache(tmp_path, cached):
    from aios_tui.engine.data import load_packed
    from aios_tui.engine.tokenizer import byte_tokenizer

    tok = byte_tokenizer()
    tok.chat_template = "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>{% endfor %}"
    chat = tmp_path / "chat.jsonl"
    chat.write_bytes(b"\xef\xbb\xbf\n" + "".join(json.dumps({"messages": [
        {"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}) + "\n"
        for i in range(40)).encode())
    old_mac = tmp_path / "old-mac.jsonl"  # bare CR line ends: its first "line" is the whole file
    old_mac.write_bytes(chat.read_bytes().replace(b"\n", b"\r"))
    text = tmp_path / "text.jsonl"
    text.write_text("".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(40)))
    for path, want in ((chat, True), (old_mac, True), (text, False)):
        cfg = resolve(overrides={"dataset_file": str(path), "max_seq_len": 32})
        fresh, again = load_packed(cfg, tok), load_packed(cfg, tok)
        assert (fresh.summary["chat"], again.summary["chat"]) == (want, want), path.name
    assert len(_entries()) == 3  # the second load of each came from the cache


def test_ctrl_c_while_an_entry_is_written_leaves_nothing_behind(cached, tmp_path, monkeypatch):
    """A half-written entry is neither an entry nor counted against the limit: it must go at once."""
    from aios_tui.engine import token_cache
    from aios_tui.engine.token_cache import Slot, store

    src = tmp_path / "src.txt"
    src.write_text("x")
    st = src.stat()
    root = tmp_path / "cache"
    written = token_cache._write_npy

    def interrupted(path, *args):
        written(path, *args)
        raise KeyboardInterrupt  # as Ctrl-C lands once the ids are on disk

    monkeypatch.setattr(token_cache, "_write_npy", interrupted)
    ids = np.arange(1000, dtype=np.int32)
    with pytest.raises(KeyboardInterrupt):
        store(Slot(root, "k", src, (st.st_size, st.st_mtime_ns)), ids, ids, documents=1)
    assert list(root.iterdir()) == []
