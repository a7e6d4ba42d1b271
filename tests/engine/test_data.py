"""Datasets: reading, tokenising, packing, the eval split and the resumable block order."""

from __future__ import annotations

import json

import pytest

from aios_tui.config import resolve
from aios_tui.data import read_documents, sample_path
from aios_tui.errors import UserError


@pytest.fixture(scope="module")
def tok():
    from aios_tui.engine.tokenizer import byte_tokenizer

    return byte_tokenizer()


def test_byte_tokenizer_ids_are_utf8_bytes_and_it_reloads_offline(tok, tmp_path):
    from transformers import AutoTokenizer

    text = "héllo wörld\n  x €"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == list(text.encode("utf-8"))
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, len(tok)) == (256, 257, 258, 259)
    assert tok.decode(ids) == text
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text, add_special_tokens=False)["input_ids"] == ids
    assert again.decode([257, 104, 105, 258], skip_special_tokens=True) == "hi"


def test_every_byte_value_round_trips(tok):
    from aios_tui.engine.data import tokenize_documents
    from aios_tui.data import Document

    raw = bytes(range(256)).decode("latin-1")
    ids, _ = tokenize_documents([Document(raw)], tok)
    assert list(ids[1:-1]) == list(raw.encode("utf-8"))


def test_plain_text_is_one_document(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("one\n\ntwo\n")
    assert [d.text for d in read_documents(p)] == ["one\n\ntwo\n"]


def test_jsonl_text_and_prompt_completion(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text(json.dumps({"text": "abc"}) + "\n\n" + json.dumps({"prompt": "Q: ", "completion": "A"}) + "\n")
    docs = read_documents(p)
    assert [(d.prompt, d.text) for d in docs] == [("", "abc"), ("Q: ", "A")]


def test_jsonl_detected_without_the_suffix(tmp_path):
    p = tmp_path / "data.txt"
    p.write_text(json.dumps({"text": "x"}) + "\n" + json.dumps({"text": "y"}) + "\n")
    assert [d.text for d in read_documents(p)] == ["x", "y"]


@pytest.mark.parametrize("content, expect", [
    (b"", "is empty"),
    (b"  \n\t\n", "is empty"),
    (b"abc\x00\x01\x02", "looks binary"),
    (b"\xff\xfe\xfa text", "not UTF-8"),
])
def test_unusable_files_are_named_clearly(tmp_path, content, expect):
    p = tmp_path / "bad.txt"
    p.write_bytes(content)
    with pytest.raises(UserError) as err:
        read_documents(p)
    assert expect in err.value.problems[0] and str(p) in err.value.problems[0]


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_documents(tmp_path / "nope.txt")
    with pytest.raises(UserError, match="is a directory"):
        read_documents(tmp_path)


def test_bad_jsonl_lines_are_each_reported(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"text": "ok"}\nnot json\n{"title": "x"}\n[1, 2]\n')
    with pytest.raises(UserError) as err:
        read_documents(p)
    joined = "\n".join(err.value.problems)
    assert "line 2: not valid JSON" in joined
    assert "line 3: needs a string 'text' field" in joined and "keys: title" in joined
    assert "line 4: expected a JSON object" in joined


@pytest.mark.parametrize("row, shape, expect", [
    ({"instruction": "Add", "input": "1+1", "output": "2"}, "Alpaca rows", ("Add\n\n1+1\n\n", "2")),
    ({"instruction": "Say hi", "output": "hi"}, "Alpaca rows", ("Say hi\n\n", "hi")),
    ({"prompt": "P", "chosen": "good", "rejected": "bad"}, "preference pairs", ("P", "good")),
    ({"prompt": "P", "response": "R"}, "prompt/response rows", ("P", "R")),
    ({"question": "Q?", "answer": "A"}, "question/answer rows", ("Q?\n", "A")),
    ({"input": "I", "output": "O"}, "input/output rows", ("I", "O")),
])
def test_rows_of_other_tools_shapes_get_the_line_that_converts_them(tmp_path, row, shape, expect):
    import shlex
    import shutil
    import subprocess

    p = tmp_path / "other.jsonl"
    p.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(UserError) as err:
        read_documents(p)
    first, hint = err.value.problems  # the rows in one line, then how to convert them
    assert first.startswith(f"dataset {p}: 2 rows need a string 'text' field") and "(line 1 first; keys: " in first
    assert f"these look like {shape}" in hint and "jq -c " in hint
    if shutil.which("jq") is None:
        return
    command = hint.split("e.g. ", 1)[1]
    assert shlex.split(command)[-2:] == [">", "converted.jsonl"]
    subprocess.run(command, shell=True, cwd=tmp_path, check=True)
    docs = read_documents(tmp_path / "converted.jsonl")
    assert [(d.prompt, d.text) for d in docs] == [expect, expect]


def test_rows_of_no_known_shape_get_no_conversion_line(tmp_path):
    p = tmp_path / "odd.jsonl"
    p.write_text(json.dumps({"title": "x", "body": "y"}) + "\n")
    with pytest.raises(UserError) as err:
        read_documents(p)
    assert len(err.value.problems) == 1


def test_other_bad_lines_beside_shaped_rows_are_each_listed(tmp_path):
    p = tmp_path / "mixed.jsonl"
    p.write_text(json.dumps({"question": "Q", "answer": "A"}) + "\nnot json\n")
    with pytest.raises(UserError) as err:
        read_documents(p)
    problems = err.value.problems
    assert len(problems) == 3 and "line 2: not valid JSON" in problems[1]
    assert "these look like question/answer rows" in problems[2]


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path):
    # JSON allows U+2028, U+2029 and U+0085 unescaped in a string; only a newline ends a record
    texts = [f"row {i}\u2028next\u2029para\x85end" for i in range(3)]
    p = tmp_path / "seps.jsonl"
    p.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\r\n" for t in texts), encoding="utf-8")
    assert [d.text for d in read_documents(p)] == texts
    p.write_text(json.dumps({"text": texts[0]}, ensure_ascii=False) + "\nnot json\n", encoding="utf-8")
    with pytest.raises(UserError) as err:
        read_documents(p)
    assert err.value.problems == [f"dataset {p}, line 2: not valid JSON (Expecting value at column 1)"]


def test_a_bad_byte_in_jsonl_is_named_by_its_file_offset(tmp_path):
    p = tmp_path / "bad.jsonl"
    first = json.dumps({"text": "ok"}).encode() + b"\n"
    p.write_bytes(first + b'{"text": "caf\xe9"}\n')
    with pytest.raises(UserError) as err:
        read_documents(p)
    assert f"not UTF-8 text (bad byte at offset {len(first) + 13})" in err.value.problems[0]


def test_a_jsonl_file_is_not_held_a_second_time_as_one_string(tmp_path):
    import tracemalloc

    # Curly quotes widen a Python string to 2 bytes a character: a whole-file string of this
    # would be twice the file, on top of its bytes and the documents read from it.
    p = tmp_path / "quotes.jsonl"
    with p.open("w", encoding="utf-8") as f:
        for i in range(2000):
            f.write(json.dumps({"text": f"{i} \u201cquoted\u201d " + "word " * 200}, ensure_ascii=False) + "\n")
    size = p.stat().st_size
    tracemalloc.start()
    try:
        docs = read_documents(p)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(docs) == 2000
    # the bytes and the documents (2x) at most; a whole-file string adds 1.5x more
    assert peak < kept + 1.3 * size, (peak / size, kept / size)


def test_packing_masks_prompts_bos_and_padding(tok):
    from aios_tui.data import Document
    from aios_tui.engine.data import IGNORE, pack, tokenize_documents

    ids, labels = tokenize_documents([Document("AB", prompt="Q"), Document("C")], tok)
    assert list(ids) == [257, ord("Q"), ord("A"), ord("B"), 258, 257, ord("C"), 258]
    assert list(labels) == [IGNORE, IGNORE, ord("A"), ord("B"), 258, IGNORE, ord("C"), 258]
    x, y = pack(ids, labels, 5, tok.pad_token_id)
    assert x.shape == (2, 5)
    assert x[1].tolist() == [257, ord("C"), 258, 256, 256]
    assert y[1].tolist() == [IGNORE, ord("C"), 258, IGNORE, IGNORE]


def test_split_is_seeded_disjoint_and_keeps_a_train_block():
    from aios_tui.engine.data import split_blocks

    train, ev = split_blocks(40, 0.1, seed=5)
    assert len(ev) == 4 and not set(train) & set(ev) and sorted(train + ev) == list(range(40))
    assert split_blocks(40, 0.1, seed=5) == (train, ev)
    assert split_blocks(40, 0.1, seed=6) != (train, ev)
    assert split_blocks(1, 0.5, seed=5) == ([0], [])
    assert split_blocks(2, 0.5, seed=5)[0] != []


def test_sampler_resumes_mid_epoch_exactly():
    from aios_tui.engine.data import BlockSampler

    a = BlockSampler(7, seed=1)
    first = a.take(5) + a.take(5)
    state = a.state_dict()
    rest = a.take(6) + a.take(9)
    b = BlockSampler(7, seed=1)
    b.load_state_dict(state)
    assert b.take(6) + b.take(9) == rest
    assert sorted(first[:7]) == list(range(7))  # an epoch visits every block once


def test_sampler_refuses_a_different_dataset():
    from aios_tui.engine.data import BlockSampler

    state = BlockSampler(7, seed=1).state_dict()
    with pytest.raises(UserError, match="same dataset"):
        BlockSampler(8, seed=1).load_state_dict(state)


def test_bundled_sample_is_what_its_generator_writes():
    from aios_tui.data.make_sample import build

    assert sample_path().read_text(encoding="utf-8") == build()


def test_load_packed_on_the_sample(tok):
    from aios_tui.engine.data import load_packed

    cfg = resolve(overrides={"max_seq_len": 64, "eval_fraction": 0.1})
    data = load_packed(cfg, tok)
    assert data.summary["path"] == str(sample_path())
    assert data.train_ids.shape[1] == 64 and data.n_eval == round((data.n_train + data.n_eval) * 0.1)


@pytest.mark.parametrize("drop", [(), ("eos_token",), ("bos_token", "eos_token")])
def test_documents_run_together_only_with_a_note(tmp_path, capsys, drop):
    """Documents are set apart by bos/eos; a tokenizer with neither runs them into one another."""
    from aios_tui.engine.data import load_packed
    from aios_tui.engine.tokenizer import byte_tokenizer

    tokenizer = byte_tokenizer()
    for name in drop:
        setattr(tokenizer, name, None)
    p = tmp_path / "docs.jsonl"
    p.write_text("".join(json.dumps({"text": f"document {i} " * 8}) + "\n" for i in range(40)))
    load_packed(resolve(overrides={"dataset_file": str(p), "max_seq_len": 32}), tokenizer)
    noted = "documents run on into one another" in capsys.readouterr().err
    assert noted == (len(drop) == 2)


def test_prompt_only_dataset_is_refused(tmp_path, tok):
    from aios_tui.engine.data import load_packed

    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"prompt": "Q", "completion": ""}) + "\n" + json.dumps({"text": ""}) + "\n")
    with pytest.raises(UserError, match="no records with text"):
        load_packed(resolve(overrides={"dataset_file": str(p)}), tok)


def _zip_bytes() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("train.txt", "hello " * 50)
    return buf.getvalue()


@pytest.mark.parametrize("name, content, expect", [
    ("train.jsonl.gz", lambda: __import__("gzip").compress(b'{"text": "hi"}\n' * 50), "is gzip-compressed"),
    ("train.txt.bz2", lambda: __import__("bz2").compress(b"hello " * 50), "is bzip2-compressed"),
    ("train.zip", _zip_bytes, "is a zip archive"),
    ("train.parquet", lambda: b"PAR1\x15\x04" + b"\x00" * 40 + b"PAR1", "is a Parquet file"),
    ("train.txt", lambda: "hello world\n".encode("utf-16") * 20, "is UTF-16 text"),
    ("train.csv", lambda: b"text\nhello\nworld\n", "CSV is not read"),
    ("train.json", lambda: json.dumps([{"text": "a"}, {"text": "b"}]).encode(), "is one JSON array"),
    ("rows.txt", lambda: json.dumps([{"text": "a"}, {"text": "b"}], indent=1).encode(), "is one JSON array"),
    ("train.json", lambda: json.dumps({"data": [{"text": "a"}]}, indent=1).encode(), "is a .json file but not JSONL"),
])
def test_files_that_are_not_read_as_text_say_how_to_convert_them(tmp_path, name, content, expect):
    p = tmp_path / name
    p.write_bytes(content())
    with pytest.raises(UserError) as err:
        read_documents(p)
    assert len(err.value.problems) == 1
    assert expect in err.value.problems[0] and str(p) in err.value.problems[0]


def test_text_that_only_starts_like_json_or_a_signature_is_still_plain_text(tmp_path):
    for body in ("[1] see the notes below\nmore text\n", "BZh is not bzip2\n", "PAR1 of the book\n"):
        p = tmp_path / "notes.txt"
        p.write_text(body)
        assert [d.text for d in read_documents(p)] == [body]


def test_an_unpaired_surrogate_escape_is_refused_by_line_before_anything_starts(cli, tmp_path):
    p = tmp_path / "esc.jsonl"
    p.write_text('{"text": "fine"}\n{"text": "half a pair \\ud83d here"}\n{"prompt": "\\udc00", "completion": "x"}\n')
    code, _, err = cli("train", "--check", "--dataset-file", str(p))
    assert code == 2
    lines = err.strip().splitlines()
    assert [line.split(": holds")[0] for line in lines] == [
        f"aios-tui: error: dataset {p}, line 2", f"aios-tui: error: dataset {p}, line 3"]
    assert all("unpaired UTF-16 surrogate" in line for line in lines)
    assert not (tmp_path / "runs").exists()
