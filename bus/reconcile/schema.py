"""Reflection of the two tables and the schema check that runs before any data is compared."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from bus.errors import ConfigurationError, DatabaseUnavailableError, NotFoundError
from connectors.sql.types import split_table

DEFAULT_IGNORED = ("_lgsp_*",)


@dataclass(frozen=True)
class ColumnInfo:
    """A column as the reconciliation sees it: its name, kind and what the hash must know."""

    name: str
    kind: str
    type_name: str
    nullable: bool = True
    scale: int | None = None
    precision: int | None = None
    length: int | None = None
    timezone: bool = False
    fsp: int | None = None
    charset: str | None = None


@dataclass
class TableInfo:
    """A reflected table: its qualified name, columns (in table order) and primary key."""

    label: str
    dialect: str
    schema: str | None
    name: str
    columns: dict[str, ColumnInfo]
    primary_key: list[str]
    sa_table: sa.Table

    @property
    def display(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@dataclass
class SchemaIssue:
    """One schema difference; ``error`` ones mean the copies cannot agree."""

    severity: str  # "error" | "warning"
    kind: str  # primary_key | missing_column | extra_column | type | scale | length | nullable
    column: str | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "kind": self.kind,
            "column": self.column,
            "message": self.message,
        }


@dataclass
class SchemaCheck:
    issues: list[SchemaIssue] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    key: list[str] = field(default_factory=list)
    ignored_source: list[str] = field(default_factory=list)
    ignored_target: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[SchemaIssue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def comparable(self) -> bool:
        """Rows can be matched: same primary key on both sides."""
        return not any(i.kind == "primary_key" for i in self.issues)


def kind_of(col_type: sa.types.TypeEngine[Any]) -> str:
    """The canonical kind of a reflected SQLAlchemy type."""
    if isinstance(col_type, sa.Boolean):
        return "bool"
    if isinstance(col_type, sa.Integer):
        return "int"
    if isinstance(col_type, sa.Float):
        return "float"
    if isinstance(col_type, sa.Numeric):
        return "decimal"
    if isinstance(col_type, sa.DateTime):
        return "datetime"
    if isinstance(col_type, sa.Date):
        return "date"
    if isinstance(col_type, sa.Time):
        return "time"
    if isinstance(col_type, sa.JSON):
        return "json"
    if isinstance(col_type, sa.Uuid):
        return "uuid"
    if isinstance(col_type, sa.CHAR | sa.NCHAR) and not isinstance(col_type, sa.VARCHAR):
        return "char"
    if isinstance(col_type, sa.String | sa.Enum):
        return "text"
    if isinstance(col_type, sa.LargeBinary | sa.types._Binary):
        return "binary"
    name = type(col_type).__name__.upper()
    if name in ("YEAR",):
        return "int"
    if name in ("JSONB",):
        return "json"
    return "other"


def _type_name(col_type: sa.types.TypeEngine[Any]) -> str:
    try:
        return str(col_type)
    except Exception:  # some reflected types cannot render without their dialect
        return type(col_type).__name__


def _mysql_charsets(conn: sa.Connection, schema: str | None, name: str) -> dict[str, str]:
    rows = conn.execute(
        sa.text(
            "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name"
        ),
        {"schema": schema, "name": name},
    ).all()
    return {str(r[0]): str(r[1]) for r in rows if r[1] is not None}


def reflect_table(
    engine: Engine, spec: str, label: str, key_override: list[str] | None = None
) -> TableInfo:
    """Columns, kinds and primary key of ``spec``; ``NotFoundError`` when it does not exist."""
    schema, name = split_table(spec, "table")
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table(name, schema=schema):
                where = f" in schema {schema!r}" if schema else ""
                raise NotFoundError(
                    f"{label} table {name!r} does not exist{where} "
                    f"(database {engine.url.database or '(default)'})"
                )
            # the columns and the key only: a full autoload also reads indexes, foreign keys,
            # constraints and comments (a query each on PostgreSQL), none of them compared
            table = sa.Table(
                name,
                sa.MetaData(),
                *[
                    sa.Column(c["name"], c["type"], nullable=c["nullable"])
                    for c in inspector.get_columns(name, schema=schema)
                ],
                schema=schema,
            )
            pk = list(inspector.get_pk_constraint(name, schema=schema).get("constrained_columns"))
            mysql_family = engine.dialect.name in ("mysql", "mariadb")
            charsets = _mysql_charsets(conn, schema, name) if mysql_family else {}
    except NoSuchTableError as exc:
        raise NotFoundError(f"{label} table {spec!r} does not exist") from exc
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise DatabaseUnavailableError(
            f"{label} database does not answer ({type(exc).__name__})"
        ) from exc
    except SQLAlchemyError as exc:
        raise ConfigurationError(
            f"{label} table {spec!r}: cannot read its definition ({type(exc).__name__})"
        ) from exc
    columns: dict[str, ColumnInfo] = {}
    for col in table.columns:
        col_type = col.type
        kind = kind_of(col_type)
        columns[col.name] = ColumnInfo(
            name=col.name,
            kind=kind,
            type_name=_type_name(col_type),
            nullable=bool(col.nullable),
            scale=getattr(col_type, "scale", None) if kind == "decimal" else None,
            precision=getattr(col_type, "precision", None) if kind == "decimal" else None,
            length=getattr(col_type, "length", None) if kind in ("text", "char") else None,
            timezone=bool(getattr(col_type, "timezone", False)),
            fsp=getattr(col_type, "fsp", None),
            charset=charsets.get(col.name),
        )
    if key_override:
        unknown = [k for k in key_override if k not in columns]
        if unknown:
            raise ConfigurationError(f"--key: {label} table {spec!r} has no column {unknown[0]!r}")
        pk = list(key_override)
    return TableInfo(label, engine.dialect.name, schema, name, columns, pk, table)


def _ignored(names: list[str], patterns: tuple[str, ...] | list[str]) -> list[str]:
    return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


_COMPATIBLE = [
    frozenset({"int", "bool", "decimal"}),
    frozenset({"text", "char", "json", "uuid", "other"}),
]


def _families_compatible(a: str, b: str) -> bool:
    if a == b:
        return True
    return any(a in group and b in group for group in _COMPATIBLE)


def compare_schemas(
    source: TableInfo,
    target: TableInfo,
    ignore: tuple[str, ...] | list[str] = DEFAULT_IGNORED,
    only: list[str] | None = None,
) -> SchemaCheck:
    """Primary keys, column sets and types of the two tables, before any data is read.

    ``only`` limits the source's columns (with its key) to those a connector publishes.
    """
    check = SchemaCheck()
    check.ignored_source = _ignored(list(source.columns), ignore)
    check.ignored_target = _ignored(list(target.columns), ignore)
    if only:
        keep = set(only) | set(source.primary_key)
        check.ignored_source += [
            c for c in source.columns if c not in keep and c not in check.ignored_source
        ]
    src_cols = [c for c in source.columns if c not in check.ignored_source]
    tgt_cols = [c for c in target.columns if c not in check.ignored_target]
    if not source.primary_key:
        check.issues.append(
            SchemaIssue(
                "error",
                "primary_key",
                None,
                f"source table {source.display} has no primary key (give one with --key)",
            )
        )
    if not target.primary_key:
        check.issues.append(
            SchemaIssue(
                "error",
                "primary_key",
                None,
                f"target table {target.display} has no primary key (give one with --key)",
            )
        )
    if source.primary_key and target.primary_key and source.primary_key != target.primary_key:
        check.issues.append(
            SchemaIssue(
                "error",
                "primary_key",
                None,
                f"primary keys differ: source ({', '.join(source.primary_key)}), "
                f"target ({', '.join(target.primary_key)})",
            )
        )
    for name in src_cols:
        if name not in target.columns:
            check.issues.append(
                SchemaIssue(
                    "error",
                    "missing_column",
                    name,
                    f"column {name!r} is in the source but not in the target",
                )
            )
    for name in tgt_cols:
        if name not in source.columns:
            check.issues.append(
                SchemaIssue(
                    "error",
                    "extra_column",
                    name,
                    f"column {name!r} is in the target but not in the source",
                )
            )
    common = sorted(n for n in src_cols if n in tgt_cols)
    for name in common:
        s, t = source.columns[name], target.columns[name]
        if not _families_compatible(s.kind, t.kind):
            check.issues.append(
                SchemaIssue(
                    "error",
                    "type",
                    name,
                    f"column {name!r}: {s.kind} ({s.type_name}) in the source, "
                    f"{t.kind} ({t.type_name}) in the target",
                )
            )
            continue
        if s.kind == t.kind == "decimal" and s.scale is not None and t.scale is not None:
            if s.scale != t.scale:
                check.issues.append(
                    SchemaIssue(
                        "error",
                        "scale",
                        name,
                        f"column {name!r}: decimal scale {s.scale} in the source, "
                        f"{t.scale} in the target",
                    )
                )
            elif s.precision and t.precision and s.precision > t.precision:
                check.issues.append(
                    SchemaIssue(
                        "warning",
                        "precision",
                        name,
                        f"column {name!r}: decimal precision {s.precision} in the source, "
                        f"only {t.precision} in the target",
                    )
                )
        elif s.kind != t.kind and {s.kind, t.kind} != {"int", "bool"}:
            check.issues.append(
                SchemaIssue(
                    "warning",
                    "type",
                    name,
                    f"column {name!r}: {s.kind} ({s.type_name}) in the source, "
                    f"{t.kind} ({t.type_name}) in the target; values compared as text",
                )
            )
        if s.length and t.length and s.length > t.length:
            check.issues.append(
                SchemaIssue(
                    "warning",
                    "length",
                    name,
                    f"column {name!r}: length {s.length} in the source, {t.length} in the target",
                )
            )
    check.compared = common
    check.key = list(source.primary_key) if check.comparable else []
    return check
