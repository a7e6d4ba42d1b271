"""Datasets as users hand them over: each bad one is one line naming the file and what is wrong,
exit status 2, and nothing left behind (no run directory, no token cache entry); odd but good
ones (a byte-order mark, CRLF, blank lines, spaces and accents in the path) train."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

import pytest

from aios_tui.data import read_documents


@contextlib.contextmanager
def _unblocked(fifo: Path):
    """Opens ``fifo`` for writing, and closes it at once, whenever a reader waits on it: a reader
    that regressed to waiting for a writer then sees an empty file and fails, instead of hanging."""
    done = threading.Event()

    def writer():
        while not done.wait(0.05):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader yet
                pass

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


GOOD = "The quick brown fox jumps over the lazy dog.\n" * 20


def _write(path: Path, kind: str) -> Path:
    """A dataset of ``kind`` at (or beside) ``path``; returns the path to pass."""
    rows = {
        "missing key": '{"text": "ok"}\n{"body": "x"}\n',
        "non-string": '{"text": "ok"}\n{"text": 5}\n',
        "list at top": '["a", "b"]\n',
        "partial last line": '{"text": "hello there"}\n{"text": "hel',
        "chat wrong role": json.dumps({"messages": [{"role": "bot", "content": "hi"}]}) + "\n",
        "chat no messages": json.dumps({"messages": []}) + "\n",
        "nested too deep": '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n",
        "huge number": '{"text": "a", "n": ' + "9" * 5000 + "}\n",
    }
    if kind in rows:
        path = path.with_suffix(".jsonl")
        path.write_text(rows[kind], encoding="utf-8")
    elif kind == "json array":
        path = path.with_suffix(".json")
        path.write_text(json.dumps([{"text": "a"}, {"text": "b"}]))
    elif kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        return Path("/dev/null")  # a device that ends: one that does not would hang a regression
    elif kind == "dangling symlink":
        path.symlink_to(path.parent / "gone.txt")
    elif kind == "unreadable":
        path.write_text(GOOD)
        path.chmod(0)
    else:
        path.write_bytes({
            "empty": b"",
            "whitespace": b"  \n\t\n   \n",
            "random bytes": bytes(range(256)) * 16,
            "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(200)),
            "bad utf-8 midway": GOOD.encode() + b"\xff\xfe" + GOOD.encode(),
        }[kind])
    return path


BAD = [
    ("empty", "is empty"),
    ("whitespace", "is empty"),
    ("random bytes", "looks binary"),
    ("png", "looks binary"),
    ("bad utf-8 midway", f"is not UTF-8 text (bad byte at offset {len(GOOD)})"),
    ("missing key", "line 2: needs a string 'text' field"),
    ("non-string", "line 2: 'text' must be a string, not a number"),
    ("list at top", "line 1: expected a JSON object, got a list"),
    ("partial last line", "line 2: not valid JSON (Unterminated string starting at column 10); "
                          "it is the last line and has no line end, so the file may be cut short"),
    ("nested too deep", "line 1: nested too deeply to read as JSON"),
    ("huge number", "line 1: not valid JSON (Exceeds the limit (4300 digits)"),
    ("chat wrong role", "line 1: chat record: 'messages' turn 1 has role 'bot'"),
    ("chat no messages", "line 1: chat record: 'messages' must be a non-empty list"),
    ("json array", "is one JSON array"),
    ("directory", "is a directory"),
    ("fifo", "is a named pipe (FIFO), not a regular file"),
    ("device", "is a character device, not a regular file"),
    ("dangling symlink", "is a symbolic link to "),
    pytest.param("unreadable", "cannot be read (Permission denied)",
                 marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")),
]


@pytest.mark.parametrize("kind, expect", BAD)
def test_a_bad_dataset_is_one_line_and_exit_2_leaving_nothing(cli, tmp_path, monkeypatch, kind, expect):
    from aios_tui.engine import token_cache

    monkeypatch.setattr(token_cache, "MIN_BYTES", 0)  # every file would be cached
    path = _write(tmp_path / f"da ta é {kind}.txt", kind)
    with _unblocked(path) if kind == "fifo" else contextlib.nullcontext():
        code, out, err = cli("train", "--steps", "2", "--dataset-file", str(path))
    assert code == 2, err
    assert err.startswith(f"aios-tui: error: dataset {path}") and expect in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    for left in (os.environ["AIOS_TUI_RUNS"], os.environ["AIOS_TUI_TOKEN_CACHE"]):
        assert not Path(left).exists() or not any(Path(left).iterdir())


@pytest.mark.parametrize("kind, expect", [
    ("fifo", "is a named pipe (FIFO), not a regular file"),
    ("device", "is a character device"),
    ("dangling symlink", "is a symbolic link to "),
    ("directory", "is a directory"),
])
def test_eval_names_what_a_dataset_path_is_before_loading_anything(cli, tmp_path, kind, expect):
    # the run need not hold a model: the file is judged first
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("")
    path = _write(tmp_path / "held-out.txt", kind)
    with _unblocked(path) if kind == "fifo" else contextlib.nullcontext():
        code, _, err = cli("eval", str(run), "--dataset-file", str(path))
    assert code == 2 and err.startswith(f"aios-tui: error: --dataset-file {path}: {expect}"), err
    assert err.count("\n") == 1


def test_the_console_check_of_a_pipe_answers_at_once(tmp_path):
    # the console checks a start in a child `train --check`, which waited on a pipe for 15 minutes
    from aios_tui.config import resolve
    from aios_tui.errors import UserError
    from aios_tui.ui.runctl import check_start

    fifo = _write(tmp_path / "pipe.txt", "fifo")
    with _unblocked(fifo), pytest.raises(UserError) as err:
        check_start(resolve(overrides={"dataset_file": str(fifo), "steps": 2}))
    assert err.value.problems == [f"dataset {fifo}: is a named pipe (FIFO), not a regular file; "
                                  "write its contents to a file and pass that"]


@pytest.mark.parametrize("content, texts", [
    (b"\xef\xbb\xbf" + GOOD.encode(), [GOOD]),                      # byte-order mark: dropped
    (GOOD.replace("\n", "\r\n").encode(), [GOOD]),                 # CRLF plain text: line ends are \n
    (GOOD.replace("\n", "\r").encode(), [GOOD]),                   # old Mac line ends too
    (b'\r\n{"text": "a"}\r\n\r\n\n{"text": "b"}\r\n', ["a", "b"]),   # CRLF and blank lines in JSONL
    (b'\xef\xbb\xbf{"text": "a"}\n', ["a"]),
])
def test_odd_but_good_files_read_as_meant(tmp_path, content, texts):
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    assert [d.text for d in read_documents(path)] == texts


def test_a_path_with_spaces_and_accents_and_a_file_below_one_block_train(cli, tmp_path):
    path = tmp_path / "my data é" / "tiny ü.txt"
    path.parent.mkdir()
    path.write_text("hi")
    code, _, err = cli("train", "--steps", "2", "--progress", "none", "--dataset-file", str(path))
    assert code == 0, err
    assert "note: tiny ü.txt gives 4 tokens, less than one 128-token block" in err
