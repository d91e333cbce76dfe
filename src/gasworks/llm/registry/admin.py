"""Managing registry entries through the API: create, update, enable/disable, reset.

Entries are platform-wide (see ``llm/tables.py``): every write needs a platform administrator,
every tenant may read. Writes land in ``model_overlays`` and the caller then reloads the
in-process registry (``reload_overlays``); other processes pick the change up within
``GASWORKS_MODELS_REFRESH_SECONDS``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from gasworks.db.engine import Database
from gasworks.db.types import utcnow
from gasworks.errors import AlreadyExists, ModelNotFound, ValidationFailed
from gasworks.llm.registry.registry import ModelRegistry, apply_overlay
from gasworks.llm.tables import ModelOverlayRow
from gasworks.modelcard import FIELD_BY_ALIAS, MUTABLE_FIELDS, ModelEntry
from gasworks.tenancy.context import TenantContext

Overlays = dict[str, tuple[dict[str, Any], bool]]


async def load_overlays(session: AsyncSession) -> Overlays:
    rows = (await session.execute(select(ModelOverlayRow))).scalars().all()
    return {r.id: (dict(r.patch), r.enabled) for r in rows}


async def reload_overlays(db: Database, registry: ModelRegistry) -> bool:
    """Load every overlay into ``registry``; True when something changed."""
    async with db.session() as s:
        overlays = await load_overlays(s)
    if overlays == registry.overlays:
        return False
    registry.set_overlays(overlays)
    return True


def _validation_failed(model_id: str, exc: ValidationError) -> ValidationFailed:
    problems = [
        {"path": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
    ]
    first = problems[0]
    return ValidationFailed(
        f"Invalid model entry '{model_id}': {first['path']}: {first['message']}",
        details={"model": model_id, "errors": problems},
    )


async def create_model(
    session: AsyncSession, ctx: TenantContext, registry: ModelRegistry, data: dict[str, Any]
) -> ModelEntry:
    ctx.require_platform_admin()
    model_id = str(data.get("id", ""))
    try:
        entry = ModelEntry.model_validate(data)
    except ValidationError as exc:
        raise _validation_failed(model_id, exc) from exc
    existing = await session.get(ModelOverlayRow, entry.id)
    if existing is not None or registry.base_entry(entry.id) is not None:
        raise AlreadyExists(
            f"Model '{entry.id}' already exists; update it with PATCH /api/models/{entry.id}.",
            details={"model": entry.id},
        )
    now = utcnow()
    session.add(
        ModelOverlayRow(
            id=entry.id,
            patch=entry.model_dump(mode="json", exclude={"enabled"}, exclude_defaults=True),
            enabled=entry.enabled,
            created_by_api=True,
            created_at=now,
            updated_at=now,
            updated_by=ctx.principal_id,
        )
    )
    return entry


async def _current(
    session: AsyncSession, registry: ModelRegistry, model_id: str
) -> tuple[ModelOverlayRow | None, ModelEntry | None]:
    row = await session.get(ModelOverlayRow, model_id)
    base = registry.base_entry(model_id)
    if row is None and base is None:
        raise ModelNotFound(
            f"Model '{model_id}' is not in the registry.", details={"model": model_id}
        )
    return row, base


async def update_model(
    session: AsyncSession,
    ctx: TenantContext,
    registry: ModelRegistry,
    model_id: str,
    changes: dict[str, Any],
) -> ModelEntry:
    ctx.require_platform_admin()
    changes = {FIELD_BY_ALIAS.get(k, k): v for k, v in changes.items()}
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ValidationFailed(
            f"Cannot change {', '.join(sorted(unknown))} of a model entry.",
            details={"model": model_id, "fields": sorted(unknown)},
        )
    row, base = await _current(session, registry, model_id)
    patch = dict(row.patch) if row is not None else {}
    enabled = row.enabled if row is not None else (base.enabled if base else True)
    if "enabled" in changes:
        enabled = bool(changes.pop("enabled"))
    patch.update(changes)
    try:
        entry = apply_overlay(base, patch, enabled)
    except ValidationError as exc:
        raise _validation_failed(model_id, exc) from exc
    patch = {k: v for k, v in entry.model_dump(mode="json").items() if k in patch}
    now = utcnow()
    if row is None:
        session.add(
            ModelOverlayRow(
                id=model_id,
                patch=patch,
                enabled=enabled,
                created_by_api=False,
                created_at=now,
                updated_at=now,
                updated_by=ctx.principal_id,
            )
        )
    else:
        row.patch, row.enabled, row.updated_at = patch, enabled, now
        row.updated_by = ctx.principal_id
    return entry


async def reset_model(
    session: AsyncSession, ctx: TenantContext, registry: ModelRegistry, model_id: str
) -> ModelEntry | None:
    """Drop the API overlay: a catalog/file entry comes back as shipped, an API entry goes."""
    ctx.require_platform_admin()
    _row, base = await _current(session, registry, model_id)
    await session.execute(delete(ModelOverlayRow).where(ModelOverlayRow.id == model_id))
    return base
