"""The bus at a glance: each dataset's topics as the ward → district → city tree, and per topic
the records published, the events archived in the last 24 h, the consumer lag, the dead
letters, the last run that wrote or read it, and whether something there is stuck.

Read only, and the broker is never asked: every count comes from what the bus already records
(the ends its acknowledged sends reached and the committed reads in the control database, the run
history, the archive). Dead letters are records the bus sent to ``<topic>.dlq`` and recorded the
end of like any other (``broker_guard.acknowledge``), so a DLQ's count is its recorded end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from bus import broker_guard
from bus.archive.models import ArchiveEntry
from bus.catalog.datasets import list_datasets
from bus.context import Context
from bus.db import session_scope
from bus.dlq import dlq_topic, mask_numbers
from bus.dlq_ops import REPLAY_GROUP
from bus.runs import RunInfo, list_runs
from bus.units import Hierarchy, topic_name

DAY = dt.timedelta(hours=24)
FAILED = frozenset({"failed", "error", "stopped"})
PARTIAL = "partial"  # a run that went on around tables it left behind or stopped (bus.sync)


@dataclass
class LastRun:
    kind: str
    name: str
    status: str
    started_at: str
    finished_at: str | None
    rows_in: int
    rows_out: int

    @classmethod
    def of(cls, run: RunInfo) -> LastRun:
        return cls(
            run.kind,
            run.name,
            run.status,
            run.started_at.isoformat(),
            run.finished_at.isoformat() if run.finished_at else None,
            run.rows_in,
            run.rows_out,
        )


@dataclass
class TopicNode:
    """One unit's topic of a dataset."""

    unit: str
    unit_name: str
    level: str
    parent: str | None
    topic: str
    records: int = 0
    events_24h: int = 0
    lag: dict[str, int] = field(default_factory=dict)
    dlq: int = 0
    connectors: list[str] = field(default_factory=list)
    last_run: LastRun | None = None
    stuck: list[dict[str, Any]] = field(default_factory=list)  # code, message, parameters


@dataclass
class DatasetOverview:
    name: str
    publisher: str
    description: dict[str, str]
    levels: list[str]
    nodes: list[TopicNode]


def _tree(h: Hierarchy, dataset: str, units: list[str]) -> list[TopicNode]:
    """The publishing units and every ancestor, root first, each once."""
    codes: dict[str, None] = {}
    for code in units:
        chain = [*reversed(h.ancestors(code)), h.get(code)]
        for unit in chain:
            codes.setdefault(unit.code)
    nodes = []
    for code in codes:
        unit = h.get(code)
        nodes.append(
            TopicNode(unit.code, unit.name, unit.level, unit.parent, topic_name(h, code, dataset))
        )
    nodes.sort(key=lambda n: (h.levels.index(n.level), n.unit))
    return nodes


def _published(ends: dict[str, broker_guard.TopicEnds]) -> dict[str, int]:
    """Records acknowledged per topic: the highest end any publisher reached per partition,
    summed over the partitions."""
    per_partition: broker_guard.TopicEnds = {}
    for holder, reached in ends.items():
        if broker_guard.is_publisher(holder):
            for key, end in reached.items():
                per_partition[key] = max(per_partition.get(key, 0), end)
    out: dict[str, int] = {}
    for (topic, _), end in per_partition.items():
        out[topic] = out.get(topic, 0) + end
    return out


def _archived_since(ctx: Context, since_ms: int) -> dict[str, int]:
    with session_scope(ctx.settings) as s:
        rows = s.execute(
            select(ArchiveEntry.topic, func.count())
            .where(ArchiveEntry.archived_ms >= since_ms)
            .group_by(ArchiveEntry.topic)
        ).all()
    return {topic: int(count) for topic, count in rows}


def _latest_run(ctx: Context, names: list[str], cache: dict[str, RunInfo | None]) -> RunInfo | None:
    found = []
    for name in names:
        if name not in cache:
            runs = list_runs(ctx.settings, name=name, limit=1)
            cache[name] = runs[0] if runs else None
        if cache[name] is not None:
            found.append(cache[name])
    return max(found, key=lambda r: r.started_at) if found else None  # type: ignore[union-attr]


def overview(ctx: Context, *, now: dt.datetime | None = None) -> list[DatasetOverview]:
    """Every dataset of the catalogue as its tree of topics with their figures."""
    now = now or dt.datetime.now(dt.UTC)
    h = ctx.configured_hierarchy  # the hierarchy dataset topics are named in
    datasets = list_datasets(ctx.settings)
    stored = ctx.connectors.list()
    ends = broker_guard.holder_ends(ctx.settings)
    published = _published(ends)
    lag = broker_guard.consumer_lag(ctx.settings)
    archived = _archived_since(ctx, int((now - DAY).timestamp() * 1000))
    trees = {d.name: _tree(h, d.name, list(d.units)) for d in datasets}
    runs: dict[str, RunInfo | None] = {}
    out = []
    for info in datasets:
        nodes = trees[info.name]
        for node in nodes:
            node.records = published.get(node.topic, 0)
            node.events_24h = archived.get(node.topic, 0)
            node.lag = {
                group: topics[node.topic]
                for group, topics in lag.items()
                if node.topic in topics and not group.startswith(REPLAY_GROUP)
            }
            node.dlq = published.get(dlq_topic(node.topic), 0)  # parked: sent to its DLQ
            node.connectors = [c.name for c in stored if node.topic in c.topics.values()]
            route = f"{info.name}:{node.level}"  # the roll-up run that writes this level
            last = _latest_run(ctx, [*node.connectors, route], runs)
            node.last_run = LastRun.of(last) if last else None
            node.stuck = _why_stuck(ctx, node, last, now)
        out.append(
            DatasetOverview(
                info.name,
                info.publisher,
                {"vi": info.description_vi, "en": info.description_en},
                list(h.levels),
                nodes,
            )
        )
    return out


def _reason(code: str, message: str, **params: Any) -> dict[str, Any]:
    """A reason to look: a code and its parameters (what a page translates) and the message."""
    return {"code": code, "message": message, **params}


def _why_stuck(
    ctx: Context, node: TopicNode, last: RunInfo | None, now: dt.datetime
) -> list[dict[str, Any]]:
    reasons = []
    if last is not None and last.status in FAILED:
        reasons.append(
            _reason(
                "failed", f"last run {last.name} {last.status}", run=last.name, status=last.status
            )
        )
    for name in node.connectors:
        lock = ctx.connectors.lock(name)
        if lock is not None and lock.expires_at < now:
            reasons.append(
                _reason(
                    "lock_expired",
                    f"connector {name}: run lock of a run that is gone (expired)",
                    connector=name,
                )
            )
    short = _left_short(last, node.topic)
    if last is not None and short is not None:
        said = "; ".join(f"{t['table']} {t['status']}: {t['error']}" for t in short)
        reasons.append(
            _reason(
                "partial",
                f"last run {last.name} ended partial" + (f": {said}" if said else ""),
                run=last.name,
                status=last.status,
                tables=", ".join(f"{t['table']} ({t['status']})" for t in short) or "–",
            )
        )
    waiting = sum(node.lag.values())
    if waiting and (last is None or now - last.started_at > DAY):
        reasons.append(
            _reason(
                "waiting",
                f"{waiting} records waiting and no run in the last 24 h",
                records=waiting,
            )
        )
    return reasons


def _left_short(last: RunInfo | None, topic: str) -> list[dict[str, str]] | None:
    """The tables on ``topic`` that a ``partial`` last run left not ok, as its report lists them
    (``behind``: its read ended short of the end it set out to reach; ``stopped``), with their
    reasons, long numbers masked; ``None`` when the run is not partial or left ``topic`` whole.
    A partial run that lists no tables is short everywhere it wrote (``[]``)."""
    if last is None or last.status != PARTIAL:
        return None
    tables = (last.detail or {}).get("tables")
    if not isinstance(tables, list):
        return []
    short = [
        {
            "table": str(t.get("table", "")),
            "status": str(t.get("status", "")),
            "error": mask_numbers(str(t.get("error") or "")),
        }
        for t in tables
        if isinstance(t, dict) and t.get("topic") == topic and t.get("status", "ok") != "ok"
    ]
    return short or None


def overview_dict(items: list[DatasetOverview], now: dt.datetime) -> dict[str, Any]:
    return {"generated_at": now.isoformat(), "datasets": [asdict(d) for d in items]}
