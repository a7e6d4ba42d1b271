"""Sampled tokens turned into text as they come, for `generate` to print while it samples."""

from __future__ import annotations

from typing import Callable

try:
    from transformers.generation.streamers import BaseStreamer
except ImportError:  # pragma: no cover - transformers too old to stream; the class is a marker only
    BaseStreamer = object  # type: ignore[assignment,misc]

# The tail of a decoded text that the next token may still rewrite: an incomplete UTF-8
# sequence decodes to U+FFFD, and a trailing space may be dropped before punctuation when the
# tokenizer cleans up its spaces (" ." -> ".").
_UNSETTLED = "\ufffd "


class TextStream(BaseStreamer):
    """A transformers streamer that hands ``on_text`` each settled piece of the answer; a
    sampler of its own (HRM ACTv1) hands it each token with ``add`` and calls ``end`` once done.

    Every step decodes all the new tokens at once, exactly as the finished answer is decoded,
    and passes on what was added: the pieces put together are the answer byte for byte.
    (transformers' TextStreamer decodes from the last line break and prints spaces early, which
    can differ from the whole decode by a space.) Decoding a few hundred tokens per step costs
    far less than sampling one.
    """

    def __init__(self, tokenizer, on_text: Callable[[str], None]):
        self.tokenizer = tokenizer
        self.on_text = on_text
        self.tokens: list[int] = []
        self.shown = ""
        self._prompt_seen = False

    def _decode(self) -> str:
        return self.tokenizer.decode(self.tokens, skip_special_tokens=True)

    def _show(self, text: str) -> None:
        if len(text) > len(self.shown) and text.startswith(self.shown):
            self.on_text(text[len(self.shown):])
            self.shown = text

    def put(self, value) -> None:
        if not self._prompt_seen:  # generate() passes the prompt first
            self._prompt_seen = True
            return
        self.add(value.reshape(-1).tolist())

    def add(self, token_ids: list[int]) -> None:
        """New tokens of the answer (the prompt left out)."""
        self.tokens += token_ids
        self._show(self._decode().rstrip(_UNSETTLED))

    def end(self) -> None:
        self._show(self._decode())
