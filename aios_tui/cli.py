"""`aios-tui`: one entry point, one module per subcommand under ``aios_tui/commands``.

Command modules import only argparse-level code at the top, so `aios-tui --help` and the
console start fast; torch and friends are imported inside each command's ``run``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import signal
import sys
from typing import Sequence

from aios_tui import __version__
from aios_tui.config.validate import ConfigError
from aios_tui.errors import UserError, first_line
from aios_tui.printable import printable
from aios_tui.quiet import quiet_library_warnings

# Order is the order `aios-tui --help` lists them.
COMMANDS = (
    "console", "train", "train_actv1", "estimate", "gpu", "tail", "attach", "runs", "compare",
    "eval", "export", "generate", "presets", "config",
)


_PIP_NAMES = {"pynvml": "nvidia-ml-py", "yaml": "pyyaml", "tomli_w": "tomli-w"}


def _load_commands() -> list:
    modules = []
    for name in COMMANDS:
        try:
            modules.append(importlib.import_module(f"aios_tui.commands.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"aios_tui.commands.{name}":
                raise
    return modules


class Parser(argparse.ArgumentParser):
    """A command whose usage is a short form (``[options]`` for seventy flags) says on an error
    where they are listed; its --help lists them right below, so there it says nothing more.
    Subcommands' parsers are of this class too (argparse makes them of their parent's)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A value that starts with a minus and a digit (-5GiB, -1e-3, -.5) is a value: argparse
        # takes only plain negative numbers so, and calls the rest a missing argument, where the
        # option's own check says what is wrong with it. No option here looks like -<digit>.
        self._negative_number_matcher = re.compile(r"-\.?\d")

    def error(self, message: str):  # type: ignore[override]
        super().error(printable(message))

    def format_usage(self) -> str:  # argparse's errors print this; --help formats its own
        usage = super().format_usage()
        if self.usage and "[options]" in self.usage:
            usage = usage.rstrip("\n") + "  (every option: --help)\n"
        return usage


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="aios-tui",
        description="Fine-tune causal language models (LoRA, AdaLoRA, IA3 or full) from a terminal. "
                    "With no command, opens the console (options before any command, such as "
                    "--preset NAME, are the console's).",
    )
    parser.add_argument("--version", action="version", version=f"aios-tui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _load_commands():
        module.register(sub)
    return parser


def _unknown_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> None:
    """Refuse what no option takes, with the command's own usage and the closest option names."""
    from aios_tui.config.validate import closest

    command = getattr(args, "command", None)
    sub = parser._subparsers._group_actions[0].choices.get(command) if command else None  # type: ignore[union-attr]
    target = sub or parser
    while True:  # a nested command (`presets save`) has its own options
        nested = [a for a in target._actions if isinstance(a, argparse._SubParsersAction)]
        name = getattr(args, nested[0].dest, None) if nested else None
        if not name or name not in nested[0].choices:
            break
        target = nested[0].choices[name]
    options = [o for a in target._actions for o in a.option_strings if o.startswith("--")]
    hints = []
    for token in extra:
        flag = token.split("=", 1)[0]
        if flag.startswith("--"):
            close = closest(flag, options, cutoff=0.75)
            if close:
                hints.append(f"{flag}: did you mean {close}?")
    target.error(f"unrecognized arguments: {' '.join(extra)}" + ("; " + "; ".join(hints) if hints else ""))


MAX_REPORTED = 20  # problems listed; past that it is the wrong file, and the first ones say so


def report(problems: Sequence[str]) -> None:
    """Each problem on one line of its own, and at most MAX_REPORTED of them."""
    lines = [printable(str(p)) for p in problems]
    if len(lines) > MAX_REPORTED:
        lines = lines[:MAX_REPORTED - 1] + [f"... and {len(lines) - MAX_REPORTED + 1} more problems"]
    for line in lines:
        print(f"aios-tui: error: {line}", file=sys.stderr)


def _shortened(path: object, keep: int = 60) -> str:
    text = os.fsdecode(path) if isinstance(path, (str, bytes)) else str(path)
    return text if len(text) <= keep else f"{text[:keep]}... ({len(text)} characters)"


_PATH_ERRORS = {errno.ENAMETOOLONG: "file name too long", errno.EACCES: "permission denied",
                errno.EPERM: "operation not permitted", errno.EROFS: "read-only file system"}

# pathlib's expanduser on ~USER for a user this system does not have (os.path's leaves it as is)
_NO_HOME = "Could not determine home directory."


def _unknown_home(argv: Sequence[str]) -> str:
    values = [token.split("=", 1)[-1] for token in argv]
    unknown = [v for v in values if v.startswith("~") and os.path.expanduser(v) == v]
    if unknown:
        user = unknown[0][1:].split("/", 1)[0]
        return f"{_shortened(unknown[0])}: no user {user!r} on this system to expand ~{user} for"
    return "a path starts with ~USER for a user this system does not have"


def _printable_on_any_terminal() -> None:
    """A terminal whose locale is not UTF-8 (LANG=en_US.ISO-8859-1 over SSH, an ASCII pipe) cannot
    show every character the commands print: charts in braille, a model's generated text, a file
    name. Such a character prints as '?' rather than ending the command in a traceback."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and stream.errors == "strict":
            stream.reconfigure(errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _printable_on_any_terminal()
    quiet_library_warnings()
    parser = build_parser()
    has_console = "console" in parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    if not argv:
        if has_console:
            argv = ["console"]
        else:
            parser.print_help()
            return 0
    elif argv[:2] == ["hrm-hf", "train-actv1"]:
        argv = argv[1:]  # AI-OS's spelling, so its documented command lines run as written
    elif has_console and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        argv = ["console", *argv]  # `aios-tui --preset NAME` is the console's `--preset NAME`
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unknown_arguments(parser, args, extra)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UserError) as exc:
        report(exc.problems)
        return 2
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if not top or top == "aios_tui":
            raise
        # A broken install: name the missing package and the fix rather than show a traceback.
        report([f"the Python package {_PIP_NAMES.get(top, top)} is missing ({exc}); reinstall "
                "aios-tui with its dependencies (`pip install -e .` in its checkout)"])
        return 2
    except KeyboardInterrupt:
        return 130
    except RuntimeError as exc:
        if str(exc) == _NO_HOME:
            report([_unknown_home(argv)])
            return 2
        if type(exc).__name__ != "OutOfMemoryError":  # torch.cuda's, without importing torch here
            raise
        # Loading a model or scoring a checkpoint beside a run that holds the GPU (the console's
        # "try it" on a live run): say so, not torch's traceback.
        report([f"out of GPU memory ({first_line(exc)}); free the GPU "
                "(`aios-tui gpu` shows who holds it) or use --device cpu"])
        return 1
    except BrokenPipeError:  # `aios-tui tail ... | head` closed the pipe; not an error
        try:
            sys.stdout = open("/dev/null", "w")
        except OSError:
            pass
        return 0
    except OSError as exc:
        if exc.errno not in _PATH_ERRORS or exc.filename is None:
            raise
        # A path the user named (or one under it) that cannot be used: pathlib's exists() and
        # is_dir() raise these where they are first checked, which may be anywhere.
        report([f"{_shortened(exc.filename)}: {_PATH_ERRORS[exc.errno]}"])
        return 2


if __name__ == "__main__":  # pragma: no cover
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    raise SystemExit(main())
