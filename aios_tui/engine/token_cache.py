"""Tokenised datasets kept on disk, so a dataset is tokenised once, not at every start and resume.

An entry is the token stream of one dataset file under one tokenizer, before packing (runs that
differ in max_seq_len, eval_fraction or seed share it): the ids (uint16 when they fit, else
int32), the loss mask bit-packed (a label is its id or -100, so the mask gives the labels back),
and the document and token counts. Its key is a digest of the file's bytes, of the tokenizer as
``save_pretrained`` writes it (vocabulary, merges, normaliser, added tokens, chat template), of the
bos/eos ids, the library versions and ``FORMAT``, so changed data or a changed tokenizer is a
miss and is tokenised afresh. The file's digest is remembered by the file's identity (device,
inode, size, mtime, ctime), so a start on an unchanged file of many GB does not read it again;
a file changed in any of those is read and digested afresh.

Where: ``$AIOS_TUI_TOKEN_CACHE`` (``off`` turns it off), else ``$XDG_CACHE_HOME/aios-tui/tokens``.
Only files of ``MIN_BYTES`` or more are cached. The whole stays under ``$AIOS_TUI_TOKEN_CACHE_GB``
GiB (default 20): the entries used longest ago go first. An entry is written in a temporary
directory then renamed into place, and checked against its checksum when read: a torn or corrupt
one is a miss (and is replaced). The cache is a convenience: a directory that cannot be written
costs one note, never the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Bump when what a dataset tokenises to changes (reading, framing, chunking, special tokens): old
# entries then miss instead of handing back the old tokens.
FORMAT = 3  # 2: an entry says whether its file holds conversations; 3: plain text's \r\n read as \n
MIN_BYTES = 16 << 20  # below this, tokenising takes about as long as reading an entry back
DEFAULT_GB = 20.0
ENV, SIZE_ENV = "AIOS_TUI_TOKEN_CACHE", "AIOS_TUI_TOKEN_CACHE_GB"
IGNORE = -100
_CHUNK = 1 << 24  # tokens converted at a time: bounds the copies on a dataset of many GB
_STALE_TMP_S = 24 * 3600  # a temporary directory this old was left by a writer that died
# The digests of dataset files by their identity (device, inode, size, mtime, ctime), so a start
# whose file is unchanged does not read many GB again to find its entry. Newest last, at most
# _MAX_DIGESTS; a dot name, so eviction passes it over.
DIGESTS = ".digests.json"
_MAX_DIGESTS = 1000
SETTLED_NS = 2_000_000_000


@dataclass
class Hit:
    ids: np.ndarray      # uint16 or int32, memory-mapped
    labels: np.ndarray   # int32
    documents: int
    where: Path
    chat: bool = False   # the file's records are conversations


@dataclass
class Slot:
    """Where the tokens of one file under one tokenizer live, or would."""
    root: Path
    key: str
    source: Path
    stat: tuple[int, int]  # size and mtime when digested: a file rewritten since is not stored
    memo: tuple[str, str] | None = None  # (file identity, digest) to remember once the entry is good

    @property
    def dir(self) -> Path:
        return self.root / self.key


def cache_root() -> Path | None:
    value = os.environ.get(ENV, "").strip()
    if value.lower() == "off":
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aios-tui" / "tokens"


def limit_bytes() -> int:
    from aios_tui import notes

    value = os.environ.get(SIZE_ENV, "").strip()
    if not value:
        return int(DEFAULT_GB * (1 << 30))
    try:
        gb = float(value)
        if not gb >= 0 or gb == float("inf"):
            raise ValueError
    except ValueError:
        notes.say(f"{SIZE_ENV}={value!r} is not a size in GiB; the token cache keeps to {DEFAULT_GB:g}")
        gb = DEFAULT_GB
    return int(gb * (1 << 30))


def _file_digest(path: Path) -> str:
    with open(path, "rb") as f:  # streamed: a dataset of many GB is never held for this
        return hashlib.file_digest(f, "sha256").hexdigest()


def _identity(st: os.stat_result) -> str:
    # ctime too: a rewrite can set mtime back (touch -r, rsync -t, a restore), nothing sets ctime back
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"


def _digests(root: Path) -> dict[str, str]:
    try:
        memo = json.loads((root / DIGESTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in memo.items() if isinstance(v, str)} if isinstance(memo, dict) else {}


def _digest_of(root: Path, path: Path, st: os.stat_result) -> tuple[str, str | None]:
    """(the sha256 of ``path``, the identity to remember it by once an entry for it is good, or
    None): read from the memo when the file is the one digested before (``st`` its stat)."""
    key = _identity(st)
    known = _digests(root).get(key)
    if known is not None:
        return known, None
    began = time.time_ns()
    digest = _file_digest(path)
    # Trusted only for a file that held still while read and was last changed well before:
    # timestamps are coarse (a few ms, 2 s on FAT), so a file written again within one tick of
    # the read could keep its stat with other contents.
    settled = began - max(st.st_mtime_ns, st.st_ctime_ns) > SETTLED_NS
    return digest, (key if settled and _identity(path.stat()) == key else None)


def dataset_sha256(path: Path) -> str:
    """The sha256 of a dataset file: remembered from the token cache when the file is unchanged
    since a start digested it, else read now."""
    root = cache_root()
    known = _digests(root).get(_identity(path.stat())) if root is not None else None
    return known if known is not None else _file_digest(path)


def _remember(slot: Slot) -> None:
    """Add the slot's file digest to the memo: only beside a good entry, so a file that turns out
    not to be a dataset leaves nothing in the cache."""
    from aios_tui.atomic import atomic_write_text

    if slot.memo is None:
        return
    memo = _digests(slot.root)  # read now: another run may have added its own meanwhile
    key, digest = slot.memo
    memo.pop(key, None)
    memo[key] = digest
    try:
        atomic_write_text(slot.root / DIGESTS, json.dumps(dict(list(memo.items())[-_MAX_DIGESTS:])))
    except OSError:
        pass  # the file is digested again next time; store() says when the cache cannot be written


def tokenizer_fingerprint(tokenizer) -> str | None:
    """A digest of everything in ``tokenizer`` that decides its tokens: the files
    ``save_pretrained`` writes (None for a tokenizer that cannot be saved: it is not cached)."""
    try:
        with tempfile.TemporaryDirectory(prefix="aios-tui-tok-") as tmp:
            tokenizer.save_pretrained(tmp)
            h = hashlib.sha256()
            for p in sorted(Path(tmp).rglob("*")):
                if p.is_file():
                    h.update(str(p.relative_to(tmp)).encode() + b"\0")
                    h.update(hashlib.sha256(p.read_bytes()).digest())
            return h.hexdigest()
    except Exception:  # a tokenizer without save_pretrained, or one that refuses: tokenise afresh
        return None


def slot_for(path: Path, tokenizer, text_chunk: int) -> Slot | None:
    """The slot of ``path`` under ``tokenizer``, or None when the file is not cached (the cache
    is off, the file is small or the bundled sample, or the tokenizer cannot be fingerprinted)."""
    import tokenizers
    import transformers

    from aios_tui.data import sample_path

    root = cache_root()
    try:
        st = path.stat()
        if (root is None or not stat.S_ISREG(st.st_mode) or st.st_size < MIN_BYTES
                or path.resolve() == sample_path()):
            return None
        before = (st.st_size, st.st_mtime_ns)
        digest, identity = _digest_of(root, path, st)
    except OSError:
        return None  # the reader says what is wrong with the file
    fingerprint = tokenizer_fingerprint(tokenizer)
    if fingerprint is None:
        return None
    parts = {
        "format": FORMAT, "data": digest, "suffix": path.suffix.lower(), "tokenizer": fingerprint,
        "class": type(tokenizer).__name__, "fast": bool(getattr(tokenizer, "is_fast", False)),
        "bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "text_chunk": text_chunk,
        "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:40]
    return Slot(root, key, path, before, (identity, digest) if identity else None)


def load(slot: Slot) -> Hit | None:
    """The entry in ``slot``, or None for none, a torn or a corrupt one (removed, to be replaced)."""
    where = slot.dir
    if not (where / "meta.json").is_file():
        return None
    try:
        meta = json.loads((where / "meta.json").read_text(encoding="utf-8"))
        n = int(meta["tokens"])
        ids = np.load(where / "ids.npy", mmap_mode="r", allow_pickle=False)
        mask = np.load(where / "mask.npy", mmap_mode="r", allow_pickle=False)
        if (meta.get("format") != FORMAT or ids.shape != (n,) or ids.dtype not in (np.uint16, np.int32)
                or mask.shape != (-(-n // 8),) or mask.dtype != np.uint8):
            raise ValueError("not this version's entry")
        labels, checksum = _labels(ids, mask)
        if checksum != meta["checksum"]:
            raise ValueError("checksum")
        documents = int(meta["documents"])
        chat = meta["chat"]
        if not isinstance(chat, bool):
            raise ValueError("chat")
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        shutil.rmtree(where, ignore_errors=True)
        return None
    try:
        os.utime(where / "meta.json")  # its last use, for the eviction order
    except OSError:
        pass
    _remember(slot)
    return Hit(ids, labels, documents, where, chat)


def _labels(ids: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, str]:
    labels = np.empty(len(ids), dtype=np.int32)
    h_ids, h_mask = hashlib.blake2b(digest_size=16), hashlib.blake2b(digest_size=16)
    for s in range(0, len(ids), _CHUNK):
        chunk = ids[s:s + _CHUNK]
        bits = mask[s // 8:s // 8 - (-len(chunk) // 8)]
        h_ids.update(np.ascontiguousarray(chunk).view(np.uint8))
        h_mask.update(np.ascontiguousarray(bits))
        on = np.unpackbits(bits, count=len(chunk)).view(bool)
        labels[s:s + len(chunk)] = np.where(on, chunk.astype(np.int32), IGNORE)
    return labels, h_ids.hexdigest() + h_mask.hexdigest()


def _write_npy(path: Path, dtype, n: int, chunks, h) -> None:
    # Plain writes, not a memory map: a full disk is then an OSError, never a SIGBUS.
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (n,)})
        for chunk in chunks:
            data = np.ascontiguousarray(chunk, dtype=dtype)
            h.update(data.view(np.uint8))
            f.write(data.tobytes())
        f.flush()
        os.fsync(f.fileno())


def store(slot: Slot, ids: np.ndarray, labels: np.ndarray, documents: int, chat: bool = False) -> None:
    """Put the stream in ``slot``; a cache that cannot take it costs a note, never the run."""
    from aios_tui import notes

    n = len(ids)
    try:
        st = slot.source.stat()
        if (st.st_size, st.st_mtime_ns) != slot.stat or slot.dir.exists():
            return  # rewritten while it was read, or another run stored it meanwhile
    except OSError:
        return
    dtype = np.uint16 if n and 0 <= int(ids.min()) and int(ids.max()) < (1 << 16) else np.int32
    limit = limit_bytes()
    if n * np.dtype(dtype).itemsize + n // 8 > limit:
        return
    tmp = slot.root / f".tmp-{slot.key[:8]}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.mkdir(parents=True)
        h_ids, h_mask = hashlib.blake2b(digest_size=16), hashlib.blake2b(digest_size=16)
        _write_npy(tmp / "ids.npy", dtype, n, (ids[s:s + _CHUNK] for s in range(0, n, _CHUNK)), h_ids)
        _write_npy(tmp / "mask.npy", np.uint8, -(-n // 8),
                   (np.packbits(labels[s:s + _CHUNK] != IGNORE) for s in range(0, n, _CHUNK)), h_mask)
        meta = {"format": FORMAT, "documents": int(documents), "chat": bool(chat), "tokens": n, "source": str(slot.source),
                "checksum": h_ids.hexdigest() + h_mask.hexdigest(), "written": time.time()}
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            os.rename(tmp, slot.dir)
        except OSError:
            if not slot.dir.exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another run stored the same entry first
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        notes.say(f"token cache {slot.root}: not written ({exc.strerror or exc}); "
                  f"the next start tokenises {slot.source.name} again")
        return
    except BaseException:  # Ctrl-C midway: GBs of a half-written entry, which no limit counts
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _remember(slot)
    evict(slot.root, limit, keep=slot.dir)


def evict(root: Path, limit: int, keep: Path | None = None) -> None:
    """Remove the entries used longest ago until the cache holds at most ``limit`` bytes."""
    entries, total = [], 0
    try:
        children = list(root.iterdir())
    except OSError:
        return
    now = time.time()
    for child in children:
        try:
            if child.name.startswith(".tmp-"):
                if now - child.stat().st_mtime > _STALE_TMP_S:
                    shutil.rmtree(child, ignore_errors=True)
                continue
            if not child.is_dir():
                continue
            size = sum(f.stat().st_size for f in child.iterdir())
            used = (child / "meta.json").stat().st_mtime if (child / "meta.json").exists() else 0.0
        except OSError:
            continue  # removed by another run meanwhile
        entries.append((used, child, size))
        total += size
    for _, child, size in sorted(entries, key=lambda e: e[0]):
        if total <= limit:
            break
        if child != keep:
            shutil.rmtree(child, ignore_errors=True)
            total -= size
