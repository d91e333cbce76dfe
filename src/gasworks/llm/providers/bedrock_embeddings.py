"""AWS Bedrock embeddings through boto3's ``bedrock-runtime`` ``InvokeModel``, on the client
and thread pool of the Bedrock chat adapter.

* Amazon Titan Text Embeddings v2 (``amazon.titan-embed-text-v2:0``): one text per
  invocation, so a batch is that many invocations run concurrently on the adapter's pool;
  ``dimensions`` 256 / 512 / 1024 and ``normalize`` as the registry entry says; the token
  count comes from ``inputTextTokenCount``. A batch fails as a whole when one invocation fails
  (the gateway retries the batch).
* Cohere Embed v3 (``cohere.embed-*-v3``): up to 96 texts per invocation, ``input_type``
  ``search_document`` / ``search_query`` by the request's purpose, ``truncate: NONE`` (the
  gateway refuses over-long inputs, nothing is cut); vectors normalised here when the entry
  says ``normalized`` (Cohere's are not unit length); no token count (the gateway's is used).

Errors are classified by the chat adapter's AWS error-code rules.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from gasworks.errors import ConfigurationError
from gasworks.llm.providers.bedrock import CALL_ERRORS, PAYLOAD_ERRORS, BedrockProvider
from gasworks.llm.providers.embeddings import EmbedVectors, l2_normalize
from gasworks.llm.registry.resolved import ResolvedModel
from gasworks.modeltypes import EmbedPurpose


def _family(model: ResolvedModel) -> str:
    wire = model.entry.wire_id  # without an inference-profile prefix
    if wire.startswith("amazon.titan-embed-text-v2"):
        return "titan"
    if wire.startswith("cohere.embed-"):
        return "cohere"
    raise ConfigurationError(
        f"Model '{model.id}' ({model.provider_model_id}) is not an embedding model gasworks "
        "can call on Bedrock (Titan Text Embeddings v2 and Cohere Embed v3 are).",
        details={"model": model.id},
    )


class BedrockEmbeddings:
    name = "bedrock"

    def __init__(self, chat: BedrockProvider) -> None:
        self.chat = chat

    def count_tokens(self, model: ResolvedModel, inputs: Sequence[str]) -> list[int] | None:
        return None

    async def _invoke(self, client: Any, model_id: str, body: dict[str, Any]) -> Any:
        def call() -> Any:
            resp = client.invoke_model(
                modelId=model_id,
                body=json.dumps(body),
                contentType="application/json",
                accept="application/json",
            )
            return json.loads(resp["body"].read())

        return await self.chat._run(call)

    async def embed(
        self,
        model: ResolvedModel,
        inputs: list[str],
        dimensions: int | None,
        purpose: EmbedPurpose,
        attempt_timeout: float,
    ) -> EmbedVectors:
        family = _family(model)
        spec = model.entry.embedding
        normalized = spec.normalized if spec is not None else True
        with CALL_ERRORS:  # botocore's call only; the answers are read below, as payloads
            client = self.chat._client(attempt_timeout)
            if family == "titan":
                body: dict[str, Any] = {"normalize": normalized}
                if dimensions is not None:
                    body["dimensions"] = dimensions
                answers = await asyncio.gather(
                    *(
                        self._invoke(client, model.provider_model_id, {"inputText": t, **body})
                        for t in inputs
                    )
                )
            else:
                input_type = "search_query" if purpose == "query" else "search_document"
                answer = await self._invoke(
                    client,
                    model.provider_model_id,
                    {"texts": inputs, "input_type": input_type, "truncate": "NONE"},
                )
        with PAYLOAD_ERRORS:
            if family == "titan":
                vectors = [[float(x) for x in a["embedding"]] for a in answers]
                tokens = sum(int(a["inputTextTokenCount"]) for a in answers)
                return EmbedVectors(vectors, tokens)
            vectors = [[float(x) for x in v] for v in answer["embeddings"]]
        return EmbedVectors(l2_normalize(vectors) if normalized else vectors, None)

    async def aclose(self) -> None:
        return None  # the client and pool belong to the chat adapter, closed with it
