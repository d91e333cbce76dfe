"""IntentClassifier: keyword rules as a fast path, else the model with JSON output; writes
``state.intent`` and ``state.confidence``."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from gasworks.workflows.context import RunContext
from gasworks.workflows.definition import NodeSpec
from gasworks.workflows.nodes._base import BaseNode, NodeConfig
from gasworks.workflows.nodes._model import chat_json
from gasworks.workflows.registry import NodeType
from gasworks.workflows.templating import Template


class Intent(NodeConfig):
    name: str = Field(min_length=1, max_length=64)
    description: str | None = None
    keywords: list[str] = Field(default_factory=list, max_length=200)


class IntentClassifierConfig(NodeConfig):
    intents: list[Intent] = Field(min_length=1, max_length=100)
    input: str = "${input.message}"
    use_model: bool = Field(default=True, description="Ask the model when no keyword matches.")
    model: str | None = None
    min_confidence: float = Field(default=0.5, ge=0, le=1)
    fallback_intent: str = "unknown"


_SYSTEM = (
    "Classify the user's message into exactly one of these intents:\n{intents}\n"
    'Answer with a JSON object only: {{"intent": "<name>", "confidence": <0..1>}}.'
)


class IntentClassifierNode(BaseNode):
    __slots__ = ("_cfg", "_input", "_names", "_rules", "_system")

    def __init__(self, spec: NodeSpec, config: IntentClassifierConfig) -> None:
        super().__init__(spec)
        self._cfg = config
        self._input = Template(config.input)
        self._names = {i.name for i in config.intents}
        self._rules = [
            (i.name, re.compile(r"\b(?:" + "|".join(map(re.escape, i.keywords)) + r")\b", re.I))
            for i in config.intents
            if i.keywords
        ]
        listing = "\n".join(f"- {i.name}: {i.description or i.name}" for i in config.intents)
        self._system = _SYSTEM.format(intents=listing)

    async def run(self, state: dict[str, Any], rc: RunContext) -> dict[str, Any]:
        text = self._input.render(state)
        out = self._keywords(text)
        if out is None and self._cfg.use_model and rc.ports.models is not None and text:
            out = await self._model(rc, text)
        if out is None or out["confidence"] < self._cfg.min_confidence:
            out = {
                "intent": self._cfg.fallback_intent,
                "confidence": out["confidence"] if out else 0.0,
                "source": out["source"] if out else "none",
            }
        state["intent"] = out["intent"]
        state["confidence"] = out["confidence"]
        return out

    def _keywords(self, text: str) -> dict[str, Any] | None:
        for name, rx in self._rules:
            if rx.search(text):
                return {"intent": name, "confidence": 1.0, "source": "keyword"}
        return None

    async def _model(self, rc: RunContext, text: str) -> dict[str, Any] | None:
        answer = await chat_json(rc, self._cfg.model, self._system, text)
        intent = answer.get("intent")
        if not isinstance(intent, str) or intent not in self._names:
            return None
        raw = answer.get("confidence", 0.0)
        confidence = float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else 0
        return {"intent": intent, "confidence": min(1.0, max(0.0, confidence)), "source": "model"}


TYPE = NodeType(
    name="IntentClassifier",
    config=IntentClassifierConfig,
    build=IntentClassifierNode,
    description="Classifies the message into configured intents; writes state.intent.",
)
