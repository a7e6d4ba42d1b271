"""A Select that survives being torn down while it mounts.

Textual's Select shows its initial value from its mount handler by querying a child that a
parent being removed at that moment (the console quitting just as a tab's rows mount) may
already have pruned; the NoMatches it raises would end the console with a traceback. The
value itself is kept either way, so there is nothing to show and nothing lost.
"""

from __future__ import annotations

from typing import Any

from textual.css.query import NoMatches
from textual.widgets import Select


class Choice(Select):
    # Both run from Select's mount handler and query children that may be gone by then.
    def _setup_options_renderables(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._setup_options_renderables(*args, **kwargs)
        except NoMatches:
            return None

    def _init_selected_option(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super()._init_selected_option(*args, **kwargs)
        except NoMatches:
            return None
