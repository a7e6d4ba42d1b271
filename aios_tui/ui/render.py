"""Small text renderings shared by widgets: bars that read the same with or without colour."""

from __future__ import annotations

from rich.text import Text

FULL, EMPTY = "█", "░"
PARTS = " ▏▎▍▌▋▊▉"


def bar(fraction: float | None, width: int) -> str:
    """A bar ``width`` cells wide, filled to ``fraction`` with eighth-cell precision."""
    if width <= 0:
        return ""
    if fraction is None:
        return EMPTY * width
    f = min(max(fraction, 0.0), 1.0)
    eighths = round(f * width * 8)
    full, part = divmod(eighths, 8)
    text = FULL * full
    if part and full < width:
        text += PARTS[part]
    return text + EMPTY * (width - len(text))


def labelled(label: str, value: str, width: int = 12, style: str = "") -> Text:
    t = Text(f"{label:<{width}}", style="dim" if not style else style)
    t.append(value)
    return t
