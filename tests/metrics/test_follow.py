"""Following a growing metrics file: partial lines, truncation, replacement, huge lines."""

from __future__ import annotations

import json
import os

from aios_tui.metrics.follow import Follower


def line(step: int) -> str:
    return json.dumps({"step": step, "loss": 1.0 / step}) + "\n"


def test_reads_only_new_complete_lines(tmp_path):
    path = tmp_path / "m.jsonl"
    f = Follower(path)
    assert f.poll() == []  # no file yet: nothing, no error
    path.write_text(line(1) + line(2) + '{"step": 3, "lo')
    assert [r["step"] for r in f.poll()] == [1, 2]
    assert f.poll() == []  # the partial line waits
    with open(path, "a") as fh:
        fh.write('ss": 0.3}\n' + line(4))
    assert [r["step"] for r in f.poll()] == [3, 4]
    assert f.offset == path.stat().st_size


def test_truncation_starts_again_from_the_top(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(line(1) + line(2) + line(3))
    f = Follower(path)
    assert len(f.poll()) == 3
    path.write_text(line(10))  # shorter than what was read: a new file's content
    assert [r["step"] for r in f.poll()] == [10]
    assert f.resets == 1


def test_a_replaced_file_is_read_from_its_start(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(line(1) + line(2))
    f = Follower(path)
    f.poll()
    other = tmp_path / "new.jsonl"
    other.write_text(line(1) + line(2) + line(3) + line(4))  # longer, so size alone cannot tell
    os.replace(other, path)
    assert [r["step"] for r in f.poll()] == [1, 2, 3, 4]
    assert f.resets == 1


def test_tail_then_follow(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(line(s) for s in range(1, 101)))
    f = Follower(path)
    assert [r["step"] for r in f.tail(3)] == [98, 99, 100]
    with open(path, "a") as fh:
        fh.write(line(101))
    assert [r["step"] for r in f.poll()] == [101]


def test_a_backlog_arrives_in_bounded_reads(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text("".join(line(s) for s in range(1, 2001)))
    f = Follower(path, max_bytes=4096)
    seen = []
    for _ in range(100):
        got = f.poll()
        if not got:
            break
        seen += got
    assert [r["step"] for r in seen] == list(range(1, 2001))
    assert f.bytes_read <= path.stat().st_size + 4096


def test_a_line_longer_than_a_read_is_skipped_not_stuck(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(line(1) + "x" * 10_000 + "\n" + line(2))
    f = Follower(path, max_bytes=4096)
    seen = []
    for _ in range(10):
        seen += f.poll()
    assert [r["step"] for r in seen] == [1, 2]
