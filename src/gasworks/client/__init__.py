"""The gasworks Python SDK.

    from gasworks.client import Gasworks

    with Gasworks("http://127.0.0.1:8000", api_key="gw_...") as gw:
        print(gw.chat("Hello", model="demo").text)
        for chunk in gw.stream("Tell me a story"):
            print(chunk.delta, end="", flush=True)
        vectors = gw.embed(["first passage", "second passage"]).vectors

Errors raise the ``gasworks.errors`` classes (``ModelNotFound``, ``ProviderTimeout``, ...).
"""

from gasworks.client._client import AsyncGasworks, Gasworks

__all__ = ["AsyncGasworks", "Gasworks"]
