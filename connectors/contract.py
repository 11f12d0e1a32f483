"""A catalogued dataset as the contract its source connectors conform to.

A source table feeding a catalogued dataset publishes exactly that dataset's record schema
(the same JSON, so the topic's schema stays the one registered), and its rows are converted to
it. The bus hands a source connector a ``DatasetLookup`` (``Connector.datasets``); a dataset
the lookup does not know (None) keeps the schema derived from the source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetContract:
    """What the catalogue says about a dataset that a source needs: record schema, key fields,
    the units that may publish it."""

    name: str
    record_schema: dict[str, Any]
    key_fields: list[str]
    units: list[str] = field(default_factory=list)


DatasetLookup = Callable[[str], DatasetContract | None]
