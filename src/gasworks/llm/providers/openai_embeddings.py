"""OpenAI embeddings (``/v1/embeddings``: text-embedding-3-small/large) through the official
``openai`` SDK, on the client of the chat adapter for the same endpoint and key.

The batch is posted as plain JSON through the SDK client (``base.sdk_post_json``: same
transport, auth, error classes) with ``encoding_format=base64``: 4 bytes per float on the wire
instead of ~20 characters of JSON, decoded with ``array`` (what the SDK's own
``embeddings.create`` does by default). ``dimensions`` is sent only when a reduced size is
asked. Every error is classified like the chat adapter's.
"""

from __future__ import annotations

from collections.abc import Sequence

from gasworks.llm.providers.base import sdk_post_json
from gasworks.llm.providers.embeddings import EmbedVectors, openai_params, parse_openai_embeddings
from gasworks.llm.providers.openai import OpenAIProvider, require_openai
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import EmbedPurpose

_PATH = "/embeddings"


class OpenAIEmbeddings:
    name = "openai"

    def __init__(self, chat: OpenAIProvider) -> None:
        self.chat = chat

    def count_tokens(self, model: ResolvedModel, inputs: Sequence[str]) -> list[int] | None:
        return None  # the registry's tokenizer (cl100k_base) counts exactly

    async def embed(
        self,
        model: ResolvedModel,
        inputs: list[str],
        dimensions: int | None,
        purpose: EmbedPurpose,
        attempt_timeout: float,
    ) -> EmbedVectors:
        client = self.chat._client_or_raise()
        params = openai_params(model, inputs, dimensions, "base64")
        with self.chat._call:  # the chat adapter's error boundary: the SDK call only
            data = await sdk_post_json(require_openai(), client, _PATH, params, attempt_timeout)
        return parse_openai_embeddings(self.name, data, len(inputs))

    async def aclose(self) -> None:
        return None  # the client belongs to the chat adapter, closed with it
