"""A resolved prompt turned into a model call through the gateway.

``prepare_call`` resolves the prompt of ``(tenant, workflow, model)`` (never fails), renders it
with the caller's values and conversation history into messages and applies the version's
model parameters (the caller's explicit overrides win). The service then calls
``Gateway.chat`` or ``Gateway.stream`` with it, so budgets, breakers, retries, fallbacks and
the ledger apply exactly as for any other call. The answer says which prompt (level, version,
source) produced it; a stream says so before its first chunk.

Exposed as ``POST /api/prompts/chat``, ``POST /api/prompts/chat/stream`` (server-sent events)
and ``gasworks prompts chat`` (streams). ``apply_prompt`` serves the OpenAI-compatible route's
``prompt_scope`` extension: the client's last user message and history go into the deployed
prompt instead of the client supplying its own system message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gasworks.errors import ValidationFailed
from gasworks.modeltypes import CallScope, ChatRequest, Message
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


def model_request(
    model: str | None,
    messages: list[Message],
    parameters: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> ChatRequest:
    """The one mapping of a prompt version's ``parameters`` onto a ``ChatRequest``.

    ``overrides`` (the caller's explicit parameters) win key by key. The known keys become
    ``ChatRequest`` fields, any other key goes to the provider untouched in ``extra``. Used by
    ``/api/prompts/chat`` (and the CLI) and by the ModelInvoke node, so a prompt version
    behaves the same in both."""
    params = ModelParameters.model_validate({**parameters, **(overrides or {})})
    extra = {k: v for k, v in (params.model_extra or {}).items() if k not in KNOWN}
    return ChatRequest(
        model=model,
        messages=messages,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        stop=params.stop,
        extra=extra,
    )


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
    req = model_request(model, formatted.messages, formatted.parameters, overrides)
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
    scope.prompt_version_id = prompt.version_id  # on the call's ledger rows
    all_values = dict(values)
    if scope.workflow_id is not None:
        all_values.setdefault("workflowId", scope.workflow_id)
    if scope.conversation_id is not None:
        all_values.setdefault("conversationId", scope.conversation_id)
    req, missing = build_request(
        prompt, all_values, history, model=model, overrides=overrides, strict=strict
    )
    return PreparedCall(prompt=prompt, request=req, missing=missing)


async def apply_prompt(
    resolver: Resolver,
    scope: CallScope,
    req: ChatRequest,
    *,
    values: Mapping[str, Any],
    strict: bool = False,
) -> PreparedCall:
    """Put the scope's deployed prompt around a client's messages, in place.

    The last message (a user message) is ``inputs.user_prompt`` unless ``values`` give one; the
    messages before it are the history. The system message comes from the prompt, so the
    client sends none. The client's explicit parameters (temperature, max_tokens, ...) win over
    the version's; everything else of the request (tools, response format, limits) is kept.
    """
    if not req.messages or req.messages[-1].role != "user":
        raise ValidationFailed(
            "With prompt_scope the last message must be the user's message.",
            details={"field": "messages"},
        )
    if any(m.role == "system" for m in req.messages):
        raise ValidationFailed(
            "With prompt_scope the system message comes from the deployed prompt: remove the "
            "system/developer messages, or drop prompt_scope to send your own.",
            details={"field": "messages"},
        )
    all_values = dict(values)
    inputs = dict(all_values.get("inputs") or {})
    inputs.setdefault("user_prompt", req.messages[-1].text())
    all_values["inputs"] = inputs
    overrides = {k: getattr(req, k) for k in KNOWN if getattr(req, k) is not None}
    prepared = await prepare_call(
        resolver,
        scope,
        model=req.model,
        values=all_values,
        history=req.messages[:-1],
        overrides=overrides,
        strict=strict,
    )
    rendered = prepared.request
    req.messages = rendered.messages
    req.max_tokens, req.temperature = rendered.max_tokens, rendered.temperature
    req.top_p, req.stop = rendered.top_p, rendered.stop
    req.extra = {**rendered.extra, **req.extra}
    return prepared
