"""The sync SDK client is generated from the async one (scripts/unasync_client.py): the
committed file is current, both clients have the same methods with the same parameters, and
every call the sync client took before the generation still binds."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from gasworks.client import AsyncGasworks, Gasworks
from tests.foundation._scripts import load_script


def test_the_generated_sync_client_is_current():
    gen = load_script("unasync_client")
    assert gen.TARGET.read_text(encoding="utf-8") == gen.render(), (
        "src/gasworks/client/_sync/client.py is stale: run `make sdk` and commit it"
    )


def _public(cls: type) -> dict[str, Any]:
    return {n: f for n, f in vars(cls).items() if not n.startswith("_") and callable(f)}


def _params(fn: Any) -> list[tuple[str, Any, Any]]:
    """Names, kinds and defaults (the annotations differ: ``AsyncIterator`` / ``Iterator``)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def test_both_clients_have_the_same_methods_and_parameters():
    sync, async_ = _public(Gasworks), _public(AsyncGasworks)
    async_["close"] = async_.pop("aclose")
    assert sorted(sync) == sorted(async_)
    assert len(sync) >= 55  # every group: tenancy to dead letters
    for name, fn in sync.items():
        assert _params(fn) == _params(async_[name]), name
        assert not inspect.iscoroutinefunction(fn) and not inspect.isasyncgenfunction(fn)
        twin = async_[name]
        assert inspect.iscoroutinefunction(twin) or inspect.isasyncgenfunction(twin), name
    assert _params(Gasworks.__init__) == _params(AsyncGasworks.__init__)


#: every call shape of the sync client before it was generated (0.1: 20 methods)
OLD_SYNC_CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("search", ("q",), {"k": 3, "mode": "hybrid"}),
    ("chat", ("hi",), {"model": "demo", "system": "s", "max_tokens": 5}),
    ("stream", ([{"role": "user", "content": "hi"}],), {"model": "demo", "system": "s"}),
    ("embed", (["a", "b"],), {"model": "m", "dimensions": 8, "purpose": "query"}),
    ("models", (), {"include_disabled": True}),
    ("model", ("demo",), {}),
    ("upload_documents", (["a.md"],), {"collections": ["kb"], "new": True}),
    ("document", ("doc_1",), {}),
    ("documents", (), {"collection": "kb", "limit": 10, "offset": 20}),
    ("delete_document", ("doc_1",), {}),
    ("create_collection", ("kb",), {"chunkTokens": 100, "description": "d"}),
    ("grant", ("kb", "role", "editor"), {}),
    ("dead_letters", (), {"stage": "index"}),
    ("replay_dead_letters", (), {"stage": "index"}),
    ("document_ingestion", (), {}),
    ("document_audit", (), {"collection": "kb", "limit": 10, "offset": 5}),
    ("close", (), {}),
    ("__enter__", (), {}),
    ("__exit__", (None, None, None), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), OLD_SYNC_CALLS, ids=lambda v: str(v)[:20])
def test_every_earlier_sync_call_still_binds(name: str, args: Any, kwargs: Any):
    inspect.signature(getattr(Gasworks, name)).bind(object(), *args, **kwargs)


def test_the_async_client_keeps_its_context_manager_and_aclose():
    for name in ("aclose", "__aenter__", "__aexit__"):
        assert inspect.iscoroutinefunction(getattr(AsyncGasworks, name))
    for name in ("close", "__enter__", "__exit__"):
        assert callable(getattr(Gasworks, name))
