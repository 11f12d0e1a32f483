"""Connector files: the common pydantic model every connector type extends.

A connector type declares ``config_model``, a subclass of ``ConnectorConfig`` that narrows
``connection`` and ``tables``. Validation reports every problem at once, each naming its field
(``tables[1].cursor: ...``) and never echoing a value. Secret fields hold references
(``${ENV}`` / ``file:``) as ``SecretStr``; they are resolved only when a connection opens.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bus.units import DatasetName, Hierarchy, topic_name
from connectors.errors import ConnectorConfigError, FieldError
from connectors.secrets import literal_secret_problem, mask

NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
MAX_NAME = 63

_UNIT_NUMBER = (
    'a unit code is text: quote it in YAML (unit: "26734"); written as a number it loses '
    "its leading zeros and matches no single code of the hierarchy"
)

Role = Literal["source", "sink"]
Mode = Literal["snapshot", "incremental"]


class Strict(BaseModel):
    """Unknown keys are errors (a typo in a file must not be ignored)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TableConfig(Strict):
    """One table (source) or target (sink) and the dataset whose topic it feeds or reads."""

    table: str = Field(min_length=1, max_length=255)
    dataset: DatasetName

    @property
    def effective_mode(self) -> str:
        """The table's ``mode``; without one, ``incremental`` when it names a ``cursor``, else
        ``snapshot`` (for the types whose tables have these keys)."""
        mode: str | None = getattr(self, "mode", None)
        return mode or ("incremental" if getattr(self, "cursor", None) else "snapshot")


class LenientTable(TableConfig):
    """A table entry of an unknown connector type: its own keys cannot be checked."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class ConnectorConfig(Strict):
    """The keys every connector file has (see the design notes, "File formats users write")."""

    name: str = Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)
    type: str = Field(min_length=1)
    role: Role
    agency: str = Field(min_length=1, max_length=255)
    unit: str = Field(pattern=r"^\d{1,10}$")
    system: str | None = Field(None, description="source system name (default: the name)")
    description: str | None = None
    schedule: str | None = Field(None, description="cron expression for the Airflow DAG")
    batch_size: int | None = Field(None, ge=1, le=100_000)
    connection: Any
    tables: list[TableConfig] = Field(min_length=1)

    @field_validator("unit", mode="before")
    @classmethod
    def _unit_text(cls, value: Any, info: ValidationInfo) -> Any:
        """A unit code is text of digits with a fixed width per level (``"01"``, ``"00001"``);
        a YAML number has lost its leading zeros, so it is taken only when exactly one code of
        the hierarchy has that value, and refused otherwise."""
        if not isinstance(value, int) or isinstance(value, bool):
            return value
        hierarchy = (info.context or {}).get("hierarchy")
        if hierarchy is None:
            raise ValueError(_UNIT_NUMBER)
        matches = [u.code for u in hierarchy if u.code.isdigit() and int(u.code) == value]
        if len(matches) != 1:
            raise ValueError(_UNIT_NUMBER)
        return matches[0]

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError("expected a cron expression such as '*/5 * * * *'")
        return value

    # ---- derived -------------------------------------------------------------------------
    @property
    def source_system(self) -> str:
        return self.system or self.name

    def topics(self, hierarchy: Hierarchy) -> dict[str, str]:
        """``{table: topic}``: a source's topics to publish to, a sink's to read."""
        return {t.table: topic_name(hierarchy, self.unit, t.dataset) for t in self.tables}

    def problems(self) -> list[FieldError]:
        """Cross-field problems once every field is valid (subclasses extend)."""
        out: list[FieldError] = []
        seen: dict[str, int] = {}
        datasets: dict[str, int] = {}
        for i, t in enumerate(self.tables):
            if t.table in seen:
                first = seen[t.table]
                out.append(
                    FieldError(
                        f"tables[{i}].table", f"{t.table!r} is listed twice (tables[{first}])"
                    )
                )
            seen.setdefault(t.table, i)
            if self.role == "source" and t.dataset in datasets:
                out.append(
                    FieldError(
                        f"tables[{i}].dataset",
                        f"tables[{datasets[t.dataset]}] already publishes {t.dataset!r}; "
                        "a topic has one source table",
                    )
                )
            datasets.setdefault(t.dataset, i)
        return out

    def stored(self) -> dict[str, Any]:
        """The form kept in the control database: secrets stay references (never resolved)."""
        return _plain(
            self.model_dump(mode="python", exclude_none=True, exclude_unset=True, by_alias=True)
        )

    def masked(self) -> dict[str, Any]:
        """The form shown to people: every secret masked."""
        data = self.model_dump(mode="python", exclude_none=True, exclude_unset=True, by_alias=True)
        return _plain(data, masked=True)


def _plain(value: Any, *, masked: bool = False, key: str = "") -> Any:
    if isinstance(value, SecretStr):
        raw = value.get_secret_value()
        return mask(raw, is_url=key.endswith("url")) if masked else raw
    if isinstance(value, Mapping):
        return {k: _plain(v, masked=masked, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, masked=masked, key=key) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def secret_reference(value: SecretStr | None, *, is_url: bool) -> SecretStr | None:
    """Validator helper: refuse a literal secret (a reference must be stored instead)."""
    if value is None:
        return None
    problem = literal_secret_problem(value.get_secret_value(), is_url=is_url)
    if problem:
        raise ValueError(problem)
    return value


# ---- error formatting -----------------------------------------------------------------------


def _loc(parts: tuple[Any, ...]) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(file)"


_MESSAGES = {
    "missing": "required",
    "extra_forbidden": "unknown key",
}


def validation_messages(exc: ValidationError) -> list[FieldError]:
    """One line per problem naming the field; the value itself is never shown."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = _MESSAGES.get(err["type"], err["msg"])
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "name":
            msg = "lowercase letters, digits and single dashes, starting with a letter"
        elif err["type"] == "string_pattern_mismatch" and loc and loc[-1] == "unit":
            msg = "a unit code (digits only), quoted in YAML"
        line = FieldError(_loc(loc), msg)
        if line not in lines:
            lines.append(line)
    return lines


def validate_model(
    model: type[ConnectorConfig],
    data: Mapping[str, Any],
    *,
    hierarchy: Hierarchy | None = None,
    extra_errors: list[FieldError] | None = None,
) -> ConnectorConfig:
    """Validate ``data`` with ``model``; every problem at once as ``ConnectorConfigError``."""
    errors = list(extra_errors or [])
    name = data.get("name") if isinstance(data.get("name"), str) else None
    try:
        config = model.model_validate(dict(data), context={"hierarchy": hierarchy})
    except ValidationError as exc:
        errors.extend(validation_messages(exc))
        raise ConnectorConfigError(errors, name=name) from None
    errors.extend(config.problems())
    if hierarchy is not None:
        errors.extend(_topic_problems(config, hierarchy))
    if errors:
        raise ConnectorConfigError(errors, name=name)
    return config


def _topic_problems(config: ConnectorConfig, hierarchy: Hierarchy) -> list[FieldError]:
    from bus.errors import LgspError

    try:
        hierarchy.get(config.unit)
    except LgspError as exc:
        return [FieldError("unit", str(exc))]
    out = []
    for i, t in enumerate(config.tables):
        try:
            topic_name(hierarchy, config.unit, t.dataset)
        except LgspError as exc:
            out.append(FieldError(f"tables[{i}].dataset", str(exc)))
    return out


def read_file(path: Path) -> dict[str, Any]:
    """The YAML mapping of a connector file (``ConnectorConfigError`` when it is not one)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConnectorConfigError(
            [FieldError("file", f"cannot read {path} ({exc.strerror or exc})")]
        ) from exc
    return parse_text(text)


def parse_text(text: str) -> dict[str, Any]:
    """The YAML mapping of a connector file's text (JSON is YAML too); the error names the
    line, never the text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConnectorConfigError([FieldError("file", f"not valid YAML{where}")]) from exc
    return file_mapping(data)


def file_mapping(data: Any) -> dict[str, Any]:
    """``data`` read from a connector file, or the error that says it must be a mapping."""
    if not isinstance(data, dict):
        raise ConnectorConfigError(
            [FieldError("file", "expected a mapping of keys (name, type, role, ...)")]
        )
    return data


class LenientConfig(ConnectorConfig):
    """The common keys only (used to report other errors beside an unknown type)."""

    tables: list[LenientTable] = Field(min_length=1)  # type: ignore[assignment]
