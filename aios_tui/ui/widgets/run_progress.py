"""One line of progress: state, a bar, step / total, percent and ETA (as the run reported it)."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from aios_tui.metrics.fmt import human_duration
from aios_tui.metrics.runstate import RunView
from aios_tui.ui.render import bar

STATE_STYLE = {"running": "bold green", "starting": "bold cyan", "stopping": "bold yellow", "resuming": "bold cyan",
               "stopped": "bold yellow", "finished": "bold green", "failed": "bold red",
               "unreadable": "bold red", "missing": "bold red"}


SESSION_EVENTS = ("started", "resumed")


def session_eta(view: RunView, state: str) -> float | None:
    """The run's own ETA, only while it runs and its newest step belongs to this session: a
    run starting (or resumed and not yet past its first step) has only an older session's ETA,
    or the 0s its last run ended with."""
    last = view.last or {}
    eta = last.get("eta_s")
    if state != "running" or view.state != "running" or not isinstance(eta, (int, float)):
        return None
    for ev in reversed(view.events):
        if ev.get("event") not in SESSION_EVENTS:
            continue
        t_ev, t_last = ev.get("time"), last.get("time")
        if isinstance(t_ev, (int, float)) and isinstance(t_last, (int, float)):
            older = t_last < t_ev
        else:
            older = not isinstance(last.get("step"), int) or last["step"] <= (ev.get("step") or 0)
        return None if older else eta
    return eta


class RunProgress(Widget):
    DEFAULT_CSS = """
    RunProgress {
        height: 1;
        padding: 0 1;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.view: RunView | None = None
        self.shown_state: str | None = None

    def update_view(self, view: RunView, shown_state: str | None = None) -> None:
        """``shown_state`` stands in for the run's own while a request is on its way."""
        self.view, self.shown_state = view, shown_state
        self.refresh()

    def render(self) -> Text:
        v = self.view
        if v is None:
            return Text("reading the run directory...")
        state = str(self.shown_state or v.state)
        text = Text()
        label = f"{state.upper()} ".ljust(9)
        text.append(label, style=STATE_STYLE.get(state, "bold"))
        step, total = v.step, v.total_steps
        frac = (step or 0) / total if total else None
        right = f" {step if step is not None else '-'}/{total or '?'}"
        if frac is not None:
            right += f" {frac:>4.0%}"
        eta = session_eta(v, state)
        elapsed = (v.last or {}).get("elapsed_s") if not v.live else None
        if eta is not None:
            right += f"  ETA {human_duration(eta)}"
        elif elapsed is not None:
            right += f"  took {human_duration(elapsed)}"
        width = max(8, self.content_size.width - 1 - len(label) - len(right))
        text.append(bar(frac, width), style=STATE_STYLE.get(state, ""))
        text.append(right)
        return text
