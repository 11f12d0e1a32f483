"""The SQL dialects: each overrides only its URL, driver options, type quirks and upsert."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL

from connectors.errors import ConnectorConfigError
from connectors.sql.connector import SqlConnector, sqlite_path
from connectors.sql.sink import version_condition


def _orig(exc: BaseException) -> BaseException:
    return getattr(exc, "orig", None) or exc


class PostgresConnector(SqlConnector):
    """PostgreSQL through psycopg 3; upsert with ``INSERT ... ON CONFLICT DO UPDATE WHERE``."""

    type_name = "postgresql"
    backends = ("postgresql",)
    default_driver = "psycopg"

    def connect_args(self) -> dict[str, Any]:
        # libpq counts whole seconds (at least 2)
        return {"connect_timeout": max(2, math.ceil(self.config.connection.connect_timeout_s))}

    def error_kind(self, exc: BaseException) -> str | None:
        orig = _orig(exc)
        state = getattr(orig, "sqlstate", None)
        text = str(orig).lower()
        if state in ("28P01", "28000") or "authentication failed" in text:
            return "auth"
        if "role" in text and "does not exist" in text:
            return "auth"
        if state == "3D000" or ("database" in text and "does not exist" in text):
            return "database"
        if state and state[:2] in ("22", "23"):
            return "row"
        return "unreachable"

    def upsert_statement(
        self, table: sa.Table, columns: list[str], key: list[str], version: str
    ) -> Any:
        stmt = postgresql.insert(table)
        excluded = stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in key],
            set_={c: excluded[c] for c in columns if c not in key},
            where=version_condition(table, excluded[version]),
        )


class MySQLConnector(SqlConnector):
    """MySQL and MariaDB through PyMySQL; upsert with ``ON DUPLICATE KEY UPDATE`` guarded
    per column by the version (the version column itself is assigned last)."""

    type_name = "mysql"
    backends = ("mysql", "mariadb")
    default_driver = "pymysql"
    naive_utc_timestamps = True

    def get_sqlalchemy_url(self) -> URL:
        url = super().get_sqlalchemy_url()
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        return url

    def connect_args(self) -> dict[str, Any]:
        timeout = self.config.connection.connect_timeout_s
        return {"connect_timeout": max(1, math.ceil(timeout))}

    def error_kind(self, exc: BaseException) -> str | None:
        orig = _orig(exc)
        args = getattr(orig, "args", ())
        code = args[0] if args and isinstance(args[0], int) else None
        if code in (1044, 1045, 1698):
            return "auth"
        if code == 1049:
            return "database"
        if code in (1264, 1265, 1292, 1366, 1406, 1048, 1062, 1452, 3140):
            return "row"
        return "unreachable"

    def upsert_statement(
        self, table: sa.Table, columns: list[str], key: list[str], version: str
    ) -> Any:
        stmt = mysql.insert(table)
        inserted = stmt.inserted
        newer = version_condition(table, inserted[version])
        updates = [
            (c, sa.case((newer, inserted[c]), else_=table.c[c]))
            for c in columns
            if c not in key and c != version
        ]
        last = sa.case((newer, inserted[version]), else_=table.c[version])
        updates.append((version, last))
        return stmt.on_duplicate_key_update(updates)


class SQLiteConnector(SqlConnector):
    """SQLite files; upsert with ``INSERT ... ON CONFLICT DO UPDATE WHERE``. A source file must
    exist; a sink may create a new file in an existing folder."""

    type_name = "sqlite"
    backends = ("sqlite",)
    naive_utc_timestamps = True
    sqlite_types = True

    @classmethod
    def normalize(cls, data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """A relative SQLite path is relative to the connector file, stored absolute."""
        connection = data.get("connection")
        url = connection.get("url") if isinstance(connection, dict) else None
        prefix = "sqlite:///"
        if not isinstance(url, str) or not url.startswith(prefix):
            return data
        path = url[len(prefix) :]
        if not path or path.startswith((":memory:", "/", "file:", "$")) or "?" in path:
            return data
        absolute = (base_dir / path).resolve()
        return {**data, "connection": {**connection, "url": f"{prefix}{absolute}"}}

    def get_sqlalchemy_url(self) -> URL:
        url = super().get_sqlalchemy_url()
        path = sqlite_path(url)
        if path is not None:
            if self.role == "source" and not path.is_file():
                raise ConnectorConfigError(
                    [f"connection.url: the SQLite file {path} does not exist"], name=self.name
                )
            if not path.parent.is_dir():
                raise ConnectorConfigError(
                    [f"connection.url: the folder of the SQLite file {path} does not exist"],
                    name=self.name,
                )
        return url

    def connect_args(self) -> dict[str, Any]:
        return {"timeout": self.config.connection.connect_timeout_s}

    def order_expression(self, column: sa.Column[Any]) -> Any:
        # dates, timestamps and decimals are stored as text or real: compare stored values
        if isinstance(column.type, sa.Date | sa.DateTime | sa.Time | sa.Numeric):
            return sa.type_coerce(column, sa.types.NullType())
        return column

    def error_kind(self, exc: BaseException) -> str | None:
        text = str(_orig(exc)).lower()
        if "locked" in text or "unable to open" in text or "disk i/o" in text:
            return "unreachable"
        return "row"

    def upsert_statement(
        self, table: sa.Table, columns: list[str], key: list[str], version: str
    ) -> Any:
        stmt = sqlite.insert(table)
        excluded = stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=[table.c[k] for k in key],
            set_={c: excluded[c] for c in columns if c not in key},
            where=version_condition(table, excluded[version]),
        )
