"""flowhook's persistence: SQLAlchemy Core over SQLite (embedded) or PostgreSQL.

`Store` is the entry point; the other modules hold one kind of record each,
as plain functions over a SQLAlchemy `Connection` that `Store` runs off the
event loop.
"""

from store.database import Store
from store.engine import database_url

__all__ = ["Store", "database_url"]
