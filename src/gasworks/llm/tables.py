"""Model registry overlays managed through the API.

Platform-wide, not tenant-owned: a model entry names provider credentials and endpoints of the
deployment, so only platform administrators create or change entries (a tenant-supplied
``base_url`` would let a tenant make the server call arbitrary hosts). Every tenant sees the
same registry. ``patch`` holds only the fields set through the API: a catalog entry keeps
receiving new releases' values for the fields nobody overrode.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from gasworks.db.base import Base
from gasworks.db.types import JSONType, UTCDateTime, utcnow


class ModelOverlayRow(Base):
    __tablename__ = "model_overlays"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    patch: Mapped[dict[str, Any]] = mapped_column(JSONType)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: True when the entry exists only through the API (no catalog / file entry below it)
    created_by_api: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
