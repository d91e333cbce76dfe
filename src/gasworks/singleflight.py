"""Single flight: one load per key at a time, the concurrent callers of that key wait for it.

Used where a cache miss is expensive and bursts miss together (the prompt resolver, the API
key cache, the spend-limits cache): without it, a burst of N requests after the cache entry
expires makes N identical reads. Hand-written because it is a dozen lines over asyncio and
the libraries that offer it (aiocache's ``cached`` with locks, async-lru) bring a cache policy
the callers here already have (docs/architecture.md, "What is hand-written, and why").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """The loads in progress, one per key.

    ``await flight.run(key, load)`` starts ``load()`` unless a load of ``key`` is already in
    progress, and returns that load's result (or raises its exception) to every caller that
    joined it. A caller that is cancelled leaves the load running for the others
    (``asyncio.shield``). Nothing is cached here: the load itself fills the caller's cache.
    """

    __slots__ = ("_inflight",)

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Task[V]] = {}

    async def run(self, key: K, load: Callable[[], Coroutine[Any, Any, V]]) -> V:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(load())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: K, done: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is done:
            del self._inflight[key]

    def when_settled(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each load now in progress ends (not at all if none is): an
        invalidation must also reach a verdict that is being loaded while it happens."""
        for task in list(self._inflight.values()):
            task.add_done_callback(lambda _t: callback())

    def __len__(self) -> int:
        return len(self._inflight)
