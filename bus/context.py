"""The process context: what every run reads from its settings, built once.

Settings, the administrative hierarchy, the schema registry and the connector store are built
where a process starts work (a CLI command, an Airflow task, the demo) and handed on as one
``Context``, instead of each function rebuilding them from ``Settings``.

Two hierarchies, two names. ``Context.hierarchy`` is the hierarchy *in force*: the configured
one, or after an effective cut-over the one it moved to; connectors are validated and their
topics named in it. ``Context.configured_hierarchy`` (or :func:`configured_hierarchy`, which
needs no control database) is the one the ``hierarchy`` setting names: dataset files give their
units in it, and the catalogue's dataset topics are named in it, before and after a cut-over.
A load of a named era (``load_hierarchy(era)``) is neither.

``Context.load(settings)`` returns the same context for the same ``Settings`` object while it
stays among the last few loaded (the registry's cache of schemas by id is then shared by every
run of the process; an id names one schema for good). Another ``Settings`` object (another
control database) gets its own context.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from bus.config import Settings, get_settings
from bus.connectors_db import ConnectorStore
from bus.errors import LgspError
from bus.registry import Registry
from bus.units import Hierarchy, load_hierarchy
from bus.units.timeline import hierarchy_name_in_force

_KEEP = 8  # contexts kept per process (one per Settings object in use)
_cache: OrderedDict[int, Context] = OrderedDict()
_cache_lock = threading.Lock()
# how often a long-lived process (the API server, a followed run) asks again which hierarchy
# is in force: a cut-over recorded by another process, or whose date came, is seen by then
RECHECK_S = 60.0


def configured_hierarchy(settings: Settings) -> Hierarchy:
    """The hierarchy the ``hierarchy`` setting names (not the one in force after a cut-over):
    dataset units are given, and dataset topics named, in it."""
    return load_hierarchy(settings.hierarchy)


@dataclass(frozen=True)
class Context:
    """Settings and what is built from them once per process."""

    settings: Settings
    hierarchy: Hierarchy
    registry: Registry
    connectors: ConnectorStore
    checked_at: float = field(default_factory=time.monotonic, compare=False, repr=False)

    @property
    def configured_hierarchy(self) -> Hierarchy:
        """:func:`configured_hierarchy` of the settings (``hierarchy`` is the one in force)."""
        return configured_hierarchy(self.settings)

    def current(self) -> Context:
        """This context, or once a cut-over has taken effect since it was built (recorded by
        any process, or its date reached) the same one with the new hierarchy in force; asked
        at most every ``RECHECK_S`` seconds. A control database that does not answer keeps
        the hierarchy as it was (asked again next time)."""
        now = time.monotonic()
        if now - self.checked_at < RECHECK_S:
            return self
        try:
            name = hierarchy_name_in_force(self.settings)
        except LgspError:
            return self
        if name == self.hierarchy.name:
            return replace(self, checked_at=now)
        return replace(self, hierarchy=load_hierarchy(name), checked_at=now)

    @classmethod
    def build(cls, settings: Settings) -> Context:
        """A new context (nothing shared with any other)."""
        return cls(
            settings=settings,
            hierarchy=load_hierarchy(hierarchy_name_in_force(settings)),
            registry=Registry(settings),
            connectors=ConnectorStore(settings),
        )

    @classmethod
    def load(cls, settings: Settings | None = None) -> Context:
        """The context of ``settings`` (default: the process's settings), built on first use.

        Keyed by the object itself: the cached context holds it, so its id cannot be reused by
        another ``Settings`` while the entry lives."""
        settings = get_settings() if settings is None else settings
        with _cache_lock:
            ctx = _cache.get(id(settings))
            if ctx is not None and ctx.settings is settings:
                ctx = _cache[id(settings)] = ctx.current()
                _cache.move_to_end(id(settings))
                return ctx
            ctx = cls.build(settings)
            _cache[id(settings)] = ctx
            while len(_cache) > _KEEP:
                _cache.popitem(last=False)
            return ctx

    @classmethod
    def forget(cls, settings: Settings) -> None:
        """Drop the cached context of ``settings``: the next ``load`` builds it again (after a
        cut-over the hierarchy in force changed)."""
        with _cache_lock:
            _cache.pop(id(settings), None)

    @classmethod
    def of(cls, given: Context | Settings) -> Context:
        """``given`` itself, or the context of the settings given (for callers that still pass
        ``Settings``)."""
        return given if isinstance(given, Context) else cls.load(given)
