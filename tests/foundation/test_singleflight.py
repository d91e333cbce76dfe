"""SingleFlight: one load per key at a time, shared by the callers that miss together."""

from __future__ import annotations

import asyncio

import pytest

from gasworks.singleflight import SingleFlight


class Loader:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.gate = asyncio.Event()
        self.fail: Exception | None = None

    async def load(self, key: str) -> str:
        self.calls.append(key)
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return f"value of {key}"


async def test_concurrent_callers_of_one_key_share_one_load() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    loader = Loader()
    callers = [asyncio.ensure_future(flight.run("a", lambda: loader.load("a"))) for _ in range(5)]
    other = asyncio.ensure_future(flight.run("b", lambda: loader.load("b")))
    await asyncio.sleep(0)  # let every caller join
    assert len(flight) == 2
    loader.gate.set()
    assert await asyncio.gather(*callers) == ["value of a"] * 5
    assert await other == "value of b"
    assert sorted(loader.calls) == ["a", "b"]
    assert len(flight) == 0
    # once it has ended, the next miss loads again
    assert await flight.run("a", lambda: loader.load("a")) == "value of a"
    assert loader.calls.count("a") == 2


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    loader = Loader()
    loader.fail = RuntimeError("store down")
    callers = [asyncio.ensure_future(flight.run("a", lambda: loader.load("a"))) for _ in range(3)]
    await asyncio.sleep(0)
    loader.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert [str(r) for r in results] == ["store down"] * 3
    assert loader.calls == ["a"]
    loader.fail = None
    assert await flight.run("a", lambda: loader.load("a")) == "value of a"


async def test_a_cancelled_caller_leaves_the_load_to_the_others() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    loader = Loader()
    first = asyncio.ensure_future(flight.run("a", lambda: loader.load("a")))
    second = asyncio.ensure_future(flight.run("a", lambda: loader.load("a")))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    loader.gate.set()
    assert await second == "value of a"
    assert loader.calls == ["a"]


async def test_when_settled_runs_after_each_load_in_progress() -> None:
    flight: SingleFlight[str, str] = SingleFlight()
    loader = Loader()
    settled: list[int] = []
    flight.when_settled(lambda: settled.append(0))  # nothing in progress: never called
    caller = asyncio.ensure_future(flight.run("a", lambda: loader.load("a")))
    await asyncio.sleep(0)
    flight.when_settled(lambda: settled.append(len(flight)))
    assert settled == []
    loader.gate.set()
    await caller
    await asyncio.sleep(0)
    assert settled == [0]  # called once, after the load ended and left the table
