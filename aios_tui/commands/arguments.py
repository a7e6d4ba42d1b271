"""Arguments several commands take: a run (by directory or name), an interval in seconds; notes
on settings that will not do what they seem to."""

from __future__ import annotations

import math

from aios_tui.metrics.rundir import run_candidates


def run_path(arg: str) -> str:
    """``arg`` where it exists; else the run of that name under the runs root, if there is one."""
    first, *named = run_candidates(arg)
    if first.exists() or not named or not named[0].is_dir():
        return arg
    return str(named[0])


def interval_problem(seconds: float) -> str | None:
    if math.isfinite(seconds) and 0.05 <= seconds <= 3600:
        return None
    return f"--interval {seconds:g}: give seconds between 0.05 and 3600"


def note_ignored_peft_flags(args, use_peft: bool) -> None:
    """Says so when PEFT flags were given but PEFT is off: --use-peft is the master switch, so
    they would be silently unused."""
    import sys

    from aios_tui.config import field_index, overrides_from_args

    if use_peft:
        return
    index = field_index()
    given = [n for n in overrides_from_args(args) if n != "use_peft" and index.get(n, ("",))[0] == "peft"]
    if given:
        flags = ", ".join("--" + n.replace("_", "-") for n in given)
        print(f"note: {flags} {'has' if len(given) == 1 else 'have'} no effect without --use-peft; "
              "training the full model", file=sys.stderr)
