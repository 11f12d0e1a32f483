"""Connector types (the plugins) by name, from the entry-point group ``lgsp.connectors``.

The built-in types are also known without an installed distribution (a source checkout);
an installed plugin registers its own type through the same group. An unknown name is refused
with the list of known ones.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from bus.units import Hierarchy
from connectors.base import Connector
from connectors.config import ConnectorConfig, LenientConfig, read_file, validate_model
from connectors.errors import ConnectorConfigError, FieldError, UnknownConnectorTypeError

GROUP = "lgsp.connectors"
BUILTIN = {
    "postgresql": "connectors.sql.dialects:PostgresConnector",
    "mysql": "connectors.sql.dialects:MySQLConnector",
    "mariadb": "connectors.sql.dialects:MySQLConnector",
    "sqlite": "connectors.sql.dialects:SQLiteConnector",
    "http": "connectors.http.connector:HttpConnector",
}


@functools.cache
def _installed() -> tuple[tuple[str, str], ...]:
    """The group's entry points, read once per process (a scan of every installed package's
    metadata costs tens of milliseconds, and every sync run looks its connector up)."""
    return tuple((ep.name, ep.value) for ep in entry_points(group=GROUP))


def _targets() -> dict[str, str]:
    found = dict(BUILTIN)
    found.update(_installed())
    return found


def known_types() -> list[str]:
    return sorted(_targets())


def connector_class(type_name: str) -> type[Connector]:
    """The class registered for ``type_name``; ``UnknownConnectorTypeError`` lists the rest."""
    targets = _targets()
    target = targets.get(type_name)
    if target is None:
        raise UnknownConnectorTypeError(type_name, targets)
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise UnknownConnectorTypeError(type_name, targets) from exc
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise UnknownConnectorTypeError(type_name, [t for t in targets if t != type_name])
    return cls


def validate(data: dict[str, Any], *, hierarchy: Hierarchy | None = None) -> ConnectorConfig:
    """The validated config of any type: an unknown type is reported with every other error."""
    type_name = data.get("type")
    if not isinstance(type_name, str) or not type_name:
        errors = [FieldError("type", "required; known types: " + ", ".join(known_types()))]
        validate_model(LenientConfig, {**data, "type": "?"}, extra_errors=errors)
        raise ConnectorConfigError(errors, name=data.get("name"))  # pragma: no cover
    try:
        cls = connector_class(type_name)
    except UnknownConnectorTypeError as exc:
        unknown = str(exc).removeprefix("type: ")
        validate_model(
            LenientConfig, data, hierarchy=hierarchy, extra_errors=[FieldError("type", unknown)]
        )
        raise  # pragma: no cover - validate_model always raises with an extra error
    return cls.validate_config(data, hierarchy=hierarchy)


def normalize(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Paths in a file's mapping made absolute against ``base_dir`` (its type decides which)."""
    type_name = data.get("type")
    if not isinstance(type_name, str):
        return data
    try:
        cls = connector_class(type_name)
    except UnknownConnectorTypeError:
        return data
    return cls.normalize(data, base_dir)


def build(
    data: dict[str, Any] | ConnectorConfig,
    *,
    hierarchy: Hierarchy | None = None,
    batch_size: int = 500,
) -> Connector:
    """A connector object from a file's mapping or a validated config."""
    config = data if isinstance(data, ConnectorConfig) else validate(data, hierarchy=hierarchy)
    cls = connector_class(config.type)
    return cls(config, hierarchy=hierarchy, batch_size=batch_size)


def load(path: Path, *, hierarchy: Hierarchy | None = None, batch_size: int = 500) -> Connector:
    """A connector object from a YAML file."""
    data = normalize(read_file(path), Path(path).resolve().parent)
    return build(data, hierarchy=hierarchy, batch_size=batch_size)
