"""A write the control database keeps refusing becomes a bus error without personal data."""

from __future__ import annotations

import pytest
from sqlalchemy import insert

from bus.archive.archiver import APPEND_ATTEMPTS, Archiver
from bus.archive.models import ArchiveEntry
from bus.config import Settings
from bus.db import open_engine
from bus.errors import FatalError
from tests.unit.archive._synthetic import TOPIC, messages

CITIZEN_ID = "079123456789"


def test_a_persistent_conflict_is_a_fatal_error_without_values(
    offline_settings: Settings,
) -> None:
    batch = messages(3)
    for m in batch:
        m.value["key"] = f'{{"citizen_id":"{CITIZEN_ID}"}}'
    # position 1 of the chain is taken although no chain head records it: every try conflicts
    with open_engine(offline_settings).begin() as conn:
        conn.execute(
            insert(ArchiveEntry.__table__).values(
                topic=TOPIC,
                kafka_partition=0,
                seq=1,
                epoch=0,
                kafka_offset=999,
                dataset="tthc.dossier",
                unit_path="79.760.26734",
                event_id="x",
                op="c",
                ts_ms=0,
                event_key=None,
                source_unit="26734",
                schema_id=7,
                payload=b"",
                entry_hash=b"\x00" * 32,
                archived_ms=0,
            )
        )
    with pytest.raises(FatalError) as err:
        Archiver(offline_settings).append(batch)
    text = str(err.value)
    assert f"{TOPIC}[0]" in text and str(APPEND_ATTEMPTS) in text and "IntegrityError" in text
    assert CITIZEN_ID not in text and "payload" not in text.lower()
    # nothing chained to it either: the database error (with the SQL parameters) is not kept
    assert err.value.__cause__ is None and err.value.__context__ is None
