"""The shapes every model call shares: requests, results, stream chunks, usage.

Plain slotted dataclasses (not pydantic) because they sit on the per-call hot path; the HTTP
layers validate input with pydantic and convert to these. Providers, guardrails, the ledger, the
gateway and workflow nodes all speak these types.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
EmbedPurpose = Literal["document", "query"]


class FinishReason(StrEnum):
    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    ERROR = "error"


@dataclass(slots=True)
class Message:
    role: Role
    content: str | list[dict[str, Any]]
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The textual content (text parts of a multimodal message joined)."""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


@dataclass(slots=True)
class CallScope:
    """Who and what a call is for: carried into budgets, breakers and the ledger."""

    tenant_id: str
    api_key_id: str | None = None
    request_id: str | None = None
    workflow_id: str | None = None
    node_id: str | None = None
    run_id: str | None = None
    conversation_id: str | None = None
    #: the prompt version the request was built from (recorded on its ledger rows)
    prompt_version_id: str | None = None


@dataclass(slots=True)
class ChatRequest:
    model: str | None
    messages: list[Message]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    #: the most this one call may cost (COST_LIMIT_EXCEEDED before the call when estimated over)
    cost_limit: Decimal | None = None
    #: drop oldest history / truncate instead of failing with CONTEXT_WINDOW_EXCEEDED
    truncate: bool = False
    #: provider-specific extra parameters passed through untouched
    extra: dict[str, Any] = field(default_factory=dict)
    #: what call hooks did to the request (e.g. truncation); copied into ``ChatResult.notes``
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    #: input tokens written to the provider's prompt cache (Anthropic charges a premium)
    cache_write_input_tokens: int = 0
    #: True when the provider did not report usage and gasworks estimated it
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(slots=True)
class ChatResult:
    text: str
    finish_reason: FinishReason
    usage: Usage
    #: registry id of the model that answered (may differ from the one asked: fallbacks)
    model: str
    provider: str
    tool_calls: list[dict[str, Any]] | None = None
    #: the provider's token log probabilities (OpenAI's ``choices[0].logprobs``), when asked
    logprobs: dict[str, Any] | None = None
    cost: Decimal = Decimal(0)
    latency_ms: float = 0.0
    time_to_first_token_ms: float | None = None
    #: set when the answering model is a demo/offline model
    demo: bool = False
    #: what happened on the way (fallbacks taken, truncation applied, ...)
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class StreamChunk:
    """One piece of a streamed answer. The last chunk carries ``finish_reason`` and ``usage``."""

    delta: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    tool_calls: list[dict[str, Any]] | None = None
    #: log probabilities of this chunk's tokens, when asked (OpenAI's ``choices[0].logprobs``)
    logprobs: dict[str, Any] | None = None
    #: on the first and the last chunk from the gateway: registry id of the model that answered
    model: str | None = None
    #: on the last chunk from the gateway: exact cost of the call
    cost: Decimal | None = None
    #: on the last chunk from the gateway: what happened on the way (fallbacks, truncation)
    notes: dict[str, Any] | None = None
    #: on the first and the last chunk from the gateway: the answering model is the demo model
    demo: bool = False


# --- embeddings -----------------------------------------------------------------------------
# Shared by the gateway (``Gateway.embed``), the retrieval contract (``gasworks.retrieval.types``
# re-exports them), the ``/v1/embeddings`` route and the SDK.


@dataclass(slots=True, frozen=True)
class Space:
    """One vector space: an embedding model at one dimension."""

    model: str
    dimensions: int

    @property
    def key(self) -> str:
        """A stable, filesystem- and SQL-safe name for the space."""
        safe = "".join(c if c.isalnum() else "_" for c in self.model)
        return f"{safe}_{self.dimensions}"


@dataclass(slots=True)
class EmbedRequest:
    #: registry id; ``None`` means the deployment's default embedding model
    model: str | None
    inputs: list[str]
    #: reduced dimensions where the model supports it (text-embedding-3, Titan v2)
    dimensions: int | None = None
    #: some models embed queries and passages differently
    purpose: EmbedPurpose = "document"
    #: the most this one call may cost (COST_LIMIT_EXCEEDED before the call)
    cost_limit: Decimal | None = None
    #: what the call served, recorded on the ledger row (``{"documentId": ..}``, ``{"runId": ..}``)
    served: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EmbedResult:
    model: str
    provider: str
    #: one vector per input, in input order, each of ``dimensions`` floats (L2-normalised
    #: where the model's registry entry says so)
    vectors: list[list[float]]
    dimensions: int
    input_tokens: int
    cost: Decimal = Decimal(0)
    latency_ms: float = 0.0

    @property
    def space(self) -> Space:
        return Space(self.model, self.dimensions)


@dataclass(slots=True, frozen=True)
class EmbedInputLimit:
    """The longest text an embedding model accepts, and how to measure a text against it.

    ``count`` gives each text's tokens exactly as the gateway counts them before refusing an
    input (``VALIDATION_FAILED``): the model's own tokenizer where the provider has one (its
    special tokens and the model's document prefix included), else the registry's tokenizer or
    characters-per-token estimate; ``exact`` is False for the estimate."""

    model: str
    max_tokens: int
    count: Callable[[Sequence[str]], list[int]]
    exact: bool


@dataclass(slots=True)
class EmbedBatch:
    """One provider attempt of an embedding request: the inputs of one batch, as the hooks
    (breakers, budgets, ledger) see it. ``tokens`` are counted before the call."""

    inputs: list[str]
    dimensions: int
    purpose: EmbedPurpose
    tokens: int
    served: dict[str, str] = field(default_factory=dict)


def decode_base64_floats(data: str) -> list[float]:
    """An OpenAI ``encoding_format=base64`` embedding: little-endian float32s."""
    arr = array("f")
    arr.frombytes(base64.b64decode(data, validate=True))
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        arr.byteswap()
    return arr.tolist()


def encode_base64_floats(vector: Sequence[float]) -> str:
    """The inverse of ``decode_base64_floats`` (what ``/v1/embeddings`` sends)."""
    arr = array("f", vector)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        arr.byteswap()
    return base64.b64encode(arr.tobytes()).decode("ascii")
