"""The dataset catalogue: one authoritative publisher per dataset, owned attributes, search.

A dataset file (``lgsp dataset publish FILE.yaml``) names the dataset, its publisher agency,
the units that publish it, the record schema (``.avsc``), the PII fields, a description in
Vietnamese and English, the legal basis and the update frequency. Publishing registers the
envelope-wrapped schema under the subject of every publishing unit's topic.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError

from bus.catalog._common import agency_name_problem, fold
from bus.catalog.agencies import ensure_agency
from bus.catalog.errors import InvalidFieldsError
from bus.catalog.models import Dataset
from bus.config import Settings
from bus.context import Context
from bus.db import retry_conflicts, session_scope
from bus.envelope import envelope_schema, load_record_schema
from bus.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    FatalError,
    IncompatibleSchemaError,
    LgspError,
    NotFoundError,
    RetriableError,
)
from bus.registry import subject_for
from bus.timeutil import as_utc, utcnow
from bus.units import DatasetName, load_hierarchy, topic_name
from connectors.errors import FieldError

Frequency = Literal[
    "continuous", "hourly", "daily", "weekly", "monthly", "quarterly", "yearly", "on-demand"
]

# Names that mean the same personal attribute (after folding accents and case).
SYNONYMS: dict[str, str] = {
    "dob": "birth_date",
    "birthdate": "birth_date",
    "birthday": "birth_date",
    "date_of_birth": "birth_date",
    "ngay_sinh": "birth_date",
    "ngaysinh": "birth_date",
    "cccd": "citizen_id",
    "so_cccd": "citizen_id",
    "cmnd": "citizen_id",
    "so_dinh_danh": "citizen_id",
    "ma_dinh_danh": "citizen_id",
    "national_id": "citizen_id",
    "personal_id": "citizen_id",
    "ho_ten": "full_name",
    "hoten": "full_name",
    "ho_va_ten": "full_name",
    "dia_chi": "address",
    "diachi": "address",
    "phone_number": "phone",
    "so_dien_thoai": "phone",
    "dien_thoai": "phone",
    "sdt": "phone",
    "mobile": "phone",
}


# ---- the dataset file ---------------------------------------------------------------------


class Description(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    vi: str = Field(min_length=1)
    en: str = Field(min_length=1)


class DatasetFile(BaseModel):
    """The YAML a publisher writes; every problem is reported at once."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    name: DatasetName
    publisher: str
    publisher_display: str | None = None
    units: list[str] = Field(min_length=1)
    schema_file: str = Field(alias="schema", min_length=1)
    key: list[str] | None = None
    pii: list[str] = Field(default_factory=list)
    description: Description
    legal_basis: str = Field(min_length=1)
    frequency: Frequency

    @field_validator("publisher")
    @classmethod
    def _publisher(cls, value: str) -> str:
        problem = agency_name_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("units", mode="before")
    @classmethod
    def _unit_codes_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value

    @field_validator("units")
    @classmethod
    def _units_distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a unit appears twice")
        return value


@dataclass(frozen=True)
class _DatasetFields:
    """What a dataset file sets, as stored in its catalogue row."""

    name: str
    publisher: str
    units: list[str]
    schema_file: str
    record_schema: dict[str, Any]
    fields: list[str]
    pii: list[str]
    key_fields: list[str]
    description_vi: str
    description_en: str
    legal_basis: str
    frequency: str


# The row columns a publish writes from the file (name and publisher identify the row).
FILE_COLUMNS = tuple(f.name for f in dataclass_fields(_DatasetFields))[2:]


@dataclass(frozen=True)
class DatasetSpec(_DatasetFields):
    """A validated dataset file with its resolved record schema."""

    publisher_display: str | None = None


def _error_lines(exc: ValidationError) -> list[FieldError]:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(FieldError(loc, msg))
    return lines


def resolve_schema_path(settings: Settings, value: str, base: Path | None) -> Path | None:
    """The schema file: absolute, or relative to the dataset file, the working folder, or
    ``schemas_dir`` (by file name)."""
    path = Path(value)
    if path.is_absolute():
        return path if path.is_file() else None
    candidates = [Path.cwd() / path, settings.schemas_dir / path, settings.schemas_dir / path.name]
    if base is not None:
        candidates.insert(0, base / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    return None


def schema_pii_fields(record_schema: dict[str, Any]) -> list[str]:
    """Top-level fields tagged ``"pii": true`` in the record schema."""
    return [f["name"] for f in record_schema.get("fields", []) if f.get("pii") is True]


def parse_dataset(
    settings: Context | Settings,
    data: Any,
    *,
    base: Path | None = None,
    where: str = "dataset file",
) -> DatasetSpec:
    """Validate a dataset file's content: fields, units, schema, PII and key fields."""
    ctx = Context.of(settings)
    settings = ctx.settings
    if not isinstance(data, dict):
        raise ConfigurationError(f"{where}: expected a mapping of keys (name, publisher, ...)")
    problems: list[FieldError] = []
    model: DatasetFile | None = None
    try:
        model = DatasetFile.model_validate(data)
    except ValidationError as exc:
        problems += _error_lines(exc)
    bad_locs = {p.field.split(".")[0] for p in problems}

    # units: checked against the configured hierarchy, each one
    units = data.get("units")
    if "units" not in bad_locs and isinstance(units, list):
        hierarchy = ctx.configured_hierarchy
        for index, unit in enumerate(units):
            if str(unit) not in hierarchy:
                problems.append(
                    FieldError(
                        f"units.{index}",
                        f"unit {str(unit)!r} is not in the administrative "
                        f"hierarchy {settings.hierarchy!r}",
                    )
                )

    # schema: found, valid, a record
    record: dict[str, Any] | None = None
    schema_value = data.get("schema")
    if "schema" not in bad_locs and isinstance(schema_value, str):
        found = resolve_schema_path(settings, schema_value.strip(), base)
        if found is None:
            problems.append(
                FieldError(
                    "schema",
                    f"file {schema_value!r} not found (looked next to the dataset file, "
                    "in the working folder and in schemas_dir)",
                )
            )
        else:
            try:
                record = load_record_schema(found)
            except LgspError as exc:
                problems.append(FieldError("schema", str(exc)))
            else:
                if record.get("type") != "record":
                    problems.append(FieldError("schema", "expected an Avro record schema"))
                    record = None

    fields: list[str] = []
    pii: list[str] = []
    keys: list[str] = []
    if record is not None:
        fields = [f["name"] for f in record.get("fields", [])]
        for option in ("pii", "key"):
            listed = data.get(option)
            if option in bad_locs or not isinstance(listed, list):
                continue
            unknown = [str(n) for n in listed if n not in fields]
            if unknown:
                problems.append(
                    FieldError(
                        option,
                        f"{', '.join(unknown)} not a field of {record.get('name')} "
                        f"(fields: {', '.join(fields)})",
                    )
                )
        listed_pii = [n for n in data.get("pii") or [] if n in fields]
        pii = [f for f in fields if f in set(listed_pii) | set(schema_pii_fields(record))]
        declared = data.get("key") or record.get("primary_key") or fields[:1]
        keys = [str(k) for k in declared if k in fields] if isinstance(declared, list) else []
        if not keys:
            problems.append(
                FieldError("key", "expected the record's key fields (or 'primary_key' in schema)")
            )

    if problems or model is None or record is None:
        raise InvalidFieldsError(problems or [FieldError("", "invalid")], where)
    return DatasetSpec(
        name=model.name,
        publisher=model.publisher,
        publisher_display=model.publisher_display,
        units=list(model.units),
        schema_file=model.schema_file,
        record_schema=record,
        fields=fields,
        pii=pii,
        key_fields=keys,
        description_vi=model.description.vi,
        description_en=model.description.en,
        legal_basis=model.legal_basis,
        frequency=model.frequency,
    )


def load_dataset_file(settings: Context | Settings, path: Path) -> DatasetSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read dataset file {path} ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigurationError(f"{path.name}: not valid YAML{at}") from None
    return parse_dataset(settings, data, base=path.parent, where=path.name)


# ---- attribute ownership ------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """A field that collects an attribute another dataset already owns."""

    severity: str
    dataset: str
    field: str
    owner_dataset: str
    owner_agency: str
    owner_field: str

    @property
    def message(self) -> str:
        return (
            f"{self.dataset}.{self.field}: attribute {self.owner_field!r} is owned by dataset "
            f"{self.owner_dataset} (publisher {self.owner_agency}); reuse it through a grant "
            "instead of collecting it again"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"message": self.message}


def _tokens(name: str) -> list[str]:
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return [t for t in re.split(r"[^a-z0-9]+", fold(name)) if t]


def canonical_attribute(name: str) -> str:
    """A field name folded, snake-cased and mapped through the synonyms (``NgaySinh`` →
    ``birth_date``)."""
    joined = "_".join(_tokens(name))
    return SYNONYMS.get(joined, joined)


def _candidates(name: str) -> list[str]:
    """The field's canonical name, then those of its role-prefixed tails
    (``applicant_birth_date`` → ``birth_date``)."""
    tokens = _tokens(name)
    out = []
    for start in range(len(tokens)):
        tail = "_".join(tokens[start:])
        out.append(SYNONYMS.get(tail, tail))
    return out


def check_attribute_ownership(
    settings: Settings, dataset_name: str, field_names: list[str]
) -> list[Finding]:
    """Fields of ``dataset_name`` (or of a connector's table feeding it) that collect a
    personal attribute an earlier dataset owns. Key fields of the owner (identifiers such as
    ``citizen_id``) are references, not collection, and are not flagged."""
    with session_scope(settings) as s:
        rows = s.scalars(select(Dataset).order_by(Dataset.created_at, Dataset.name)).all()
        self_row = s.get(Dataset, dataset_name)
        cutoff = as_utc(self_row.created_at) if self_row is not None else None
        owners: dict[str, tuple[str, str, str]] = {}
        for row in rows:
            if row.name == dataset_name:
                continue
            if cutoff is not None and as_utc(row.created_at) > cutoff:
                continue
            for attr in row.pii:
                if attr in row.key_fields:
                    continue
                owners.setdefault(canonical_attribute(attr), (row.name, row.publisher, attr))
    findings = []
    for name in field_names:
        for candidate in _candidates(name):
            owner = owners.get(candidate)
            if owner is not None:
                findings.append(Finding("warning", dataset_name, name, *owner))
                break
    return findings


# ---- reading the catalogue ----------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo(_DatasetFields):
    """A dataset of the catalogue."""

    findings: list[dict[str, Any]]
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime

    def field_docs(self) -> dict[str, str]:
        return {f["name"]: str(f.get("doc", "")) for f in self.record_schema.get("fields", [])}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("record_schema")
        data["created_at"] = self.created_at.isoformat()
        data["updated_at"] = self.updated_at.isoformat()
        return data


def _info(row: Dataset) -> DatasetInfo:
    return DatasetInfo(
        name=row.name,
        publisher=row.publisher,
        units=list(row.units),
        schema_file=row.schema_file,
        record_schema=dict(row.record_schema),
        fields=list(row.fields),
        pii=list(row.pii),
        key_fields=list(row.key_fields),
        description_vi=row.description_vi,
        description_en=row.description_en,
        legal_basis=row.legal_basis,
        frequency=row.frequency,
        findings=list(row.findings or []),
        version=row.version,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


def get_dataset(settings: Settings, name: str, option: str = "dataset") -> DatasetInfo:
    with session_scope(settings) as s:
        row = s.get(Dataset, name)
        if row is None:
            raise NotFoundError(
                f"{option}: dataset {name!r} is not in the catalogue "
                "(see 'lgsp dataset list'; publish it with 'lgsp dataset publish FILE.yaml')"
            )
        return _info(row)


def list_datasets(settings: Settings) -> list[DatasetInfo]:
    with session_scope(settings) as s:
        return [_info(r) for r in s.scalars(select(Dataset).order_by(Dataset.name)).all()]


def dataset_topics(settings: Context | Settings, info: DatasetInfo) -> list[str]:
    """The topic of every publishing unit, in the configured hierarchy."""
    hierarchy = Context.of(settings).configured_hierarchy
    return [topic_name(hierarchy, unit, info.name) for unit in info.units]


def era_topics(settings: Settings, info: DatasetInfo) -> dict[str, list[str]]:
    """The topic of every publishing unit in each hierarchy the bus has topics in (after a
    reform's cut-over: the old units' and the units that replaced them), by hierarchy."""
    from bus.units.timeline import era_names_in_force, era_units

    out: dict[str, list[str]] = {}
    for era in era_names_in_force(settings):
        h = load_hierarchy(era)
        units = era_units(settings.hierarchy, list(info.units), era, settings)
        out[era] = [topic_name(h, unit, info.name) for unit in units]
    return out


def dated_topics(settings: Settings, info: DatasetInfo) -> list[dict[str, Any]]:
    """:func:`era_topics` with dates, for an auditor: per hierarchy (its validity ``from`` /
    ``to``), each topic with its unit and the days that unit was in force in it (until the
    day before a change that ended it). A topic keeps its events after that (those published
    before a reform's cut-over was recorded, dated by their ``ts_ms``)."""
    from bus.units.timeline import load_timeline

    timeline = load_timeline(settings)

    def shown(day: dt.date | None) -> str | None:
        return day.isoformat() if day else None

    out: list[dict[str, Any]] = []
    for era, topics in era_topics(settings, info).items():
        h = timeline.hierarchy(era)
        listed = []
        for topic in topics:
            unit = h.get(topic.split(".")[-3])
            bounds = [d for d in (h.root.valid_to, unit.valid_to) if d]
            bounds += [
                c.effective - dt.timedelta(days=1)
                for c in timeline.changes_of(unit.code, era)
                if c.ends_old
            ]
            first = max((d for d in (h.root.valid_from, unit.valid_from) if d), default=None)
            last = min(bounds, default=None)
            listed.append(
                {
                    "topic": topic,
                    "unit": unit.code,
                    "name": unit.name,
                    "from": shown(first),
                    "to": shown(last),
                }
            )
        out.append(
            {
                "hierarchy": era,
                "from": shown(h.root.valid_from),
                "to": shown(h.root.valid_to),
                "topics": listed,
            }
        )
    return out


def dated_topic_lines(eras: list[dict[str, Any]]) -> list[str]:
    """:func:`dated_topics` as text: a line per hierarchy, then one per topic."""

    def span(item: dict[str, Any]) -> str:
        if item["from"] and item["to"]:
            return f"{item['from']} to {item['to']}"
        if item["to"]:
            return f"to {item['to']}"
        return f"from {item['from']}" if item["from"] else "always"

    lines: list[str] = []
    for era in eras:
        lines.append(f"{era['hierarchy']} ({span(era)}):")
        for t in era["topics"]:
            dates = "" if (t["from"], t["to"]) == (era["from"], era["to"]) else f"  ({span(t)})"
            lines.append(f"  {t['topic']}  {t['unit']} {t['name']}{dates}")
    return lines


@dataclass(frozen=True)
class SearchHit:
    dataset: str
    publisher: str
    matches: list[str] = field(default_factory=list)


def search_datasets(settings: Settings, word: str) -> list[SearchHit]:
    """Datasets whose name, description, legal basis, field names or field docs contain
    ``word`` (case and accents ignored)."""
    needle = fold(word.strip())
    if not needle:
        raise ConfigurationError("search: expected a word or a field name")
    hits = []
    for info in list_datasets(settings):
        matches = []
        if needle in fold(info.name):
            matches.append("name")
        if needle in fold(info.description_vi) or needle in fold(info.description_en):
            matches.append("description")
        if needle in fold(info.legal_basis):
            matches.append("legal_basis")
        docs = info.field_docs()
        wanted = canonical_attribute(word)
        for name in info.fields:
            if needle in fold(name) or (wanted and wanted in _candidates(name)):
                matches.append(f"field {name}")
            elif needle in fold(docs.get(name, "")):
                matches.append(f"field {name} (doc)")
        if matches:
            hits.append(SearchHit(info.name, info.publisher, matches))
    return hits


# ---- publishing ---------------------------------------------------------------------------


@dataclass
class PublishResult:
    dataset: str
    status: str  # created | updated | unchanged
    publisher: str
    subjects: list[tuple[str, int, int]]  # (subject, version, schema id)
    findings: list[Finding]
    agency_added: bool = False


def owner_refusal(name: str, owner: str, agency: str) -> ConfigurationError:
    return ConfigurationError(
        f"dataset {name} is already published by {owner}: one authoritative publisher per "
        f"dataset, so {agency} cannot publish it; ask {owner} for a grant "
        f"('lgsp grant add --dataset {name} --to {agency} ...')"
    )


@dataclass(frozen=True)
class _RowWrite:
    """What writing the catalogue row did: ``previous`` holds the columns an update replaced."""

    status: str  # created | updated | unchanged
    version: int
    agency_added: bool
    previous: dict[str, Any] | None = None


ROW_ATTEMPTS = 3


def _write_row(settings: Settings, spec: DatasetSpec, findings: list[dict[str, Any]]) -> _RowWrite:
    """Create or update the dataset's catalogue row in one transaction. A concurrent publish
    of the same dataset is met by trying again: then it is an update, or refused when the
    other publish was by another agency."""
    values: dict[str, Any] = {c: getattr(spec, c) for c in FILE_COLUMNS} | {"findings": findings}

    def write() -> _RowWrite:
        with session_scope(settings) as s:
            agency_added = ensure_agency(s, spec.publisher, spec.publisher_display)
            row = s.get(Dataset, spec.name)
            if row is not None and row.publisher != spec.publisher:
                raise owner_refusal(spec.name, row.publisher, spec.publisher)
            now = utcnow()
            if row is None:
                s.add(
                    Dataset(
                        name=spec.name,
                        publisher=spec.publisher,
                        version=1,
                        created_at=now,
                        updated_at=now,
                        **values,
                    )
                )
                return _RowWrite("created", 1, agency_added)
            previous = {c: getattr(row, c) for c in values}
            if previous | {"findings": list(row.findings or [])} == values:
                return _RowWrite("unchanged", row.version, agency_added)
            previous |= {"version": row.version, "updated_at": row.updated_at}
            for column, value in values.items():
                setattr(row, column, value)
            row.version = row.version + 1
            row.updated_at = now
            return _RowWrite("updated", row.version, agency_added, previous)

    try:  # another publish of the dataset may get there first
        return retry_conflicts(write, ROW_ATTEMPTS)
    except (IntegrityError, OperationalError) as exc:
        raise DatabaseUnavailableError(
            f"dataset {spec.name}: the catalogue did not take its row after {ROW_ATTEMPTS} tries "
            f"({type(exc).__name__}; another publish of it at the same time?); nothing was "
            "published, try again"
        ) from exc


def _undo_row(settings: Settings, name: str, written: _RowWrite) -> str:
    """Set the catalogue row back to before ``written``; says what became of it."""
    if written.status == "unchanged":
        return "the catalogue entry was already as in the file"
    try:
        with session_scope(settings) as s:
            row = s.get(Dataset, name)
            if row is None or row.version != written.version:
                return "the catalogue entry was changed meanwhile by another publish; left as is"
            if written.previous is None:
                s.delete(row)
                return "the catalogue entry was removed again"
            for column, value in written.previous.items():
                setattr(row, column, value)
            return f"the catalogue entry was set back to version {row.version}"
    except Exception as exc:  # the database failing again: say what is left
        return (
            f"the catalogue entry could NOT be set back ({type(exc).__name__}): it describes "
            "a schema that is not registered under every subject until you publish again"
        )


def _registration_failed(
    settings: Settings,
    spec: DatasetSpec,
    written: _RowWrite,
    subject: str,
    registered: list[str],
    exc: Exception,
) -> LgspError:
    """The error of a publish whose schema registration failed after the row was written."""
    undone = _undo_row(settings, spec.name, written)
    reason = str(exc) if isinstance(exc, LgspError) else type(exc).__name__
    left = (
        f"; already registered (kept, reused by the next publish): {', '.join(registered)}"
        if registered
        else ""
    )
    message = (
        f"dataset {spec.name}: registering the schema under {subject} failed ({reason}); "
        f"{undone}{left}. Publish again to finish"
    )
    if isinstance(exc, IncompatibleSchemaError):
        return IncompatibleSchemaError(message)
    if isinstance(exc, RetriableError | OperationalError):
        return DatabaseUnavailableError(message)
    if isinstance(exc, ConfigurationError):
        return ConfigurationError(message)
    return FatalError(message)


def publish_spec(
    settings: Context | Settings, spec: DatasetSpec, *, strict: bool = False
) -> PublishResult:
    """Register a dataset (or update it, for its own publisher).

    Everything is checked first: nothing is stored when the publisher differs, a schema is
    incompatible, or ``strict`` and an attribute is owned. Then the catalogue row is written
    (which claims the dataset for its publisher) and the envelope schema is registered under
    the subject of every publishing unit's topic. When a registration fails, the row is set
    back (removed, or its previous version restored) and the error names the subjects that
    were registered already; publishing again finishes the job.
    """
    ctx = Context.of(settings)
    settings = ctx.settings
    with session_scope(settings) as s:
        existing = s.get(Dataset, spec.name)
        if existing is not None and existing.publisher != spec.publisher:
            raise owner_refusal(spec.name, existing.publisher, spec.publisher)
    findings = check_attribute_ownership(settings, spec.name, spec.fields)
    if strict and findings:
        raise ConfigurationError("refused (--strict): " + "; ".join(f.message for f in findings))
    hierarchy = ctx.configured_hierarchy
    registry = ctx.registry
    envelope = envelope_schema(spec.record_schema, settings.schemas_dir)
    subjects = [subject_for(topic_name(hierarchy, unit, spec.name)) for unit in spec.units]
    problems = []
    for subject in subjects:
        problems += [f"{subject}: {p}" for p in registry.check(subject, envelope)]
    if problems:
        raise IncompatibleSchemaError("schema refused: " + " | ".join(problems))
    written = _write_row(settings, spec, [f.to_dict() for f in findings])
    registered = []
    for subject in subjects:
        try:
            registered.append(registry.register(subject, envelope))
        except Exception as exc:
            done = [r.subject for r in registered]
            raise _registration_failed(settings, spec, written, subject, done, exc) from exc
    return PublishResult(
        dataset=spec.name,
        status=written.status,
        publisher=spec.publisher,
        subjects=[(r.subject, r.version, r.id) for r in registered],
        findings=findings,
        agency_added=written.agency_added,
    )


def publish_dataset(
    settings: Context | Settings, path: Path, *, strict: bool = False
) -> PublishResult:
    """``lgsp dataset publish FILE.yaml``."""
    ctx = Context.of(settings)
    return publish_spec(ctx, load_dataset_file(ctx, path), strict=strict)
