"""The re-keying route of a reform: old units' current state into the new units' topics.

``run_reform`` reads, for each dataset, the topic of every publishing unit the reform ends
(the hierarchy in force the day before ``effective``), keeps the latest event per key, and
publishes it as a snapshot read (``op`` ``r``, ``ts_ms`` = the effective day's midnight in
Vietnam, or the event's own time when later: a copy stamped earlier than its original would
lose to it in sinks and replay) into the topic of the unit that continues it (a split's rule
picks the part per record), with the record's unit fields (``unit`` or ``*_unit`` holding
the old code) set to the new code. The ``source`` block is the original one (old unit,
connector, position), so the archive links the re-keyed event to where it came from. Old
topics are never rewritten. The cut-over is then recorded: sources registered for old units
are refused from then on.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from bus import broker_guard
from bus.consume import Consumer, Message
from bus.context import Context
from bus.envelope import stable_event_id
from bus.errors import ConfigurationError
from bus.publish import Publisher
from bus.routes.plan import init_subjects
from bus.runs import record_run
from bus.units import topic_name
from bus.units.timeline import Cutover, Timeline, load_timeline, record_cutover

VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


@dataclass
class ReformReport:
    effective: dt.date
    from_hierarchy: str
    to_hierarchy: str
    rows_in: int = 0
    rows_out: int = 0
    per_target: Counter = field(default_factory=Counter)  # new topic -> records
    per_source: Counter = field(default_factory=Counter)  # old topic -> records re-keyed

    def to_dict(self) -> dict[str, Any]:
        return {
            "effective": self.effective.isoformat(),
            "from": self.from_hierarchy,
            "to": self.to_hierarchy,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "per_target": dict(sorted(self.per_target.items())),
            "per_source": dict(sorted(self.per_source.items())),
        }


def is_unit_field(name: str) -> bool:
    """The record fields that hold a unit code: ``unit`` and ``*_unit``."""
    return name == "unit" or name.endswith("_unit")


def rekey_record(record: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return {
        k: (new if is_unit_field(k) and isinstance(v, str) and v == old else v)
        for k, v in record.items()
    }


def _current_state(ctx: Context, topic: str) -> tuple[int, list[dict[str, Any]]]:
    latest: dict[str, dict[str, Any]] = {}
    read = 0

    def keep(batch: list[Message]) -> None:
        nonlocal read
        for m in batch:
            read += 1
            latest[m.value["key"]] = m.value

    group = f"lgsp.reform.{topic}"
    with Consumer(ctx.settings, group, registry=ctx.registry) as consumer:
        consumer.run_bounded([topic], keep, from_beginning=True, commit=False)
    return read, [e for e in latest.values() if e["op"] != "d" and e.get("after")]


def run_reform(
    settings: Context, datasets: list[str], effective: dt.date, timeline: Timeline | None = None
) -> ReformReport:
    ctx = Context.of(settings)
    timeline = timeline or load_timeline(ctx.settings)
    old_h = timeline.hierarchy_on(effective - dt.timedelta(days=1))
    new_h = timeline.hierarchy_on(effective)
    if old_h.name == new_h.name:
        raise ConfigurationError(
            f"--effective {effective}: hierarchy {old_h.name!r} is in force on both sides"
        )
    report = ReformReport(effective, old_h.name, new_h.name)
    ts_ms = int(dt.datetime.combine(effective, dt.time(), VIETNAM).timestamp() * 1000)
    started = dt.datetime.now(dt.UTC)
    status = "failed"
    from bus.catalog import get_dataset

    try:
        with Publisher(ctx.settings, ctx.registry, origin=broker_guard.REFORM) as publisher:
            for name in datasets:
                info = get_dataset(ctx.settings, name)
                init_subjects(ctx, name, eras=[old_h.name, new_h.name])
                for unit in info.units:
                    changes = [
                        c
                        for c in timeline.changes_of(unit, old_h.name, until=effective)
                        if c.effective == effective and c.to_hierarchy == new_h.name
                    ]
                    if not changes:
                        continue
                    change = changes[0]
                    source = topic_name(old_h, unit, name)
                    read, state = _current_state(ctx, source)
                    report.rows_in += read
                    out: dict[str, list[dict[str, Any]]] = {}
                    for event in state:
                        target = change.target(event["after"])
                        out.setdefault(topic_name(new_h, target, name), []).append(
                            {
                                "event_id": stable_event_id("reform", event["event_id"], target),
                                "op": "r",
                                "ts_ms": max(ts_ms, int(event["ts_ms"])),
                                "source": event["source"],
                                "key": event["key"],
                                "before": None,
                                "after": rekey_record(event["after"], unit, target),
                            }
                        )
                    for topic, events in sorted(out.items()):
                        sent = publisher.publish(topic, events, dataset=name)
                        report.rows_out += sent.sent
                        report.per_target[topic] += sent.sent
                        report.per_source[source] += sent.sent
        record_cutover(
            ctx.settings,
            Cutover(old_h.name, new_h.name, effective),
            {"datasets": datasets, "rows_out": report.rows_out},
        )
        status = "success"
    finally:
        record_run(
            ctx.settings,
            kind="reform",
            name=f"{old_h.name}->{new_h.name}@{effective}",
            started_at=started,
            status=status,
            rows_in=report.rows_in,
            rows_out=report.rows_out,
            dlq=0,
            detail=report.to_dict(),
        )
    return report
