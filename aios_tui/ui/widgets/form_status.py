"""One line above the form: whether it is valid, and how far it is from its preset."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class FormStatus(Widget):
    DEFAULT_CSS = """
    FormStatus {
        width: 1fr;
        height: 1;
        padding: 0 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._state: tuple = ((), 0, "the preset")

    def show(self, problems: tuple[str, ...] | list[str], changes: int, base: str = "the preset") -> None:
        state = (tuple(problems), changes, base)
        if state != self._state:
            self._state = state
            self.refresh()  # fixed size: repaint only

    def render(self) -> Text:
        problems, changes, base = self._state
        text = Text()
        if problems:
            text.append(f"! {len(problems)} problem{'s' if len(problems) != 1 else ''}: ", style="bold red")
            text.append(problems[0])
        else:
            text.append("valid", style="bold green")
            text.append(f"  {changes} change{'s' if changes != 1 else ''} from {base}" if changes
                        else f"  same as {base}", style="dim")
        return text
