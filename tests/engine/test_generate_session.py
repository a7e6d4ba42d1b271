"""`generate` as a daily tool: answers streamed as they are sampled, prompt after prompt with the
model loaded once (a terminal session, a conversation with --chat and /reset), prompts from
stdin or a file, and the one-line refusals of prompts it cannot read."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .test_chat_data import with_template

ANSI = re.compile(rb"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[=>]")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A short run on the built-in tiny model, trained once for the module."""
    from aios_tui.cli import main

    root = tmp_path_factory.mktemp("gen")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIOS_TUI_TOKEN_CACHE", str(root / "token-cache"))
        mp.setenv("XDG_STATE_HOME", str(root / "xdg-state"))
        code = main(["train", "--steps", "2", "--max-seq-len", "32", "--batch-size", "2", "--eval-every", "0",
                     "--device", "cpu", "--run-dir", str(root / "run"), "--progress", "none"])
    assert code == 0
    return root / "run"


@pytest.fixture(scope="module")
def chat_dir(small_model_dir, tmp_path_factory) -> Path:
    return with_template(small_model_dir, tmp_path_factory.mktemp("chat") / "chat-llama")


def generate_process(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aios_tui", "generate", *args], input=stdin,
                          capture_output=True, text=True, timeout=300, env=os.environ.copy())


def test_answers_stream_piece_by_piece_and_add_up_to_the_answer(tiny_run):
    from aios_tui.engine.generate import Sampling, generate, load

    prompt, sampling = "Once é", Sampling(max_new_tokens=40, seed=3)
    whole = generate(tiny_run, prompt, max_new_tokens=40, seed=3, device="cpu")
    loaded = load(tiny_run, device="cpu")
    pieces: list[str] = []
    assert loaded.sample(loaded.prompt_ids(prompt), sampling, pieces.append) == whole
    assert len(pieces) > 1 and "".join(pieces) == whole
    # The printed text, piped: what generate printed before it streamed.
    done = generate_process(str(tiny_run), "--prompt", prompt, "--seed", "3", "--max-new-tokens", "40",
                            "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert done.stdout == prompt + whole + "\n"


def test_prompts_from_stdin_and_from_a_file_load_once(tiny_run, tmp_path):
    from aios_tui.engine.generate import generate

    def expected(prompt: str) -> str:
        return prompt + generate(tiny_run, prompt, max_new_tokens=6, seed=5, device="cpu") + "\n"

    flags = ["--max-new-tokens", "6", "--seed", "5", "--device", "cpu"]
    done = generate_process(str(tiny_run), "--prompt", "-", *flags, stdin="two\nlines\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected("two\nlines")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Once\n\n   \nTwice é\r\n", encoding="utf-8")
    done = generate_process(str(tiny_run), "--prompt-file", str(prompts), *flags)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "--- 1/2 ---\n" + expected("Once") + "--- 2/2 ---\n" + expected("Twice é")


def _take_terminal() -> None:
    import fcntl
    import termios

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # so that ^C typed on it interrupts, as in a shell


def test_a_terminal_session_answers_prompt_after_prompt(tiny_run):
    """No prompt on a terminal: '> ', an answer per line, an empty line ignored, ^D ends."""
    import pty
    import select

    from aios_tui.engine.generate import generate

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "aios_tui", "generate", str(tiny_run), "--temperature", "0",
                             "--max-new-tokens", "8", "--device", "cpu"], stdin=slave, stdout=slave, stderr=slave,
                            env=os.environ.copy(), start_new_session=True, preexec_fn=_take_terminal)
    os.close(slave)
    seen = b""

    def until_prompt(count: int) -> None:
        nonlocal seen
        while ANSI.sub(b"", seen).count(b"> ") < count:
            ready, _, _ = select.select([master], [], [], 120)
            assert ready, f"no prompt came; the session printed {seen!r}"
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the process ended
                chunk = b""
            assert chunk, f"the session ended early: {seen!r}"
            seen += chunk

    try:
        for n, keys in enumerate((b"Once\n", b"\n", b"Twice\n", b"\x04"), 1):
            until_prompt(n)
            os.write(master, keys)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
    out = ANSI.sub(b"", seen).replace(b"\r", b"").decode("utf-8", "replace")
    for prompt in ("Once", "Twice"):
        answer = generate(tiny_run, prompt, temperature=0, max_new_tokens=8, device="cpu")
        assert answer and f"\n{prompt}{answer}\n> " in out, out
    assert "/help lists the commands" in out


def test_a_chat_session_carries_the_conversation_until_reset(chat_dir):
    from aios_tui.engine.generate import Sampling, load

    loaded = load(chat_dir, device="cpu")
    tokenizer = loaded.tokenizer

    def expected(turns, seed: int) -> str:
        messages = [{"role": r, "content": c} for r, c in turns]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return loaded.sample(ids, Sampling(max_new_tokens=8, seed=seed))

    first = expected([("user", "1+2")], 0)
    second = expected([("user", "1+2"), ("assistant", first), ("user", "again")], 1)
    after_reset = expected([("user", "again")], 2)
    assert second != expected([("user", "again")], 1)  # the history makes a difference to this model
    done = generate_process(str(chat_dir), "--chat", "-i", "--max-new-tokens", "8", "--device", "cpu",
                            stdin="1+2\n\nagain\n/reset\nagain\n/help\n/rest\n")
    assert done.returncode == 0, done.stderr
    # '> ' is input()'s prompt; an empty line or a command prints its answer, if any, on stderr
    assert done.stdout == f"> {first}\n> > {second}\n> > {after_reset}\n> > > \n"
    assert "a new conversation" in done.stderr and "/reset  start a new conversation" in done.stderr
    assert "/rest: no such command; /help lists them" in done.stderr  # a typo is not a prompt


def test_prompts_it_cannot_read_are_refused_before_loading(cli, tmp_path, monkeypatch):
    missing = tmp_path / "no-run"  # never reached: the prompts are read first
    cases = {
        "--prompt-file": [(tmp_path / "absent.txt", None, "no such file"),
                          (tmp_path / "empty.txt", b"\n  \n", "holds no prompt; write one prompt per line"),
                          (tmp_path / "nul.txt", b"a\0b\n", "is not text (it holds NUL bytes)"),
                          (tmp_path / "latin1.txt", b"caf\xe9\n", "is not UTF-8 text (byte 3)")]}
    (tmp_path / "no-run").mkdir()
    for path, data, message in cases["--prompt-file"]:
        if data is not None:
            path.write_bytes(data)
        code, out, err = cli("generate", str(missing), "--prompt-file", str(path))
        assert code == 2 and out == "", err
        assert err.startswith(f"aios-tui: error: --prompt-file {path}: {message}") and len(err.splitlines()) == 1
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\n")))
    code, out, err = cli("generate", str(missing), "--prompt", "-")
    assert code == 2 and out == "" and err == "aios-tui: error: --prompt -: read no text from stdin\n"
    code, out, err = cli("generate", str(missing))  # stdin is not a terminal and no prompt was given
    assert code == 2 and out == "" and err.startswith("aios-tui: error: no prompt: give --prompt TEXT")
    code, out, err = cli("generate", str(missing), "--prompt", "x", "--top-p", "1.5")
    assert code == 2 and err == "aios-tui: error: --top-p: 1.5 is out of range; valid: more than 0, at most 1\n"


def test_chat_without_a_template_is_refused_before_the_first_prompt(tiny_run, cli, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"hi\n")))
    code, out, err = cli("generate", str(tiny_run), "--chat", "-i", "--device", "cpu")
    assert code == 2 and out == ""
    assert err.splitlines()[-1] == ("aios-tui: error: --chat: the model's tokenizer has no chat template to "
                                    "frame the prompt with; drop --chat to continue the prompt as plain text")


def test_a_prompt_past_the_models_positions_is_refused_in_one_line(tiny_run, tmp_path):
    """Longer than the tokenizer's model_max_length too: transformers' own warning stays out."""
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Once\n" + "x" * 2100 + "\n", encoding="utf-8")
    done = generate_process(str(tiny_run), "--prompt-file", str(prompts), "--device", "cpu")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"aios-tui: error: --prompt-file {prompts}, line 2: --max-new-tokens: the prompt's 2101 "
                           "tokens and 64 new ones exceed the model's 2048 positions; use a shorter prompt\n")


def test_an_empty_prompt_starts_a_document_where_the_tokenizer_has_no_bos_of_its_own(small_model_dir, tmp_path, cli):
    """GPT-2's bos is its eos, so nothing is put before a prompt: an empty one samples after an eos."""
    import shutil

    from transformers import AutoTokenizer

    model = tmp_path / "no-bos"
    shutil.copytree(small_model_dir, model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.bos_token = tokenizer.eos_token
    tokenizer.save_pretrained(model)
    code, out, err = cli("generate", str(model), "--prompt", "", "--max-new-tokens", "4", "--device", "cpu")
    assert code == 0 and out.endswith("\n") and "Traceback" not in err, err


def test_a_prompt_typed_in_another_encoding_is_refused_in_one_line(tiny_run):
    """Typed in a latin-1 terminal under a UTF-8 locale: an argument is refused before loading; in
    a session the line is refused and the session goes on."""
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    env.pop("PYTHONIOENCODING", None)
    base = [sys.executable, "-m", "aios_tui", "generate", str(tiny_run), "--max-new-tokens", "3", "--device", "cpu"]
    done = subprocess.run([*base, "--prompt", b"caf\xe9"], capture_output=True, timeout=300, env=env)
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr == (b"aios-tui: error: --prompt: is not UTF-8 text (byte 3); set the terminal to UTF-8, "
                           b"or convert it, e.g. `iconv -f latin1 -t utf-8`\n")
    done = subprocess.run([*base, "-i"], input=b"caf\xe9\nOnce\n", capture_output=True, timeout=300, env=env)
    assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr
    assert b"aios-tui: error: the prompt: is not UTF-8 text (byte 3)" in done.stderr
    assert b"> Once" in done.stdout


def test_a_temperature_too_small_to_divide_by_picks_the_likeliest_token(tiny_run, cli):
    """1e-300 overflowed the logits into NaN probabilities and torch.multinomial's traceback."""
    greedy = cli("generate", str(tiny_run), "--prompt", "Once", "--max-new-tokens", "8", "--temperature", "0",
                 "--device", "cpu")
    for cold in ("1e-300", "1e-30"):
        assert cli("generate", str(tiny_run), "--prompt", "Once", "--max-new-tokens", "8", "--temperature", cold,
                   "--device", "cpu") == greedy
    assert greedy[0] == 0 and greedy[1].startswith("Once")
