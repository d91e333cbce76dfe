"""ModelInvoke: resolve the prompt by (tenant, workflow, model), format messages, call the
gateway (which enforces budgets, breakers, fallbacks and records the ledger), stream tokens.

There is deliberately no prompt id in the config: which prompt runs is decided by the prompt
engine's scoped resolution, so prompts move without republishing workflows.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import AliasChoices, Field

from gasworks.modeltypes import Message
from gasworks.prompts.chat import model_request
from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import NodeSpec
from gasworks.workflows.model_stream import ModelStream
from gasworks.workflows.nodes._base import BaseNode, NodeConfig
from gasworks.workflows.nodes._model import chat, models, result_dict
from gasworks.workflows.ports import RenderedPrompt
from gasworks.workflows.registry import NodeType
from gasworks.workflows.templating import Template


class ModelInvokeConfig(NodeConfig):
    model: str | None = Field(
        default=None,
        # the original system's spelling, so its definitions run unchanged
        validation_alias=AliasChoices("model", "modelId", "model_id"),
        description="Registry id; default model if unset (also accepted as modelId).",
    )
    input: str = Field(
        default="${input.message}", description="Template of the user message (state paths)."
    )
    history_from: str | None = Field(
        default=None, description="Id of a ConversationMemory node whose history to include."
    )
    stream: bool = Field(default=False, description="Stream tokens to a StreamToClient node.")
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    json_mode: bool = False
    cost_limit: Decimal | None = Field(default=None, ge=0)
    truncate: bool = Field(
        default=True,
        description="Fit a conversation too long for the model's context window before the "
        "call (drop the oldest memory first, shorten the system prompt last, keep the current "
        "input) instead of failing with CONTEXT_WINDOW_EXCEEDED.",
    )


class ModelInvokeNode(BaseNode):
    __slots__ = ("_cfg", "_input", "_overrides")

    def __init__(self, spec: NodeSpec, config: ModelInvokeConfig) -> None:
        super().__init__(spec)
        self._cfg = config
        self._input = Template(config.input)
        #: the model parameters the node's config sets (they win over the prompt version's)
        self._overrides = {
            k: v
            for k, v in (("temperature", config.temperature), ("max_tokens", config.max_tokens))
            if v is not None
        }

    async def prompt(self, state: dict[str, Any], rc: RunContext) -> RenderedPrompt:
        cfg = self._cfg
        history: list[Message] = []
        if cfg.history_from is not None:
            memory = state.get(cfg.history_from)
            for m in memory.get("messages", []) if isinstance(memory, dict) else []:
                if isinstance(m, dict) and m.get("role") in ("user", "assistant"):
                    history.append(Message(m["role"], str(m.get("content", ""))))
        text = self._input.render(state)
        prompts = rc.ports.prompts
        if prompts is None:  # no prompt engine: the neutral prompt (history, then the input)
            return RenderedPrompt([*history, Message("user", text)] if text else history)
        inputs = state.get("input")
        values = dict(state)
        values["inputs"] = {**(inputs if isinstance(inputs, dict) else {}), "user_prompt": text}
        return await prompts.messages(
            tenant_id=rc.tenant_id,
            workflow_id=rc.workflow_id,
            model=cfg.model,
            conversation_id=rc.conversation_id,
            values=values,
            history=history,
        )

    async def run(self, state: dict[str, Any], rc: RunContext) -> Any:
        cfg = self._cfg
        prompt = await self.prompt(state, rc)
        # the prompt version's parameters, mapped as /api/prompts/chat maps them; the node's
        # own config wins where it sets a value
        request = model_request(cfg.model, prompt.messages, prompt.parameters, self._overrides)
        request.response_format = {"type": "json_object"} if cfg.json_mode else None
        request.cost_limit = cfg.cost_limit
        request.truncate = cfg.truncate
        scope = rc.scope()
        scope.prompt_version_id = prompt.version_id  # on the call's ledger rows
        if prompt.version_id is not None:  # and on the run: the version that answered last
            rc.prompt_version_id = prompt.version_id
        if cfg.stream:
            stream = ModelStream(
                rc, self.id, cfg.model, models(rc).stream(scope, request), prompt.version_id
            )
            rc.streams.append(stream)
            return await stream.open()
        out = result_dict(await chat(rc, request, scope))
        out["promptVersionId"] = prompt.version_id
        return out


TYPE = NodeType(
    name="ModelInvoke",
    config=ModelInvokeConfig,
    build=ModelInvokeNode,
    refs=lambda c: [("historyFrom", c.history_from)] if c.history_from else [],
    description="Calls a model through the gateway with the prompt resolved for this "
    "tenant, workflow and model.",
)
