"""Plain text or JSONL in, documents out; every unusable file is a UserError that says why.

A JSONL file holds one object per line, each with a ``text`` field (trained on in full) or
``prompt`` and ``completion`` fields (the loss falls on the completion only). Anything else is
read as plain text, the whole file one document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aios_tui.errors import UserError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
_MAX_LISTED = 5


@dataclass(frozen=True)
class Document:
    """``prompt`` is context that carries no loss; ``text`` is what the model learns to produce."""

    text: str
    prompt: str = ""


def _load_text(path: Path, label: str) -> str:
    if not path.exists():
        raise UserError(f"dataset {label}: no such file")
    if path.is_dir():
        raise UserError(f"dataset {label}: is a directory; pass a .txt or .jsonl file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"dataset {label}: cannot be read ({exc.strerror or exc})") from None
    if not raw.strip():
        raise UserError(f"dataset {label}: is empty; it needs some text to train on")
    if b"\x00" in raw[:65536]:
        raise UserError(f"dataset {label}: looks binary (it holds NUL bytes); "
                        "pass plain UTF-8 text or JSONL")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"dataset {label}: is not UTF-8 text (bad byte at offset {exc.start}); "
                        "pass plain UTF-8 text or JSONL") from None


def _looks_like_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return True
    first = next((line for line in text.splitlines() if line.strip()), "")
    if not first.lstrip().startswith("{"):
        return False
    try:
        obj = json.loads(first)
    except ValueError:
        return False
    return isinstance(obj, dict) and ("text" in obj or "prompt" in obj or "completion" in obj)


def _parse_jsonl(text: str, label: str) -> list[Document]:
    docs: list[Document] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            problems.append(f"dataset {label}, line {number}: not valid JSON ({exc.msg})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"dataset {label}, line {number}: expected a JSON object, got {type(obj).__name__}")
            continue
        if isinstance(obj.get("text"), str):
            if obj["text"]:
                docs.append(Document(obj["text"]))
        elif isinstance(obj.get("completion"), str) and isinstance(obj.get("prompt", ""), str):
            if obj["completion"]:
                docs.append(Document(obj["completion"], obj.get("prompt", "")))
        else:
            keys = ", ".join(sorted(obj)) or "none"
            problems.append(f"dataset {label}, line {number}: needs a string 'text' field or "
                            f"'prompt' and 'completion' fields (keys: {keys})")
    if problems:
        extra = len(problems) - _MAX_LISTED
        raise UserError(problems[:_MAX_LISTED] + ([f"... and {extra} more bad lines"] if extra > 0 else []))
    if not docs:
        raise UserError(f"dataset {label}: has no records with text to train on")
    return docs


def read_documents(path: str | Path) -> list[Document]:
    """The documents in a plain-text or JSONL file; raises UserError for unusable files."""
    path = Path(path).expanduser()
    label = str(path)
    text = _load_text(path, label)
    if _looks_like_jsonl(path, text):
        return _parse_jsonl(text, label)
    return [Document(text)]
