"""Database: async engine and sessions, tables, dialect-specific pieces, Alembic migrations."""

from gasworks.db.engine import Database

__all__ = ["Database"]
