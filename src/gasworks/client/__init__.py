"""The gasworks Python SDK.

    from gasworks.client import Gasworks

    with Gasworks("http://127.0.0.1:8000", api_key="gw_...") as gw:
        print(gw.chat("Hello", model="demo").text)
        for chunk in gw.stream("Tell me a story"):
            print(chunk.delta, end="", flush=True)
        vectors = gw.embed(["first passage", "second passage"]).vectors

``Gasworks`` (sync) and ``AsyncGasworks`` have the same methods (tenants, keys, breakers,
budgets, models, workflows, prompts, documents, collections, dead letters, usage, ...): the
sync client is generated from the async one (``scripts/unasync_client.py``). Errors raise the
``gasworks.errors`` classes (``ModelNotFound``, ``ProviderTimeout``, ...).
"""

from gasworks.client._async.client import AsyncGasworks
from gasworks.client._sync.client import Gasworks

__all__ = ["AsyncGasworks", "Gasworks"]
