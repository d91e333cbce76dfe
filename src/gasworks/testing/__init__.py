"""Test helpers shipped with gasworks: fake provider servers speaking the real wire protocols.

``FakeOpenAI``, ``FakeAnthropic`` and ``FakeBedrock`` listen on 127.0.0.1, answer like the
vendor (HTTP + SSE / AWS event stream) and inject faults on demand (``Fault``), so the official
SDKs run for real against them. Use them to test breakers, budgets and workflows too::

    with FakeOpenAI() as fake:
        fake.faults.append(Fault.rate_limit(retry_after=0))
        ... point a model entry's base_url at fake.url + "/v1" ...

``HashingEmbedder`` is a fake ``Embedder`` (words hashed into vectors) for retrieval tests.
"""

from gasworks.testing.fake_anthropic import FakeAnthropic
from gasworks.testing.fake_bedrock import FakeBedrock
from gasworks.testing.fake_openai import FakeOpenAI
from gasworks.testing.hashing_embedder import HashingEmbedder
from gasworks.testing.retrieval import FakeEmbedder, FakeTextract, MemorySources
from gasworks.testing.scripted import BrokenStream, ScriptedProvider
from gasworks.testing.server import FakeProviderServer, Fault, RecordedRequest, Reply

__all__ = [
    "BrokenStream",
    "FakeAnthropic",
    "FakeBedrock",
    "FakeEmbedder",
    "FakeOpenAI",
    "FakeProviderServer",
    "FakeTextract",
    "Fault",
    "HashingEmbedder",
    "MemorySources",
    "RecordedRequest",
    "Reply",
    "ScriptedProvider",
]
