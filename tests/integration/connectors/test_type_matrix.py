"""One Avro schema, one table: the SQL sink, replay's table writer and the generator's ``--url``
path create the same columns (names, types as reflected, key, and on MariaDB the collation)
from it, on PostgreSQL, MariaDB and SQLite (``connectors.sql.typemap``). Two differences are
the mapper's own, and stated: a sink's table evolves, so its non-key columns are all nullable
(the others follow the field's union with null); replay's audit copy keeps a decimal's text on
SQLite, whose NUMERIC keeps about 15 digits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.archive.replay.table import write_table
from bus.generate.sql import load_records
from connectors.plugins import build
from tests.helpers import drop_tables
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

STATUS = {"type": "enum", "name": "Status", "symbols": ["moi", "da_xu_ly_xong"]}
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Shape",
    "namespace": "kho",
    "primary_key": ["id", "code"],
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "code", "type": "string"},
        {"name": "note", "type": "string"},
        {"name": "name", "type": ["null", "string"], "default": None},
        {"name": "status", "type": STATUS},
        {"name": "old_status", "type": ["null", "Status"], "default": None},
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "ratio", "type": "double"},
        {"name": "score", "type": "float"},
        {"name": "blob", "type": ["null", "bytes"], "default": None},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        },
        {"name": "born", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "at", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "seen_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "seen_us",
            "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
            "default": None,
        },
        {"name": "local_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "any", "type": ["null", "long", "string"], "default": None},
        {
            "name": "address",
            "type": {
                "type": "record",
                "name": "Address",
                "fields": [{"name": "street", "type": "string"}],
            },
        },
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}
FIELDS = [f["name"] for f in SCHEMA["fields"]]


def _shape(url: str, table: str) -> dict[str, tuple[Any, ...]]:
    """Column -> (type as reflected, nullable, in the key, collation) of the record's fields."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            key = set(inspector.get_pk_constraint(table)["constrained_columns"])
            collations: dict[str, Any] = {}
            if engine.dialect.name in ("mysql", "mariadb"):
                collations = dict(
                    conn.execute(
                        sa.text(
                            "SELECT column_name, collation_name FROM information_schema.columns "
                            "WHERE table_schema = DATABASE() AND table_name = :t"
                        ),
                        {"t": table},
                    ).all()
                )
            return {
                c["name"]: (
                    str(c["type"].compile(dialect=engine.dialect)),
                    c["nullable"],
                    c["name"] in key,
                    collations.get(c["name"]),
                )
                for c in inspector.get_columns(table)
                if c["name"] in FIELDS
            }
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str, mysql_url: str, unique: str
) -> Iterator[tuple[str, str, str]]:
    kind = request.param
    url = {"sqlite": f"sqlite:///{tmp_path / 'm.db'}", "postgresql": pg_url, "mariadb": mysql_url}
    tables = [f"tm_{role}_{unique}" for role in ("sink", "replay", "gen")]
    yield kind, url[kind], unique
    drop_tables(url[kind], tables)


def test_sink_replay_and_generator_create_the_same_table(database: tuple[str, str, str]) -> None:
    kind, url, unique = database
    sink_table, replay_table, gen_table = (f"tm_{r}_{unique}" for r in ("sink", "replay", "gen"))
    sink_type = "mysql" if kind == "mariadb" else kind
    tables = [{"table": sink_table, "dataset": "kho.shape"}]
    connector = build(config(sink_type, "sink", url, tables))
    try:
        connector.prepare(sink_table, SCHEMA)
    finally:
        connector.close()
    write_table(url, None, replay_table, SCHEMA, [], [], False)
    engine = sa.create_engine(url)
    try:
        load_records(engine, gen_table, SCHEMA, [])
    finally:
        engine.dispose()

    roles = ("sink", "replay", "generator")
    tables = (sink_table, replay_table, gen_table)
    shapes = {role: _shape(url, t) for role, t in zip(roles, tables, strict=True)}
    assert sorted(shapes["sink"]) == sorted(FIELDS)
    key = set(SCHEMA["primary_key"])
    for f in SCHEMA["fields"]:
        nullable = isinstance(f["type"], list) and "null" in f["type"]
        assert shapes["replay"][f["name"]][1] is nullable, f["name"]
        assert shapes["sink"][f["name"]][1] is (f["name"] not in key), f["name"]
    if kind == "sqlite":
        assert shapes["replay"]["amount"][0] == "TEXT"
        assert shapes["sink"]["amount"][0] == "NUMERIC(12, 2)"
        shapes["replay"]["amount"] = shapes["sink"]["amount"][:1] + shapes["replay"]["amount"][1:]
    for shape in shapes.values():  # nullability checked above
        for column, (sql_type, _nullable, in_key, coll) in shape.items():
            shape[column] = (sql_type, in_key, coll)
    differing = {
        column: {role: shape.get(column) for role, shape in shapes.items()}
        for column in FIELDS
        if len({shape.get(column) for shape in shapes.values()}) > 1
    }
    assert not differing, "\n".join(f"{c}: {cells}" for c, cells in differing.items())
