"""Provider adapters, per call: the CPU one adapter call costs gasworks' process.

The adapter (``AnthropicProvider``, ``OpenAIProvider``) runs in this process on uvloop, as in
``gasworks serve``; the fake vendor servers of ``gasworks.testing`` run in another process, so
their work is not counted. One request at a time; CPU is this process's CPU time around each
call (``time.process_time``), so the figure is the adapter + SDK + transport + event loop,
whatever the machine's other load. The anchor is the Anthropic SDK's own typed call
(``messages.create``, a pydantic model per answer and per stream event): what the adapter did
before it asked the SDK for plain JSON.

Run alone (writes only its section of ``bench/results/gateway.md``)::

    .venv/bin/python bench/bench_gateway.py adapters
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml

#: words in the fake's answer: 30 Anthropic stream events, 28 OpenAI ones
WORDS = 24
CALLS, WARM = 2000, 200
HEADING = "## Provider adapters, per call"

FAKES = """
import sys
from gasworks.testing import FakeAnthropic, FakeOpenAI

fakes = [FakeAnthropic(), FakeOpenAI()]
for f in fakes:
    f.reply.text = " ".join(["token"] * int(sys.argv[1]))
    f.start()
print(*(f.port for f in fakes), flush=True)
sys.stdin.read()
"""


ROUNDS = 8


async def _block(fn: Callable[[], Awaitable[object]], n: int) -> tuple[float, float]:
    """Mean (CPU µs, wall µs) of one call of ``fn`` over ``n`` calls in a row."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        await fn()
    return (time.process_time() - c0) / n * 1e6, (time.perf_counter() - w0) / n * 1e6


async def _interleaved(
    calls: list[tuple[str, Callable[[], Awaitable[object]]]],
) -> tuple[list[list[tuple[float, float]]], tuple[float, float]]:
    """Per call, per round (CPU µs, wall µs): ``ROUNDS`` rounds of ``CALLS // ROUNDS`` calls
    of each, the order rotating round by round; and the load average before and after."""
    for _label, fn in calls:
        for _ in range(WARM):
            await fn()
    per: list[list[tuple[float, float]]] = [[] for _ in calls]
    load0 = os.getloadavg()[0]
    for r in range(ROUNDS):
        for j in [(r + i) % len(calls) for i in range(len(calls))]:
            per[j].append(await _block(calls[j][1], CALLS // ROUNDS))
    return per, (load0, os.getloadavg()[0])


Row = tuple[str, float, float, str]


async def _measure(anthropic_url: str, openai_url: str) -> tuple[list[Row], tuple[float, float]]:
    from gasworks.llm.providers.anthropic import AnthropicProvider
    from gasworks.llm.providers.openai import OpenAIProvider
    from gasworks.llm.providers.openai_compatible import OpenAICompatibleProvider
    from gasworks.llm.registry.registry import build_registry
    from gasworks.modeltypes import ChatRequest, Message

    home = Path(tempfile.mkdtemp())
    models = home / "models.yaml"
    common = {"input_per_1k": "0.001", "output_per_1k": "0.002", "max_output_tokens": 1000}
    entries = [
        {"id": "claude", "provider": "anthropic", "provider_model_id": "claude-b", **common},
        {"id": "gpt", "provider": "openai", "provider_model_id": "gpt-b", **common},
        {
            "id": "compat",
            "provider": "openai_compatible",
            "provider_model_id": "gpt-b",
            "base_url": openai_url + "/v1",
            **common,
        },
    ]
    models.write_text(yaml.safe_dump({"models": entries}))
    registry = build_registry(default_model="claude", models_file=models, region=None)
    claude, gpt = registry.resolve("claude"), registry.resolve("gpt")
    compat_model = registry.resolve("compat")
    anth = AnthropicProvider(api_key="sk-bench-not-a-key", base_url=anthropic_url)
    oai = OpenAIProvider(api_key="sk-bench-not-a-key", base_url=openai_url + "/v1")
    # the same adapter on the SDK's default client (httpx + httpcore + anyio): what it ran on
    # while the SDK's `aiohttp` extra was not installed
    import openai

    oai_httpx = OpenAIProvider(api_key="sk-bench-not-a-key", base_url=openai_url + "/v1")
    await oai_httpx._client.close()
    oai_httpx._client = openai.AsyncOpenAI(
        api_key="sk-bench-not-a-key", base_url=openai_url + "/v1", max_retries=0
    )
    compat = OpenAICompatibleProvider(api_key="sk-bench-not-a-key", base_url=openai_url + "/v1")
    # the `openai` adapter's path before issue #19's SDK work, on the same client: the SDK's
    # response wrapper (`cast_to=object`), its `AsyncStream` and SSE decoder, its telemetry
    # headers
    from gasworks.llm.providers.base import sdk_post_json
    from gasworks.llm.providers.chat_completions import (
        StreamParser,
        parse_completion,
        request_params,
    )

    async def json_chat() -> None:
        params = request_params(gpt, req, "max_completion_tokens")
        data = await sdk_post_json(openai, oai._client, "/chat/completions", params, 10)
        assert parse_completion("openai", gpt, req, data).text

    async def json_stream() -> None:
        params = request_params(gpt, req, "max_completion_tokens")
        params["stream"], params["stream_options"] = True, {"include_usage": True}
        stream = await sdk_post_json(openai, oai._client, "/chat/completions", params, 10)
        parser = StreamParser("openai")
        try:
            async for event in stream:
                parser.feed(event)
        finally:
            await stream.close()
        assert parser.last(gpt, req).usage

    req = ChatRequest(model="claude", messages=[Message("user", "Hello, how are you today?")])
    sdk: Any = anth._client
    params = {
        "model": "claude-b",
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "Hello, how are you today?"}],
    }

    async def drain(stream: Any) -> None:
        async for _ in stream:
            pass

    async def typed_chat() -> None:
        msg = await sdk.messages.create(**params, timeout=10)
        assert msg.content[0].text and msg.usage.output_tokens

    async def typed_stream() -> None:
        stream = await sdk.messages.create(**params, stream=True, timeout=10)
        async for ev in stream:
            assert ev.type

    calls: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("`anthropic` adapter, answer", lambda: anth.chat(claude, req, 10)),
        (
            "`anthropic` adapter, stream (30 events)",
            lambda: drain(anth.stream(claude, req, 10)),
        ),
        ("anchor: the SDK's typed `messages.create`, answer", typed_chat),
        ("anchor: the same, stream (30 events)", typed_stream),
        ("`openai` adapter, answer", lambda: oai.chat(gpt, req, 10)),
        ("`openai` adapter, stream (28 events)", lambda: drain(oai.stream(gpt, req, 10))),
        (
            "anchor: the `openai` adapter on httpx (no `aiohttp` extra), answer",
            lambda: oai_httpx.chat(gpt, req, 10),
        ),
        ("anchor: the same, stream (28 events)", lambda: drain(oai_httpx.stream(gpt, req, 10))),
        (
            "anchor: the `openai` adapter's path before (SDK response wrapper, telemetry "
            "headers), answer",
            json_chat,
        ),
        ("anchor: the same, stream (28 events; the SDK's `AsyncStream`)", json_stream),
        (
            "`openai_compatible` adapter (plain aiohttp), answer",
            lambda: compat.chat(compat_model, req, 10),
        ),
        (
            "`openai_compatible` adapter, stream (28 events)",
            lambda: drain(compat.stream(compat_model, req, 10)),
        ),
    ]
    try:
        per, load = await _interleaved(calls)
    finally:
        await anth.aclose()
        await oai.aclose()
        await oai_httpx.aclose()
        await compat.aclose()
    med = statistics.median
    out: list[Row] = []
    for j, (label, _fn) in enumerate(calls):
        # the adapter rows against their anchor of the same kind (answer / stream): the
        # typed SDK call; the `openai` adapter's path before; for `openai_compatible`, the
        # `openai` adapter (how much more CPU the SDK path takes). The median of per-round
        # CPU ratios.
        anchor = {0: 2, 1: 3, 4: 8, 5: 9, 10: 4, 11: 5}.get(j)
        ratio = (
            f"{med(per[anchor][r][0] / per[j][r][0] for r in range(ROUNDS)):.2f}x"
            if anchor is not None
            else ""
        )
        out.append((label, med(x[0] for x in per[j]), med(x[1] for x in per[j]), ratio))
    return out, load


def bench_adapters() -> list[str]:
    """The markdown section (heading included)."""
    import uvloop

    fakes = subprocess.Popen(
        [sys.executable, "-c", FAKES, str(WORDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fakes.stdout is not None
        a_port, o_port = fakes.stdout.readline().split()
        rows, load = uvloop.run(
            _measure(f"http://127.0.0.1:{a_port}", f"http://127.0.0.1:{o_port}")
        )
    finally:
        fakes.kill()
        fakes.wait()
    lines = [
        HEADING,
        "",
        "One adapter call at a time on uvloop against the fake vendor server in another "
        f"process (127.0.0.1). Interleaved: {ROUNDS} rounds of {CALLS // ROUNDS} calls of "
        f"each row, the order rotating round by round, after {WARM} warm-up calls each; "
        "figures are medians of the per-round means, the ratio the median of per-round "
        "ratios. CPU = this process's CPU time per call (adapter, SDK, aiohttp transport, "
        "event loop). The anchor is the Anthropic SDK's typed `messages.create` (a pydantic "
        "model per answer and per event), which the `anthropic` adapter used before it asked "
        "for plain JSON. The `openai` adapter's anchor is its path before issue #19's SDK "
        "work, on the same SDK client: `client.post(..., cast_to=object)` (the SDK's response "
        "wrapper, its `AsyncStream` and SSE decoder, its telemetry headers); the adapter now "
        "takes the SDK's raw HTTP response, splits a stream's `data:` lines itself and leaves "
        "the telemetry headers out. The same adapter on the SDK's default httpx client (no "
        "`aiohttp` extra) is listed for reference. The `openai_compatible` rows (the same Chat "
        "Completions wire through plain aiohttp) give the `openai` adapter's CPU ÷ theirs: "
        "what the SDK path still costs. "
        f"Load average {load[0]:.1f} → {load[1]:.1f}.",
        "",
        "| call | CPU per call | wall per call | anchor CPU ÷ adapter CPU | load |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {cpu:.0f} µs | {wall:.0f} µs | {ratio} | {load[0]:.1f} → {load[1]:.1f} |"
        for label, cpu, wall, ratio in rows
    ]
    return lines


def splice(text: str, section: list[str]) -> str:
    """``text`` (a results file) with its adapters section replaced, or put after the
    in-process section."""
    lines = text.rstrip("\n").split("\n")

    def next_heading(after: int) -> int:
        found = (i for i in range(after + 1, len(lines)) if lines[i].startswith("## "))
        return next(found, len(lines))

    if HEADING in lines:
        start = lines.index(HEADING)
        end = next_heading(start)
    else:
        anchor = "## In-process"
        start = end = next_heading(lines.index(anchor)) if anchor in lines else len(lines)
    rest = lines[end:]
    lines = lines[:start] + section + (["", *rest] if rest else [])
    return "\n".join(lines) + "\n"
