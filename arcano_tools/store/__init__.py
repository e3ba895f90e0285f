"""Storage: the job store over SQLAlchemy (SQLite by default, PostgreSQL by ``DATABASE_URL``)."""

from arcano_tools.store.store import JobStore

__all__ = ["JobStore"]
