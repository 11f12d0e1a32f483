"""Which routes exist: from the hierarchy and the catalogue's datasets, checked when planning.

A roll-up route forwards one child unit's topic to its parent unit's topic. The routes *into*
a level (``district``: ward → district; ``city``: district → city, or ward → city in the
2-level model) follow from the dataset's publishing units and the hierarchy. Planning refuses a
route whose parent subject is missing or cannot read what the child writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.config import Settings
from bus.context import Context
from bus.envelope import envelope_schema
from bus.errors import ConfigurationError, IncompatibleSchemaError, NotFoundError
from bus.registry import check_compatibility, subject_for
from bus.units import Hierarchy, topic_name


@dataclass(frozen=True)
class Route:
    dataset: str
    child_unit: str
    parent_unit: str
    source_topic: str
    target_topic: str
    level: str  # the level of the parent (target)

    @property
    def group_id(self) -> str:
        return f"lgsp.route.{self.source_topic}"


def _publishing_units(settings: Settings, dataset: str) -> list[str]:
    from bus.catalog import get_dataset

    return list(get_dataset(settings, dataset).units)


def _units_at_or_below(h: Hierarchy, units: list[str]) -> dict[str, set[str]]:
    """Every unit whose topic carries the dataset: publishers and all their ancestors."""
    carriers: dict[str, set[str]] = {}
    for code in units:
        unit = h.get(code)
        carriers.setdefault(unit.level, set()).add(unit.code)
        for ancestor in h.ancestors(code):
            carriers.setdefault(ancestor.level, set()).add(ancestor.code)
    return carriers


def all_routes(
    settings: Context | Settings, dataset: str, units: list[str] | None = None
) -> list[Route]:
    """Every roll-up route of a dataset (no checks), child level first."""
    ctx = Context.of(settings)
    h = ctx.hierarchy
    publishing = units if units is not None else _publishing_units(ctx.settings, dataset)
    carriers = _units_at_or_below(h, publishing)
    routes = []
    for level in reversed(h.levels):
        for code in sorted(carriers.get(level, ())):
            parent = h.parent(code)
            if parent is None:
                continue
            routes.append(
                Route(
                    dataset,
                    code,
                    parent.code,
                    topic_name(h, code, dataset),
                    topic_name(h, parent.code, dataset),
                    parent.level,
                )
            )
    return routes


def plan_routes(
    settings: Context | Settings,
    dataset: str,
    level: str | None = None,
    units: list[str] | None = None,
) -> list[Route]:
    """The routes into ``level`` (all levels when None), each checked against the registry."""
    ctx = Context.of(settings)
    h = ctx.hierarchy
    if level is not None and level not in h.levels[:-1]:
        targets = ", ".join(h.levels[:-1])
        raise ConfigurationError(
            f"--level: expected one of {targets} (a parent level), got {level!r}"
        )
    routes = [r for r in all_routes(ctx, dataset, units) if level in (None, r.level)]
    registry = ctx.registry
    checked: set[tuple[str, str]] = set()
    for route in routes:
        pair = (route.source_topic, route.target_topic)
        if pair in checked:
            continue
        checked.add(pair)
        try:
            parent = registry.latest(subject_for(route.target_topic))
        except NotFoundError:
            raise ConfigurationError(
                f"route {route.source_topic} -> {route.target_topic}: the parent subject "
                f"{subject_for(route.target_topic)} is not registered "
                f"(run 'lgsp route init {dataset}')"
            ) from None
        try:
            child = registry.latest(subject_for(route.source_topic))
        except NotFoundError:
            continue  # the child has published nothing yet: nothing to forward
        problems = check_compatibility(parent.schema, [(child.version, child.schema)], "FORWARD")
        if problems:
            raise IncompatibleSchemaError(
                f"route {route.source_topic} -> {route.target_topic}: the parent schema cannot "
                "read what the child writes: " + " | ".join(problems)
            )
    return routes


def init_subjects(
    settings: Context | Settings, dataset: str, record_schema: dict | None = None
) -> list[str]:
    """Register the dataset's envelope schema for every topic that carries it (idempotent)."""
    ctx = Context.of(settings)
    if record_schema is None:
        from bus.catalog import get_dataset

        record_schema = get_dataset(ctx.settings, dataset).record_schema
    schema = envelope_schema(record_schema, ctx.settings.schemas_dir)
    registry = ctx.registry
    routes = all_routes(ctx, dataset)
    topics = {r.source_topic for r in routes} | {r.target_topic for r in routes}
    done = []
    for topic in sorted(topics):
        registry.register(subject_for(topic), schema)
        done.append(subject_for(topic))
    return done
