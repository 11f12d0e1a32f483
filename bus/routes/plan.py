"""Which routes exist: from the hierarchy and the catalogue's datasets, checked when planning.

A roll-up route forwards one child unit's topic to its parent unit's topic. The routes *into*
a level (``district``: ward → district; ``city``: district → city, or ward → city in the
2-level model) follow from the dataset's publishing units and the hierarchy. Planning refuses a
route whose parent subject is missing or cannot read what the child writes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bus.config import Settings
from bus.context import Context
from bus.envelope import envelope_schema
from bus.errors import ConfigurationError, IncompatibleSchemaError, NotFoundError
from bus.registry import check_compatibility, subject_for
from bus.units import Hierarchy, load_hierarchy, topic_name
from bus.units.timeline import era_units

if TYPE_CHECKING:
    from bus.units.timeline import Cutover


@dataclass(frozen=True)
class Route:
    dataset: str
    child_unit: str
    parent_unit: str
    source_topic: str
    target_topic: str
    level: str  # the level of the parent (target)
    era: str = ""  # the hierarchy the route belongs to

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


def era_names(ctx: Context) -> list[str]:
    """The hierarchies routes run in: the configured one up to the one in force (after a
    cut-over, both: old topics still drain into their old parents)."""
    from bus.units.timeline import load_timeline

    names = load_timeline().era_names
    first, last = names.index(ctx.settings.hierarchy), names.index(ctx.hierarchy.name)
    return names[first : max(first, last) + 1]


def parent_levels(ctx: Context) -> list[str]:
    """The levels routed into, over every era routes run in, deepest first (``district``
    then ``city`` across the 2025 reform): what ``--level all`` runs."""
    depth: dict[str, int] = {}
    for era in era_names(ctx):
        levels = load_hierarchy(era).levels
        for i, level in enumerate(levels[:-1]):
            depth[level] = max(depth.get(level, -1), i)
    return sorted(depth, key=lambda lv: -depth[lv])


def after_cutover(
    ctx: Context, route: Route, cuts: Sequence[Cutover] | None = None
) -> tuple[int, str] | None:
    """Where a route's events at or after a recorded cut-over go instead, when its target's
    level no longer exists in the hierarchy that replaced the route's era: (the effective
    day's first millisecond in Vietnam, the topic of the target's nearest ancestor that the
    new hierarchy keeps, e.g. the city). None when nothing redirects the route.

    ``cuts``: the recorded cut-overs, read once by a caller that asks for many routes (one
    control-database query per run, not per route); read here when not given."""
    from bus.units.timeline import cutovers, effective_ms

    old_h = load_hierarchy(route.era or ctx.hierarchy.name)
    for cut in cutovers(ctx.settings) if cuts is None else cuts:
        if cut.from_hierarchy != old_h.name:
            continue
        new_h = load_hierarchy(cut.to_hierarchy)
        if route.level in new_h.levels:
            continue
        for unit in old_h.ancestors(route.parent_unit):
            if unit.level in new_h.levels and unit.code in new_h:
                return effective_ms(cut.effective), topic_name(old_h, unit.code, route.dataset)
    return None


def all_routes(
    settings: Context | Settings,
    dataset: str,
    units: list[str] | None = None,
    eras: list[str] | None = None,
) -> list[Route]:
    """Every roll-up route of a dataset (no checks), per hierarchy (era), child level first.
    A level an era lacks is skipped there: after the 2025 reform wards roll up to the city."""
    ctx = Context.of(settings)
    publishing = units if units is not None else _publishing_units(ctx.settings, dataset)
    routes: list[Route] = []
    seen: set[tuple[str, str]] = set()
    for era in eras if eras is not None else era_names(ctx):
        h = load_hierarchy(era)
        carriers = _units_at_or_below(
            h, era_units(ctx.settings.hierarchy, publishing, era, ctx.settings)
        )
        for level in reversed(h.levels):
            for code in sorted(carriers.get(level, ())):
                parent = h.parent(code)
                if parent is None:
                    continue
                route = Route(
                    dataset,
                    code,
                    parent.code,
                    topic_name(h, code, dataset),
                    topic_name(h, parent.code, dataset),
                    parent.level,
                    era,
                )
                if (route.source_topic, route.target_topic) not in seen:
                    seen.add((route.source_topic, route.target_topic))
                    routes.append(route)
    return routes


def plan_routes(
    settings: Context | Settings,
    dataset: str,
    level: str | None = None,
    units: list[str] | None = None,
) -> list[Route]:
    """The routes into ``level`` (all levels when None), each checked against the registry."""
    ctx = Context.of(settings)
    parents = [lv for era in era_names(ctx) for lv in load_hierarchy(era).levels[:-1]]
    if level is not None and level not in parents:
        targets = ", ".join(dict.fromkeys(parents))
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
    settings: Context | Settings,
    dataset: str,
    record_schema: dict | None = None,
    eras: list[str] | None = None,
) -> list[str]:
    """Register the dataset's envelope schema for every topic that carries it (idempotent)."""
    ctx = Context.of(settings)
    if record_schema is None:
        from bus.catalog import get_dataset

        record_schema = get_dataset(ctx.settings, dataset).record_schema
    schema = envelope_schema(record_schema, ctx.settings.schemas_dir)
    registry = ctx.registry
    routes = all_routes(ctx, dataset, eras=eras)
    topics = {r.source_topic for r in routes} | {r.target_topic for r in routes}
    done = []
    for topic in sorted(topics):
        registry.register(subject_for(topic), schema)
        done.append(subject_for(topic))
    return done
