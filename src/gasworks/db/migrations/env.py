"""Alembic environment: gasworks always passes an open connection (see db/migrate.py).

Migrations are written by hand (one branch per domain), so no ``target_metadata`` is given:
nothing here autogenerates. Whether the migrations build exactly the declared tables is a test
(``tests/foundation/test_migrations.py`` compares the schema with ``wiring.all_tables()``);
the database layer imports no domain."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI directly
    raise RuntimeError("Run migrations with `gasworks db upgrade`.")

context.configure(
    connection=connection,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
