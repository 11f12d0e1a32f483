"""The registry's storage: subjects ``<topic>-value`` with numbered versions of global ids."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema
from fastavro.schema import SchemaParseException, UnknownType
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bus.config import Settings
from bus.db import session_scope
from bus.db.models import SchemaRow, Subject, SubjectVersion
from bus.errors import IncompatibleSchemaError, LgspError, SchemaError
from bus.registry.compat import check_compatibility, check_mode, parse_avro
from bus.registry.errors import (
    InvalidSubjectError,
    SchemaDeleteError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    VersionNotFoundError,
)
from bus.units.topics import parse_topic_dated

SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def subject_for(topic: str) -> str:
    return f"{topic}-value"


def check_subject(subject: str, hierarchy: str | None = None) -> str:
    """The rule for subject names, for every caller (``lgsp schema``, the API, the bus):
    1-255 letters, digits, '.', '_', '-', starting with a letter or digit. With ``hierarchy``
    (on writes), a bus topic's subject ``lgsp.<unit path>.<domain>.<name>-value`` must also
    name a real unit chain (in that hierarchy or an older one). ``InvalidSubjectError``
    otherwise."""
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        shown = subject if isinstance(subject, str) and len(subject) <= 80 else "(too long)"
        raise InvalidSubjectError(
            "subject: expected 1-255 letters, digits, '.', '_', '-' starting with a letter "
            f"or digit, got {shown!r}"
        )
    topic = subject.removesuffix("-value")
    if hierarchy is not None and topic != subject and topic.startswith("lgsp."):
        try:
            parse_topic_dated(hierarchy, topic)
        except LgspError as exc:
            raise InvalidSubjectError(f"subject: {exc}") from exc
    return subject


@dataclass(frozen=True)
class RegisteredSchema:
    subject: str
    version: int
    id: int
    schema: dict[str, Any]


def canonical_json(schema: dict[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(schema: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(schema).encode()).hexdigest()


def validate_schema(schema: dict[str, Any]) -> None:
    """Both Avro implementations must accept the schema."""
    try:
        parse_schema(schema, _write_hint=False)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError) as exc:
        raise SchemaError(f"not a valid Avro schema ({exc})") from exc
    parse_avro(schema)


class Registry:
    """Subjects, versions and ids in the control DB; parsed schemas cached by id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._by_id: dict[int, dict[str, Any]] = {}
        self._parsed: dict[int, Any] = {}
        self._lock = threading.Lock()

    # ---- reads -------------------------------------------------------------------------
    def subjects(self) -> list[tuple[str, str, int]]:
        """(subject, effective compatibility, latest version) for every subject."""
        with session_scope(self.settings) as s:
            rows = s.execute(
                select(Subject.name, Subject.compatibility, func.max(SubjectVersion.version))
                .join(
                    SubjectVersion,
                    (SubjectVersion.subject == Subject.name) & SubjectVersion.deleted_at.is_(None),
                    isouter=True,
                )
                .group_by(Subject.name, Subject.compatibility)
                .order_by(Subject.name)
            ).all()
        return [(n, c or self.settings.default_compatibility, int(v or 0)) for n, c, v in rows]

    def compatibility(self, subject: str) -> str:
        check_subject(subject)
        with session_scope(self.settings) as s:
            row = s.get(Subject, subject)
            if row is None:
                raise SubjectNotFoundError(f"subject {subject!r} is not registered")
            return row.compatibility or self.settings.default_compatibility

    def versions(self, subject: str, *, deleted: bool = False) -> list[RegisteredSchema]:
        """The subject's live versions, oldest first (with ``deleted``, soft-deleted ones too)."""
        check_subject(subject)
        query = (
            select(SubjectVersion.version, SchemaRow.id, SchemaRow.schema_json)
            .join(SchemaRow, SchemaRow.id == SubjectVersion.schema_id)
            .where(SubjectVersion.subject == subject)
            .order_by(SubjectVersion.version)
        )
        if not deleted:
            query = query.where(SubjectVersion.deleted_at.is_(None))
        with session_scope(self.settings) as s:
            rows = s.execute(query).all()
        return [RegisteredSchema(subject, v, i, json.loads(j)) for v, i, j in rows]

    def get(self, subject: str, version: int | None = None) -> RegisteredSchema:
        """A version of a subject (the latest when ``version`` is None)."""
        versions = self.versions(subject)
        if not versions:
            raise SubjectNotFoundError(
                f"subject {subject!r} has no schema: register one with "
                f"'lgsp schema register {subject} FILE.avsc'"
            )
        if version is None:
            return versions[-1]
        for item in versions:
            if item.version == version:
                return item
        raise VersionNotFoundError(
            f"subject {subject!r} has no version {version} (versions 1..{versions[-1].version})"
        )

    def latest(self, subject: str) -> RegisteredSchema:
        return self.get(subject)

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        with session_scope(self.settings) as s:
            row = s.get(SchemaRow, schema_id)
            if row is None:
                raise SchemaNotFoundError(f"schema id {schema_id} is not in the registry")
            schema = json.loads(row.schema_json)
        with self._lock:
            self._by_id[schema_id] = schema
        return schema

    def parsed_by_id(self, schema_id: int) -> Any:
        """The fastavro-parsed schema of an id (parsed once per process)."""
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            parsed = parse_schema(self.schema_by_id(schema_id))
            with self._lock:
                self._parsed[schema_id] = parsed
        return parsed

    def uses_of(self, schema_id: int) -> list[tuple[str, int]]:
        """(subject, version) of every live version that holds ``schema_id``."""
        self.schema_by_id(schema_id)
        with session_scope(self.settings) as s:
            rows = s.execute(
                select(SubjectVersion.subject, SubjectVersion.version)
                .where(SubjectVersion.schema_id == schema_id, SubjectVersion.deleted_at.is_(None))
                .order_by(SubjectVersion.subject, SubjectVersion.version)
            ).all()
        return [(subject, int(version)) for subject, version in rows]

    def find(self, subject: str, schema: dict[str, Any]) -> RegisteredSchema:
        """The live version of ``subject`` that holds ``schema`` (same canonical form)."""
        validate_schema(schema)
        text = canonical_json(schema)
        for existing in self.versions(subject):
            if canonical_json(existing.schema) == text:
                return existing
        raise SchemaNotFoundError(f"subject {subject!r} holds no version of this schema")

    def subject_ids(self, subject: str) -> set[int]:
        with session_scope(self.settings) as s:
            return set(
                s.scalars(select(SubjectVersion.schema_id).where(SubjectVersion.subject == subject))
            )

    # ---- writes ------------------------------------------------------------------------
    def check(self, subject: str, schema: dict[str, Any]) -> list[str]:
        """Compatibility problems of ``schema`` against the subject's history (none: ok)."""
        validate_schema(schema)
        history = [(v.version, v.schema) for v in self.versions(subject)]
        mode = self._mode_or_default(subject)
        return check_compatibility(schema, history, mode)

    def _mode_or_default(self, subject: str) -> str:
        with session_scope(self.settings) as s:
            row = s.get(Subject, subject)
            return (row.compatibility if row else None) or self.settings.default_compatibility

    def register(self, subject: str, schema: dict[str, Any]) -> RegisteredSchema:
        """Register a new version, or return the existing one if this schema is already there.

        An incompatible schema raises ``IncompatibleSchemaError`` with the checker's reasons,
        and nothing is stored.
        """
        check_subject(subject, self.settings.hierarchy)
        validate_schema(schema)
        text = canonical_json(schema)
        fp = fingerprint(schema)
        for existing in self.versions(subject):
            if canonical_json(existing.schema) == text:
                return existing
        problems = self.check(subject, schema)
        if not problems:
            restored = self._restore(subject, text)
            if restored is not None:
                return restored
        if problems:
            raise IncompatibleSchemaError(
                f"schema refused for {subject} ({self._mode_or_default(subject)}): "
                + " | ".join(problems)
            )
        try:
            with session_scope(self.settings) as s:
                if s.get(Subject, subject) is None:
                    s.add(Subject(name=subject, compatibility=None))
                    s.flush()
                row = s.scalars(select(SchemaRow).where(SchemaRow.fingerprint == fp)).first()
                if row is None:
                    row = SchemaRow(fingerprint=fp, schema_json=text)
                    s.add(row)
                    s.flush()
                latest = s.scalar(
                    select(func.max(SubjectVersion.version)).where(
                        SubjectVersion.subject == subject
                    )
                )
                version = int(latest or 0) + 1
                s.add(
                    SubjectVersion(
                        subject=subject,
                        version=version,
                        schema_id=row.id,
                        created_at=dt.datetime.now(dt.UTC),
                    )
                )
                schema_id = row.id
        except IntegrityError:  # a concurrent writer got there first: read what it stored
            for existing in self.versions(subject):
                if canonical_json(existing.schema) == text:
                    return existing
            raise
        return RegisteredSchema(subject, version, schema_id, json.loads(text))

    def set_compatibility(self, subject: str, mode: str) -> None:
        check_subject(subject, self.settings.hierarchy)
        mode = check_mode(mode)
        with session_scope(self.settings) as s:
            row = s.get(Subject, subject)
            if row is None:
                s.add(Subject(name=subject, compatibility=mode))
            else:
                row.compatibility = mode

    def _restore(self, subject: str, text: str) -> RegisteredSchema | None:
        """A soft-deleted version holding this schema, live again (a subject holds a schema in
        one version only), or None."""
        for existing in self.versions(subject, deleted=True):
            if canonical_json(existing.schema) == text:
                with session_scope(self.settings) as s:
                    row = s.get(SubjectVersion, (subject, existing.version))
                    if row is not None:
                        row.deleted_at = None
                return existing
        return None

    def delete(
        self, subject: str, version: int | None = None, *, permanent: bool = False
    ) -> list[int]:
        """Soft-delete a version (every version when ``version`` is None): hidden from reads
        and compatibility checks; with ``permanent``, remove versions already soft-deleted.
        Schema ids stay resolvable either way (archived records name them). Returns the
        versions deleted. (``bus.registry.usage.delete_subject`` first refuses a subject in
        use.)"""
        check_subject(subject)
        with session_scope(self.settings) as s:
            query = select(SubjectVersion).where(SubjectVersion.subject == subject)
            if version is not None:
                query = query.where(SubjectVersion.version == version)
            rows = list(s.scalars(query.order_by(SubjectVersion.version)))
            if not rows:
                if version is None:
                    raise SubjectNotFoundError(f"subject {subject!r} is not registered")
                raise VersionNotFoundError(f"subject {subject!r} has no version {version}")
            if permanent:
                live = [r.version for r in rows if r.deleted_at is None]
                if live:
                    refusal = SchemaDeleteError if version else SubjectNotSoftDeletedError
                    raise refusal(
                        f"subject {subject!r} version(s) {live} must be soft-deleted first"
                    )
                for row in rows:
                    s.delete(row)
                return [r.version for r in rows]
            live_rows = [r for r in rows if r.deleted_at is None]
            if not live_rows:
                gone = SubjectNotFoundError if version is None else VersionNotFoundError
                raise gone(f"subject {subject!r} is already soft-deleted")
            now = dt.datetime.now(dt.UTC)
            for row in live_rows:
                row.deleted_at = now
            return [r.version for r in live_rows]
