"""The route class of every REST router: JSON bodies are parsed by ``gasworks.inputs``.

FastAPI parses a JSON body with ``Request.json()`` (the standard library's ``json.loads``):
unbounded nesting (a ``RecursionError``), NUL characters and 5 000-digit integers reached
the handlers or the database. ``GuardedRoute`` parses the body with ``inputs.load_json``
first and leaves the result where ``Request.json()`` returns it from, so every refusal is
``VALIDATION_FAILED`` naming ``body`` before a model or a handler sees the data. Every
router is built with ``route_class=GuardedRoute`` (``router()`` below); a test fails on a
route of another class.

This file also declares what each path parameter names (``ID_KINDS``), read by the
tenant-isolation test generated from the route table (tests/foundation/test_isolation_routes.py):
a route with a parameter not listed here fails that test until it is declared.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from enum import Enum
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from gasworks.inputs import load_json


def _json_content(content_type: str | None) -> bool:
    """Whether FastAPI would parse a body of this type as JSON (no type at all: yes)."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class GuardedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:  # a route reading its body itself parses it itself
            return handler

        async def guarded(request: Request) -> Response:
            if _json_content(request.headers.get("content-type")):
                body = await request.body()
                if body:
                    # what Starlette's Request.json() returns from now on (FastAPI calls it)
                    request._json = load_json(body)
            return await handler(request)

        return guarded


#: What every path parameter of the API names. A tenant-owned kind ("workflow", "key", ...)
#: is probed with another tenant's real object and a made-up id, which must answer alike;
#: ``PLATFORM`` names something every tenant shares (the model registry), ``VALUE`` a value
#: that is not an object (an action). A new route with a new parameter name adds it here.
PLATFORM = "platform"
VALUE = "value"
ID_KINDS: dict[str, str] = {
    "tenant_id": "tenant",
    "key_id": "key",
    "version_id": "prompt_version",
    "dl_id": "prompt_dead_letter",
    "slug": "workflow",
    "version": "workflow_version",
    "share_id": "workflow_share",
    "run_id": "workflow_run",
    "conversation_id": "conversation",
    "document_id": "document",
    "ref": "collection",
    "grant_id": "collection_grant",
    "job_id": "document_dead_letter",
    "model_id": PLATFORM,
    "key": PLATFORM,
    "action": VALUE,
}


def router(prefix: str = "", tags: Sequence[str | Enum] | None = None) -> APIRouter:
    """An ``APIRouter`` whose routes parse bodies through ``gasworks.inputs``."""
    return APIRouter(prefix=prefix, tags=list(tags or []), route_class=GuardedRoute)
