"""The interface every embedding adapter implements, and the pieces they share.

An embedding adapter turns one batch of texts into one vector each (``EmbedVectors``), in
input order, of the requested dimensions, L2-normalised when the model's registry entry says
``normalized``. Like the chat adapters it translates every vendor error into the gasworks
provider errors and never retries: the gateway owns batching, retries, guardrails and pricing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from gasworks.errors import ProviderBadResponse
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import EmbedPurpose, decode_base64_floats


@dataclass(slots=True)
class EmbedVectors:
    vectors: list[list[float]]
    #: tokens the provider counted (None: it reports none; the gateway's count is used)
    input_tokens: int | None = None


class EmbeddingProvider(Protocol):
    """One vendor's embedding protocol. ``dimensions`` is None for the model's native size."""

    name: str

    async def embed(
        self,
        model: ResolvedModel,
        inputs: list[str],
        dimensions: int | None,
        purpose: EmbedPurpose,
        attempt_timeout: float,
    ) -> EmbedVectors: ...

    def count_tokens(self, model: ResolvedModel, inputs: Sequence[str]) -> list[int] | None:
        """Exact token counts with the model's own tokenizer, or None (the gateway then
        counts with the registry's ``tokenizer`` / ratio)."""
        ...

    async def aclose(self) -> None: ...


def l2_normalize(vectors: list[list[float]]) -> list[list[float]]:
    """Unit-length copies (a zero vector stays zero)."""
    out = []
    for v in vectors:
        norm = math.sqrt(math.fsum(x * x for x in v))
        out.append([x / norm for x in v] if norm else list(v))
    return out


def parse_openai_embeddings(provider: str, data: Any, count: int) -> EmbedVectors:
    """An OpenAI ``/embeddings`` answer (float lists or base64) as vectors in input order.

    A missing key or a wrong count raises ``ProviderBadResponse``."""
    try:
        items = sorted(data["data"], key=lambda d: int(d["index"]))
        vectors = [
            decode_base64_floats(e) if isinstance(e, str) else [float(x) for x in e]
            for e in (d["embedding"] for d in items)
        ]
        usage = data.get("usage") or {}
        tokens = usage.get("prompt_tokens")
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderBadResponse(
            f"{provider} answered something that is not an embeddings response.",
            details={"provider": provider, "error": type(exc).__name__},
        ) from exc
    if len(vectors) != count:
        raise ProviderBadResponse(
            f"{provider} returned {len(vectors)} embeddings for {count} inputs.",
            details={"provider": provider},
        )
    return EmbedVectors(vectors, int(tokens) if tokens is not None else None)


def openai_params(
    model: ResolvedModel, inputs: list[str], dimensions: int | None, encoding: str | None
) -> dict[str, Any]:
    """An OpenAI ``/embeddings`` request body."""
    params: dict[str, Any] = {"model": model.provider_model_id, "input": inputs}
    if dimensions is not None:
        params["dimensions"] = dimensions
    if encoding is not None:
        params["encoding_format"] = encoding
    return params
