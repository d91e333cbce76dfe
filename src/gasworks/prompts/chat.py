"""A resolved prompt turned into a model call through the gateway.

``prepare_call`` resolves the prompt of ``(tenant, workflow, model)`` (never fails), renders it
with the caller's values and conversation history into messages and applies the version's
model parameters (the caller's explicit overrides win). The service then calls
``Gateway.chat`` or ``Gateway.stream`` with it, so budgets, breakers, retries, fallbacks and
the ledger apply exactly as for any other call. The answer says which prompt (level, version,
source) produced it; a stream says so before its first chunk.

Exposed as ``POST /api/prompts/chat``, ``POST /api/prompts/chat/stream`` (server-sent events)
and ``gasworks prompts chat`` (streams).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gasworks.llm.types import CallScope, ChatRequest, Message
from gasworks.prompts.content import ModelParameters
from gasworks.prompts.resolver import ResolvedPrompt, Resolver

#: the parameters a prompt version may set that map onto ``ChatRequest`` fields; any other key
#: is passed to the provider untouched in ``ChatRequest.extra``
KNOWN = ("max_tokens", "temperature", "top_p", "stop")


@dataclass(slots=True)
class PreparedCall:
    """The resolved prompt and the request rendered from it, before the model is called."""

    prompt: ResolvedPrompt
    request: ChatRequest
    missing: list[str]


def build_request(
    prompt: ResolvedPrompt,
    values: Mapping[str, Any],
    history: Sequence[Message] = (),
    *,
    model: str | None,
    overrides: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> tuple[ChatRequest, list[str]]:
    formatted = prompt.format(values, history, strict=strict)
    params = ModelParameters.model_validate({**formatted.parameters, **(overrides or {})})
    extra = {k: v for k, v in (params.model_extra or {}).items() if k not in KNOWN}
    req = ChatRequest(
        model=model,
        messages=formatted.messages,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        stop=params.stop,
        extra=extra,
    )
    return req, formatted.missing


async def prepare_call(
    resolver: Resolver,
    scope: CallScope,
    *,
    model: str | None,
    values: Mapping[str, Any],
    history: Sequence[Message] = (),
    overrides: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> PreparedCall:
    """Resolve the scope's prompt (never fails) and render the request."""
    prompt = await resolver.resolve(
        tenant_id=scope.tenant_id,
        model=model,
        workflow_id=scope.workflow_id,
        conversation_id=scope.conversation_id,
    )
    all_values = dict(values)
    if scope.workflow_id is not None:
        all_values.setdefault("workflowId", scope.workflow_id)
    if scope.conversation_id is not None:
        all_values.setdefault("conversationId", scope.conversation_id)
    req, missing = build_request(
        prompt, all_values, history, model=model, overrides=overrides, strict=strict
    )
    return PreparedCall(prompt=prompt, request=req, missing=missing)
