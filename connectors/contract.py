"""A catalogued dataset as the contract its source connectors conform to.

Departments publish a dataset once (``lgsp dataset publish``): its record schema and key are
registered under every publishing unit's topic. A source table feeding such a dataset publishes
exactly that record schema (the same JSON, so the topic's schema stays the one registered), and
its rows are converted to it. A dataset that is not in the catalogue keeps the schema derived
from the source (``lookup`` answers None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bus.config import Settings
from bus.errors import NotFoundError

if TYPE_CHECKING:
    from connectors.base import Connector


@dataclass(frozen=True)
class DatasetContract:
    """What the catalogue says about a dataset that a source needs: record schema, key fields,
    the units that may publish it."""

    name: str
    record_schema: dict[str, Any]
    key_fields: list[str]
    units: list[str] = field(default_factory=list)


DatasetLookup = Callable[[str], DatasetContract | None]


def catalogue_lookup(settings: Settings) -> DatasetLookup:
    """``name -> contract`` from the catalogue (None when it is not there), cached per lookup."""
    cache: dict[str, DatasetContract | None] = {}

    def lookup(name: str) -> DatasetContract | None:
        if name not in cache:
            from bus.catalog.datasets import get_dataset  # the catalogue is optional here

            try:
                info = get_dataset(settings, name)
            except NotFoundError:
                cache[name] = None
            else:
                record = info.record_schema
                keys = list(info.key_fields or record.get("primary_key") or [])
                cache[name] = DatasetContract(info.name, record, keys, list(info.units))
        return cache[name]

    return lookup


def attach_catalogue(connector: Connector, settings: Settings) -> Connector:
    """A source connector that looks its datasets up in the catalogue: a catalogued dataset's
    schema is the contract its tables conform to (sinks take the topic's schema as it is)."""
    if connector.role == "source":
        connector.datasets = catalogue_lookup(settings)
    return connector
