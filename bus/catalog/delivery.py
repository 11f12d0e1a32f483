"""Delivery under a grant: read a dataset's topics for an agency, transform, hand to a sink.

A run checks for a live grant first (never granted, revoked, expired or another purpose: a
clear refusal, nothing read, the refusal logged), reads every publishing unit's topic from the
consumer group ``lgsp.grant.<agency>.<dataset>`` up to the end seen at start, passes each batch
through ``apply_grant`` to the sink, commits, and writes one access-log entry.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from bus.catalog.access_log import record_access
from bus.catalog.datasets import dataset_topics, get_dataset
from bus.catalog.errors import AccessDeniedError
from bus.catalog.grants import get_grant, live_grant
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
    topics = dataset_topics(settings, info)
    report = DeliveryReport(grant.id, grant.agency, grant.dataset, grant.purpose, topics)
    skipped = SkipCount()

    def handle(batch: list[Message]) -> None:
        events = [apply_grant(message.value, grant) for message in batch]
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
