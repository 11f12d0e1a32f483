"""Topic names: ``lgsp.<unit path>.<domain>.<dataset>``, e.g. ``lgsp.79.760.26734.tthc.dossier``.

The unit path is the chain of unit codes from the city down, so that broker ACLs on a topic
prefix can keep a ward from writing another ward's topics.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from bus.errors import ConfigurationError, InvalidNameError
from bus.units.hierarchy import Hierarchy, Unit

TOPIC_PREFIX = "lgsp"
MAX_DATASET_NAME = 100
MAX_TOPIC_NAME = 249  # Kafka's limit
_PART = re.compile(r"[a-z][a-z0-9_]*")


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def validate_dataset_name(name: object) -> str:
    """Check ``<domain>.<name>``: two parts, lowercase ASCII letters, digits and ``_``,
    each starting with a letter. Returns the name; raises ``InvalidNameError`` with the reason."""
    if not isinstance(name, str):
        raise InvalidNameError(f"dataset name: expected a string, got {type(name).__name__}")
    what = f"dataset name {_shown(name)}"
    if not name:
        raise InvalidNameError("dataset name: must not be empty; expected '<domain>.<name>'")
    if len(name) > MAX_DATASET_NAME:
        raise InvalidNameError(f"{what}: longer than {MAX_DATASET_NAME} characters")
    if not name.isascii():
        raise InvalidNameError(
            f"{what}: only ASCII letters a-z, digits and '_' are allowed (no accented letters)"
        )
    bad = sorted({ch for ch in name if not (ch.islower() or ch.isdigit() or ch in "._")})
    if any(ch.isupper() for ch in bad):
        raise InvalidNameError(f"{what}: must be lowercase")
    if bad:
        shown = " ".join(repr(ch) for ch in bad)
        raise InvalidNameError(
            f"{what}: character(s) {shown} not allowed; use a-z, 0-9, '_' and one '.'"
        )
    parts = name.split(".")
    if len(parts) == 1:
        raise InvalidNameError(f"{what}: missing the domain; expected '<domain>.<name>'")
    if len(parts) > 2:
        raise InvalidNameError(f"{what}: expected exactly one '.' between domain and name")
    for label, part in zip(("domain", "name"), parts, strict=True):
        if not part:
            raise InvalidNameError(f"{what}: the {label} part is empty")
        if not _PART.fullmatch(part):
            raise InvalidNameError(f"{what}: the {label} part must start with a letter")
    return name


def _dataset_name_field(value: str) -> str:
    try:
        return validate_dataset_name(value)
    except InvalidNameError as exc:  # pydantic reports it with the field's location
        raise ValueError(str(exc)) from None


DatasetName = Annotated[str, AfterValidator(_dataset_name_field)]
"""A pydantic field type: a dataset name checked by :func:`validate_dataset_name`."""


def topic_name(h: Hierarchy, unit: str | int, dataset: str) -> str:
    """``lgsp.<path of unit>.<dataset>``; unknown unit or bad dataset name: a clear error."""
    validate_dataset_name(dataset)
    topic = f"{TOPIC_PREFIX}.{h.path(unit)}.{dataset}"
    if len(topic) > MAX_TOPIC_NAME:
        raise InvalidNameError(f"topic name longer than Kafka's {MAX_TOPIC_NAME} characters")
    return topic


def parse_topic(h: Hierarchy, topic: str) -> tuple[Unit, str]:
    """The publishing unit and dataset of a topic name; refuses a wrong prefix, a bad dataset
    name, an unknown unit, and a unit path that is not the unit's chain from the root."""
    codes, dataset = split_topic(topic)
    what = f"topic {_shown(topic)}"
    unit = h.get(codes[-1])
    expected = h.path(unit.code)
    if ".".join(codes) != expected:
        raise InvalidNameError(
            f"{what}: unit path {'.'.join(codes)} does not match unit {unit.code}'s path "
            f"{expected} in hierarchy {h.name!r}"
        )
    return unit, dataset


def split_topic(topic: str) -> tuple[list[str], str]:
    """The unit codes and the dataset of a topic name, without a hierarchy: refuses a wrong
    prefix, a bad dataset name and a unit path part that is not a code."""
    if not isinstance(topic, str):
        raise InvalidNameError(f"topic name: expected a string, got {type(topic).__name__}")
    what = f"topic {_shown(topic)}"
    parts = topic.split(".")
    if parts[0] != TOPIC_PREFIX:
        raise InvalidNameError(f"{what}: must start with '{TOPIC_PREFIX}.'")
    if len(parts) < 4:
        raise InvalidNameError(f"{what}: expected '{TOPIC_PREFIX}.<unit path>.<domain>.<name>'")
    codes, dataset = parts[1:-2], ".".join(parts[-2:])
    try:
        validate_dataset_name(dataset)
    except InvalidNameError as exc:
        raise InvalidNameError(f"{what}: {exc}") from exc
    for code in codes:
        if not code.isdigit():
            raise InvalidNameError(f"{what}: unit path part {_shown(code)} is not a unit code")
    return codes, dataset


def parse_topic_dated(first: str, topic: str) -> tuple[Unit, str]:
    """:func:`parse_topic` in hierarchy ``first``, else in any other shipped hierarchy (a
    topic of a unit merged away keeps its name: history is never rewritten); the error of
    ``first`` when none knows the topic."""
    from bus.units.hierarchy import available_hierarchies, load_hierarchy

    try:
        return parse_topic(load_hierarchy(first), topic)
    except ConfigurationError as exc:
        for name in available_hierarchies():
            if name != first:
                try:
                    return parse_topic(load_hierarchy(name), topic)
                except ConfigurationError:
                    continue
        raise exc from None
