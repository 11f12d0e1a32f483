"""Running routes: bounded, at-least-once on the wire, offsets committed after the parent acks.

Each child topic is read by its own consumer group (``lgsp.route.<child topic>``); every
event is decoded with the parent subject's schema as reader (so the parent validates it) and
published to the parent topic unchanged in ``event_id``, ``source`` and ``ts_ms``. Sinks are
idempotent by event version, so a batch forwarded twice after a crash changes nothing there.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bus import broker_guard
from bus.config import Settings
from bus.consume import Consumer, Message
from bus.context import Context
from bus.errors import ConfigurationError, DataError, LgspError
from bus.publish import Publisher
from bus.registry import subject_for
from bus.routes.plan import Route, after_cutover, plan_routes
from bus.runs import record_run
from bus.units import topic_name
from bus.units.timeline import cutovers


@dataclass
class RouteReport:
    dataset: str
    level: str
    routes: int = 0
    rows_in: int = 0
    rows_out: int = 0
    dlq: int = 0
    lag: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "level": self.level,
            "routes": self.routes,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "dlq": self.dlq,
            "lag": self.lag,
            "seconds": round(self.seconds, 3),
        }


class _Forwarder:
    """Re-encodes events for one target topic with its latest schema and publishes them."""

    def __init__(self, publisher: Publisher, target: str) -> None:
        registry = publisher.registry
        self.target = target
        self.publisher = publisher
        self.schema = registry.latest(subject_for(target))
        self.reader = registry.parsed_by_id(self.schema.id)
        self.codec = publisher.codec
        self.sent = 0
        self.dlq = 0

    def __call__(self, batch: list[Message]) -> None:
        events = []
        for message in batch:
            if message.schema_id == self.schema.id:
                events.append(message.value)
                continue
            try:
                _, value = self.codec.decode(message.raw, reader=self.reader)
            except DataError as exc:  # the parent cannot read it: parked, the run goes on
                self.publisher.park(message, exc, stage="route")
                self.dlq += 1
                continue
            events.append(value)
        report = self.publisher.publish(self.target, events, on_invalid="dlq")
        self.sent += report.sent
        self.dlq += report.dlq


class _CutoverSplit:
    """A route whose target level ended at a cut-over: events before the cut-over go to the
    old target (the district), the others straight to the ancestor the new era keeps."""

    def __init__(self, before: _Forwarder, after: _Forwarder, cut_ms: int) -> None:
        self.before, self.after, self.cut_ms = before, after, cut_ms

    @property
    def sent(self) -> int:
        return self.before.sent + self.after.sent

    @property
    def dlq(self) -> int:
        return self.before.dlq + self.after.dlq

    def __call__(self, batch: list[Message]) -> None:
        late = [m for m in batch if int(m.value.get("ts_ms") or 0) >= self.cut_ms]
        early = [m for m in batch if int(m.value.get("ts_ms") or 0) < self.cut_ms]
        if early:
            self.before(early)
        if late:
            self.after(late)


Pair = tuple[str, str, tuple[int, str] | None]


def _run(
    ctx: Context,
    pairs: list[Pair],
    *,
    kind: str,
    name: str,
    report: RouteReport,
) -> RouteReport:
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    status = "failed"
    try:
        with Publisher(ctx.settings, ctx.registry) as publisher:
            for source, target, redirect in pairs:
                publisher.origin = broker_guard.route_origin(f"lgsp.route.{source}")
                forward: _Forwarder | _CutoverSplit = _Forwarder(publisher, target)
                if redirect is not None:
                    cut_ms, after = redirect
                    forward = _CutoverSplit(forward, _Forwarder(publisher, after), cut_ms)
                with Consumer(ctx.settings, f"lgsp.route.{source}", registry=ctx.registry) as c:
                    result = c.run_bounded([source], forward)
                report.rows_in += result.read
                report.rows_out += forward.sent
                report.dlq += result.dlq + forward.dlq
                report.lag.update(result.lag)
        status = "success"
    finally:
        report.seconds = time.monotonic() - clock
        record_run(
            ctx.settings,
            kind=kind,
            name=name,
            started_at=started,
            status=status,
            rows_in=report.rows_in,
            rows_out=report.rows_out,
            dlq=report.dlq,
            detail={"routes": report.routes, "lag": report.lag},
        )
    return report


def run_routes(
    settings: Context | Settings, dataset: str, level: str, routes: list[Route] | None = None
) -> RouteReport:
    """One bounded run of every roll-up route into ``level`` (planned and checked first).
    A route into a level that a recorded cut-over ended (a district after the 2025 reform)
    sends its events at or after the effective date straight to the ancestor the new
    hierarchy keeps (the city)."""
    ctx = Context.of(settings)
    planned = routes if routes is not None else plan_routes(ctx, dataset, level)
    cuts = cutovers(ctx.settings)  # once per run, not once per route
    pairs = sorted(
        {
            (r.source_topic, r.target_topic, after_cutover(ctx, r, cuts))
            for r in planned
            if r.level == level
        },
        key=lambda p: (p[0], p[1]),
    )
    report = RouteReport(dataset, level, routes=len(pairs))
    return _run(ctx, pairs, kind="route", name=f"{dataset}:{level}", report=report)


def run_fan_down(
    settings: Context | Settings,
    dataset: str,
    *,
    source_unit: str,
    to_level: str,
    unit_field: str | None = "unit",
) -> RouteReport:
    """Deliver a higher unit's topic (e.g. city master data) to the topics of the units at
    ``to_level`` below it: to the unit named by ``unit_field`` in each record, or to all of
    them when the record has no such field."""
    ctx = Context.of(settings)
    settings, h = ctx.settings, ctx.hierarchy
    h.check_level(to_level, "--to-level")
    source = topic_name(h, source_unit, dataset)
    targets = {
        u.code: topic_name(h, u.code, dataset)
        for u in h.descendants(source_unit)
        if u.level == to_level
    }
    if not targets:
        raise ConfigurationError(f"unit {source_unit} has no {to_level} below it")
    registry = ctx.registry
    # the subscribers: units at that level with a registered subject for the dataset
    targets = {c: t for c, t in targets.items() if registry.subject_ids(subject_for(t))}
    if not targets:
        raise ConfigurationError(
            f"fan-down {source}: no {to_level} below {source_unit} subscribes to {dataset} "
            f"(register its schema under a subject such as "
            f"{subject_for(topic_name(h, h.units(level=to_level, parent=None)[0].code, dataset))})"
        )
    below = {u.code for u in h.descendants(source_unit) if u.level == to_level}
    report = RouteReport(dataset, f"fan-down:{to_level}", routes=len(targets))
    started = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    status = "failed"
    try:
        group = f"lgsp.fandown.{source}"
        with Publisher(settings, registry, origin=broker_guard.route_origin(group)) as publisher:

            def deliver(batch: list[Message]) -> None:
                grouped: dict[str, list[dict]] = defaultdict(list)
                for message in batch:
                    record = message.value.get("after") or message.value.get("before") or {}
                    unit = str(record.get(unit_field, "")) if unit_field else ""
                    if unit_field and unit_field in record:
                        if unit not in below:
                            publisher.park(
                                message,
                                DataError(f"{unit_field}: not a {to_level} below {source_unit}"),
                                stage="fan-down",
                            )
                            report.dlq += 1
                            continue
                        if unit in targets:  # units that do not subscribe get nothing
                            grouped[targets[unit]].append(message.value)
                    else:
                        for topic in targets.values():
                            grouped[topic].append(message.value)
                for topic, events in grouped.items():
                    result = publisher.publish(topic, events, on_invalid="dlq")
                    report.rows_out += result.sent
                    report.dlq += result.dlq

            with Consumer(settings, group, registry=registry) as consumer:
                result = consumer.run_bounded([source], deliver)
            report.rows_in = result.read
            report.dlq += result.dlq
            report.lag.update(result.lag)
        status = "success"
    except LgspError:
        raise
    finally:
        report.seconds = time.monotonic() - clock
        record_run(
            settings,
            kind="fan-down",
            name=f"{dataset}:{source_unit}->{to_level}",
            started_at=started,
            status=status,
            rows_in=report.rows_in,
            rows_out=report.rows_out,
            dlq=report.dlq,
            detail={"lag": report.lag},
        )
    return report


def route_lag(settings: Settings, routes: list[Route]) -> dict[str, int]:
    """Records of each child topic not yet forwarded by its route's consumer group."""
    from kafka import TopicPartition

    from bus.kafka import clients
    from bus.kafka.ends import end_offsets

    sources = sorted({r.source_topic for r in routes})
    ends = end_offsets(settings, sources)
    lag: dict[str, int] = {}
    for source in sources:
        consumer = clients.consumer(settings, f"lgsp.route.{source}")
        try:
            total = 0
            for (topic, partition), end in ends.items():
                if topic != source:
                    continue
                committed = consumer.committed(TopicPartition(topic, partition)) or 0
                total += max(0, end - committed)
            lag[source] = total
        finally:
            consumer.close(autocommit=False)
    return lag
