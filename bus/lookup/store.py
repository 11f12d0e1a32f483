"""The current-state store of a dataset: a registered SQL sink connector ``lookup-<dataset>``
that reads the dataset's city-level topic and upserts by key; a delete that reaches the topic
marks its row deleted (``on_delete: mark``: the tombstone row stops an older update arriving
later from bringing the record back), and the lookup never answers with a marked row.

The store is an ordinary sink connector (its file is made here from the catalogue and the
``lookup`` settings), so it is kept current by the sink's own machinery: versioned upserts,
deletes, the DLQ, run history, the run lock, ``lgsp connector status`` and its Airflow DAG
(registration refreshes the manifest; its schedule is ``lookup.schedule``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import ArgumentError

from bus.catalog.datasets import get_dataset
from bus.connector_service.registration import Registration, register
from bus.connectors_db.store import StoredConnector
from bus.context import Context
from bus.errors import ConfigurationError
from bus.longrun import Follow
from bus.sync import Progress, SyncReport
from bus.sync import run as run_sync
from connectors.errors import ConnectorNotFoundError
from connectors.secrets import sql_url_problem

PREFIX = "lookup-"
TABLE_PREFIX = "lookup_"
# connector type of a URL's backend (the SQL connector types of ``lgsp.connectors``)
_TYPES = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}


def store_name(dataset: str) -> str:
    """The store's sink connector: ``dancu.resident`` -> ``lookup-dancu-resident``."""
    return PREFIX + dataset.replace(".", "-").replace("_", "-")


def store_table(dataset: str) -> str:
    """The store's table: ``dancu.resident`` -> ``lookup_dancu_resident``."""
    return TABLE_PREFIX + dataset.replace(".", "_")


class StoreClashError(ConfigurationError):
    """The connector named after a dataset's store keeps another dataset's store (the names
    fold ``.`` and ``_`` alike: ``dancu.ho_khau`` and ``dancu_ho.khau``)."""

    http_status = 409


def registered_store(ctx: Context, dataset: str) -> StoredConnector:
    """``dataset``'s registered store connector: ``ConnectorNotFoundError`` when there is
    none, ``StoreClashError`` when the connector of its name keeps another dataset (syncing or
    reading it would give that dataset's records as this one's)."""
    stored = ctx.connectors.get(store_name(dataset))
    kept = [t.get("dataset") for t in stored.config.get("tables", [])]
    if kept != [dataset]:
        raise StoreClashError(
            f"connector {stored.name} keeps the lookup store of {', '.join(map(str, kept))}, "
            f"not of {dataset} (the two names give the same store name): {dataset} cannot "
            "have a lookup store while it is registered"
        )
    return stored


def store_url(ctx: Context) -> str:
    """``lookup.url``, else the control database's URL; a password must be an ``${ENV}``
    reference (the URL is kept in the store's connector file)."""
    settings = ctx.settings
    given = settings.lookup.url
    url = given.get_secret_value() if given is not None else settings.control_database_url
    option = "lookup.url" if given is not None else "database_url"
    problem = sql_url_problem(url)
    if problem:
        raise ConfigurationError(
            f"{option}: {problem}; the lookup store keeps its URL in a connector file, so set "
            "lookup.url (LGSP_LOOKUP__URL) with the password as ${ENV}"
        )
    if "${" in url:
        return url  # a reference: its backend is checked when the connector validates
    try:
        backend = sa.engine.make_url(url).get_backend_name()
    except ArgumentError:
        raise ConfigurationError(
            f"{option}: expected a SQLAlchemy URL such as postgresql://user@host:5432/db"
        ) from None
    if backend not in _TYPES:
        raise ConfigurationError(
            f"{option}: a lookup store needs PostgreSQL, MariaDB/MySQL or SQLite, got {backend!r}"
        )
    return url


def _connector_type(url: str) -> str:
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    return _TYPES.get(scheme, "postgresql")


def store_file(ctx: Context, dataset: str) -> dict[str, Any]:
    """The connector file of ``dataset``'s store (the dataset must be in the catalogue)."""
    info = get_dataset(ctx.settings, dataset)
    url = store_url(ctx)
    doc: dict[str, Any] = {
        "name": store_name(info.name),
        "type": _connector_type(url),
        "role": "sink",
        "agency": info.publisher,
        "unit": ctx.hierarchy.root.code,
        "description": f"current state of {info.name} for the once-only lookup",
        "connection": {"url": url},
        "tables": [{"table": store_table(info.name), "dataset": info.name, "on_delete": "mark"}],
    }
    if ctx.settings.lookup.schedule:
        doc["schedule"] = ctx.settings.lookup.schedule
    return doc


def ensure_store(ctx: Context, dataset: str) -> Registration | None:
    """Register ``dataset``'s store connector unless it is registered; returns the
    registration made, or None when it was there already."""
    try:
        registered_store(ctx, dataset)
    except ConnectorNotFoundError:
        return register(ctx, store_file(ctx, dataset))
    get_dataset(ctx.settings, dataset)  # still in the catalogue
    return None


def sync(
    ctx: Context,
    dataset: str,
    *,
    progress: Progress | None = None,
    follow: Follow | None = None,
) -> SyncReport:
    """Bring ``dataset``'s store up to the city topic's end (``follow``: and keep it there),
    registering the store first when needed."""
    ensure_store(ctx, dataset)
    return run_sync(ctx, store_name(dataset), progress=progress, follow=follow)
