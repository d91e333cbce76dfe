"""Turn a compiled prompt, template values and conversation history into provider messages.

Order: the prompt's leading system message(s), then the conversation history, then the rest of
the prompt's messages (for a system+user prompt: system, history, user). Every template is
rendered with the same values; missing variables of every message are collected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from gasworks.modeltypes import Message, Role
from gasworks.prompts.content import CompiledPrompt


@dataclass(slots=True)
class FormattedPrompt:
    messages: list[Message]
    missing: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)


def format_messages(
    prompt: CompiledPrompt,
    values: Mapping[str, Any],
    history: Sequence[Message] = (),
    *,
    strict: bool = False,
) -> FormattedPrompt:
    head: list[Message] = []
    tail: list[Message] = []
    missing: list[str] = []
    leading = True
    for role, template in prompt.messages:
        result = template.render(values, strict=strict)
        for m in result.missing:
            if m not in missing:
                missing.append(m)
        leading = leading and role == "system"
        (head if leading else tail).append(Message(role=cast(Role, role), content=result.text))
    return FormattedPrompt(
        messages=[*head, *history, *tail], missing=missing, parameters=dict(prompt.parameters)
    )
