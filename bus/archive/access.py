"""The replay access log: who replayed which dataset, when, why, over which range.

Every replay writes one row to ``archive_replay_log``. When the catalogue's access log exists
(``bus.catalog.access_log.record_access``), the same access is also reported there, so that one
place lists every read of a dataset (``action="replay"``, agency ``lgsp-audit``, the range and
target in ``detail``); a failure there is logged and does not undo the replay's
own record.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select

from bus.archive.models import ArchiveReplayLog
from bus.config import Settings
from bus.db import session_scope

log = logging.getLogger(__name__)

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
    """Write the access to ``archive_replay_log`` and, if present, to the catalogue's log."""
    with session_scope(settings) as s:
        s.add(
            ArchiveReplayLog(
                at=dt.datetime.now(dt.UTC),
                principal=principal,
                action=action,
                dataset=dataset,
                purpose=purpose,
                as_of=_utc(as_of),
                from_ts=_utc(from_ts),
                to_ts=_utc(to_ts),
                unit=unit,
                target=target,
                records=records,
                outcome=outcome[:200],
            )
        )
    _catalog_record(
        settings,
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


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """UTC, so that a database without zones (SQLite, MariaDB) keeps the right instant."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError("access log times must carry a zone")
    return moment.astimezone(dt.UTC)


def _catalog_record(settings: Settings, **fields: Any) -> None:
    try:
        from bus.catalog.access_log import (
            record_access as catalog_record_access,
        )
    except ImportError:
        return
    try:
        catalog_record_access(settings, **fields)
    except Exception as exc:  # the catalogue is another module: keep our own record regardless
        log.warning("the catalogue's access log did not take the replay (%s)", type(exc).__name__)


def list_access(
    settings: Settings, dataset: str | None = None, limit: int = 100
) -> list[ArchiveReplayLog]:
    """The latest replay accesses, newest first."""
    with session_scope(settings) as s:
        query = select(ArchiveReplayLog).order_by(ArchiveReplayLog.id.desc()).limit(limit)
        if dataset is not None:
            query = query.where(ArchiveReplayLog.dataset == dataset)
        return list(s.scalars(query))
