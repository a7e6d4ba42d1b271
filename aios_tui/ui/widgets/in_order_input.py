"""An Input that runs its own editing keys as it reads them, in step with typed characters.

Textual inserts a typed character as soon as the input reads its key, but runs an editing key
(backspace, ctrl+k, left, ...) only once that key has gone on to the app and come back as a
binding. When a read holds several keys (a busy box, a slow link), a prompt's enter, judged in the
input's turn (PromptScreen.action_accept), then read "40" + "300" for "40, backspace twice, 300".
"""

from __future__ import annotations

from textual import events
from textual.widgets import Input


class InOrderInput(Input):
    async def _on_key(self, event: events.Key) -> None:
        for binding in self._bindings.key_to_bindings.get(event.key, ()):
            if not binding.priority and binding.action != "submit":
                event.stop()
                event.prevent_default()
                await self.run_action(binding.action)
                return
        await super()._on_key(event)
