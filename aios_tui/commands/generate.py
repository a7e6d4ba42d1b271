"""`aios-tui generate`: sample text from a trained run (or an exported model)."""

from __future__ import annotations

import argparse
import math
import sys
import textwrap

from aios_tui.config import ConfigError
from aios_tui.errors import UserError

EPILOG = """\
examples:
  aios-tui generate NAME --prompt "Once"            # prompt and continuation
  aios-tui generate NAME                            # on a terminal: a session
  aios-tui generate NAME --chat                     # a conversation, /reset
  echo "Once" | aios-tui generate NAME --prompt -   # the prompt from stdin
  aios-tui generate NAME --prompt-file prompts.txt  # one prompt a line"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="sample text from a trained run",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                       description=textwrap.fill(
                           "Loads the base model with the run's adapter (latest checkpoint unless "
                           "--checkpoint) and prints the prompt and its continuation as it is sampled. "
                           "With no prompt on a terminal, asks prompt after prompt, the model loaded "
                           "once. Also takes a directory written by `aios-tui export`.", 78))
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory or run name, an exported adapter or a model directory")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--prompt", metavar="TEXT", help="the text to continue; -: read it from stdin")
    source.add_argument("--prompt-file", metavar="FILE",
                        help="ask each line of FILE (UTF-8 text; blank lines skipped; -: stdin) as a prompt "
                             "of its own, each answer after a '--- N/TOTAL ---' line")
    source.add_argument("-i", "--interactive", action="store_true",
                        help="ask prompt after prompt ('> '), the model loaded once (the default with no "
                             "prompt on a terminal); Ctrl-C stops an answer, Ctrl-D ends")
    p.add_argument("--chat", action="store_true",
                   help="ask the prompt as a user turn of the model's chat template and print the "
                        "answer alone (for a run trained on chat records); interactively, the "
                        "conversation carries on until /reset")
    p.add_argument("--max-new-tokens", type=int, default=64, metavar="N", help="tokens to sample (default: 64)")
    p.add_argument("--temperature", type=float, default=0.8, metavar="T",
                   help="sampling temperature; 0 picks the likeliest token every time (default: 0.8)")
    p.add_argument("--top-k", type=int, default=50, metavar="K",
                   help="sample among the K likeliest tokens; 0: all (default: 50)")
    p.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="sample among the likeliest tokens whose probabilities add up to P; 1: all "
                        "(default: the model's generation config, else 1)")
    p.add_argument("--seed", type=int, default=0, metavar="S",
                   help="sampling seed; each prompt of --prompt-file uses it too, an interactive "
                        "session's next answers S+1, S+2... (default: 0)")
    p.add_argument("--checkpoint", type=int, default=None, metavar="STEP", help="use this step's checkpoint")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="where to run (default: auto)")
    p.set_defaults(func=run)


def _decoded(data: bytes, label: str) -> str:
    if b"\0" in data:
        raise UserError(f"{label}: is not text (it holds NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{label}: is not UTF-8 text (byte {exc.start}); convert it, e.g. "
                        "`iconv -f latin1 -t utf-8`") from None


def typed_problem(text: str, label: str) -> str | None:
    """What is wrong with a prompt typed (an argument, a session's line) in a locale that is not
    UTF-8: Python keeps its bytes as lone surrogates, which no tokenizer takes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        at = len(text[:exc.start].encode("utf-8", "surrogateescape"))
        return (f"{label}: is not UTF-8 text (byte {at}); set the terminal to UTF-8, or convert it, "
                "e.g. `iconv -f latin1 -t utf-8`")
    return None


def _read_stdin(label: str) -> str:
    try:
        return _decoded(sys.stdin.buffer.read(), label)
    except OSError as exc:
        raise UserError(f"{label}: cannot read stdin ({exc.strerror or exc})") from None


def stdin_prompt() -> str:
    """`--prompt -`: all of stdin, less the line end `echo` adds."""
    text = _read_stdin("--prompt -")
    text = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not text:
        raise UserError("--prompt -: read no text from stdin")
    return text


def file_prompts(name: str) -> list[tuple[int, str]]:
    """`--prompt-file`: (line number, prompt) for each non-blank line (a prompt cannot span lines: that one
    rule keeps every file readable the same way; `--prompt -` takes a multi-line prompt)."""
    from pathlib import Path

    label = f"--prompt-file {name}"
    if name == "-":
        text = _read_stdin(label)
    else:
        path = Path(name).expanduser()
        if path.is_dir():
            raise UserError(f"{label}: is a directory; give a file with one prompt per line")
        try:
            text = _decoded(path.read_bytes(), label)
        except FileNotFoundError:
            raise UserError(f"{label}: no such file") from None
        except OSError as exc:
            raise UserError(f"{label}: cannot read it ({exc.strerror or exc})") from None
    prompts = [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), 1)]
    prompts = [(n, p) for n, p in prompts if p.strip()]
    if not prompts:
        raise UserError(f"{label}: holds no prompt; write one prompt per line")
    return prompts


class Printer:
    """Prints an answer piece by piece as it is sampled, ``lead`` (the prompt, when it is
    continued) first; nothing until the first piece, so a refused prompt prints nothing."""

    def __init__(self, lead: str = ""):
        self.lead = lead
        self.started = False

    def write(self, piece: str) -> None:
        if not self.started:
            self.started = True
            piece = self.lead + piece
        sys.stdout.write(piece)
        sys.stdout.flush()

    def finish(self) -> None:
        if not self.started:
            self.write("")
        sys.stdout.write("\n")
        sys.stdout.flush()


def ended_at_once_note() -> None:
    print("note: the model ended the text at once (end of sequence); try another --seed, "
          "--temperature 0, or a prompt like the training data", file=sys.stderr)


def answer(loaded, prompt: str, ids: list[int], sampling, chat: bool) -> str:
    """Samples and prints the answer to ``prompt`` (encoded as ``ids``), the prompt first unless
    ``chat``; the answer's text."""
    printer = Printer("" if chat else prompt)
    try:
        text = loaded.sample(ids, sampling, printer.write)
    finally:
        if printer.started:  # ends the line of an answer Ctrl-C cut short, too
            printer.finish()
    if not printer.started:
        printer.finish()
    if not text:
        ended_at_once_note()
    return text


def _check(args: argparse.Namespace) -> None:
    from aios_tui.commands.arguments import device_problem

    problems = []
    if args.max_new_tokens < 1:
        problems.append(f"--max-new-tokens: {args.max_new_tokens} is out of range; valid: at least 1")
    if not math.isfinite(args.temperature) or args.temperature < 0:
        problems.append(f"--temperature: {args.temperature} is out of range; valid: 0 or more")
    if args.top_k < 0:
        problems.append(f"--top-k: {args.top_k} is out of range; valid: 0 or more")
    if args.top_p is not None and not (0 < args.top_p <= 1):
        problems.append(f"--top-p: {args.top_p} is out of range; valid: more than 0, at most 1")
    problem = device_problem(args.device)
    if problem:
        problems.append(problem)
    if problems:
        raise ConfigError(problems)


def run(args: argparse.Namespace) -> int:
    from aios_tui.commands.arguments import run_path

    args.run_dir = run_path(args.run_dir, "run or model directory")
    _check(args)
    interactive = args.interactive or (args.prompt is None and args.prompt_file is None and sys.stdin.isatty())
    if interactive:
        prompts = None
    elif args.prompt_file is not None:
        prompts = file_prompts(args.prompt_file)
    elif args.prompt == "-":
        prompts = [(0, stdin_prompt())]
    elif args.prompt is not None:
        problem = typed_problem(args.prompt, "--prompt")
        if problem:
            raise UserError(problem)
        prompts = [(0, args.prompt)]
    else:
        raise UserError("no prompt: give --prompt TEXT, --prompt - (stdin), --prompt-file FILE, "
                        "or -i to ask prompt after prompt")

    from aios_tui.engine.generate import Sampling, load

    sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                        top_p=args.top_p, seed=args.seed)
    if interactive:
        print(f"loading {args.run_dir} ...", file=sys.stderr, flush=True)
    loaded = load(args.run_dir, step=args.checkpoint, device=args.device)
    loaded.check(sampling, args.chat)
    if interactive:
        from aios_tui.commands.generate_interactive import session

        return session(loaded, sampling, args.chat)
    encoded, problems = [], []
    for line, prompt in prompts:  # all refused before the first answer, not midway
        ids = loaded.prompt_ids(prompt, args.chat)
        try:
            loaded.check_room(ids, sampling)
        except UserError as exc:
            where = f"--prompt-file {args.prompt_file}, line {line}: " if line else ""
            problems += [where + p for p in exc.problems]
        encoded.append((prompt, ids))
    if problems:
        raise UserError(problems)
    for n, (prompt, ids) in enumerate(encoded, 1):
        if args.prompt_file is not None:
            print(f"--- {n}/{len(encoded)} ---", flush=True)
        answer(loaded, prompt, ids, sampling, args.chat)
    return 0
