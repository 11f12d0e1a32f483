"""The access log: who read which dataset, for which purpose, how many records, and when.

Every delivery under a grant, every refused delivery and every replay writes one entry.
Other modules (the archive's replay) call ``record_access`` with the same keywords.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import insert as sa_insert
from sqlalchemy import select
from sqlalchemy.orm import Session

from bus.catalog.models import AccessEntry
from bus.config import Settings
from bus.db import open_engine, session_scope
from bus.envelope import to_jsonable
from bus.errors import ConfigurationError
from bus.timeutil import VN, as_utc, parse_cli_time, utcnow

ACTIONS = ("deliver", "refused", "replay", "read")
_ACTION = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class AccessRecord:
    id: int
    at: dt.datetime
    principal: str
    agency: str
    dataset: str
    purpose: str
    action: str
    records: int
    grant_id: int | None
    detail: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"at": self.at.isoformat()}


def record_access(settings: Settings, **entry: Any) -> int:
    """Write one access-log entry (the keywords of :func:`entry_values`) and return its id.

    ``action``: ``deliver`` (under a grant), ``refused`` (no live grant), ``replay`` (an
    auditor's replay), ``read``, or another short lowercase word. ``detail`` is JSON
    (topics, counts); never put record values in it.
    """
    with session_scope(settings) as s:
        added = add_access(s, **entry)
        s.flush()
        return added.id


def add_access(session: Session, **entry: Any) -> AccessEntry:
    """Add one access-log entry to ``session`` (written with the caller's transaction);
    the keywords of :func:`entry_values`."""
    added = AccessEntry(**entry_values(**entry))
    session.add(added)
    return added


def entry_values(
    *,
    principal: str,
    agency: str,
    dataset: str,
    purpose: str,
    records: int,
    action: str,
    grant_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The column values of one entry, stamped now; ``ConfigurationError`` naming the first
    argument that is not right."""
    if not isinstance(action, str) or not _ACTION.fullmatch(action):
        raise ConfigurationError(
            f"action: expected a short lowercase word such as {', '.join(ACTIONS)}"
        )
    if not isinstance(records, int) or records < 0:
        raise ConfigurationError("records: expected a count of 0 or more")
    for name, value in (("principal", principal), ("agency", agency), ("dataset", dataset)):
        if not value or not str(value).strip():
            raise ConfigurationError(f"{name}: expected a non-empty value")
    return {
        "at": utcnow(),
        "principal": str(principal),
        "agency": str(agency),
        "dataset": str(dataset),
        "purpose": str(purpose or ""),
        "action": action,
        "records": records,
        "grant_id": grant_id,
        "detail": to_jsonable(detail) if detail is not None else None,
    }


class AccessLogWriter:
    """Writes access-log entries for many threads at once with one commit per group of
    entries (a group commit): ``write`` returns only once its own entry is committed, so an
    answer that needs its entry is never given without it, and nothing waits in memory to be
    lost. Under load, the entries of requests arriving during a commit share the next one
    instead of queueing for a commit each (one writer at a time on SQLite)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pending: list[tuple[dict[str, Any], Future[int]]] = []
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def write(self, **entry: Any) -> int:
        """Write one entry (the keywords of :func:`entry_values`); its id once committed."""
        values = entry_values(**entry)  # a wrong argument is refused here, alone
        done: Future[int] = Future()
        with self._ready:
            self._pending.append((values, done))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="access-log-writer", daemon=True
                )
                self._thread.start()
            self._ready.notify()
        return done.result()

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._pending:
                    self._ready.wait()
                group, self._pending = self._pending, []
            self._commit(group)

    def _commit(self, group: list[tuple[dict[str, Any], Future[int]]]) -> None:
        """One INSERT of the group's rows in one transaction (a plain statement: ORM objects
        cost several times the CPU); every waiter gets its id, or the error if none was
        committed."""
        try:
            with open_engine(self.settings).begin() as conn:
                ids = (
                    conn.execute(
                        _INSERT.returning(_TABLE.c.id, sort_by_parameter_order=True),
                        [values for values, _ in group],
                    )
                    .scalars()
                    .all()
                )
        except BaseException as exc:
            for _, done in group:
                done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, done), entry_id in zip(group, ids, strict=True):
            done.set_result(int(entry_id))


_TABLE = AccessEntry.__table__
_INSERT = sa_insert(_TABLE)


def parse_since(value: str | dt.date | dt.datetime, option: str = "--since") -> dt.datetime:
    """A date (its midnight) or an ISO date-time; without a zone it is Viet Nam time."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=VN)
    elif isinstance(value, dt.date):
        moment = dt.datetime.combine(value, dt.time(), tzinfo=VN)
    else:
        moment = parse_cli_time(str(value), option, naive=VN)
    return moment.astimezone(dt.UTC)


def query_access(
    settings: Settings,
    *,
    agency: str | None = None,
    dataset: str | None = None,
    since: str | dt.date | dt.datetime | None = None,
    action: str | None = None,
    limit: int | None = None,
    until: str | dt.date | dt.datetime | None = None,
) -> list[AccessRecord]:
    """Entries, oldest first, filtered by agency, dataset, time (``since`` inclusive,
    ``until`` exclusive; parsed as by ``parse_since``) and action; ``limit``: the newest N.

    Filtered and limited by the database (the log grows by one entry per lookup): times are
    compared as UTC, the zone every entry is written in (SQLite keeps that wall time)."""
    query = select(AccessEntry)
    if agency:
        query = query.where(AccessEntry.agency == agency)
    if dataset:
        query = query.where(AccessEntry.dataset == dataset)
    if action:
        query = query.where(AccessEntry.action == action)
    if since is not None:
        query = query.where(AccessEntry.at >= parse_since(since))
    if until is not None:
        query = query.where(AccessEntry.at < parse_since(until, "--until"))
    if limit:
        query = query.order_by(AccessEntry.at.desc(), AccessEntry.id.desc()).limit(limit)
    else:
        query = query.order_by(AccessEntry.at, AccessEntry.id)
    with session_scope(settings) as s:
        rows = s.scalars(query).all()
        out = [
            AccessRecord(
                id=r.id,
                at=as_utc(r.at),
                principal=r.principal,
                agency=r.agency,
                dataset=r.dataset,
                purpose=r.purpose,
                action=r.action,
                records=r.records,
                grant_id=r.grant_id,
                detail=r.detail,
            )
            for r in rows
        ]
    return out[::-1] if limit else out
