"""Selection of a replay's events: the latest event per key as of a moment, or the events in
a time range; each event counts once (``Selector``). The rebuilt rows' content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from bus.archive.chain import canonical_json, unit_within
from bus.config import Settings
from bus.context import Context
from bus.envelope import to_jsonable
from bus.errors import (
    UnknownUnitError,
)
from bus.units.hierarchy import Hierarchy


@dataclass
class Candidate:
    ts_ms: int
    order: int
    op: str
    key: str | None
    source_unit: str
    event_id: str
    schema_id: int
    payload: bytes
    origin: str


@dataclass
class ChainUsed:
    topic: str
    partition: int
    head_seq: int
    head_hash: str
    signed_seq: int
    checkpoint_n: int | None


@dataclass
class ReplayReport:
    dataset: str
    mode: str
    as_of: str | None = None
    from_ts: str | None = None
    to_ts: str | None = None
    unit: str | None = None
    topics: list[str] = field(default_factory=list)
    events_archive: int = 0
    events_broker: int = 0
    duplicates: int = 0
    outside_unit: int = 0
    undecodable: int = 0
    selected: int = 0
    keys: int = 0
    deleted_keys: int = 0
    first_event: str | None = None
    content_hash: str | None = None
    target: str | None = None
    table: str | None = None
    chains: list[ChainUsed] = field(default_factory=list)
    checkpoint: int | None = None
    checkpoint_digest: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["chains"] = [c.__dict__ for c in self.chains]
        return data


class Selector:
    """Counts and keeps the events a replay needs; each event_id counts once."""

    def __init__(
        self,
        settings: Context | Settings,
        report: ReplayReport,
        *,
        unit: str | None,
        as_of_ms: int | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> None:
        self.report = report
        self.unit = unit
        self.as_of_ms = as_of_ms
        self.from_ms = from_ms
        self.to_ms = to_ms
        self.latest: dict[str | None, Candidate] = {}
        self.events: list[Candidate] = []
        self.seen: set[str] = set()
        self.order = 0
        self.first_ms: int | None = None
        self._hierarchy: Hierarchy | None = None
        self._settings = settings
        self._unit_paths: dict[str, str | None] = {}

    def _source_within(self, source_unit: str) -> bool:
        assert self.unit is not None
        path = self._unit_paths.get(source_unit, "?")
        if path == "?":
            if self._hierarchy is None:
                self._hierarchy = Context.of(self._settings).configured_hierarchy
            try:
                path = self._hierarchy.path(source_unit)
            except UnknownUnitError:
                path = None
            self._unit_paths[source_unit] = path
        return path is not None and unit_within(path, self.unit)

    def offer(self, topic_unit: str, candidate: Candidate) -> None:
        if candidate.origin == "archive":
            self.report.events_archive += 1
        else:
            self.report.events_broker += 1
        if candidate.event_id in self.seen:
            self.report.duplicates += 1
            return
        self.seen.add(candidate.event_id)
        if (
            self.unit is not None
            and not unit_within(topic_unit, self.unit)
            and not self._source_within(candidate.source_unit)
        ):
            self.report.outside_unit += 1
            return
        if self.first_ms is None or candidate.ts_ms < self.first_ms:
            self.first_ms = candidate.ts_ms
        self.order += 1
        candidate.order = self.order
        if self.as_of_ms is not None:
            if candidate.ts_ms > self.as_of_ms:
                return
            self.report.selected += 1
            best = self.latest.get(candidate.key)
            if best is None or (candidate.ts_ms, candidate.order) > (best.ts_ms, best.order):
                self.latest[candidate.key] = candidate
            return
        if self.from_ms is not None and candidate.ts_ms < self.from_ms:
            return
        if self.to_ms is not None and candidate.ts_ms >= self.to_ms:
            return
        self.report.selected += 1
        self.events.append(candidate)


def content_hash(rows: list[tuple[str | None, dict[str, Any]]]) -> str:
    """SHA-256 over ``canonical_json([key, record]) + "\\n"`` of the rows sorted by key."""
    digest = hashlib.sha256()
    for key, record in sorted(rows, key=lambda r: r[0] or ""):
        line = canonical_json([key, to_jsonable(record)])
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()
