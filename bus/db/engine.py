"""Engines and sessions of the control database, migrated on first use."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session

from bus.config import Settings, mask_url
from bus.errors import ConfigurationError, DatabaseUnavailableError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base of every control-database table."""


_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


# connections a SQLite engine keeps: one for each thread that may use it at once (the HTTP
# API's 40 worker threads), so that none is opened and closed per access under load
SQLITE_POOL_SIZE = 40


def pool_options(drivername: str) -> dict[str, Any]:
    """The pool of an engine for a URL of ``drivername`` (``sqlite``, ``postgresql+psycopg``,
    ...). A server's connection gets a ping before each use
    (it finds one the server closed); a SQLite file has no server to lose, so no ping (a
    statement more on every access), and ``SQLITE_POOL_SIZE`` connections are kept instead
    of five (a request beyond those opened a connection, ran its PRAGMAs and closed it)."""
    if drivername.partition("+")[0] == "sqlite":
        return {"pool_pre_ping": False, "pool_size": SQLITE_POOL_SIZE}
    return {"pool_pre_ping": True}


def script_heads() -> frozenset[str]:
    """The newest revision of every migration branch, read from the scripts' text.

    Loading the scripts with Alembic costs every process ~0.2 s (its import and theirs) just
    to find the database already there; this reads the same ``revision``/``down_revision``
    assignments with ``ast`` (a test holds it equal to Alembic's own reading)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            else:
                continue
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                found[target.id] = ast.literal_eval(value)
        revisions.add(found["revision"])
        down = found.get("down_revision")
        parents.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions - parents)


def _at_heads(engine: Engine) -> bool:
    """Whether the database is at every branch's newest revision (nothing to migrate)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        stamped = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars()
        return frozenset(stamped) == script_heads()


def migrate(engine: Engine) -> None:
    """Bring the control database to the newest revision of every migration branch."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")


def open_engine(settings: Settings) -> Engine:
    url = settings.control_database_url
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            engine = create_engine(url, hide_parameters=True, **pool_options(url.partition(":")[0]))
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise ConfigurationError(
                f"database_url: cannot use {mask_url(url)} ({type(exc).__name__})"
            ) from exc
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        try:
            if not _at_heads(engine):
                migrate(engine)
        except OperationalError as exc:
            raise DatabaseUnavailableError(
                f"control database {mask_url(url)} does not answer"
            ) from exc
        _engines[url] = engine
        return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error: nothing half-written."""
    session = Session(open_engine(settings), expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


T = TypeVar("T")


def retry_conflicts(work: Callable[[], T], attempts: int) -> T:
    """``work()`` (one transaction), tried again after a short pause while the database refuses
    it for a concurrent writer (``IntegrityError``, ``OperationalError``); the last refusal is
    raised after ``attempts`` tries."""
    for attempt in range(attempts):
        try:
            return work()
        except (IntegrityError, OperationalError):
            if attempt == attempts - 1:
                raise
        time.sleep(0.05 * (attempt + 1))
    raise ValueError("attempts: expected at least 1")
