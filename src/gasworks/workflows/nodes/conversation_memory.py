"""ConversationMemory: loads the conversation's history (windowed by turns or tokens) and, when
the run succeeds, appends this turn's user message and answer (written in the run's batch)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gasworks.modeltypes import Message
from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import NodeSpec
from gasworks.workflows.nodes._base import BaseNode, NodeConfig
from gasworks.workflows.registry import NodeType
from gasworks.workflows.templating import Template


class ConversationMemoryConfig(NodeConfig):
    max_turns: int | None = Field(default=10, ge=1, le=1000, description="Turns kept (user+reply).")
    max_tokens: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Token budget of the window (newest kept)."
    )
    user: str = Field(default="${input.message}", description="Template of the message stored.")
    reply: str | None = Field(
        default=None,
        description="Template of the answer stored; default: the run's final output.",
    )
    append: bool = Field(default=True, description="Append this turn when the run succeeds.")


def estimate_tokens(text: str) -> int:
    """A cheap, tokenizer-free estimate (≈4 characters per token, at least 1)."""
    return max(1, (len(text) + 3) // 4)


def window(history: list[Message], max_turns: int | None, max_tokens: int | None) -> list[Message]:
    msgs = history
    if max_turns is not None:
        msgs = msgs[-2 * max_turns :]
    if max_tokens is not None:
        kept: list[Message] = []
        used = 0
        for m in reversed(msgs):
            used += estimate_tokens(m.text())
            if used > max_tokens:
                break
            kept.append(m)
        msgs = kept[::-1]
    return msgs


class ConversationMemoryNode(BaseNode):
    __slots__ = ("_cfg", "_reply", "_user")

    def __init__(self, spec: NodeSpec, config: ConversationMemoryConfig) -> None:
        super().__init__(spec)
        self._cfg = config
        self._user = Template(config.user)
        self._reply = Template(config.reply) if config.reply is not None else None

    async def run(self, state: dict[str, Any], rc: RunContext) -> dict[str, Any]:
        conv = await rc.conversation()
        history = (
            [] if conv is None else window(conv.history, self._cfg.max_turns, self._cfg.max_tokens)
        )
        messages = [{"role": m.role, "content": m.text()} for m in history]
        state["history"] = messages
        if conv is not None and self._cfg.append:
            user_text = self._user.render(state)
            reply = self._reply

            def append(final: dict[str, Any]) -> None:
                if user_text:
                    conv.pending.append(Message("user", user_text))
                answer = reply.render(final) if reply is not None else _final_text(final)
                if answer:
                    conv.pending.append(Message("assistant", answer))

            rc.finalizers.append(append)
        return {"messages": messages, "turn": 0 if conv is None else conv.turn}


def _final_text(final: dict[str, Any]) -> str:
    out = final.get("__output__")
    if isinstance(out, str):
        return out
    if isinstance(out, dict) and isinstance(out.get("text"), str):
        return str(out["text"])
    return ""


TYPE = NodeType(
    name="ConversationMemory",
    config=ConversationMemoryConfig,
    build=ConversationMemoryNode,
    description="Loads and appends the conversation history by conversation id.",
)
