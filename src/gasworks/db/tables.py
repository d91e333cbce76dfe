"""The full metadata: every domain's tables, imported so Alembic sees them all.

Each domain keeps its tables in its own ``tables.py``; add the import here when adding one.
"""

from __future__ import annotations

import gasworks.documents.tables
import gasworks.jobs.tables
import gasworks.llm.guardrail_tables
import gasworks.llm.tables
import gasworks.prompts.tables
import gasworks.tenancy.tables
import gasworks.workflows.tables  # noqa: F401
from gasworks.db.base import Base

metadata = Base.metadata

__all__ = ["metadata"]
