"""SQL source tables conforming to a catalogued dataset's record schema.

At discovery every record field is matched to a column (the field's ``sqlName``, else the same
name, else the column whose Avro-safe name it is: ``Trạng thái`` -> ``Trang_thai``), the
column's reflected type is checked against the field's type and the table's key against the
dataset's key, every problem at once. A field without a column is filled with its default (or
null) when it has one, else it is an error; a NULL in the column of a field that has a default
but no null branch is that default. Columns that are not fields are not published (the
cursor and soft-delete columns are still read, to order and flag rows).

Each field gets one converter, built once per stream: the column's value (JSON text parsed for
arrays, records and maps) through ``JsonToAvro(native=True)``. A row that does not convert is
a bad record: ``record`` raises a ``DataError`` naming the table, column and field, never the
value.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from bus.errors import ConfigurationError, DataError
from bus.serde.jsoncodec import Converter, JsonToAvro
from connectors.base import Column
from connectors.contract import DatasetContract
from connectors.sql.config import SqlTable
from connectors.sql.types import SQL_NAME, AvroMapping, avro_name

Mapping = Callable[[TypeEngine[Any]], AvroMapping | None]

# column kinds each field kind accepts
_ACCEPTS: dict[str, frozenset[str]] = {
    "boolean": frozenset({"boolean"}),
    "int": frozenset({"integer", "decimal"}),
    "long": frozenset({"integer", "decimal"}),
    "float": frozenset({"integer", "decimal", "float"}),
    "double": frozenset({"integer", "decimal", "float"}),
    "decimal": frozenset({"integer", "decimal"}),
    "string": frozenset({"text", "json", "uuid"}),
    "enum": frozenset({"text"}),
    "uuid": frozenset({"uuid", "text"}),
    "date": frozenset({"date"}),
    "timestamp": frozenset({"timestamp"}),
    "local-timestamp": frozenset({"timestamp"}),
    "time": frozenset({"time"}),
    "bytes": frozenset({"bytes"}),
    "fixed": frozenset({"bytes"}),
    "array": frozenset({"json", "text"}),
    "record": frozenset({"json", "text"}),
    "map": frozenset({"json", "text"}),
}
_EXPECTED = {
    "boolean": "a boolean column",
    "int": "an integer or decimal column",
    "long": "an integer or decimal column",
    "float": "a numeric column",
    "double": "a numeric column",
    "decimal": "an integer or decimal column",
    "string": "a text, JSON or UUID column",
    "enum": "a text column holding the symbols",
    "uuid": "a UUID or text column",
    "date": "a date column",
    "timestamp": "a timestamp column (with or without zone)",
    "local-timestamp": "a timestamp column",
    "time": "a time column",
    "bytes": "a binary column",
    "fixed": "a binary column",
    "array": "a JSON or text column holding JSON",
    "record": "a JSON or text column holding JSON",
    "map": "a JSON or text column holding JSON",
}
_STRUCTURED = frozenset({"array", "record", "map"})
_KIND_NAMES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
    | {"record", "error", "enum", "array", "map", "fixed"}
)
_TEXTUAL = frozenset({"string", "enum", "uuid"})


class ContractError(ConfigurationError):
    """A source table that cannot feed its catalogued dataset; ``problems`` lists every one."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.problems,))


# ---- kinds ------------------------------------------------------------------------------------


def column_kind(sql_type: TypeEngine[Any], mapping: AvroMapping | None) -> tuple[str | None, Any]:
    """(kind, scale) of a reflected column: what it can feed; scale for numbers (None: any)."""
    if mapping is None:
        return None, None
    if isinstance(sql_type, sa.JSON):
        return "json", None
    avro = mapping.avro
    logical = avro.get("logicalType") if isinstance(avro, dict) else None
    if avro == "boolean":
        return "boolean", None
    if avro in ("int", "long"):
        return "integer", 0
    if logical == "decimal":
        return "decimal", int(avro.get("scale", 0))
    if avro == "double":
        return "float", None
    if isinstance(sql_type, sa.Numeric) and avro == "string":
        return "decimal", None  # NUMERIC without precision: checked per value
    if logical in ("timestamp-millis", "local-timestamp-millis"):
        return "timestamp", None
    if logical in ("timestamp-micros", "local-timestamp-micros"):
        return "timestamp", None
    if logical in ("date", "uuid"):
        return logical, None
    if logical == "time-millis":
        return "time", None
    if avro == "string":
        return "text", None
    if avro == "bytes":
        return "bytes", None
    return None, None


def _kind(branch: Any) -> str:
    if isinstance(branch, str):
        return branch
    logical = branch.get("logicalType")
    if logical == "decimal":
        return "decimal"
    if logical in ("timestamp-millis", "timestamp-micros"):
        return "timestamp"
    if logical in ("local-timestamp-millis", "local-timestamp-micros"):
        return "local-timestamp"
    if logical in ("date", "uuid"):
        return str(logical)
    if logical in ("time-millis", "time-micros"):
        return "time"
    kind = str(branch.get("type"))
    return "record" if kind == "error" else kind


def _scale(branch: Any) -> int | None:
    kind = _kind(branch)
    if kind == "decimal":
        return int(branch.get("scale", 0))
    return 0 if kind in ("int", "long") else None


def _resolve(codec: JsonToAvro, avro_type: Any) -> Any:
    """A type with named references and ``{"type": <type>}`` wrappers taken away."""
    while True:
        avro_type = codec.resolve(avro_type)
        inner = avro_type.get("type") if isinstance(avro_type, dict) else None
        if isinstance(inner, dict | list) or (
            isinstance(inner, str) and inner not in _KIND_NAMES and inner in codec.named
        ):
            avro_type = inner
            continue
        return avro_type


def branches(codec: JsonToAvro, avro_type: Any) -> tuple[list[Any], bool]:
    """(the non-null branches of a field type, named types resolved; whether null is allowed)."""
    out: list[Any] = []
    nullable = False
    for t in avro_type if isinstance(avro_type, list) else [avro_type]:
        t = _resolve(codec, t)
        if isinstance(t, list):
            inner, inner_nullable = branches(codec, t)
            out.extend(inner)
            nullable = nullable or inner_nullable
        elif t == "null":
            nullable = True
        else:
            out.append(t)
    return out, nullable


def _label(branch: Any) -> str:
    if isinstance(branch, str):
        return branch
    kind = branch.get("type")
    logical = branch.get("logicalType")
    if logical == "decimal":
        return f"decimal({branch.get('precision')},{branch.get('scale', 0)})"
    if logical:
        return str(logical)
    if kind in ("enum", "record", "error", "fixed"):
        return f"{'record' if kind == 'error' else kind} {branch.get('name')}"
    if kind == "array":
        return f"array of {_label(branch['items'])}"
    if kind == "map":
        return f"map of {_label(branch['values'])}"
    return _label(kind) if isinstance(kind, dict | str) else str(kind)


def type_label(codec: JsonToAvro, avro_type: Any) -> str:
    """A field type for messages: ``enum tthc.DossierStatus``, ``timestamp-millis or null``."""
    found, nullable = branches(codec, avro_type)
    text = " or ".join(_label(b) for b in found) or "null"
    return f"{text} or null" if nullable and found else text


# ---- the plan of one table --------------------------------------------------------------------


@dataclass
class TableContract:
    """How one source table feeds its catalogued dataset."""

    table: str
    columns: list[Column]  # the published columns, in field order
    hidden: list[str]  # read but not published: the cursor and soft-delete columns
    fields: list[tuple[str, str | None, Converter]]  # (field, column or None: default, convert)
    warnings: list[str] = field(default_factory=list)

    def items(self, index: dict[str, int]) -> list[tuple[str, int, Converter]]:
        """(field, row index, converter) of every field, for rows selected as ``index`` says."""
        return [(f, index[c] if c is not None else 0, conv) for f, c, conv in self.fields]

    def column_of(self, field_name: str) -> str:
        for f, c, _ in self.fields:
            if f == field_name:
                return c or f
        return field_name

    def record(self, items: list[tuple[str, int, Converter]], row: Sequence[Any]) -> dict[str, Any]:
        """A row as the dataset's record; ``DataError`` names table, column and field."""
        out: dict[str, Any] = {}
        name = ""
        try:
            for name, i, convert in items:
                out[name] = convert(row[i])
        except Exception as exc:  # a driver value no converter expected: its class only
            reason = str(exc) if isinstance(exc, DataError) else f"{name}: {type(exc).__name__}"
            raise DataError(
                f"table {self.table!r}, column {self.column_of(name)!r}: {reason}"
            ) from None
        return out

    def raw(self, items: list[tuple[str, int, Converter]], row: Sequence[Any]) -> dict[str, Any]:
        """The published columns of a row as they are (for a dead letter), by field name."""
        columns = {f for f, c, _ in self.fields if c is not None}
        return {f: row[i] for f, i, _ in items if f in columns}


def _constant(value: Any) -> Converter:
    if isinstance(value, list | dict):
        return lambda _row_value: copy.deepcopy(value)
    return lambda _row_value: value


def _or_default(convert: Converter, default: Any) -> Converter:
    fill = _constant(default)

    def or_default(value: Any) -> Any:
        return fill(value) if value is None else convert(value)

    return or_default


def _parse_json(field_name: str, label: str) -> Converter:
    error = f"{field_name}: expected JSON text ({label})"

    def parse(value: Any) -> Any:
        if isinstance(value, str | bytes | bytearray | memoryview):
            try:
                return json.loads(bytes(value) if isinstance(value, memoryview) else value)
            except ValueError:
                raise DataError(error) from None
        return value

    return parse


def _json_text(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _rstrip(value: Any) -> Any:
    return value.rstrip(" ") if isinstance(value, str) else value


def _chain(pre: Converter, convert: Converter) -> Converter:
    def chained(value: Any) -> Any:
        return convert(value if value is None else pre(value))

    return chained


def match_columns(
    fields: list[dict[str, Any]], columns: list[str]
) -> tuple[dict[str, str | None], list[str]]:
    """Field -> column (or None), and the ambiguities: ``sqlName``, same name, Avro-safe name."""
    exact = set(columns)
    folded: dict[str, list[str]] = {}
    for col in columns:
        folded.setdefault(col.lower(), []).append(col)
    normalised: dict[str, list[str]] = {}
    for col in columns:
        normalised.setdefault(avro_name(col).lower(), []).append(col)
    out: dict[str, str | None] = {}
    problems: list[str] = []
    for f in fields:
        name = f["name"]
        wanted = f.get(SQL_NAME)
        if isinstance(wanted, str) and wanted:
            found = [wanted] if wanted in exact else folded.get(wanted.lower(), [])
        elif name in exact:
            found = [name]
        else:
            found = folded.get(name.lower()) or normalised.get(name.lower(), [])
        if len(found) > 1:
            problems.append(
                f"field {name!r} matches several columns ({', '.join(found)}): "
                f"name one with the field's {SQL_NAME!r}"
            )
        out[name] = found[0] if len(found) == 1 else None
    return out, problems


def _sql_type(column: sa.Column[Any], dialect: Dialect) -> str:
    try:
        return str(column.type.compile(dialect=dialect))
    except Exception:  # a type the dialect cannot render: its class name
        return type(column.type).__name__


def conform(
    cfg: SqlTable,
    table: sa.Table,
    candidates: list[sa.Column[Any]],
    key: list[str],
    contract: DatasetContract,
    *,
    mapping: Mapping,
    dialect: Dialect,
) -> TableContract:
    """Check ``table`` against ``contract`` and plan its conversion (every problem at once)."""
    record = contract.record_schema
    codec = JsonToAvro(record, native=True, key_fields=list(contract.key_fields))
    where = f"table {cfg.table!r}"
    ds = contract.name
    fields = list(record.get("fields", []))
    by_name = {c.name: c for c in candidates}
    matched, problems = match_columns(fields, list(by_name))
    problems = [f"{where}: {p}" for p in problems]
    warnings: list[str] = []
    columns: list[Column] = []
    plan: list[tuple[str, str | None, Converter]] = []
    for f in fields:
        name = f["name"]
        found, nullable = branches(codec, f["type"])
        label = type_label(codec, f["type"])
        col_name = matched.get(name)
        if col_name is None:
            if "default" in f or nullable:
                default = f.get("default")
                plan.append((name, None, _constant(default)))
                shown = json.dumps(default, ensure_ascii=False)
                warnings.append(
                    f"field {name!r} of dataset {ds} has no column in {where}: published as {shown}"
                )
            else:
                wanted = f.get(SQL_NAME) or name
                problems.append(
                    f"{where}: field {name!r} ({label}) of dataset {ds} is required and has no "
                    f"column; expected a column named {wanted!r}"
                )
            continue
        col = by_name[col_name]
        sql_type = _sql_type(col, dialect)
        kind, col_scale = column_kind(col.type, mapping(col.type))
        kinds = {_kind(b) for b in found}
        fits = [b for b in found if kind is not None and kind in _ACCEPTS.get(_kind(b), ())]
        if not fits:
            expected = " or ".join(
                dict.fromkeys(_EXPECTED.get(_kind(b), f"a column for {_label(b)}") for b in found)
            )
            problems.append(
                f"{where}: column {col_name!r} ({sql_type}) cannot feed field {name!r} "
                f"({label}) of dataset {ds}: expected {expected or 'no value'}"
            )
            continue
        if kind in ("decimal", "integer") and col_scale is not None:
            scales = [s for s in (_scale(b) for b in fits) if s is not None]
            if scales and col_scale > max(scales):
                problems.append(
                    f"{where}: column {col_name!r} ({sql_type}) has {col_scale} digits after "
                    f"the point, more than field {name!r} ({label}) of dataset {ds} keeps "
                    f"({max(scales)})"
                )
                continue
        if isinstance(col.type, sa.Enum) and col.type.enums and "enum" in kinds:
            symbols = {s for b in fits if _kind(b) == "enum" for s in b.get("symbols", [])}
            outside = [e for e in col.type.enums if e not in symbols]
            if outside:
                warnings.append(
                    f"column {col_name!r} can hold {', '.join(outside)}, which are not symbols "
                    f"of field {name!r}: such rows go to the DLQ"
                )
        is_key = col_name in key
        fills_null = "default" in f and not nullable  # NULL in the column: the default
        if col.nullable and not is_key and not nullable and not fills_null:
            warnings.append(
                f"column {col_name!r} allows NULL but field {name!r} of dataset {ds} does not: "
                "rows where it is NULL go to the DLQ"
            )
        convert = codec.field(name)
        pre: Converter | None = None
        if kind in ("json", "text") and kinds & _STRUCTURED and not kinds & _TEXTUAL:
            pre = _parse_json(name, label)
        elif kind == "json" and "string" in kinds:
            pre = _json_text
        elif kind == "uuid":
            pre = str
        elif isinstance(col.type, sa.CHAR) and "enum" in kinds:
            pre = _rstrip
        if pre is not None:
            convert = _chain(pre, convert)
        if fills_null:
            convert = _or_default(convert, f["default"])
        plan.append((name, col_name, convert))
        columns.append(
            Column(
                name=col_name,
                field=name,
                sql_type=sql_type,
                avro_type=f["type"],
                nullable=nullable,
                primary_key=is_key,
            )
        )
    # the key: the dataset's key fields are the table's key columns
    key_fields = list(contract.key_fields)
    key_columns = [matched.get(k) for k in key_fields]
    if not key:
        problems.append(
            f"{where} has no primary key, and dataset {ds} is keyed by "
            f"{', '.join(key_fields)}: add a primary key or name the key columns with 'key:'"
        )
    elif set(key_columns) != set(key):
        pairs = ", ".join(
            f"{k} -> {'no column' if c is None else 'column ' + c}"
            for k, c in zip(key_fields, key_columns, strict=True)
        )
        problems.append(
            f"{where}: key ({', '.join(key)}) does not match dataset {ds}'s key ({pairs})"
        )
    published = {c.name for c in columns}
    used = {c for c in (cfg.cursor, cfg.deleted_flag) if c}
    hidden = [c for c in by_name if c in used and c not in published]
    for col_name in by_name:
        if col_name in published:
            continue
        role = ""
        if col_name == cfg.cursor:
            role = " (read as the cursor only)"
        elif col_name == cfg.deleted_flag:
            role = " (read as the soft-delete flag only)"
        warnings.append(f"column {col_name!r} is not part of dataset {ds}: not published{role}")
    if problems:
        raise ContractError(problems)
    return TableContract(cfg.table, columns, hidden, plan, warnings)
