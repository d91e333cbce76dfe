"""Alembic environment: gasworks always passes an open connection (see db/migrate.py)."""

from __future__ import annotations

from alembic import context

from gasworks.wiring import all_tables  # every domain's tables: the one list of domains

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI directly
    raise RuntimeError("Run migrations with `gasworks db upgrade`.")

context.configure(
    connection=connection,
    target_metadata=all_tables(),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
