"""The run configuration as a form: every field of every section, grouped in tabs.

Built from the config dataclasses' metadata, so a new field appears here by itself.
Each edit re-validates the whole config with the same code the CLI uses and shows every
problem under the field it names.

The form's values live in a plain dict, not in the widgets: the tabs the user is not
looking at are mounted only after the first paint (the console must appear at once on a
small box), and the config is always whole, whichever rows exist yet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Select, Static, TabbedContent, TabPane

from aios_tui.config import RunConfig, field_index
from aios_tui.config.schema import field_type
from aios_tui.config.validate import apply_mapping, validate
from aios_tui.ui.widgets.field_row import FieldRow, value_text
from aios_tui.ui.widgets.toggle import Toggle

TABS = (
    ("model", "Model & data", ("model", "data")),
    ("peft", "PEFT", ("peft",)),
    ("train", "Training", ("train",)),
    ("memory", "Memory", ("memory",)),
    ("hrm", "HRM", ("hrm",)),
)
# Tab labels when the long ones would not fit the row (an 80-column terminal once tabs count
# problems): a tab cut off at the edge cannot be read, and the row does not scroll. Tried in
# order: the names, and how a tab's problem count is marked.
_SHORT = {"model": "Model", "train": "Train"}
NARROW_LABELS = (({}, " !{}"), (_SHORT, " !{}"), ({**_SHORT, "memory": "Mem"}, "!{}"),
                 ({**_SHORT, "memory": "Mem"}, "!"))
PENDING_TABS_DELAY_S = 0.4
TAB_OF_SECTION = {section: key for key, _, sections in TABS for section in sections}
_FIELD_PROBLEM = re.compile(r"^(\w+)\.(\w+): ")
_QUOTED = re.compile(r"'([^']+)'")


@dataclass(frozen=True)
class FormResult:
    config: RunConfig | None          # None while any problem remains
    problems: tuple[str, ...]
    by_field: dict[str, list[str]]
    general: tuple[str, ...]          # problems that name no single field


def raw_values(cfg: RunConfig) -> dict[str, Any]:
    """What each editor holds for ``cfg``: text for numbers and strings, the value otherwise."""
    out: dict[str, Any] = {}
    for name, (section, f) in field_index().items():
        value = getattr(getattr(cfg, section), name)
        kind = field_type(f)
        out[name] = value if kind is bool or f.metadata.get("choices") else value_text(value)
    return out


def _typed(section: str, name: str, kind: type, raw: Any) -> tuple[Any, str | None]:
    if kind in (bool, str) or not isinstance(raw, str):
        return raw, None
    text = raw.strip().replace("_", "")
    what = "a whole number" if kind is int else "a number"
    if not text:
        return raw, f"{section}.{name}: empty; enter {what}"
    try:
        return kind(text), None
    except ValueError:
        return raw, f"{section}.{name}: {raw!r} is not {what}"


def tab_labels(errors: dict[str, int], width: int) -> dict[str, str]:
    """Each tab's label with its problem count, short enough for a row ``width`` cells wide."""
    for names, mark in NARROW_LABELS:
        labels = {key: names.get(key, label) + (mark.format(errors[key]) if errors.get(key) else "")
                  for key, label, _ in TABS}
        # A tab pads its label by a cell each side; the last one's right pad may fall off the edge.
        if not width or sum(len(label) + 2 for label in labels.values()) - 1 <= width:
            break
    return labels


def fields_named_by(problem: str, values: dict[str, Any]) -> list[str]:
    """The fields a validation message is about: the one it is prefixed with, else those it names."""
    index = field_index()
    m = _FIELD_PROBLEM.match(problem)
    if m and m.group(2) in index:
        return [m.group(2)]
    head, _, rest = problem.partition(": ")
    mentioned = [n for n in index if re.search(rf"\b{n}\b", rest)]
    if mentioned:
        return mentioned
    for token in _QUOTED.findall(rest):  # "peft: 'x-y' is not a module name": whose value holds it
        hits = [n for n, (s, _) in index.items() if s == head and isinstance(values.get(n), str)
                and token in values[n]]
        if hits:
            return hits[:1]
    return []


class ConfigForm(Widget):
    DEFAULT_CSS = """
    ConfigForm {
        height: 1fr;
        layout: vertical;
    }
    ConfigForm TabbedContent {
        height: 1fr;
    }
    ConfigForm TabPane {
        padding: 0 1;
    }
    ConfigForm #field-help {
        height: auto;
        max-height: 4;
        color: $text-muted;
        padding: 0 1;
    }
    """

    class Changed(Message):
        """The form was edited; ``result`` holds the config (or the problems)."""

        def __init__(self, form: "ConfigForm", result: FormResult) -> None:
            super().__init__()
            self.form = form
            self.result = result

        @property
        def control(self) -> "ConfigForm":
            return self.form

    def __init__(self, cfg: RunConfig, base: RunConfig | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.values: dict[str, Any] = raw_values(cfg)
        self.base = base or RunConfig()
        self.result: FormResult = self.evaluate()
        self._tab_errors: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        with TabbedContent(id="form-tabs"):
            for i, (key, label, _) in enumerate(TABS):
                with TabPane(label, id=f"tab-{key}"):
                    # Not a focus stop of its own: tabbing from the tab bar lands on the first field.
                    yield VerticalScroll(*(self._rows_for(key) if i == 0 else ()), id=f"scroll-{key}",
                                         can_focus=False)
        yield Static("", id="field-help")

    def _rows_for(self, tab: str) -> list[FieldRow]:
        sections = next(secs for key, _, secs in TABS if key == tab)
        return [FieldRow(name, section, f, self.values[name])
                for name, (section, f) in field_index().items() if section in sections]

    def on_mount(self) -> None:
        self.refresh_state(post=True)
        # The other tabs fill in once the first frame is on screen (or when opened, if sooner).
        self._pending = [key for key, _, _ in TABS[1:]]
        self.set_timer(PENDING_TABS_DELAY_S, self._mount_next_pending)

    async def _mount_tab(self, tab: str) -> None:
        if tab in self._pending:
            self._pending.remove(tab)
            await self.query_one(f"#scroll-{tab}", VerticalScroll).mount_all(self._rows_for(tab))

    async def _mount_next_pending(self) -> None:
        if self._pending:
            await self._mount_tab(self._pending[0])
            self.call_after_refresh(self._mount_next_pending)

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        await self._mount_tab(str(event.pane.id).removeprefix("tab-"))

    # -- reading ---------------------------------------------------------------
    def rows(self) -> list[FieldRow]:
        return list(self.query(FieldRow))

    def row(self, name: str) -> FieldRow:
        return self.query_one(f"#row-{name}", FieldRow)

    def evaluate(self) -> FormResult:
        problems: list[str] = []
        mapping: dict[str, Any] = {}
        for name, (section, f) in field_index().items():
            value, problem = _typed(section, name, field_type(f), self.values[name])
            if problem:
                problems.append(problem)
            else:
                mapping[name] = value
        cfg = RunConfig()
        problems += apply_mapping(cfg, mapping, "")
        if not problems:
            problems += validate(cfg)
        by_field: dict[str, list[str]] = {}
        general: list[str] = []
        for p in problems:
            targets = fields_named_by(p, self.values)
            for t in targets:
                by_field.setdefault(t, []).append(p)
            if not targets:
                general.append(p)
        return FormResult(None if problems else cfg, tuple(problems), by_field, tuple(general))

    # -- writing ---------------------------------------------------------------
    def load(self, cfg: RunConfig, base: RunConfig | None = None) -> None:
        """Put every value of ``cfg`` into the form (and make ``base`` what changes are marked against)."""
        if base is not None:
            self.base = base
        self.values = raw_values(cfg)
        with self.prevent(Input.Changed, Select.Changed, Toggle.Changed):
            for row in self.rows():
                row.set_value(self.values[row.field_name])
        self.refresh_state()

    def set_base(self, base: RunConfig) -> None:
        self.base = base
        self.refresh_state()

    def refresh_state(self, post: bool = True) -> FormResult:
        self.result = self.evaluate()
        for row in self.rows():
            self.paint_row(row)
        self._tab_errors = {}
        for name, probs in self.result.by_field.items():
            tab = TAB_OF_SECTION[field_index()[name][0]]
            self._tab_errors[tab] = self._tab_errors.get(tab, 0) + len(probs)
        self._label_tabs()
        if post:
            self.post_message(self.Changed(self, self.result))
        return self.result

    def _label_tabs(self) -> None:
        tabs = self.query_one(TabbedContent)
        for key, want in tab_labels(self._tab_errors, self.size.width).items():
            tab = tabs.get_tab(f"tab-{key}")
            if str(tab.label) != want:
                tab.label = want

    def on_resize(self) -> None:
        self._label_tabs()

    def paint_row(self, row: FieldRow) -> None:
        """Show a row's problems, and mark it when it differs from the base."""
        row.set_problems(self.result.by_field.get(row.field_name, []))
        current = self.result.config
        if current is not None:
            section = row.section
            row.set_changed(getattr(getattr(current, section), row.field_name)
                            != getattr(getattr(self.base, section), row.field_name))

    def on_field_row_mounted(self, message: FieldRow.Mounted) -> None:
        message.stop()
        self.paint_row(message.row)

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Toggle.Changed)
    def _edited(self, event: Message) -> None:
        event.stop()
        for node in event.control.ancestors_with_self:  # type: ignore[attr-defined]
            if isinstance(node, FieldRow):
                if self.values.get(node.field_name) == node.value:
                    return  # an editor announcing the value it was given, not an edit
                self.values[node.field_name] = node.value
                break
        self.refresh_state()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        for node in event.widget.ancestors_with_self:
            if isinstance(node, FieldRow):
                self.query_one("#field-help", Static).update(node.help_text)
                return
