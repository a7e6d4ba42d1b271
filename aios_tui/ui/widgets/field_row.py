"""One configuration field: its name, an editor fitted to its type, and its problems below."""

from __future__ import annotations

import dataclasses
from typing import Any

from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from aios_tui.ui.widgets.choice import Choice
from aios_tui.config.schema import field_type
from aios_tui.config.validate import valid_range
from aios_tui.ui.widgets.toggle import Toggle


def value_text(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


class FieldRow(Widget):
    DEFAULT_CSS = """
    FieldRow {
        height: auto;
        layout: grid;
        grid-size: 2;
        grid-columns: 25 1fr;
        grid-rows: auto;
    }
    FieldRow .field-label {
        width: 25;
        color: $text-muted;
    }
    FieldRow.-changed .field-label {
        color: $text;
        text-style: bold;
    }
    FieldRow .field-error {
        column-span: 2;
        height: auto;
        color: $error;
        padding-left: 2;
    }
    FieldRow Select {
        width: 1fr;
    }
    """

    class Mounted(Message):
        """A row exists now (rows of hidden tabs arrive after the first paint)."""

        def __init__(self, row: "FieldRow") -> None:
            super().__init__()
            self.row = row

    def __init__(self, name: str, section: str, spec: dataclasses.Field, raw: Any) -> None:
        super().__init__(id=f"row-{name}")
        self.field_name = name
        self.section = section
        self.spec = spec
        self.kind = field_type(spec)
        self._initial = raw
        self._problems_text = ""
        self._changed = False

    @property
    def help_text(self) -> str:
        meta = self.spec.metadata
        extra = []
        if meta.get("choices"):
            extra.append("one of " + ", ".join(meta["choices"]))
        if valid_range(meta):
            extra.append(valid_range(meta))
        extra.append(f"default {self.spec.default!r}")
        return f"{meta.get('help', '')} · {' · '.join(extra)}"

    def compose(self) -> ComposeResult:
        editor_id = f"f-{self.field_name}"
        yield Label(self.field_name, classes="field-label")
        if self.kind is bool:
            yield Toggle(bool(self._initial), id=editor_id)
        elif self.spec.metadata.get("choices"):
            choices = self.spec.metadata["choices"]
            yield Choice([(c, c) for c in choices], value=self._initial, allow_blank=False,
                         compact=True, id=editor_id)
        else:
            restrict = {int: "integer", float: "number"}.get(self.kind, "text")
            yield Input(str(self._initial), type=restrict, compact=True, id=editor_id)

    def on_mount(self) -> None:
        self.post_message(self.Mounted(self))

    @property
    def editor(self) -> Widget:
        return self.query_one(f"#f-{self.field_name}")

    @property
    def value(self) -> Any:
        return self.editor.value  # type: ignore[attr-defined]

    def set_value(self, raw: Any) -> None:
        ed = self.editor
        if isinstance(ed, Toggle):
            ed.value = bool(raw)
        elif isinstance(ed, Input):
            ed.value = raw
            # A value put in (a preset, a file) shows its start: the cursor would stay where the
            # old value's end was, and a long value would read as its tail (",v_proj,o_proj").
            ed.cursor_position = 0
            ed.scroll_to(x=0, animate=False, immediate=True)
        else:
            ed.value = raw  # type: ignore[attr-defined]

    # Both setters touch the DOM only on a real change: the form calls them for every field
    # on every keystroke, and a needless update costs a layout pass. The error line itself
    # exists only while there is something to say.
    def set_problems(self, problems: list[str]) -> None:
        text = "\n".join(f"! {p}" for p in problems)
        if text == self._problems_text:
            return
        self._problems_text = text
        self.set_class(bool(problems), "-invalid")
        shown = self.query(".field-error")
        if not text:
            shown.remove()
        elif shown:
            shown.first(Static).update(text)
        else:
            self.mount(Static(text, classes="field-error"))

    def set_changed(self, changed: bool) -> None:
        if changed == self._changed:
            return
        self._changed = changed
        self.set_class(changed, "-changed")
        self.query_one(".field-label", Label).update(("* " if changed else "") + self.field_name)
