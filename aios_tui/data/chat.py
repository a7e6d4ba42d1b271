"""Chat records: a conversation read from a JSONL row, and where its assistant turns fall once
the model's own chat template renders it.

A row holds ``messages`` (``role`` system/user/assistant, ``content`` a string) or ShareGPT's
``conversations`` (``from`` system/human/gpt, ``value``). Only the role and the text of each turn
reach the template. The loss falls on the assistant turns only.

Finding the assistant turns: for each one, the conversation before it is rendered with the
generation prompt (what the model is given at inference) and the conversation up to and including
it; the turn is the difference. That holds only while those renderings are prefixes of the whole
conversation's. A template that renders earlier turns differently once later ones follow (Qwen3
drops an earlier answer's reasoning) breaks it: such a conversation is then trained as one example
per assistant turn, each the conversation up to that turn with the loss on its last turn, which is
exactly what the template shows the model at inference. A template whose rendered turn does not
even continue its own generation prompt is refused.
"""

from __future__ import annotations

from aios_tui.errors import UserError

Turns = tuple[tuple[str, str], ...]

ROLES = ("system", "user", "assistant")
_SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant"}
CHAT_KEYS = ("messages", "conversations")
_MAX_LISTED = 5


class ChatError(ValueError):
    """A conversation the template cannot be trained on; the message says why."""


def _turns_of(items, role_key: str, text_key: str, roles: dict[str, str]) -> tuple[Turns, str | None]:
    if not isinstance(items, list) or not items:
        return (), "must be a non-empty list of turns"
    turns = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            return (), f"turn {n} is not a JSON object"
        role, text = item.get(role_key), item.get(text_key)
        if role not in roles:
            return (), (f"turn {n} has {role_key} {role!r}; valid: {', '.join(roles)}")
        if not isinstance(text, str):
            return (), f"turn {n} needs a string {text_key!r}"
        turns.append((roles[role], text))
    return tuple(turns), None


def parse_chat(obj: dict) -> tuple[Turns, str | None]:
    """(turns, None) for a chat row, or ((), why it cannot be read)."""
    if "messages" in obj:
        key = "messages"
        turns, problem = _turns_of(obj["messages"], "role", "content", {r: r for r in ROLES})
    else:
        key = "conversations"
        turns, problem = _turns_of(obj["conversations"], "from", "value", _SHAREGPT_ROLES)
    if problem:
        return (), f"chat record: '{key}' {problem}"
    if not any(role == "assistant" for role, _ in turns):
        return (), "chat record: has no assistant turn, so nothing to learn"
    return turns, None


def template_problem(tokenizer, source: str) -> str | None:
    """Why chat records cannot be rendered with ``tokenizer`` (read from ``source``)."""
    if getattr(tokenizer, "chat_template", None):
        return None
    whose = "the built-in tiny model's byte tokenizer" if source == "tiny" else f"the tokenizer of {source}"
    return (f"model.model: {whose} has no chat template, which chat records are rendered with; "
            "point --model at a model whose tokenizer has one (an instruct or chat model), "
            "or write each record as 'prompt' and 'completion' fields")


def _render(tokenizer, turns: Turns, generation_prompt: bool = False) -> str:
    messages = [{"role": role, "content": text} for role, text in turns]
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=generation_prompt)
    except Exception as exc:  # the template is the model's own code: whatever it raises, say it
        raise ChatError(f"the model's chat template refuses this conversation ({exc})") from None


def segments(tokenizer, turns: Turns) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, carries loss) pieces, in order; raises ChatError."""
    whole = _render(tokenizer, turns)
    spans: list[tuple[str, str]] = []  # (generation prompt rendering, rendering with the turn)
    for i, (role, _) in enumerate(turns):
        if role == "assistant":
            before, upto = _render(tokenizer, turns[:i], True), _render(tokenizer, turns[:i + 1])
            if not upto.startswith(before):
                raise ChatError("the model's chat template does not render an assistant turn as a "
                                "continuation of its generation prompt, so the turn cannot be told "
                                "apart; write the records as 'prompt' and 'completion' fields")
            if len(upto) == len(before):
                raise ChatError("the model's chat template renders nothing for an assistant turn")
            spans.append((before, upto))
    end, out = 0, []
    for before, upto in spans:
        if not (len(before) >= end and whole.startswith(upto)):
            # earlier turns rendered otherwise once later ones follow: one example per turn
            return [piece for before, upto in spans
                    for piece in ((before, False), (upto[len(before):], True))]
        out += [(whole[end:len(before)], False), (upto[len(before):], True)]
        end = len(upto)
    out.append((whole[end:], False))
    return [(text, trained) for text, trained in out if text]


def generation_prompt(tokenizer, text: str) -> str:
    """``text`` as one user turn, rendered by the model's chat template up to where the assistant
    answers: what `generate --chat` gives the model, as it saw conversations in training."""
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("--chat: the model's tokenizer has no chat template to frame the prompt with; "
                        "drop --chat to continue the prompt as plain text")
    try:
        return _render(tokenizer, (("user", text),), generation_prompt=True)
    except ChatError as exc:
        raise UserError(f"--chat: {exc}") from None


def render_all(docs, tokenizer, source: str, label: str) -> list[list[tuple[str, bool]]]:
    """``segments`` of every chat document (``source`` names the tokenizer, ``label`` the
    dataset, in messages); raises UserError naming each conversation that cannot be trained on."""
    problem = template_problem(tokenizer, source)
    if problem:
        raise UserError(problem)
    out, problems = [], []
    for doc in docs:
        try:
            out.append(segments(tokenizer, doc.turns))
        except ChatError as exc:
            problems.append(f"dataset {label}, line {doc.line}: {exc}")
    if problems:
        extra = len(problems) - _MAX_LISTED
        raise UserError(problems[:_MAX_LISTED] + ([f"... and {extra} more conversations"] if extra > 0 else []))
    return out
