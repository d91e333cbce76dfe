"""SlotTracker: fills typed slots across the turns of a conversation.

Each turn it extracts values from the message — typed rules first (email, phone, numbers,
booleans, ISO dates, choices, custom patterns, a direct answer to the slot just asked), then the
model in JSON mode for what is still missing —, validates them, keeps partial slots in the
conversation, and routes: ``onComplete`` when every required slot is filled, ``onAsk`` with a
re-ask prompt (output ``ask``) while the re-ask limit allows, ``onFallback`` after that.
Slots are readable as ``${slotNodeId.slotName}`` and as ``state.slots.<name>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import Field, field_validator

from gasworks.workflows.context import Routed, RunContext
from gasworks.workflows.definition import NodeSpec
from gasworks.workflows.nodes._base import BaseNode, NodeConfig
from gasworks.workflows.nodes._model import chat_json
from gasworks.workflows.registry import Issue, NodeType
from gasworks.workflows.templating import Template

SlotType = Literal["string", "number", "integer", "boolean", "email", "phone", "date"]
RESERVED = frozenset({"missing", "ask", "complete", "asks"})

_RULES: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"),
    "phone": re.compile(r"\+?\d[\d\s\-().]{5,}\d"),
    "integer": re.compile(r"(?<![\w.])-?\d+(?![\w.])"),
    "number": re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])"),
    "boolean": re.compile(r"\b(yes|no|true|false|yep|nope)\b", re.I),
    "date": re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),
}

_PRIORITY = {"email": 1, "date": 1, "boolean": 2, "phone": 3, "number": 4, "integer": 4}


class Slot(NodeConfig):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: SlotType = "string"
    required: bool = True
    pattern: str | None = Field(default=None, max_length=500)
    choices: list[str] | None = None
    description: str | None = None
    prompt: str | None = Field(default=None, description="Question asked when it is missing.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v


class SlotTrackerConfig(NodeConfig):
    slots: list[Slot] = Field(min_length=1, max_length=50)
    input: str = "${input.message}"
    use_model: bool = Field(default=True, description="Ask the model (JSON mode) for the rest.")
    model: str | None = None
    max_asks: int = Field(default=3, ge=1, le=20, description="Re-asks before the fallback.")
    on_complete: str
    on_ask: str
    on_fallback: str
    reset_on_complete: bool = Field(
        default=True, description="Forget the slots in the conversation once complete."
    )


class _CompiledSlot:
    __slots__ = ("choices", "name", "pattern", "priority", "prompt", "required", "rule", "type")

    def __init__(self, s: Slot) -> None:
        self.name = s.name
        self.type = s.type
        self.required = s.required
        self.pattern = re.compile(s.pattern) if s.pattern else None
        self.choices = [c.lower() for c in s.choices] if s.choices else None
        self.rule = self.pattern or _RULES.get(s.type)
        #: specific rules take their text first (a date is not a phone number)
        self.priority = 0 if (self.pattern or self.choices) else _PRIORITY.get(s.type, 9)
        label = s.description or s.name.replace("_", " ")
        self.prompt = Template(s.prompt or f"Could you tell me your {label}?")

    def coerce(self, raw: Any) -> Any:
        """A valid value for this slot, or None."""
        if raw is None or raw == "":
            return None
        t = self.type
        if t == "boolean":
            if isinstance(raw, bool):
                return raw
            word = str(raw).strip().lower()
            return {"yes": True, "yep": True, "true": True, "no": False, "nope": False}.get(
                word, False if word == "false" else None
            )
        if t in ("integer", "number"):
            try:
                num = float(str(raw).strip())
            except ValueError:
                return None
            if t == "integer":
                return int(num) if num.is_integer() else None
            return num
        text = str(raw).strip()
        if t != "string" and (rx := _RULES.get(t)) is not None and not rx.fullmatch(text):
            return None
        if self.pattern is not None and not self.pattern.fullmatch(text):
            return None
        if self.choices is not None:
            return next((c for c in self.choices if c == text.lower()), None)
        return text

    def extract(self, text: str) -> tuple[Any, tuple[int, int]] | None:
        """The first valid value in ``text`` and its span, or None."""
        if self.choices is not None:
            for c in self.choices:
                if m := re.search(r"\b" + re.escape(c) + r"\b", text, re.I):
                    return c, m.span()
            return None
        if self.rule is None:
            return None
        for m in self.rule.finditer(text):
            raw = m.group(1) if m.groups() and self.pattern is not None else m.group(0)
            value = self.coerce(raw)
            if value is not None:
                return value, m.span()
        return None


class SlotTrackerNode(BaseNode):
    __slots__ = ("_by_priority", "_cfg", "_input", "_slots", "_system")

    def __init__(self, spec: NodeSpec, config: SlotTrackerConfig) -> None:
        super().__init__(spec)
        self._cfg = config
        self._input = Template(config.input)
        self._slots = [_CompiledSlot(s) for s in config.slots]
        self._by_priority = sorted(self._slots, key=lambda s: s.priority)
        fields = "\n".join(
            f"- {s.name} ({s.type}{', one of ' + ', '.join(s.choices) if s.choices else ''})"
            f": {s.description or s.name}"
            for s in config.slots
        )
        self._system = (
            "Extract these fields from the user's message when present:\n"
            f"{fields}\nAnswer with a JSON object of the fields found only (omit unknown ones)."
        )

    async def run(self, state: dict[str, Any], rc: RunContext) -> Routed:
        cfg = self._cfg
        conv = await rc.conversation()
        saved: dict[str, Any] = dict(conv.data.get(self.id, {})) if conv is not None else {}
        values: dict[str, Any] = dict(saved.get("values", {}))
        asks = int(saved.get("asks", 0))
        last_asked = saved.get("lastAsked")
        text = self._input.render(state)
        found = self._rules(text, values, last_asked)
        values.update(found)
        missing = [s for s in self._slots if s.name not in values]
        if text and missing and cfg.use_model and rc.ports.models is not None:
            answer = await chat_json(rc, cfg.model, self._system, text)
            for s in missing:
                v = s.coerce(answer.get(s.name))
                if v is not None:
                    values[s.name] = v
        missing_required = [s for s in self._slots if s.required and s.name not in values]
        ask: str | None = None
        if not missing_required:
            route, asks, last_asked = cfg.on_complete, 0, None
        elif asks >= cfg.max_asks:
            route = cfg.on_fallback
        else:
            asks += 1
            ask = missing_required[0].prompt.render({**state, self.id: values})
            last_asked = missing_required[0].name
            route = cfg.on_ask
        if conv is not None:
            complete = not missing_required
            reset = (complete and cfg.reset_on_complete) or route == cfg.on_fallback
            conv.data[self.id] = (
                {} if reset else {"values": values, "asks": asks, "lastAsked": last_asked}
            )
            conv.dirty = True
        slots = state.get("slots")
        state["slots"] = {**slots, **values} if isinstance(slots, dict) else dict(values)
        out = dict(values)
        out["missing"] = [s.name for s in missing_required]
        out["ask"] = ask
        out["complete"] = not missing_required
        out["asks"] = asks
        return Routed(out, route)

    def _rules(self, text: str, values: dict[str, Any], last_asked: Any) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if not text:
            return found
        rest = text
        for s in self._by_priority:
            if s.name not in values and (hit := s.extract(rest)) is not None:
                found[s.name] = hit[0]
                a, b = hit[1]
                rest = rest[:a] + " " * (b - a) + rest[b:]  # a span feeds one slot only
        if not found and isinstance(last_asked, str) and last_asked not in values:
            asked = next((x for x in self._slots if x.name == last_asked), None)
            if asked is not None and asked.type == "string" and len(text) <= 200:
                v = asked.coerce(text)
                if v is not None:
                    found[asked.name] = v
        return found


def _targets(c: SlotTrackerConfig) -> Iterable[tuple[str, str]]:
    yield "onComplete", c.on_complete
    yield "onAsk", c.on_ask
    yield "onFallback", c.on_fallback


def _check(c: SlotTrackerConfig) -> Iterable[Issue]:
    seen: set[str] = set()
    for i, s in enumerate(c.slots):
        if s.name in RESERVED:
            yield Issue("INVALID_CONFIG", f"slots[{i}].name", f"'{s.name}' is a reserved name.")
        if s.name in seen:
            yield Issue("INVALID_CONFIG", f"slots[{i}].name", f"slot '{s.name}' is defined twice.")
        seen.add(s.name)


TYPE = NodeType(
    name="SlotTracker",
    config=SlotTrackerConfig,
    build=SlotTrackerNode,
    description="Fills typed slots across turns, re-asks, falls back after a limit.",
    targets=_targets,
    check=_check,
    branching=True,
)
