"""Plain text or JSONL in, documents out; every unusable file is a UserError that says why.

A JSONL file holds one object per line, each with a ``text`` field (trained on in full),
``prompt`` and ``completion`` fields (the loss falls on the completion only), or a conversation
(``messages`` or ShareGPT's ``conversations``, see ``chat``; the loss falls on the assistant
turns). A file is chat throughout or not at all: the two are framed differently (the model's
chat template against ``<bos> ... <eos>``), and a mix is most often two files joined by
mistake. Anything else is read as plain text, the whole file one document, except what would
train on its own syntax (CSV, a whole-file JSON array) or is not text at all (compressed,
Parquet, UTF-16): those are refused with how to turn them into a file that is read.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from aios_tui.data.chat import CHAT_KEYS, Turns, parse_chat
from aios_tui.errors import UserError
from aios_tui.regular_file import NotRegularFile, kind_of, open_regular

JSONL_SUFFIXES = (".jsonl", ".ndjson")
_MAX_LISTED = 5
# Files that are not text but are often handed over as a dataset: each is named, with how to get
# a file that can be read, instead of "looks binary" or "not UTF-8".
_MAGIC = (
    (lambda b: b.startswith(b"\x1f\x8b"), "is gzip-compressed; decompress it first (gunzip -k FILE)"),
    (lambda b: b.startswith(b"BZh") and b[4:10] == b"1AY&SY",
     "is bzip2-compressed; decompress it first (bunzip2 -k FILE)"),
    (lambda b: b.startswith(b"\xfd7zXZ\x00"), "is xz-compressed; decompress it first (unxz -k FILE)"),
    (lambda b: b.startswith(b"\x28\xb5\x2f\xfd"), "is zstd-compressed; decompress it first (unzstd FILE)"),
    (lambda b: b.startswith(b"PK\x03\x04"), "is a zip archive; extract the text or JSONL file from it"),
    (lambda b: b.startswith(b"PAR1") and b.endswith(b"PAR1"),
     "is a Parquet file, which is not read; write its rows out as JSONL "
     "(pandas: read_parquet(FILE).to_json(OUT, orient='records', lines=True))"),
    (lambda b: b.startswith(b"ARROW1") and b.rstrip(b"\x00").endswith(b"ARROW1"),
     "is an Arrow file, which is not read; write its rows out as JSONL (datasets: Dataset.to_json(OUT))"),
    # a byte-order mark alone could be stray bytes; UTF-16 of mostly ASCII text is full of NULs
    (lambda b: b.startswith((b"\xff\xfe", b"\xfe\xff")) and b"\x00" in b[:4096],
     "is UTF-16 text; convert it to UTF-8 (iconv -f UTF-16 -t UTF-8 FILE)"),
)
# Table formats read as plain text would train on their commas and header row.
_TABLE_SUFFIXES = {".csv": "CSV", ".tsv": "TSV"}


@dataclass(frozen=True, slots=True)  # slots: a large JSONL file is a million of these
class Document:
    """``prompt`` is context that carries no loss; ``text`` is what the model learns to produce.
    A chat record has ``turns`` instead (and the file ``line`` it came from, for messages)."""

    text: str
    prompt: str = ""
    turns: Turns = ()
    line: int = 0


_BOM = b"\xef\xbb\xbf"


def _kind_problem(kind: str | None) -> str | None:
    """Why a file of this kind (``kind_of``: None for a regular file) is no dataset: a directory,
    or anything else that is not a regular file (a pipe or a device would wait or never end)."""
    if kind == "a directory":
        return "is a directory; pass a .txt or .jsonl file"
    return f"is {kind}, not a regular file; write its contents to a file and pass that" if kind else None


def _open_problem(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError) and path.is_symlink():
        return f"is a symbolic link to {os.readlink(path)}, which does not exist"
    if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
        return "no such file"
    return f"cannot be read ({exc.strerror or exc})"


def path_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a dataset, judged without reading it (it is missing, unreadable, a
    directory, a pipe, a device), or None."""
    try:
        st = path.stat()
    except OSError as exc:
        return _open_problem(path, exc)
    problem = _kind_problem(kind_of(st.st_mode))
    return problem or (None if os.access(path, os.R_OK) else "cannot be read (Permission denied)")


def _load_bytes(path: Path, label: str) -> bytes:
    """The file's bytes (without a UTF-8 byte-order mark), once they pass for text."""
    try:
        f = open_regular(path)
    except NotRegularFile as exc:
        raise UserError(f"dataset {label}: {_kind_problem(exc.kind)}") from None
    except OSError as exc:
        raise UserError(f"dataset {label}: {path_problem(path) or _open_problem(path, exc)}") from None
    with f:
        try:
            raw = f.read()
        except OSError as exc:
            raise UserError(f"dataset {label}: cannot be read ({exc.strerror or exc})") from None
    if not raw.strip():
        raise UserError(f"dataset {label}: is empty (it holds no text)")
    for matches, what in _MAGIC:
        if matches(raw):
            raise UserError(f"dataset {label}: {what.replace('FILE', shlex.quote(label))}")
    if b"\x00" in raw[:65536]:
        raise UserError(f"dataset {label}: looks binary (it holds NUL bytes); "
                        "pass plain UTF-8 text or JSONL")
    return raw[len(_BOM):] if raw.startswith(_BOM) else raw


def _decode(raw: bytes, label: str, offset: int = 0) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"dataset {label}: is not UTF-8 text (bad byte at offset {offset + exc.start}); "
                        "pass plain UTF-8 text or JSONL") from None


def _byte_lines(raw: bytes):
    """(offset, line) for each line of a JSONL file, split at newlines only: JSON strings may hold
    U+2028, U+0085 and the like as they are, and ``str.splitlines`` would cut a record there.
    Each line is a copy of its own, so a large file is never held a second time."""
    sep = b"\n" if b"\n" in raw or b"\r" not in raw else b"\r"  # bare CRs: old Mac line ends
    start = 0
    while start < len(raw):
        end = raw.find(sep, start)
        end = len(raw) if end < 0 else end
        line = raw[start:end]
        yield start, line[:-1] if line.endswith(b"\r") else line
        start = end + 1


def _looks_like_jsonl(path: Path, raw: bytes) -> bool:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return True
    first = next((line for _, line in _byte_lines(raw) if line.strip()), b"")
    if not first.lstrip().startswith(b"{"):
        return False
    try:
        obj = json.loads(first.decode("utf-8"))
    except (ValueError, RecursionError):  # not JSON, or not UTF-8 (which reading it as text will say)
        return False
    return isinstance(obj, dict) and any(k in obj for k in ("text", "prompt", "completion", *CHAT_KEYS))


def _table_problem(path: Path, label: str) -> str | None:
    kind = _TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        return None
    return (f"dataset {label}: {kind} is not read (as plain text it would train on the separators "
            "and the header); write one JSON object per line with a 'text' field, 'prompt' and "
            "'completion' fields, or 'messages', to a .jsonl file")


def _json_problem(path: Path, text: str, label: str) -> str | None:
    """A whole-file JSON document (an array of records, most often): read as plain text it
    would train on the JSON syntax."""
    if path.suffix.lower() != ".json" and not text.lstrip().startswith("["):
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, list) and any(isinstance(r, dict) for r in obj):
        return (f"dataset {label}: is one JSON array; write one record per line instead (JSONL), "
                f"e.g. jq -c '.[]' {shlex.quote(label)} > data.jsonl")
    if path.suffix.lower() != ".json":
        return None  # plain text that happens to start with a bracket
    return (f"dataset {label}: is a .json file but not JSONL; write one JSON object per line "
            "with a 'text' field, 'prompt' and 'completion' fields, or 'messages'")


def _unpaired_surrogate(value: str) -> bool:
    """JSON may escape half a UTF-16 pair (\\ud800), which no tokenizer can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_SURROGATE = "holds an unpaired UTF-16 surrogate escape (such as \\ud800), which is not valid Unicode"


# Record shapes other tools write, each with the jq line that turns it into prompt/completion.
# The framing of a prompt is the user's to choose, so it is shown, never guessed.
_SHAPES = (
    ({"instruction", "output"}, "Alpaca rows (instruction, input, output)",
     '{prompt: (.instruction + (if (.input // "") != "" then "\\n\\n" + .input else "" end) + "\\n\\n"), '
     'completion: .output}'),
    ({"prompt", "chosen", "rejected"}, "preference pairs (prompt, chosen, rejected), which are for "
     "preference training (not done here); to fine-tune on the chosen answers", "{prompt, completion: .chosen}"),
    ({"prompt", "response"}, "prompt/response rows", "{prompt, completion: .response}"),
    ({"question", "answer"}, "question/answer rows", '{prompt: (.question + "\\n"), completion: .answer}'),
    ({"input", "output"}, "input/output rows", "{prompt: .input, completion: .output}"),
)


def _shape_hint(obj: dict, label: str) -> str | None:
    """How to convert a row of a known other shape, or None."""
    for keys, what, program in _SHAPES:
        if keys <= obj.keys() and all(isinstance(obj[k], str) for k in keys):
            return (f"dataset {label}: these look like {what}: write them as prompt/completion, e.g. "
                    f"jq -c {shlex.quote(program)} {shlex.quote(label)} > converted.jsonl")
    return None


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "a number", float: "a number", list: "a list", dict: "an object"}.get(type(value), "a string")


def _record_problem(obj: dict) -> str | None:
    if isinstance(obj.get("text"), str) or (isinstance(obj.get("completion"), str)
                                            and isinstance(obj.get("prompt", ""), str)):
        fields = [obj[k] for k in ("text", "prompt", "completion") if isinstance(obj.get(k), str)]
        if any(_unpaired_surrogate(v) for v in fields):
            return _SURROGATE
        return None
    for key in ("text", "completion", "prompt"):
        if key in obj and not isinstance(obj[key], str):
            return f"'{key}' must be a string, not {_json_type(obj[key])}"
    keys = ", ".join(sorted(obj)) or "none"
    return (f"needs a string 'text' field, 'prompt' and 'completion' fields, or 'messages' "
            f"(keys: {keys})")


def _is_chat(obj: dict) -> bool:
    # a row that also carries a rendered 'text' (or a completion) is read as before, by that field
    return any(k in obj for k in CHAT_KEYS) and not isinstance(obj.get("text"), str) \
        and not isinstance(obj.get("completion"), str)


def _chat_document(obj: dict, number: int) -> tuple[Document | None, str | None]:
    turns, problem = parse_chat(obj)
    if problem:
        return None, problem
    if any(_unpaired_surrogate(text) for _, text in turns):
        return None, _SURROGATE
    return Document("", turns=turns, line=number), None


def _json_error(exc: ValueError, last: bool) -> str:
    """What is wrong with a line that is not JSON; ``last``: it ends the file without a line end."""
    if isinstance(exc, json.JSONDecodeError):  # "Unterminated string starting at" ends in "at"
        where = f"{exc.msg}{'' if exc.msg.endswith(' at') else ' at'} column {exc.colno}"
    else:  # a number of more digits than Python converts, say
        where = str(exc).split(";")[0]
    cut = "; it is the last line and has no line end, so the file may be cut short" if last else ""
    return f"not valid JSON ({where}){cut}"


def _parse_jsonl(raw: bytes, label: str) -> list[Document]:
    docs: list[Document] = []
    problems: list[str] = []
    first = {}  # whether a row is chat -> the first line of that kind
    hint = None
    shaped: list[tuple[int, str]] = []  # (line, keys) of bad rows of a shape other tools write
    for number, (offset, line_bytes) in enumerate(_byte_lines(raw), 1):
        line = _decode(line_bytes, label, offset)
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except RecursionError:  # nested deeper than the parser goes
            problems.append(f"dataset {label}, line {number}: nested too deeply to read as JSON")
            continue
        except ValueError as exc:
            last = offset + len(line_bytes) == len(raw) and not raw.endswith((b"\n", b"\r"))
            problems.append(f"dataset {label}, line {number}: {_json_error(exc, last)}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"dataset {label}, line {number}: expected a JSON object, got {_json_type(obj)}")
            continue
        chat = _is_chat(obj)
        first.setdefault(chat, number)
        if chat:
            doc, problem = _chat_document(obj, number)
        else:
            problem = _record_problem(obj)
            row_hint = _shape_hint(obj, label) if problem else None
            if row_hint:
                hint = hint or row_hint
                shaped.append((number, ", ".join(sorted(obj))))
            doc = None
            if problem is None and isinstance(obj.get("text"), str):
                doc = Document(obj["text"]) if obj["text"] else None
            elif problem is None and obj["completion"]:
                doc = Document(obj["completion"], obj.get("prompt", ""))
        if problem:
            problems.append(f"dataset {label}, line {number}: {problem}")
        elif doc is not None:
            docs.append(doc)
    if problems and hint and len(shaped) == len(problems):
        # every bad row is of another tool's shape: one line for them all, then how to convert
        n, (line, keys) = len(shaped), shaped[0]
        raise UserError([f"dataset {label}: {n} row{'s need' if n != 1 else ' needs'} a string 'text' field, "
                         f"'prompt' and 'completion' fields, or 'messages' (line {line} first; keys: {keys})",
                         hint])
    if problems:
        extra = len(problems) - _MAX_LISTED
        raise UserError(problems[:_MAX_LISTED] + ([f"... and {extra} more bad lines"] if extra > 0 else [])
                        + ([hint] if hint else []))
    if len(first) == 2:
        raise UserError(f"dataset {label}: mixes chat records (line {first[True]}) with 'text' or "
                        f"'prompt'/'completion' records (line {first[False]}); keep one kind in a file "
                        "(chat is framed by the model's chat template, the others by <bos> ... <eos>)")
    if not docs:
        raise UserError(f"dataset {label}: has no records with text to train on")
    return docs


def read_documents(path: str | Path) -> list[Document]:
    """The documents in a plain-text or JSONL file; raises UserError for unusable files."""
    path = Path(path).expanduser()
    label = str(path)
    problem = _table_problem(path, label) if path.is_file() else None
    if problem:
        raise UserError(problem)
    raw = _load_bytes(path, label)
    if _looks_like_jsonl(path, raw):
        return _parse_jsonl(raw, label)
    text = _decode(raw, label)
    del raw  # a large file is held once
    problem = _json_problem(path, text, label)
    if problem:
        raise UserError(problem)
    if "\r" in text:  # Windows (and old Mac) line ends read as plain newlines, as a JSONL file's do
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [Document(text)]
