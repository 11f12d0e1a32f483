"""A source connector's view of the catalogue: each catalogued dataset as the contract
(``connectors.contract.DatasetContract``) its tables conform to.

Departments publish a dataset once (``lgsp dataset publish``): its record schema and key are
registered under every publishing unit's topic. A dataset that is not in the catalogue keeps
the schema derived from the source (the lookup answers None).
"""

from __future__ import annotations

from bus.catalog.datasets import get_dataset
from bus.config import Settings
from bus.errors import NotFoundError
from connectors.base import Connector
from connectors.contract import DatasetContract, DatasetLookup


def catalogue_lookup(settings: Settings) -> DatasetLookup:
    """``name -> contract`` from the catalogue (None when it is not there), cached per lookup."""
    cache: dict[str, DatasetContract | None] = {}

    def lookup(name: str) -> DatasetContract | None:
        if name not in cache:
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
