"""Reading a dataset's events for a replay: its topics, the verified archive, then the broker
from where the archive ends (``collect``), and the reader schema."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError
from sqlalchemy import select

from bus.archive.archiver import Head, envelope_fields, list_dataset_topics, plan_positions
from bus.archive.chain import parse_dataset_topic, unit_within
from bus.archive.models import ArchiveChain, ArchiveEntry
from bus.archive.replay.selection import Candidate, ChainUsed, ReplayReport, Selector
from bus.archive.verify import VerifyReport, verify
from bus.config import Settings
from bus.consume import Consumer, Message, SkipCount
from bus.db import open_engine
from bus.errors import (
    BrokerUnavailableError,
    DataError,
    FatalError,
    NotFoundError,
)
from bus.registry import RegisteredSchema, Registry, subject_for
from bus.timeutil import from_epoch_ms

log = logging.getLogger(__name__)
entry_t = ArchiveEntry.__table__
chain_t = ArchiveChain.__table__


def _archive_topics(settings: Settings, dataset: str) -> set[str]:
    with open_engine(settings).connect() as conn:
        found = set(conn.scalars(select(chain_t.c.topic).where(chain_t.c.dataset == dataset)))
        found |= set(
            conn.scalars(select(entry_t.c.topic).where(entry_t.c.dataset == dataset).distinct())
        )
    return found


def _unit_relevant(topic: str, unit: str | None) -> bool:
    """A topic whose unit is within ``unit`` (all its events) or above it (some of them)."""
    if unit is None:
        return True
    path = parse_dataset_topic(topic).unit_path
    return unit_within(path, unit) or unit_within(unit, path)


def _topics(
    settings: Settings, dataset: str, unit: str | None, report: ReplayReport
) -> tuple[set[str], set[str]]:
    """(topics in the archive, topics on the broker) of the dataset, filtered by unit."""
    archived = {t for t in _archive_topics(settings, dataset) if _unit_relevant(t, unit)}
    on_broker: set[str] = set()
    try:
        on_broker = {
            t
            for t in list_dataset_topics(settings)
            if parse_dataset_topic(t).dataset == dataset and _unit_relevant(t, unit)
        }
    except BrokerUnavailableError:
        report.notes.append(
            "the broker does not answer: replayed from the archive only (events published "
            "after the last archive run are not included)"
        )
    if not archived and not on_broker:
        where = f" within unit {unit}" if unit else ""
        raise NotFoundError(
            f"dataset {dataset!r}: no archive entries and no topic "
            f"lgsp.<unit path>.{dataset}{where} on the broker"
        )
    return archived, on_broker


def _read_archive(
    settings: Settings,
    topics: set[str],
    selector: Selector,
    report: ReplayReport,
    public_keys: Any,
    heads: dict[tuple[str, int], Head],
    checkpoints_file: Path | None = None,
) -> VerifyReport:
    """Verify the chains of ``topics`` and offer their entries; ``heads`` gets each chain's
    last entry as seen in this one snapshot (where the broker read continues)."""

    def visit(row: tuple[Any, ...]) -> None:
        (
            topic,
            partition,
            _seq,
            epoch,
            offset,
            _dataset,
            unit_path,
            event_id,
            op,
            ts_ms,
            key,
            unit,
            sid,
            payload,
            _hash,
        ) = row
        payload = bytes(payload)
        heads[(topic, partition)] = Head(epoch, offset, payload)
        selector.offer(
            unit_path,
            Candidate(ts_ms, 0, op, key, unit, event_id, sid, payload, "archive"),
        )

    checked = verify(
        settings,
        topics=topics,
        public_keys=public_keys,
        checkpoints_file=checkpoints_file,
        visitor=visit,
        allow_unsigned_tail=True,
    )
    if not checked.ok:
        shown = "; ".join(str(p) for p in checked.problems[:3])
        raise FatalError(
            f"the archive of {report.dataset} failed verification ({len(checked.problems)} "
            f"problem(s), e.g. {shown}); nothing was replayed. Run 'lgsp audit verify "
            f"--dataset {report.dataset}' for the full list"
        )
    report.chains = [
        ChainUsed(c.topic, c.partition, c.head_seq, c.head_hash, c.signed_seq, c.checkpoint_n)
        for c in checked.chains
    ]
    report.checkpoint = checked.latest_checkpoint
    report.checkpoint_digest = checked.latest_digest
    if checked.checkpoints_file is not None:
        report.notes.append(
            f"verified against {checked.exported_checkpoints} exported checkpoint(s) in "
            f"{checked.checkpoints_file}"
        )
    for warning in checked.warnings:
        report.notes.append(warning)
    return checked


# Replay reads exactly what the guard refuses: a new broker log is events not archived yet.
UNGUARDED = "replay reads a new broker log on purpose (events not archived yet, a new epoch)"


def _read_broker(
    settings: Settings,
    topics: set[str],
    selector: Selector,
    report: ReplayReport,
    registry: Registry,
    heads: dict[tuple[str, int], Head],
) -> None:
    """Events of ``topics`` that the archive does not hold yet, read without a group or commit;
    undecodable ones are counted."""
    if not topics:
        return
    skipped = SkipCount()

    def offer(batch: list[Message]) -> None:
        for message in batch:
            where = f"{message.topic}[{message.partition}]@{message.offset}"
            try:
                fields = envelope_fields(message.value, where)
            except DataError as exc:
                skipped(exc, message, log)
                continue
            selector.offer(
                parse_dataset_topic(message.topic).unit_path,
                Candidate(
                    fields["ts_ms"],
                    0,
                    fields["op"],
                    fields["event_key"],
                    fields["source_unit"],
                    fields["event_id"],
                    message.schema_id,
                    message.raw,
                    "broker",
                ),
            )

    try:
        with Consumer(settings, None, registry=registry, on_error=skipped) as consumer:
            tps = consumer.partitions(sorted(topics))
            plans = plan_positions(settings, consumer.client, tps, heads=heads)
            starts = {tp: plans[(tp.topic, tp.partition)].start for tp in tps}
            for tp in tps:
                if plans[(tp.topic, tp.partition)].note == "new broker log":
                    report.notes.append(
                        f"{tp.topic}[{tp.partition}]: the broker holds a new log not archived "
                        "yet (read from the broker)"
                    )
            result = consumer.run_bounded(
                sorted(topics),
                offer,
                starts=starts,
                commit=False,
                unguarded=UNGUARDED,
                short_ok="a replay goes on without the rest, saying so in its notes",
            )
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read the broker ({type(exc).__name__})") from exc
    report.undecodable += skipped.count
    short = len(result.short)  # as with a broker that does not answer at all
    if short:
        report.notes.append(f"the broker stopped answering before the end of {short} partition(s)")


def collect(
    settings: Settings,
    dataset: str,
    unit: str | None,
    report: ReplayReport,
    selector: Selector,
    registry: Registry,
    public_keys: Any,
    checkpoints_file: Path | None = None,
) -> set[str]:
    archived, on_broker = _topics(settings, dataset, unit, report)
    report.topics = sorted(archived | on_broker)
    heads: dict[tuple[str, int], Head] = {}
    _read_archive(settings, archived, selector, report, public_keys, heads, checkpoints_file)
    _read_broker(settings, on_broker, selector, report, registry, heads)
    if selector.first_ms is not None:
        report.first_event = from_epoch_ms(selector.first_ms).isoformat(timespec="milliseconds")
    return archived | on_broker


def reader_schema(registry: Registry, topics: set[str], dataset: str) -> RegisteredSchema:
    """The newest registered envelope schema among the dataset's topics."""
    best: RegisteredSchema | None = None
    for topic in sorted(topics):
        try:
            found = registry.latest(subject_for(topic))
        except NotFoundError:
            continue
        if best is None or found.id > best.id:
            best = found
    if best is None:
        raise NotFoundError(f"dataset {dataset!r}: no schema registered for any of its topics")
    return best
