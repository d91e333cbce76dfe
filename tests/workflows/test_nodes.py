"""Built-in nodes, driven through the shipped demo workflows and small graphs, with fakes."""

from __future__ import annotations

import json
from typing import Any

from gasworks.modeltypes import ChatRequest
from gasworks.workflows import Ports, RunContext, compile_workflow, execute
from gasworks.workflows.demos import DEMOS, demo_document
from gasworks.workflows.runner import RunOutcome
from tests.workflows.fakes import FakeModels, FakePrompts, MemoryConversations


async def turn(
    doc: dict[str, Any],
    message: str,
    *,
    models: FakeModels | None = None,
    store: MemoryConversations | None = None,
    conversation: str | None = "c1",
    prompts: Any = None,
) -> tuple[RunOutcome, list[tuple[str, dict[str, Any]]]]:
    store = store or MemoryConversations()
    events: list[tuple[str, dict[str, Any]]] = []
    rc = RunContext(
        run_id="run_1",
        tenant_id="t1",
        workflow_id=doc["id"],
        ports=Ports(models=models or FakeModels(), prompts=prompts, conversations=store),
        emit=lambda t, d: events.append((t, d)),
        conversation_id=conversation,
    )
    out = await execute(compile_workflow(doc), {"message": message}, rc)
    conv = rc.loaded_conversation
    if out.status == "succeeded" and conv is not None:
        await store.save("t1", doc["id"], conv)
    return out, events


def test_demos_are_valid() -> None:
    for name in DEMOS:
        compile_workflow(demo_document(name))


async def test_chatbot_remembers_and_streams() -> None:
    store = MemoryConversations()
    models = FakeModels(lambda r: f"seen {len(r.messages)} messages")
    doc = demo_document("chatbot")
    out, events = await turn(doc, "hi, I am Ada", models=models, store=store)
    assert out.output == "seen 1 messages"
    out, events = await turn(doc, "who am I?", models=models, store=store)
    assert out.output == "seen 3 messages"  # user + assistant from turn 1, then this message
    request = models.calls[-1][0]
    assert [m.role for m in request.messages] == ["user", "assistant", "user"]
    assert request.messages[0].text() == "hi, I am Ada"
    chunks = [d for t, d in events if t == "chunk"]
    assert [c["chunkNumber"] for c in chunks] == list(range(1, len(chunks) + 1))
    assert all(c["isStreamingChunk"] for c in chunks) and chunks[-1]["isLast"]
    assert chunks[-1]["tokensUsed"] > 0 and chunks[0]["runId"] == "run_1"
    saved = store.saved[("t1", "c1")]
    assert saved.turn == 2 and [m.text() for m in saved.history][-1] == "seen 3 messages"


async def test_memory_window_by_turns_and_tokens() -> None:
    from gasworks.modeltypes import Message
    from gasworks.workflows.nodes.conversation_memory import window

    hist = [Message("user" if i % 2 == 0 else "assistant", f"m{i} " + "x" * 40) for i in range(10)]
    assert [m.text()[:2] for m in window(hist, 2, None)] == ["m6", "m7", "m8", "m9"]
    assert len(window(hist, None, 25)) == 2  # ~11 tokens each


async def test_prompt_is_resolved_by_tenant_workflow_model_and_scope_is_passed() -> None:
    prompts = FakePrompts(
        system="Support for ${context.tenantId}",
        parameters={"temperature": 0.2, "max_tokens": 50, "seed": 7},
    )
    models = FakeModels()
    doc = {
        "id": "p",
        "nodes": [{"id": "m", "type": "ModelInvoke", "config": {"model": "demo", "maxTokens": 9}}],
    }
    out, _ = await turn(doc, "hello", models=models, prompts=prompts)
    assert prompts.asked == [("t1", "p", "demo")]
    request, scope = models.calls[0]
    assert request.messages[0].text() == "Support for t1"
    assert request.messages[-1].text() == "hello"
    # the prompt version's parameters apply; the node's explicit config wins
    assert (request.temperature, request.max_tokens, request.extra) == (0.2, 9, {"seed": 7})
    assert (
        scope.tenant_id,
        scope.workflow_id,
        scope.node_id,
        scope.run_id,
        scope.conversation_id,
    ) == ("t1", "p", "m", "run_1", "c1")
    assert out.output["text"] == "echo: hello" and out.output["usage"]["inputTokens"] == 3


async def test_support_routes_by_keyword_without_calling_the_model() -> None:
    models = FakeModels()
    out, _ = await turn(demo_document("support"), "hello there", models=models)
    assert out.output.startswith("Hello!") and models.calls == []
    out, _ = await turn(demo_document("support"), "I need a refund", models=models)
    assert out.state["intent"] == "billing"
    assert [t.node_id for t in out.timings] == [
        "classify",
        "route",
        "specialist",
        "specialist_answer",
        "reply",
    ]
    assert models.calls[-1][0].messages[-1].text() == "[billing question] I need a refund"


async def test_intent_classifier_uses_the_model_in_json_mode() -> None:
    def reply(r: ChatRequest) -> str:
        if r.response_format == {"type": "json_object"}:
            return json.dumps({"intent": "technical", "confidence": 0.9})
        return "try restarting"

    out, _ = await turn(demo_document("support"), "my screen went dark", models=FakeModels(reply))
    assert out.state["classify"] == {"intent": "technical", "confidence": 0.9, "source": "model"}
    assert out.output == "try restarting"


async def test_intent_below_confidence_falls_back() -> None:
    models = FakeModels(lambda r: '{"intent": "billing", "confidence": 0.2}')
    out, _ = await turn(demo_document("support"), "hmm", models=models)
    assert out.state["intent"] == "other"


async def test_onboarding_fills_slots_across_turns() -> None:
    store = MemoryConversations()
    models = FakeModels(lambda r: "{}")  # the model finds nothing: rules do the work
    doc = demo_document("onboarding")
    out, _ = await turn(doc, "hi", models=models, store=store)
    assert out.output == "Welcome! What is your name?"
    out, _ = await turn(doc, "Ada Lovelace", models=models, store=store)
    assert out.output == "Thanks Ada Lovelace! What email address should we use?"
    out, _ = await turn(
        doc, "sure, it's ada@example.com and I'd like pro", models=models, store=store
    )
    assert out.output == "All set, Ada Lovelace! Your pro account for ada@example.com is ready."
    assert out.state["slots"] == {"name": "Ada Lovelace", "email": "ada@example.com", "plan": "pro"}


async def test_onboarding_uses_model_extraction_and_validates_it() -> None:
    models = FakeModels(
        lambda r: json.dumps({"name": "Grace", "email": "not-an-email", "plan": "team"})
    )
    out, _ = await turn(demo_document("onboarding"), "I'm Grace, team plan", models=models)
    assert out.state["collect"]["name"] == "Grace" and out.state["collect"]["plan"] == "team"
    assert out.state["collect"]["missing"] == ["email"]  # the invalid email was refused


async def test_slots_fall_back_after_the_reask_limit_and_start_over() -> None:
    store = MemoryConversations()
    doc = demo_document("onboarding")
    collect = doc["nodes"][0]["config"]
    collect["slots"] = [s for s in collect["slots"] if s["name"] == "email"]
    collect["maxAsks"] = 2
    doc["nodes"][2]["config"]["template"] = "ok ${collect.email}"
    outputs = [
        (await turn(doc, "no idea", models=FakeModels(lambda r: "{}"), store=store))[0].output
        for _ in range(4)
    ]
    ask = "Thanks ! What email address should we use?"
    assert outputs == [
        ask,
        ask,
        "Sorry, I could not complete your sign-up. A teammate will email you shortly.",
        ask,
    ]


async def test_slot_rules_for_typed_slots() -> None:
    doc = {
        "id": "s",
        "nodes": [
            {
                "id": "f",
                "type": "SlotTracker",
                "config": {
                    "slots": [
                        {"name": "age", "type": "integer"},
                        {"name": "ok", "type": "boolean"},
                        {"name": "when", "type": "date"},
                        {"name": "code", "pattern": "[A-Z]{3}-\\d{2}"},
                        {"name": "phone", "type": "phone", "required": False},
                    ],
                    "useModel": False,
                    "onComplete": "done",
                    "onAsk": "done",
                    "onFallback": "done",
                },
            },
            {
                "id": "done",
                "type": "Format",
                "config": {"template": "${f.age}|${f.ok}|${f.when}|${f.code}|${f.phone}"},
            },
        ],
        "edges": [{"from": "f", "to": "done"}],
    }
    out, _ = await turn(
        doc, "I am 42, yes, on 2026-01-02, code ABC-12, call +1 555 123 4567", conversation=None
    )
    assert out.output == "42|true|2026-01-02|ABC-12|+1 555 123 4567"


async def test_the_prompt_engine_resolver_is_used_through_the_adapter() -> None:
    """The shape of the prompts domain: resolver.resolve(...) → prompt.format(values, history)."""
    from dataclasses import dataclass

    from gasworks.modeltypes import Message
    from gasworks.workflows.wiring import ResolverPrompts

    asked: list[dict[str, Any]] = []

    @dataclass
    class Formatted:
        messages: list[Message]
        parameters: dict[str, Any]

    class Prompt:
        version_id = "pv_test"

        def format(self, values: Any, history: Any) -> Formatted:
            user = values["inputs"]["user_prompt"]
            msgs = [Message("system", "Be brief."), *history, Message("user", user)]
            return Formatted(msgs, {"temperature": 0.1})

    class Resolver:
        async def resolve(self, **kw: Any) -> Prompt:
            asked.append(kw)
            return Prompt()

    models = FakeModels()
    doc = demo_document("chatbot")
    store = MemoryConversations()
    await turn(doc, "first", models=models, store=store, prompts=ResolverPrompts(Resolver()))  # type: ignore[arg-type]
    await turn(doc, "second", models=models, store=store, prompts=ResolverPrompts(Resolver()))  # type: ignore[arg-type]
    assert asked[-1] == {
        "tenant_id": "t1",
        "model": None,
        "workflow_id": "demo-chatbot",
        "conversation_id": "c1",
    }
    sent = models.calls[-1][0].messages
    assert [m.role for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0].text() == "Be brief." and sent[-1].text() == "second"
    assert models.calls[-1][0].temperature == 0.1
    assert models.calls[-1][1].prompt_version_id == "pv_test"  # on the call's ledger row


async def test_model_invoke_truncates_by_default_and_can_be_told_not_to() -> None:
    """As in the original system, a model node fits a long conversation to the model's
    context window before the call unless its config says ``truncate: false``."""
    models = FakeModels()
    for config in ({"model": "demo"}, {"model": "demo", "truncate": False}):
        doc = {"id": "t", "nodes": [{"id": "m", "type": "ModelInvoke", "config": config}]}
        out, _ = await turn(doc, "hello", models=models)
        assert out.status == "succeeded"
    assert [request.truncate for request, _ in models.calls] == [True, False]
