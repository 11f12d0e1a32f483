"""Configuration of the SQL connectors (PostgreSQL, MySQL/MariaDB, SQLite)."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, SecretStr, field_validator

from connectors.config import ConnectorConfig, Mode, Strict, TableConfig
from connectors.errors import FieldError
from connectors.secrets import sql_url_problem
from connectors.sql.loglimit import LogLimits
from connectors.sql.lookback import parse_duration

# the capture modes of a SQL source: the common ones and log-based capture
SqlMode = Literal["snapshot", "incremental", "log"]
assert set(get_args(Mode)) < set(get_args(SqlMode))


class SqlConnection(Strict):
    """Where the database is; the URL's password and secret-looking query values must be
    ``${ENV}`` references, or the whole URL a ``file:`` reference."""

    url: SecretStr
    connect_timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        raw = value.get_secret_value().strip()
        if not raw:
            raise ValueError("required")
        if not raw.startswith("file:") and "://" not in raw:
            raise ValueError("expected a SQLAlchemy URL such as postgresql://user@host:5432/db")
        problem = sql_url_problem(raw)
        if problem:
            raise ValueError(problem)
        return SecretStr(raw)


class SqlTable(TableConfig):
    """A source table (``schema.table`` allowed) or a sink's target table."""

    # snapshot | incremental | log (PostgreSQL: logical decoding, ``connectors.sql.pglog``;
    # MariaDB/MySQL: the row binlog, ``connectors.sql.mylog``)
    mode: SqlMode | None = None
    cursor: str | None = Field(None, min_length=1)
    deleted_flag: str | None = Field(None, min_length=1)
    columns: list[str] | None = Field(None, min_length=1)
    key: list[str] | None = Field(None, min_length=1)
    create: bool = True
    on_delete: Literal["delete", "mark"] = "delete"
    # seconds an incremental read reaches back below the last cursor value (None: the
    # dialect's default; 0: none); written as 300, "90s", "5m", "1h"
    lookback: int | None = None
    # what the table's scheduled reconciliation DAG does with differences: report them, or
    # repair them (publish the missing rows and the hard deletes polling cannot see)
    reconcile: Literal["report", "repair"] = "report"

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, value: Any) -> int | None:
        return None if value is None else parse_duration(value)


class SqlConnectorConfig(ConnectorConfig):
    connection: SqlConnection
    tables: list[SqlTable] = Field(min_length=1)  # type: ignore[assignment]
    # a source with mode: log tables: how far it may fall behind (connectors.sql.loglimit)
    log: LogLimits | None = None

    def problems(self) -> list[FieldError]:
        out = super().problems()
        if self.log is not None:
            if self.role != "source" or not any(t.mode == "log" for t in self.tables):
                out.append(FieldError("log", "only for sources with mode: log tables"))
            else:
                out.extend(self.log.problems(self.type))
        for i, t in enumerate(self.tables):
            where = f"tables[{i}]"
            if self.role == "source":
                if t.mode == "log" and self.type not in ("postgresql", "mysql"):
                    out.append(
                        FieldError(
                            f"{where}.mode",
                            "'log' is available for postgresql and mysql connectors only "
                            f"(type {self.type!r}: use snapshot or incremental)",
                        )
                    )
                if t.mode == "log" and t.cursor:
                    out.append(
                        FieldError(
                            f"{where}.cursor", "not used with mode log (the log orders changes)"
                        )
                    )
                if t.mode == "incremental" and not t.cursor:
                    out.append(FieldError(f"{where}.cursor", "required when mode is incremental"))
                if not t.create:
                    out.append(FieldError(f"{where}.create", "only for sinks"))
                if t.on_delete != "delete":
                    out.append(FieldError(f"{where}.on_delete", "only for sinks"))
                if t.lookback is not None and t.effective_mode != "incremental":
                    out.append(
                        FieldError(
                            f"{where}.lookback", "only for incremental tables (with a cursor)"
                        )
                    )
            else:
                for key in ("mode", "cursor", "deleted_flag", "columns", "lookback"):
                    if getattr(t, key) is not None:
                        out.append(FieldError(f"{where}.{key}", "only for sources"))
                if t.reconcile != "report":
                    out.append(FieldError(f"{where}.reconcile", "only for sources"))
            if t.columns is not None:
                for name in (t.cursor, t.deleted_flag, *(t.key or [])):
                    if name and name not in t.columns:
                        out.append(FieldError(f"{where}.columns", f"must include {name!r}"))
        return out
