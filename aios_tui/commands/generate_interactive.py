"""`aios-tui generate` with no prompt on a terminal (or -i): prompt after prompt, the model
loaded once; with --chat, one conversation carried on until /reset."""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys

from aios_tui.commands.generate import answer, typed_problem
from aios_tui.errors import UserError

HELP = """\
/reset  start a new conversation (with --chat; without it each prompt stands alone)
/help   this list
An empty line is ignored; Ctrl-C stops an answer; Ctrl-C at the prompt or Ctrl-D ends.
A prompt that is one word starting with / is taken for a command; add a space to ask it."""
# One slash-word alone reads as a command mistyped (/rest, /quit), not as a prompt to sample.
_COMMAND = re.compile(r"/[A-Za-z]+")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def session(loaded, sampling, chat: bool) -> int:
    try:  # imported for its effect: input() gets line editing and the session's history
        importlib.import_module("readline")
    except ImportError:
        pass
    _say("type a prompt and press Enter" + (" (a conversation: /reset starts a new one)" if chat else "")
         + "; /help lists the commands, Ctrl-D ends")
    history: list[tuple[str, str]] = []
    asked = 0
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            print(flush=True)  # the shell's prompt starts on a line of its own
            return 0
        except UnicodeDecodeError as exc:  # a locale whose stdin is strict UTF-8
            _say(f"aios-tui: error: the prompt: is not UTF-8 text (byte {exc.start}); set the terminal to UTF-8")
            continue
        command = line.strip()
        if not command:
            continue
        if command == "/help":
            _say(HELP)
            continue
        if command == "/reset":
            history.clear()
            _say("a new conversation" if chat else "nothing to reset: without --chat each prompt stands alone")
            continue
        if _COMMAND.fullmatch(line):
            _say(f"{command}: no such command; /help lists them (Ctrl-D ends)")
            continue
        problem = typed_problem(line, "the prompt")
        if problem:
            _say(f"aios-tui: error: {problem}")
            continue
        # Each answer its own seed: asking again gives another sample, the session stays reproducible.
        this = dataclasses.replace(sampling, seed=sampling.seed + asked)
        asked += 1
        try:
            ids = loaded.prompt_ids(line, chat, history)
            text = answer(loaded, line, ids, this, chat)
        except KeyboardInterrupt:
            _say("(stopped; left out of the conversation)" if chat else "(stopped)")
            continue
        except UserError as exc:
            for problem in exc.problems:
                _say(f"aios-tui: error: {problem}" + (" (or /reset the conversation)" if history else ""))
            continue
        if chat:
            history += [("user", line), ("assistant", text)]
