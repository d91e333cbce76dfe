"""Our bugs stay our bugs: an exception of gasworks' own code inside a provider adapter (here,
its request builder) is not translated into a provider error, so it is not retried, does not
fall back, does not count against the model's breaker, and surfaces as ``INTERNAL``."""

from __future__ import annotations

from typing import Any

import pytest

from gasworks.llm.hooks import CallOutcome
from gasworks.llm.providers import anthropic as anthropic_adapter
from gasworks.llm.providers import bedrock as bedrock_adapter
from gasworks.llm.providers import openai as openai_adapter
from gasworks.llm.providers import openai_compatible as compatible_adapter
from gasworks.llm.registry import ResolvedModel
from gasworks.modeltypes import CallScope, ChatRequest
from gasworks.testing import FakeAnthropic, FakeBedrock, FakeOpenAI, FakeProviderServer
from tests.llm.providers_util import SCOPE, ask, collect, gateway_for


class Recorder:
    """A call hook that records every attempt's outcome (what breakers and the ledger see)."""

    def __init__(self) -> None:
        self.outcomes: list[CallOutcome] = []

    async def before_call(self, scope: CallScope, model: ResolvedModel, r: ChatRequest) -> None:
        return None

    async def after_call(
        self, token: object, scope: CallScope, model: ResolvedModel, outcome: CallOutcome
    ) -> None:
        self.outcomes.append(outcome)


def _bug(*args: Any, **kwargs: Any) -> Any:
    raise TypeError("a bug in our request building")


def _openai(monkeypatch: pytest.MonkeyPatch, fake: FakeProviderServer) -> dict[str, Any]:
    monkeypatch.setattr(openai_adapter.OpenAIProvider, "_params", _bug)
    return {"provider": "openai", "base_url": f"{fake.url}/v1"}


def _compatible(monkeypatch: pytest.MonkeyPatch, fake: FakeProviderServer) -> dict[str, Any]:
    monkeypatch.setattr(compatible_adapter, "request_params", _bug)
    return {"provider": "openai_compatible", "base_url": f"{fake.url}/v1"}


def _anthropic(monkeypatch: pytest.MonkeyPatch, fake: FakeProviderServer) -> dict[str, Any]:
    monkeypatch.setattr(anthropic_adapter.AnthropicProvider, "_params", _bug)
    return {"provider": "anthropic", "base_url": fake.url}


def _bedrock(monkeypatch: pytest.MonkeyPatch, fake: FakeProviderServer) -> dict[str, Any]:
    monkeypatch.setattr(bedrock_adapter.BedrockProvider, "_params", staticmethod(_bug))
    return {"provider": "bedrock", "endpoint_url": fake.url}


ADAPTERS = [
    pytest.param(FakeOpenAI, _openai, id="openai"),
    pytest.param(FakeOpenAI, _compatible, id="openai_compatible"),
    pytest.param(FakeAnthropic, _anthropic, id="anthropic"),
    pytest.param(FakeBedrock, _bedrock, id="bedrock"),
]


@pytest.mark.parametrize(("fake_cls", "setup"), ADAPTERS)
@pytest.mark.parametrize("streaming", [False, True], ids=["chat", "stream"])
async def test_a_bug_in_request_building_is_not_a_provider_error(
    tmp_path, monkeypatch, fake_cls, setup, streaming
) -> None:
    with fake_cls() as fake:
        where = setup(monkeypatch, fake)
        bedrock_url = where.pop("endpoint_url", None)
        common = {
            "provider_model_id": "m-1",
            "input_per_1k": "0.001",
            "output_per_1k": "0.002",
            "capabilities": {"streaming": True},
            **where,
        }
        entries = [
            {"id": "primary", "fallbacks": ["backup"], **common},
            {"id": "backup", **common},
        ]
        settings = {"bedrock_endpoint_url": bedrock_url} if bedrock_url else {}
        sleeps: list[float] = []
        gw = gateway_for(tmp_path, entries, sleeps, **settings)
        hook = Recorder()
        gw.hooks.append(hook)
        with pytest.raises(TypeError, match="a bug in our request building"):
            if streaming:
                await collect(gw, ask("primary"))
            else:
                await gw.chat(SCOPE, ask("primary"))
        assert sleeps == []  # not retried
        assert fake.requests == []  # nothing was sent, and no fallback was tried
        (outcome,) = hook.outcomes  # one attempt, on the primary only
        assert outcome.status == "INTERNAL"
        assert not outcome.counts_against_provider  # breakers do not count it
