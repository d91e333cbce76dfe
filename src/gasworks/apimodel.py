"""The one base of every schema callers see over REST and the CLI's ``--json``.

Field names are snake_case in Python and camelCase on the wire (``tenantId``, ``createdAt``),
the same across every domain and the same as GraphQL. Input accepts either spelling, so a
client written against the Python names keeps working. The OpenAI-compatible ``/v1`` routes
are the one exception: they follow OpenAI's own snake_case wire format.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


def camel(name: str) -> str:
    """``tenant_id`` → ``tenantId``, ``input_per_1k`` → ``inputPer1k`` (pydantic's ``to_camel``
    would say ``inputPer1K``)."""
    first, *rest = name.split("_")
    return first + "".join(p[:1].upper() + p[1:] for p in rest)


class ApiModel(BaseModel):
    """FastAPI and the CLI render it by alias; ``model_dump()`` in Python keeps Python names."""

    model_config = ConfigDict(alias_generator=camel, populate_by_name=True)
