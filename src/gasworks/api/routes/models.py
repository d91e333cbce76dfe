"""Model registry management: ``/api/models``.

Everyone authenticated may list and read entries; creating, changing, disabling and resetting
entries needs a platform administrator (entries are platform-wide, see ``llm/tables.py``).
"""

from __future__ import annotations

from typing import Any

from fastapi import Query, status
from pydantic import BaseModel, StrictBool

from gasworks.api.deps import ContextDep, RuntimeDep
from gasworks.api.routing import router as guarded_router
from gasworks.llm.runtime import get_registry, models_admin
from gasworks.modelcard import ModelEntry

router = guarded_router(prefix="/api/models", tags=["models"])


class ModelOut(ModelEntry):
    """A registry entry as the API shows it."""

    #: where the entry comes from: catalog (shipped or GASWORKS_MODELS_FILE) or api
    source: str = "catalog"
    #: True when an API overlay changes a catalog entry
    overridden: bool = False


def _out(runtime: Any, e: ModelEntry) -> ModelOut:
    registry = get_registry(runtime)
    base = registry.base_entry(e.id)
    return ModelOut.model_validate(
        {
            **e.model_dump(),
            "source": "catalog" if base is not None else "api",
            "overridden": base is not None and e.id in registry.overlays,
        }
    )


@router.get("", summary="Registry entries")
async def list_models(
    ctx: ContextDep,
    runtime: RuntimeDep,
    include_disabled: bool = Query(False, alias="includeDisabled"),
) -> list[ModelOut]:
    entries = get_registry(runtime).entries(include_disabled=include_disabled)
    return [_out(runtime, e) for e in entries]


@router.get("/{model_id:path}", summary="One registry entry")
async def get_model(model_id: str, ctx: ContextDep, runtime: RuntimeDep) -> ModelOut:
    return _out(runtime, get_registry(runtime).get(model_id, include_disabled=True))


@router.post("", status_code=status.HTTP_201_CREATED, summary="Add a model (platform admin)")
async def create_model(body: dict[str, Any], ctx: ContextDep, runtime: RuntimeDep) -> ModelOut:
    return _out(runtime, await models_admin(runtime).create(ctx, body))


@router.patch("/{model_id:path}", summary="Change a model's fields (platform admin)")
async def update_model(
    model_id: str, body: dict[str, Any], ctx: ContextDep, runtime: RuntimeDep
) -> ModelOut:
    return _out(runtime, await models_admin(runtime).update(ctx, model_id, body))


class EnabledBody(BaseModel):
    enabled: StrictBool


@router.put("/{model_id:path}/enabled", summary="Enable or disable a model (platform admin)")
async def set_enabled(
    model_id: str, body: EnabledBody, ctx: ContextDep, runtime: RuntimeDep
) -> ModelOut:
    return _out(runtime, await models_admin(runtime).set_enabled(ctx, model_id, body.enabled))


@router.delete(
    "/{model_id:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Drop API changes: a catalog model returns to its shipped entry, an API model goes",
)
async def reset_model(model_id: str, ctx: ContextDep, runtime: RuntimeDep) -> None:
    await models_admin(runtime).reset(ctx, model_id)
