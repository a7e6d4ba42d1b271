"""Chat datasets: conversations rendered with the model's chat template, loss on the assistant
turns only; the refusals, --check, resume's fingerprint and train-actv1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aios_tui.data import read_documents
from aios_tui.errors import UserError

TEMPLATE = ("{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>{% endfor %}"
            "{% if add_generation_prompt %}<s>assistant\n{% endif %}")
# Renders an earlier answer as "(earlier)" once another turn follows, as Qwen3 drops reasoning.
REWRITING = ("{% for m in messages %}<s>{{ m['role'] }}\n"
             "{% if m['role'] == 'assistant' and not loop.last %}(earlier){% else %}{{ m['content'] }}{% endif %}"
             "</s>{% endfor %}{% if add_generation_prompt %}<s>assistant\n{% endif %}")
TWO_TURNS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
             {"role": "assistant", "content": "yo"}, {"role": "user", "content": "again"},
             {"role": "assistant", "content": "yo yo"}]


def chat_tokenizer(template: str = TEMPLATE):
    from aios_tui.engine.tokenizer import byte_tokenizer

    tok = byte_tokenizer()
    tok.chat_template = template
    return tok


def with_template(model_dir: Path, dest: Path, template: str = TEMPLATE) -> Path:
    """A copy of ``model_dir`` whose tokenizer has ``template`` as its chat template."""
    dest.mkdir()
    for f in model_dir.iterdir():
        if f.is_file():
            (dest / f.name).write_bytes(f.read_bytes())
    chat_tokenizer(template).save_pretrained(dest)
    return dest


@pytest.fixture(scope="module")
def chat_model_dir(small_model_dir, tmp_path_factory) -> Path:
    """The small Llama with the byte tokenizer and a simple chat template."""
    return with_template(small_model_dir, tmp_path_factory.mktemp("chat") / "chat-llama")


def write_chats(path: Path, n: int = 40, answer: str = "={s}") -> Path:
    rows = [{"messages": [{"role": "user", "content": f"{a}+{b}"},
                          {"role": "assistant", "content": answer.format(s=a + b)},
                          {"role": "user", "content": "twice"},
                          {"role": "assistant", "content": str(2 * (a + b))}]}
            for a in range(n // 5) for b in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def labelled(text_ids, labels) -> str:
    """The trained characters, '_' for each masked token (byte tokenizer: one token per byte)."""
    from aios_tui.engine.data import IGNORE

    tok = chat_tokenizer()
    return "".join(tok.decode([int(i)]) if lab != IGNORE else "_" for i, lab in zip(text_ids, labels))


def test_loss_falls_on_the_assistant_turns_only(tmp_path):
    from aios_tui.engine.data import IGNORE, tokenize_documents

    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"messages": TWO_TURNS}) + "\n")
    docs = read_documents(p)
    tok = chat_tokenizer()
    ids, labels = tokenize_documents(docs, tok, "m", str(p))
    rendered = tok.apply_chat_template(TWO_TURNS, tokenize=False)
    # the template frames the conversation itself: no bos or eos of ours around it
    assert list(ids) == tok(rendered, add_special_tokens=False)["input_ids"]
    trained = np.asarray(labels) != IGNORE
    assert (np.asarray(labels)[trained] == ids[trained]).all()
    masked = "<s>system\nbe brief</s><s>user\nhi</s><s>assistant\n"
    expected = ([False] * len(tok(masked, add_special_tokens=False)["input_ids"])
                + [True] * 3  # "yo" and the </s> that ends the turn
                + [False] * len(tok("<s>user\nagain</s><s>assistant\n", add_special_tokens=False)["input_ids"])
                + [True] * 6)
    assert trained.tolist() == expected
    assert labelled(ids, labels).replace("_", "") == "yo</s>yo yo</s>"


def test_sharegpt_conversations_read_as_messages(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "q"},
                                               {"from": "gpt", "value": "a"}]}) + "\n")
    assert read_documents(p)[0].turns == (("system", "s"), ("user", "q"), ("assistant", "a"))


def test_a_template_that_rewrites_earlier_turns_trains_one_example_per_turn(tmp_path):
    from aios_tui.engine.data import tokenize_documents

    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"messages": TWO_TURNS}) + "\n")
    tok = chat_tokenizer(REWRITING)
    ids, labels = tokenize_documents(read_documents(p), tok, "m", str(p))
    assert tok.decode(ids.tolist()) == (
        "<s>system\nbe brief</s><s>user\nhi</s><s>assistant\nyo</s>"
        "<s>system\nbe brief</s><s>user\nhi</s><s>assistant\n(earlier)</s><s>user\nagain</s>"
        "<s>assistant\nyo yo</s>")
    assert labelled(ids, labels).replace("_", "") == "yo</s>yo yo</s>"


def test_a_turn_that_does_not_continue_the_generation_prompt_is_refused(tmp_path):
    from aios_tui.engine.data import tokenize_documents

    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"messages": TWO_TURNS}) + "\n")
    tok = chat_tokenizer(TEMPLATE.replace("<s>assistant\n{% endif %}", "<s>bot\n{% endif %}"))
    with pytest.raises(UserError, match=r"line 1: the model's chat template does not render an assistant "
                                        r"turn as a continuation of its generation prompt"):
        tokenize_documents(read_documents(p), tok, "m", str(p))


def test_a_template_error_names_the_line(tmp_path):
    from aios_tui.engine.data import tokenize_documents

    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"messages": TWO_TURNS}) + "\n")
    tok = chat_tokenizer("{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system role') }}"
                         "{% endif %}" + TEMPLATE)
    with pytest.raises(UserError, match=r"line 1: the model's chat template refuses this conversation "
                                        r"\(no system role\)"):
        tokenize_documents(read_documents(p), tok, "m", str(p))


@pytest.mark.parametrize("row, problem", [
    ({"messages": [{"role": "user", "content": "hi"}]}, "has no assistant turn"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "turn 1 has role 'tool'; valid: system, user, assistant"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "turn 1 needs a string 'content'"),
    ({"messages": []}, "'messages' must be a non-empty list"),
    ({"conversations": [{"from": "bot", "value": "x"}]}, "turn 1 has from 'bot'"),
])
def test_bad_chat_rows_are_named(tmp_path, row, problem):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match=rf"line 1: chat record: .*{problem}"):
        read_documents(p)


def test_an_unpaired_surrogate_in_a_turn_is_refused(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "\\ud83d"}]}\n')
    with pytest.raises(UserError, match=r"line 1: holds an unpaired UTF-16 surrogate escape"):
        read_documents(p)


def test_a_file_mixing_chat_and_text_is_refused(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"messages": TWO_TURNS}) + "\n" + json.dumps({"text": "plain"}) + "\n")
    with pytest.raises(UserError, match=r"mixes chat records \(line 1\) with 'text' or 'prompt'/'completion' "
                                        r"records \(line 2\)"):
        read_documents(p)


def test_chat_rows_are_found_without_the_jsonl_suffix(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text(json.dumps({"messages": TWO_TURNS}) + "\n")
    assert read_documents(p)[0].turns[2] == ("assistant", "yo")


def test_trains_end_to_end_and_resume_refuses_a_changed_conversation(cli, tmp_path, chat_model_dir):
    data = write_chats(tmp_path / "chat.jsonl")
    run = tmp_path / "run"
    args = ["--model", str(chat_model_dir), "--dataset-file", str(data), "--max-seq-len", "64",
            "--batch-size", "4", "--steps", "4", "--save-every", "2", "--device", "cpu", "--progress", "none"]
    code, _, err = cli("train", "--run-dir", str(run), "--stop-after", "2", *args)
    assert code == 0, err
    assert json.loads((run / "status.json").read_text())["step"] == 2
    code, out, err = cli("generate", str(run), "--chat", "--prompt", "3+4", "--temperature", "0",
                         "--max-new-tokens", "4")
    assert code == 0, err
    assert not out.startswith("3+4")  # the answer alone
    write_chats(data, answer="~{s}")  # each first answer changed, the length kept
    code, _, err = cli("train", "--resume", str(run), "--progress", "none")
    assert code == 2
    assert "its contents changed since step-000002" in err


def test_check_refuses_a_tokenizer_without_a_chat_template(cli, tmp_path):
    data = write_chats(tmp_path / "chat.jsonl", n=5)
    for command in ("train", "train-actv1"):
        code, out, err = cli(command, "--dataset-file", str(data), "--check", "--run-dir", str(tmp_path / "r"))
        assert code == 2, (command, out)
        assert err.strip() == ("aios-tui: error: model.model: the built-in tiny model's byte tokenizer has no "
                               "chat template, which chat records are rendered with; point --model at a model "
                               "whose tokenizer has one (an instruct or chat model), or write each record as "
                               "'prompt' and 'completion' fields")
    assert not (tmp_path / "r").exists()


def test_check_renders_every_conversation_with_the_template(cli, tmp_path, chat_model_dir):
    data = write_chats(tmp_path / "chat.jsonl", n=5)
    code, _, err = cli("train", "--model", str(chat_model_dir), "--dataset-file", str(data), "--check")
    assert code == 0, err
    with data.open("a") as fh:
        fh.write(json.dumps({"messages": [{"role": "user", "content": "say it"},
                                          {"role": "assistant", "content": "bad"}]}) + "\n")
    strict = with_template(chat_model_dir, tmp_path / "strict", "{% for m in messages %}{% if m['content'] == "
                           "'bad' %}{{ raise_exception('no bad words') }}{% endif %}{% endfor %}" + TEMPLATE)
    code, _, err = cli("train", "--model", str(strict), "--dataset-file", str(data), "--check")
    assert code == 2
    assert err.strip().splitlines() == [
        f"aios-tui: error: dataset {data}, line 6: the model's chat template refuses this conversation "
        "(no bad words)"]


def test_train_actv1_trains_on_chat_records(cli, tmp_path, chat_model_dir):
    data = write_chats(tmp_path / "chat.jsonl", n=10)
    code, _, err = cli("train-actv1", "--hidden-size", "64", "--num-heads", "4", "--h-layers", "1",
                       "--l-layers", "1", "--model", str(chat_model_dir), "--dataset-file", str(data),
                       "--max-seq-len", "64", "--batch-size", "4", "--steps", "2", "--device", "cpu",
                       "--run-dir", str(tmp_path / "run"), "--bundle-dir", str(tmp_path / "brains"),
                       "--progress", "none")
    assert code == 0, err
    assert json.loads((tmp_path / "run" / "status.json").read_text())["state"] == "finished"
    bundle = next((tmp_path / "brains").iterdir())
    for source in (tmp_path / "run", bundle):  # the run's checkpoint, and the brain bundle
        code, _, err = cli("generate", str(source), "--chat", "--prompt", "1+2", "--temperature", "0",
                           "--max-new-tokens", "3")
        assert code == 0, (source, err)


def test_a_chat_prompt_is_framed_as_training_framed_the_conversation():
    from aios_tui.data import Document
    from aios_tui.engine.data import IGNORE, encode_prompt, tokenize_documents

    tok = chat_tokenizer()
    turns = (("user", "hi"), ("assistant", "yo"))
    ids, labels = tokenize_documents([Document(text="", turns=turns, line=1)], tok, "m", "d")
    prompt = encode_prompt(tok, "hi", chat=True)
    assert list(ids[:len(prompt)]) == prompt           # what the model saw before its answer
    assert (labels[:len(prompt)] == IGNORE).all() and labels[len(prompt)] != IGNORE
    assert encode_prompt(tok, "hi") != prompt           # plain: bos + the text


def test_generate_chat_needs_a_chat_template(cli, tmp_path):
    code, _, err = cli("train", "--steps", "1", "--run-dir", str(tmp_path / "run"), "--progress", "none")
    assert code == 0, err
    code, out, err = cli("generate", str(tmp_path / "run"), "--chat", "--prompt", "hi")
    assert code == 2 and out == ""
    assert err.strip() == ("aios-tui: error: --chat: the model's tokenizer has no chat template to frame the "
                           "prompt with; drop --chat to continue the prompt as plain text")
