"""Any server speaking the OpenAI Chat Completions protocol: vLLM, Ollama, LM Studio,
llama.cpp server, LocalAI, corporate proxies.

Same wire format and error classification as ``openai``; differences: the base URL is required,
the key is optional (local servers ignore it), and the answer length goes in ``max_tokens``,
which these servers understand (``max_completion_tokens`` is newer and OpenAI-only).
"""

from __future__ import annotations

from gasworks.llm.providers.openai import OpenAIProvider

#: sent when a local server needs no key (the SDK refuses an empty one)
NO_KEY = "not-needed"


class OpenAICompatibleProvider(OpenAIProvider):
    name = "openai_compatible"
    max_tokens_param = "max_tokens"

    def __init__(self, *, api_key: str | None, base_url: str) -> None:
        super().__init__(api_key=api_key or NO_KEY, base_url=base_url)
