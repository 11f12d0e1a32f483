"""Replay of a dataset from the archive (and the broker for what is not archived yet).

``replay_as_of`` rebuilds the dataset as it stood at a moment: for every key the latest event
by event time (the envelope's ``ts_ms``; ties broken by archive order) with ``ts_ms <= as_of``;
a delete removes the key. The result goes into a fresh table whose columns come from the
dataset's record schema (newest registered version; older events are read with Avro schema
resolution), plus ``_lgsp_key``, ``_lgsp_unit``, ``_lgsp_ts_ms`` and ``_lgsp_event_id``.

``replay_events`` returns the events with ``from <= ts_ms < to``, in event-time order.

Both first verify the chains they read, against the archiver's local export of the checkpoints
and, given (``checkpoints_file``), an off-host copy (a failed verification stops the replay;
entries not yet covered by a signed checkpoint are accepted and reported as such in the notes,
as the replay also reads the broker's not yet archived events), read events
of every topic of the dataset (ward, district and city topics carry the same rolled-up event
under one ``event_id``, so each event counts once), and write an access-log record.

Content hash of a rebuilt table: SHA-256 over the rows sorted by key (code point order of the
canonical key JSON), each row contributing the UTF-8 of ``canonical_json([key, record]) + "\\n"``
where ``canonical_json`` sorts object keys, uses no spaces and keeps non-ASCII text, and the
record is rendered as by ``bus.envelope.to_jsonable`` (timestamps in UTC ISO 8601, decimals as
plain strings, bytes in base64, text NFC).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus.archive.access import AUDIT_AGENCY, record_access
from bus.archive.replay.reading import collect, reader_schema
from bus.archive.replay.selection import Candidate, ReplayReport, Selector, content_hash
from bus.archive.replay.table import check_target, write_table
from bus.config import Settings, mask_url
from bus.context import Context
from bus.envelope import record_schema_of
from bus.errors import ConfigurationError, UnknownUnitError
from bus.serde import AvroCodec
from bus.timeutil import to_epoch_ms
from bus.units.topics import validate_dataset_name
from connectors.sql.types import split_table

__all__ = [
    "ReplayReport",
    "content_hash",
    "replay_as_of",
    "replay_events",
    "require_purpose",
    "rows_as_of",
    "table_name",
]

TIME_EXAMPLE = "2026-03-01T00:00:00+07:00"

log = logging.getLogger(__name__)


# ---- inputs ------------------------------------------------------------------------------
def normalise_unit(settings: Context | Settings, unit: str | None) -> str | None:
    """A unit path (``79.760``); a single code is expanded with the configured hierarchy, not
    the one in force after cut-overs (``Context.hierarchy``): a replay reads history, a unit
    a cut-over ended is only in the configured one, and the selection places each event's
    source unit in the configured one too (``Selector``)."""
    if unit is None or unit == "":
        return None
    unit = unit.strip()
    if not re.fullmatch(r"\d+(\.\d+)*", unit):
        raise ConfigurationError(
            f"--unit: expected a unit path of codes such as 79.760, got {unit!r}"
        )
    if "." not in unit:
        try:
            return Context.of(settings).configured_hierarchy.path(unit)
        except UnknownUnitError:
            return unit
    return unit


def table_name(dataset: str, name: str | None) -> tuple[str | None, str]:
    """(schema, table) of ``--table``; default ``replay_<domain>_<name>``."""
    if name is None:
        return None, "replay_" + dataset.replace(".", "_")
    return split_table(name, "--table", plain=True)


@dataclass
class _Access:
    records: int = 0


@contextmanager
def _access_logged(
    settings: Settings, *, dataset: str, purpose: str, action: str, **fields: Any
) -> Iterator[_Access]:
    """Access-log the replay run in the block: ``ok`` with the block's ``records`` count, or
    ``failed: <error class>`` with 0. When the replay failed and the log cannot be written
    either, the replay's error is raised (the log's failure is logged)."""
    access = _Access()
    try:
        yield access
    except BaseException as exc:
        try:
            record_access(
                settings,
                principal=settings.principal,
                dataset=dataset,
                purpose=purpose,
                records=0,
                action=action,
                outcome=f"failed: {type(exc).__name__}",
                **fields,
            )
        except Exception as log_exc:
            log.error("the failed replay was not access-logged (%s)", type(log_exc).__name__)
        raise
    record_access(
        settings,
        principal=settings.principal,
        dataset=dataset,
        purpose=purpose,
        records=access.records,
        action=action,
        outcome="ok",
        **fields,
    )


# ---- the replays -------------------------------------------------------------------------
@dataclass
class _State:
    """A dataset rebuilt as of a moment: the kept events (one per live key, sorted by key)
    with their records, and the record schema of the reader."""

    record_schema: dict[str, Any]
    kept: list[Candidate]
    records: list[dict[str, Any]]


@contextmanager
def _rebuilt(
    ctx: Context,
    report: ReplayReport,
    as_of: dt.datetime,
    purpose: str,
    public_keys: Any,
    checkpoints_file: Path | None,
    **fields: Any,
) -> Iterator[_State]:
    """``report``'s dataset within ``report.unit`` as of ``as_of`` for the block: the latest
    event per key selected and decoded (the rule both as-of replays share), ``report``'s counts
    and content hash filled. The run, block included, is access-logged as ``replay-as-of``
    with the kept keys as its count (``fields``: the log's target and agency)."""
    dataset, unit_path = report.dataset, report.unit
    settings, registry = ctx.settings, ctx.registry
    with _access_logged(
        settings,
        dataset=dataset,
        purpose=purpose,
        action="replay-as-of",
        as_of=as_of,
        unit=unit_path,
        **fields,
    ) as access:
        selector = Selector(ctx, report, unit=unit_path, as_of_ms=to_epoch_ms(as_of))
        topics = collect(
            settings, dataset, unit_path, report, selector, registry, public_keys, checkpoints_file
        )
        reader = reader_schema(registry, topics, dataset)
        codec = AvroCodec(registry)
        parsed_reader = registry.parsed_by_id(reader.id)
        state = _State(record_schema_of(reader.schema), [], [])
        for candidate in sorted(selector.latest.values(), key=lambda c: c.key or ""):
            if candidate.op == "d":
                report.deleted_keys += 1
                continue
            resolve = None if candidate.schema_id == reader.id else parsed_reader
            _sid, value = codec.decode(candidate.payload, reader=resolve)
            record = value.get("after")
            if record is None:
                report.deleted_keys += 1
                continue
            state.kept.append(candidate)
            state.records.append(record)
        report.keys = len(state.kept)
        report.content_hash = content_hash(
            [(c.key, r) for c, r in zip(state.kept, state.records, strict=True)]
        )
        if report.selected == 0:
            first = f" (the first event is at {report.first_event})" if report.first_event else ""
            report.notes.append(
                f"no event at or before {report.as_of}{first}: the dataset was empty then"
            )
        yield state
        access.records = report.keys


def _as_of_report(
    settings: Context | Settings, dataset: str, as_of: dt.datetime, purpose: str, unit: str | None
) -> tuple[Context, ReplayReport]:
    """The context and the report of an as-of replay, its inputs checked first (``unit`` as a
    unit path)."""
    validate_dataset_name(dataset)
    require_purpose(purpose)
    if as_of.tzinfo is None:
        raise ConfigurationError(f"--as-of: a time zone is required, e.g. {TIME_EXAMPLE}")
    ctx = Context.of(settings)
    unit_path = normalise_unit(ctx, unit)
    return ctx, ReplayReport(dataset, "as-of", as_of=as_of.isoformat(), unit=unit_path)


def replay_as_of(
    settings: Context | Settings,
    dataset: str,
    as_of: dt.datetime,
    *,
    into: str,
    purpose: str,
    table: str | None = None,
    unit: str | None = None,
    replace: bool = False,
    public_keys: Any = None,
    checkpoints_file: Path | None = None,
) -> ReplayReport:
    """Rebuild ``dataset`` as it stood at ``as_of`` into a fresh table of ``into``."""
    ctx, report = _as_of_report(settings, dataset, as_of, purpose, unit)
    schema_name, name = table_name(dataset, table)
    check_target(into, schema_name, name, replace)
    report.table = f"{schema_name}.{name}" if schema_name else name
    report.target = mask_url(into)
    target = f"{report.target} {report.table}"
    with _rebuilt(
        ctx, report, as_of, purpose, public_keys, checkpoints_file, target=target
    ) as state:
        if report.selected == 0:
            report.notes[-1] += "; the table is created empty"
        write_table(
            into, schema_name, name, state.record_schema, state.kept, state.records, replace
        )
    return report


def rows_as_of(
    settings: Context | Settings,
    dataset: str,
    as_of: dt.datetime,
    *,
    purpose: str,
    unit: str | None = None,
    public_keys: Any = None,
    checkpoints_file: Path | None = None,
    agency: str = AUDIT_AGENCY,
) -> tuple[ReplayReport, Iterator[dict[str, Any]]]:
    """The rows ``replay_as_of`` would write, in key order, each as ``{"key", "unit",
    "ts_ms", "event_id", "record"}`` (the record as decoded); the report's content hash is the
    one ``replay_as_of`` gives for the same arguments. Access-logged (``target`` "rows") for
    ``agency``."""
    ctx, report = _as_of_report(settings, dataset, as_of, purpose, unit)
    report.target = "rows"
    with _rebuilt(
        ctx,
        report,
        as_of,
        purpose,
        public_keys,
        checkpoints_file,
        target="rows",
        agency=agency,
    ) as state:
        pass  # the rows are handed out after the logged run

    def rows() -> Iterator[dict[str, Any]]:
        for candidate, record in zip(state.kept, state.records, strict=True):
            yield {
                "key": candidate.key,
                "unit": candidate.source_unit,
                "ts_ms": candidate.ts_ms,
                "event_id": candidate.event_id,
                "record": record,
            }

    return report, rows()


def replay_events(
    settings: Context | Settings,
    dataset: str,
    *,
    purpose: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    unit: str | None = None,
    public_keys: Any = None,
    checkpoints_file: Path | None = None,
    agency: str = AUDIT_AGENCY,
) -> tuple[ReplayReport, Iterator[dict[str, Any]]]:
    """The decoded events with ``start <= ts_ms < end`` in event-time order.

    The access is logged (for ``agency``) before the events are handed out (the count is
    known by then).
    """
    validate_dataset_name(dataset)
    require_purpose(purpose)
    for flag, moment in (("--from", start), ("--to", end)):
        if moment is not None and moment.tzinfo is None:
            raise ConfigurationError(f"{flag}: a time zone is required, e.g. {TIME_EXAMPLE}")
    if start is not None and end is not None and end <= start:
        raise ConfigurationError("--to: must be later than --from")
    ctx = Context.of(settings)
    settings, registry = ctx.settings, ctx.registry
    unit_path = normalise_unit(ctx, unit)
    report = ReplayReport(
        dataset,
        "events",
        from_ts=start.isoformat() if start else None,
        to_ts=end.isoformat() if end else None,
        unit=unit_path,
    )
    with _access_logged(
        settings,
        dataset=dataset,
        purpose=purpose,
        action="replay-events",
        from_ts=start,
        to_ts=end,
        unit=unit_path,
        agency=agency,
    ) as access:
        selector = Selector(
            ctx,
            report,
            unit=unit_path,
            from_ms=to_epoch_ms(start) if start else None,
            to_ms=to_epoch_ms(end) if end else None,
        )
        collect(
            settings, dataset, unit_path, report, selector, registry, public_keys, checkpoints_file
        )
        chosen = sorted(selector.events, key=lambda c: (c.ts_ms, c.order))
        if not chosen:
            report.notes.append("no event in the range")
        access.records = report.selected
    codec = AvroCodec(registry)

    def events() -> Iterator[dict[str, Any]]:
        for candidate in chosen:
            yield codec.decode(candidate.payload)[1]

    return report, events()


def require_purpose(purpose: str | None) -> str:
    """``purpose``, or ``ConfigurationError`` when there is none: every replay says why."""
    if purpose is None or not purpose.strip():
        raise ConfigurationError(
            "--purpose: required; say why the history is read (it goes to the access log)"
        )
    return purpose
