"""The replay access log: who replayed which dataset, when, why, over which range.

Every replay writes one row to ``archive_replay_log`` and, in the same transaction, one entry
to the catalogue's access log (``action="replay"``, agency ``lgsp-audit``, the range and
target in ``detail``), so that one place lists every read of a dataset: both are written or
neither is.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from bus.archive.models import ArchiveReplayLog
from bus.catalog.access_log import add_access
from bus.config import Settings
from bus.db import session_scope
from bus.timeutil import as_utc

AUDIT_AGENCY = "lgsp-audit"  # the catalogue's log wants an agency; replays are audit reads


def record_access(
    settings: Settings,
    *,
    principal: str,
    dataset: str,
    purpose: str,
    records: int,
    action: str = "replay",
    as_of: dt.datetime | None = None,
    from_ts: dt.datetime | None = None,
    to_ts: dt.datetime | None = None,
    unit: str | None = None,
    target: str | None = None,
    outcome: str = "ok",
    agency: str = AUDIT_AGENCY,
) -> None:
    """Write the access to ``archive_replay_log`` and the catalogue's log, in one transaction.

    Times are stored in UTC, so that a database without zones (SQLite, MariaDB) keeps the
    right instant.
    """
    with session_scope(settings) as s:
        s.add(
            ArchiveReplayLog(
                at=dt.datetime.now(dt.UTC),
                principal=principal,
                action=action,
                dataset=dataset,
                purpose=purpose,
                as_of=as_utc(as_of) if as_of else None,
                from_ts=as_utc(from_ts) if from_ts else None,
                to_ts=as_utc(to_ts) if to_ts else None,
                unit=unit,
                target=target,
                records=records,
                outcome=outcome[:200],
            )
        )
        add_access(
            s,
            principal=principal,
            agency=agency,
            dataset=dataset,
            purpose=purpose,
            records=records,
            action="replay",
            detail={
                "kind": action,
                "as_of": as_of.isoformat() if as_of else None,
                "from": from_ts.isoformat() if from_ts else None,
                "to": to_ts.isoformat() if to_ts else None,
                "unit": unit,
                "target": target,
                "outcome": outcome,
            },
        )


def list_access(
    settings: Settings, dataset: str | None = None, limit: int = 100
) -> list[ArchiveReplayLog]:
    """The latest replay accesses, newest first."""
    with session_scope(settings) as s:
        query = select(ArchiveReplayLog).order_by(ArchiveReplayLog.id.desc()).limit(limit)
        if dataset is not None:
            query = query.where(ArchiveReplayLog.dataset == dataset)
        return list(s.scalars(query))
