"""The control database: SQLAlchemy models, engines and Alembic migrations.

SQLite in the state folder by default, any SQLAlchemy URL through ``LGSP_DATABASE_URL``.
``open_engine`` migrates the schema to the newest revision (``alembic upgrade heads``) the first
time a process opens a URL. Feature modules define their tables on ``Base`` in their own
``models`` module and ship their own migration, branching from ``0001_core``.
"""

from bus.db.engine import Base, open_engine, retry_conflicts, session_scope

__all__ = ["Base", "open_engine", "retry_conflicts", "session_scope"]
