"""Delivery under a grant: read a dataset's topics for an agency, transform, hand to a sink.

A run checks for a live grant first (never granted, revoked, expired or another purpose: a
clear refusal, nothing read, the refusal logged), reads every publishing unit's topic from the
consumer group ``lgsp.grant.<agency>.<dataset>`` up to the end seen at start, passes each batch
through ``apply_grant`` to the sink, commits, and writes one access-log entry.

After a reform's cut-over the publishing units' topics of both hierarchies are read (the old
units' history and the units that replaced them). A grant written for some units delivers
only the events those units cover at each event's time (:mod:`bus.units.coverage`); the
others are passed over (counted as ``outside`` in the report and the access log).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from bus.catalog.access_log import record_access
from bus.catalog.datasets import dataset_topics, era_topics, get_dataset
from bus.catalog.errors import AccessDeniedError
from bus.catalog.grants import get_grant, live_grant, unit_scope
from bus.catalog.masking import GrantView, apply_grant
from bus.config import Settings
from bus.consume import Consumer, Message, SkipCount
from bus.errors import ConfigurationError
from bus.serde.jsoncodec import dumps

log = logging.getLogger(__name__)

Sink = Callable[[list[dict[str, Any]]], None]


@dataclass
class DeliveryReport:
    grant_id: int
    agency: str
    dataset: str
    purpose: str
    topics: list[str]
    delivered: int = 0
    skipped: int = 0
    outside: int = 0  # events outside the units of the grant (not delivered)
    lag: dict[str, int] = field(default_factory=dict)
    access_id: int | None = None


class JsonlSink:
    """Appends events as JSON lines to a file; ``close`` flushes them to disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._out: IO[str] = path.open("a", encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"--out: cannot write {path} ({exc.strerror})") from exc

    def __call__(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self._out.write(dumps(event) + "\n")
        self._out.flush()

    def close(self) -> None:
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resolve(
    settings: Settings,
    grant_or_agency: int | str | GrantView,
    dataset: str | None,
    purpose: str | None,
    principal: str,
) -> GrantView:
    if isinstance(grant_or_agency, GrantView):
        grant_id: int | None = grant_or_agency.id
        agency: str | None = grant_or_agency.agency
        dataset = dataset or grant_or_agency.dataset
    elif isinstance(grant_or_agency, int):
        grant_id, agency = grant_or_agency, None
    else:
        grant_id, agency = None, grant_or_agency
    try:
        return live_grant(
            settings, grant_id=grant_id, agency=agency, dataset=dataset, purpose=purpose
        )
    except AccessDeniedError as exc:
        if grant_id is not None:
            info = get_grant(settings, grant_id)
            agency, dataset = agency or info.agency, dataset or info.dataset
        record_access(
            settings,
            principal=principal,
            agency=agency or "?",
            dataset=dataset or "?",
            purpose=purpose or "",
            records=0,
            action="refused",
            grant_id=grant_id,
            detail={"reason": str(exc)},
        )
        raise


def _topic_units(by_era: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    """topic -> (hierarchy, unit code) of the publishing unit it carries."""
    from bus.units import load_hierarchy, parse_topic

    out = {}
    for era, topics in by_era.items():
        h = load_hierarchy(era)
        for topic in topics:
            out[topic] = (era, parse_topic(h, topic)[0].code)
    return out


def deliver(
    settings: Settings,
    grant_or_agency: int | str | GrantView,
    dataset: str | None = None,
    sink: Sink | None = None,
    *,
    purpose: str | None = None,
    principal: str | None = None,
    max_records: int | None = None,
    from_beginning: bool = False,
    units: list[str] | None = None,
) -> DeliveryReport:
    """One bounded delivery run for an agency (or a grant id) and a dataset.

    ``sink(events)`` receives each batch already transformed by the grant; a sink that raises
    stops the run before that batch's offsets are committed. Raises ``AccessDeniedError`` when
    no live grant allows the delivery.
    """
    if sink is None:
        raise ConfigurationError("deliver: a sink is required")
    who = principal or settings.principal
    grant = _resolve(settings, grant_or_agency, dataset, purpose, who)
    info = get_dataset(settings, grant.dataset)
    if units:
        unknown = [u for u in units if u not in info.units]
        if unknown:
            raise ConfigurationError(
                f"--unit: {', '.join(unknown)} not a publishing unit of {info.name} "
                f"(units: {', '.join(info.units)})"
            )
        info = replace(info, units=list(units))
        by_era = {settings.hierarchy: dataset_topics(settings, info)}
    else:
        by_era = era_topics(settings, info)
    topics = [t for era_list in by_era.values() for t in era_list]
    topic_units = _topic_units(by_era)
    scope = unit_scope(settings, grant)
    report = DeliveryReport(grant.id, grant.agency, grant.dataset, grant.purpose, topics)
    skipped = SkipCount()

    def handle(batch: list[Message]) -> None:
        events = []
        for message in batch:
            if scope is None or scope.covers_event(message.value, topic_units.get(message.topic)):
                events.append(apply_grant(message.value, grant))
            else:
                report.outside += 1
        if events:
            sink(events)
        report.delivered += len(events)

    status = "failed"
    try:
        with Consumer(settings, grant.consumer_group, on_error=skipped) as consumer:
            result = consumer.run_bounded(
                topics, handle, max_records=max_records, from_beginning=from_beginning
            )
        report.lag = dict(result.lag)
        status = "ok"
    finally:
        report.skipped = skipped.count
        report.access_id = record_access(
            settings,
            principal=who,
            agency=grant.agency,
            dataset=grant.dataset,
            purpose=grant.purpose,
            records=report.delivered,
            action="deliver",
            grant_id=grant.id,
            detail={
                "status": status,
                "topics": topics,
                "group": grant.consumer_group,
                "skipped": report.skipped,
                "fields": list(grant.fields),
                "pii": "clear" if grant.allow_pii else "tokenised",
                **(
                    {
                        "units": list(grant.units),
                        "unit_hierarchy": grant.unit_hierarchy,
                        "outside": report.outside,
                    }
                    if scope is not None
                    else {}
                ),
            },
        )
    log.info(
        "grant %s: delivered %s records of %s to %s",
        grant.id,
        report.delivered,
        grant.dataset,
        grant.agency,
    )
    return report
