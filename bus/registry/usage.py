"""Who uses a schema subject, and the delete that refuses a subject in use.

A subject ``<topic>-value`` is in use when a registered connector writes (source) or reads
(sink) its topic, when a catalogued dataset's publishing unit writes it, or when a roll-up
route of a dataset reads it (child topic) or writes it (parent topic). Soft-deleting it would
leave them without a schema: ``lgsp schema delete`` and ``DELETE /subjects/...`` refuse unless
forced. Both call ``delete_subject``; this module is the one answer to "who uses it".
"""

from __future__ import annotations

from dataclasses import dataclass

from bus.catalog.datasets import dataset_topics, list_datasets
from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.registry.errors import SubjectInUseError
from bus.registry.store import Registry, check_subject
from bus.routes.plan import all_routes


@dataclass(frozen=True)
class SubjectUse:
    """One user of a subject: ``kind`` (connector, dataset, route), its name, and whether it
    writes or reads the subject's topic."""

    kind: str
    name: str
    access: str

    def __str__(self) -> str:
        return f"{self.kind} {self.name} ({self.access})"


def subject_users(settings: Settings, subject: str) -> list[SubjectUse]:
    """Every connector, dataset and route that writes or reads ``subject``'s topic (none for a
    subject that is not ``<topic>-value``)."""
    check_subject(subject)
    topic = subject.removesuffix("-value")
    if topic == subject:
        return []
    uses: list[SubjectUse] = []
    for connector in ConnectorStore(settings).list():
        if topic in connector.topics.values():
            access = "writes" if connector.role == "source" else "reads"
            uses.append(SubjectUse("connector", connector.name, access))
    for dataset in list_datasets(settings):
        if topic in dataset_topics(settings, dataset):
            uses.append(SubjectUse("dataset", dataset.name, "writes"))
        for route in all_routes(settings, dataset.name, list(dataset.units)):
            name = f"{route.source_topic} -> {route.target_topic}"
            if route.source_topic == topic:
                uses.append(SubjectUse("route", name, "reads"))
            if route.target_topic == topic:
                uses.append(SubjectUse("route", name, "writes"))
    return list(dict.fromkeys(uses))


def delete_subject(
    registry: Registry,
    subject: str,
    version: int | None = None,
    *,
    permanent: bool = False,
    force: bool = False,
) -> list[int]:
    """``Registry.delete``, refused with ``SubjectInUseError`` (naming the users) when the
    delete would hide what users resolve: the whole subject, or its latest live version.
    ``force`` deletes anyway. A permanent delete removes only versions already soft-deleted,
    so it is never refused here."""
    if not force and not permanent and _hides_latest(registry, subject, version):
        users = subject_users(registry.settings, subject)
        if users:
            what = f"subject {subject!r}" + (f" version {version}" if version else "")
            raise SubjectInUseError(
                f"{what}: in use by {', '.join(str(u) for u in users)}; deleting it leaves "
                "them without a schema (force it with --force, in the API ?force=true)"
            )
    return registry.delete(subject, version, permanent=permanent)


def _hides_latest(registry: Registry, subject: str, version: int | None) -> bool:
    live = registry.versions(subject)
    if not live:
        return False  # nothing live to hide: Registry.delete says what is wrong
    return version is None or version == live[-1].version
