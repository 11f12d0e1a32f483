"""The re-keying route of a reform: old units' current state into the new units' topics.

``run_reform`` reads, for each dataset, the topic of every publishing unit the reform ends
(the hierarchy in force the day before ``effective``), keeps the latest event per key, and
publishes it as a snapshot read (``op`` ``r``, ``ts_ms`` = the effective day's midnight in
Vietnam, or the event's own time when later: a copy stamped earlier than its original would
lose to it in sinks and replay) into the topic of the unit that continues it (a split's rule
picks the part per record), with the record's unit fields (``unit`` or ``*_unit`` holding
the old code) set to the new code. The ``source`` block is the original one (old unit,
connector, position), so the archive links the re-keyed event to where it came from. Old
topics are never rewritten.

Order (so that no event slips between the read and the cut-over): the reform takes its
operation lock, then the run lock of every source connector registered for a unit it ends
(a running source is waited for up to ``wait_s``, then the reform is refused with nothing
recorded), records the cut-over (sources of ended units are refused from then on: a sync
run checks after taking its lock), releases the locks, and only then reads the old topics.

A rerun with the same effective date is idempotent: the cut-over is recorded once (a unique
constraint), and a re-keyed event already on its target topic (same stable ``event_id``) is
not published again. The first run (the one that records the cut-over) does not read the
target topics: no run of the reform can have published there before the cut-over was recorded.
A publishing unit that the new hierarchy lacks and no change continues
(a district of the 3-level model) is listed in ``unmapped``: the run is ``partial`` and the
command exits non-zero.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from bus import broker_guard
from bus.consume import Consumer, Message
from bus.context import Context
from bus.envelope import stable_event_id
from bus.errors import ConfigurationError
from bus.publish import Publisher
from bus.routes.plan import init_subjects
from bus.runs import record_run
from bus.units import Hierarchy, topic_name
from bus.units.changes import UnitChange
from bus.units.rekey import rekey_record
from bus.units.timeline import (
    Cutover,
    Timeline,
    _topic_in,
    effective_ms,
    load_timeline,
    no_successor_hint,
    record_cutover,
)

LOCK = "route-reform"
LOCK_TTL_S = 3600.0
WAIT_S = 30.0


@dataclass
class ReformReport:
    effective: dt.date
    from_hierarchy: str
    to_hierarchy: str
    rows_in: int = 0
    rows_out: int = 0
    per_target: Counter = field(default_factory=Counter)  # new topic -> records
    per_source: Counter = field(default_factory=Counter)  # old topic -> records re-keyed
    already: int = 0  # re-keyed by an earlier run of the same reform: not published again
    unmapped: dict[str, str] = field(default_factory=dict)  # "dataset unit" -> why
    cutover_recorded: bool = False  # False: an earlier run recorded it

    @property
    def status(self) -> str:
        return "partial" if self.unmapped else "success"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "already_rekeyed": self.already,
            "unmapped": dict(sorted(self.unmapped.items())),
            "cutover_recorded": self.cutover_recorded,
            "effective": self.effective.isoformat(),
            "from": self.from_hierarchy,
            "to": self.to_hierarchy,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "per_target": dict(sorted(self.per_target.items())),
            "per_source": dict(sorted(self.per_source.items())),
        }


def _current_states(
    ctx: Context, dataset: str, topics: list[str]
) -> dict[str, tuple[int, list[dict[str, Any]]]]:
    """Each topic's events read and its current state (the latest event of each key, deletes
    dropped), all topics in one bounded read (one consumer, not one per ward topic)."""
    latest: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in topics}
    read = dict.fromkeys(topics, 0)

    def keep(batch: list[Message]) -> None:
        for m in batch:
            read[m.topic] += 1
            latest[m.topic][m.value["key"]] = m.value

    if topics:
        with Consumer(ctx.settings, f"lgsp.reform.{dataset}", registry=ctx.registry) as consumer:
            consumer.run_bounded(sorted(set(topics)), keep, from_beginning=True, commit=False)
    return {
        t: (read[t], [e for e in latest[t].values() if e["op"] != "d" and e.get("after")])
        for t in topics
    }


def _event_ids(ctx: Context, dataset: str, topics: set[str]) -> dict[str, set[str]]:
    """The event ids on each of ``topics`` (none on one that does not exist yet), in one
    bounded read."""
    ids: dict[str, set[str]] = {t: set() for t in topics}

    def keep(batch: list[Message]) -> None:
        for m in batch:
            ids[m.topic].add(m.value["event_id"])

    if topics:
        with Consumer(ctx.settings, f"lgsp.reform.{dataset}", registry=ctx.registry) as consumer:
            consumer.run_bounded(sorted(topics), keep, from_beginning=True, commit=False)
    return ids


def plan_units(
    timeline: Timeline,
    units: list[str],
    old_h: Hierarchy,
    new_h: Hierarchy,
    effective: dt.date,
) -> tuple[list[tuple[str, UnitChange]], dict[str, str]]:
    """(unit, change) for each publishing unit the reform re-keys, and the units it cannot:
    those the new hierarchy lacks with no change into it (e.g. an abolished district)."""
    keyed: list[tuple[str, UnitChange]] = []
    unmapped: dict[str, str] = {}
    for unit in units:
        changes = [
            c
            for c in timeline.changes_of(unit, old_h.name, until=effective)
            if c.effective == effective and c.to_hierarchy == new_h.name
        ]
        if changes:
            keyed.append((unit, changes[0]))
        elif unit in old_h and (unit not in new_h or old_h.get(unit).level not in new_h.levels):
            old = old_h.get(unit)
            cut = Cutover(old_h.name, new_h.name, effective)
            unmapped[unit] = (
                f"{old.level} {unit} ({old.name}) of {old_h.name!r} has no successor in "
                f"{new_h.name!r} ({no_successor_hint(timeline, old_h, unit, cut)}); its topic "
                "was not re-keyed: add a mapping for it (lgsp units mapping add) and run the "
                "reform again"
            )
    return keyed, unmapped


@contextmanager
def hold_sources(
    ctx: Context, units: set[str], old_h: Hierarchy, wait_s: float = WAIT_S
) -> Iterator[list[str]]:
    """The reform's operation lock and the run lock of every source connector registered (in
    ``old_h``) for one of ``units``, held while the cut-over is recorded. A source still
    running after ``wait_s`` seconds: ``ConnectorBusyError`` naming it, nothing held."""
    from bus.connectors_db.models import OperationLock
    from bus.connectors_db.store import lock_owner
    from connectors.errors import ConnectorBusyError

    store = ctx.connectors
    owner = lock_owner()
    store.acquire_lock(LOCK, owner, LOCK_TTL_S, OperationLock)
    held: list[str] = []
    try:
        names = [
            c.name
            for c in store.list()
            if c.role == "source"
            and c.unit in units
            and all(_topic_in(old_h, t) for t in (c.topics or {}).values())
        ]
        for name in names:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    store.acquire_lock(name, owner, LOCK_TTL_S)
                    held.append(name)
                    break
                except ConnectorBusyError as exc:
                    if time.monotonic() >= deadline:
                        raise ConnectorBusyError(
                            f"route reform: source connector {name!r} is still running after "
                            f"{wait_s:g} s ({exc}); the cut-over was not recorded and nothing "
                            "was re-keyed: run the reform again when it has finished"
                        ) from None
                    time.sleep(0.5)
        yield held
    finally:
        for name in held:
            store.release_lock(name, owner)
        store.release_lock(LOCK, owner, OperationLock)


def run_reform(
    settings: Context,
    datasets: list[str],
    effective: dt.date,
    timeline: Timeline | None = None,
    *,
    wait_s: float = WAIT_S,
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
    ts_ms = effective_ms(effective)
    started = dt.datetime.now(dt.UTC)
    status = "failed"
    from bus.catalog import get_dataset

    plans: dict[str, list[tuple[str, UnitChange]]] = {}
    for name in datasets:
        plans[name], unmapped = plan_units(
            timeline, list(get_dataset(ctx.settings, name).units), old_h, new_h, effective
        )
        for unit, why in unmapped.items():
            report.unmapped[f"{name} {unit}"] = why
    ended = {u for keyed in plans.values() for u, _ in keyed}
    ended |= {key.split(" ", 1)[1] for key in report.unmapped}
    try:
        with hold_sources(ctx, ended, old_h, wait_s):
            report.cutover_recorded = record_cutover(
                ctx.settings,
                Cutover(old_h.name, new_h.name, effective),
                {"datasets": datasets},
            )
        Context.forget(ctx.settings)  # the hierarchy in force changed for this process
        with Publisher(ctx.settings, ctx.registry, origin=broker_guard.REFORM) as publisher:
            for name, keyed in plans.items():
                init_subjects(ctx, name, eras=[old_h.name, new_h.name])
                sources = [topic_name(old_h, unit, name) for unit, _ in keyed]
                states = _current_states(ctx, name, sources)
                targets = {
                    source: [change.target(event["after"]) for event in states[source][1]]
                    for (_, change), source in zip(keyed, sources, strict=True)
                }
                # the re-keyed copies an earlier run of this reform published; none when this
                # run recorded the cut-over (a run records it before publishing anything): the
                # targets are not read then
                on_target: defaultdict[str, set[str]] = defaultdict(set)
                if not report.cutover_recorded:
                    on_target.update(
                        _event_ids(
                            ctx,
                            name,
                            {topic_name(new_h, t, name) for ts in targets.values() for t in ts},
                        )
                    )
                for (unit, _), source in zip(keyed, sources, strict=True):
                    read, state = states[source]
                    report.rows_in += read
                    out: dict[str, list[dict[str, Any]]] = {}
                    for event, target in zip(state, targets[source], strict=True):
                        topic = topic_name(new_h, target, name)
                        event_id = stable_event_id("reform", event["event_id"], target)
                        if event_id in on_target[topic]:
                            report.already += 1
                            continue
                        on_target[topic].add(event_id)
                        out.setdefault(topic, []).append(
                            {
                                "event_id": event_id,
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
        status = report.status
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
