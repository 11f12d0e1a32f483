"""Reconcile a source connector's table against a sink connector's copy; repair; re-check."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bus import sync
from bus.config import Settings
from bus.connector_service.registration import register
from bus.errors import ConfigurationError, NotFoundError
from bus.reconcile.core import Options
from bus.reconcile.service import pairs_for_manifest, run_reconcile
from bus.reconcile.store import get_report, history
from bus.timeutil import to_epoch_ms
from tests.integration.reconcile.conftest import Db, dossier
from tests.integration.reconcile.support import publish_ward_dataset

pytestmark = pytest.mark.integration


def _connector(name: str, role: str, url: str, table: str, dataset: str, **extra: Any) -> dict:
    entry: dict[str, Any] = {"table": table, "dataset": dataset, **extra}
    return {
        "name": name,
        "type": url.split(":", 1)[0].split("+", 1)[0],
        "role": role,
        "agency": "ubnd-phuong-tan-dinh",
        "unit": "26734",
        "connection": {"url": url},
        "tables": [entry],
    }


def _setup(
    settings: Settings, dbs: Callable[[str], Db], unique: str, src_kind: str, sink_kind: str
) -> tuple[Db, str, Db, str, str, str]:
    src, tgt = dbs(src_kind), dbs(sink_kind)
    s_name = src.create(f"rc_src_{unique}")
    t_name = f"rc_sink_{unique}"
    tgt.made.append(t_name)
    src.insert(s_name, [dossier(i) for i in range(1, 201)])
    dataset = f"tthc.rc_{unique}"
    source, sink = f"rc-src-{unique}", f"rc-sink-{unique}"
    register(settings, _connector(source, "source", src.url, s_name, dataset))
    register(settings, _connector(sink, "sink", tgt.url, t_name, dataset))
    sync.run(settings, source)
    sync.run(settings, sink)
    return src, s_name, tgt, t_name, source, sink


def _sink_row(i: int) -> dict[str, Any]:
    row = dossier(i)
    row["cap_nhat"] = row["cap_nhat"].astimezone(dt.UTC).replace(tzinfo=None)
    return row


@pytest.mark.parametrize(
    ("src_kind", "sink_kind"), [("postgresql", "mysql"), ("sqlite", "postgresql")]
)
def test_reconcile_repair_then_agree(
    settings: Settings, dbs: Callable[[str], Db], unique: str, src_kind: str, sink_kind: str
) -> None:
    src, s_name, tgt, t_name, source, sink = _setup(settings, dbs, unique, src_kind, sink_kind)
    first = run_reconcile(settings, source, s_name, sink)
    assert first.agree, first.to_dict()
    assert first.source.rows == first.target.rows == 200
    assert "_lgsp_ts_ms" in first.ignored["target"]

    # differences made behind the bus's back
    tgt.delete(t_name, {"id": 5})
    tgt.delete(t_name, {"id": 6})
    tgt.insert(t_name, [_sink_row(900)])
    tgt.update(t_name, {"id": 7}, ma_ho_so="HS-sai")
    tgt.update(t_name, {"id": 8}, ghi_chu=None)
    # and one change at the source that the copy has not seen yet
    src.update(s_name, {"id": 9}, so_tien=9999)

    report = run_reconcile(settings, source, s_name, sink, repair=True)
    assert report.counts == {"missing": 2, "extra": 1, "different": 3}
    assert {d.key["id"]: d.columns for d in report.different} == {
        "7": ["ma_ho_so"],
        "8": ["ghi_chu"],
        "9": ["so_tien"],
    }
    assert report.repair is not None
    assert report.repair["published"] == 6
    assert report.repair["ops"] == {"c": 2, "u": 3, "d": 1}
    assert report.report_id is not None

    sync.run(settings, sink)
    after = run_reconcile(settings, source, s_name, sink)
    assert after.agree, after.to_dict()
    assert after.target.rows == 200

    entries = history(settings, source)
    assert [e.agree for e in entries] == [True, False, True]
    assert entries[1].repaired == 6
    assert history(settings, sink)[0].id == after.report_id
    stored = get_report(settings, report.report_id)
    assert stored is not None and stored["counts"]["missing"] == 2


def test_pii_values_are_masked(settings: Settings, dbs: Callable[[str], Db], unique: str) -> None:
    src, s_name, tgt, t_name, source, sink = _setup(settings, dbs, unique, "postgresql", "sqlite")
    tgt.update(t_name, {"id": 3}, ho_ten="Tên Khác", cccd="079999999999")
    report = run_reconcile(settings, source, s_name, sink, options=Options(pii=("ho_ten", "cccd")))
    values = report.different[0].values
    assert values == {
        "cccd": {"source": "***", "target": "***"},
        "ho_ten": {"source": "***", "target": "***"},
    }
    assert "079999999999" not in str(report.to_dict())


def test_bad_connector_input(settings: Settings, dbs: Callable[[str], Db], unique: str) -> None:
    src, s_name, tgt, t_name, source, sink = _setup(settings, dbs, unique, "sqlite", "sqlite2")
    with pytest.raises(NotFoundError, match="not registered"):
        run_reconcile(settings, f"nope-{unique}", s_name, sink)
    with pytest.raises(NotFoundError, match=r"'nope' is not a table of connector"):
        run_reconcile(settings, source, "nope", sink)
    with pytest.raises(ConfigurationError, match="is a sink, not a source"):
        run_reconcile(settings, sink, t_name, sink)
    with pytest.raises(ConfigurationError, match="is a source, not a sink"):
        run_reconcile(settings, source, s_name, source)
    pairs = [p for p in pairs_for_manifest(settings) if p["source"] == source]
    assert pairs == [
        {
            "source": source,
            "table": s_name,
            "sink": sink,
            "dataset": f"tthc.rc_{unique}",
            "schedule": "@daily",
            "repair": False,
        }
    ]


def test_soft_deletes_and_tombstones_count_as_absent(
    settings: Settings, dbs: Callable[[str], Db], unique: str
) -> None:
    """Source rows with the deleted flag set and sink rows marked deleted (on_delete: mark)
    are absent on both sides; a tombstone the source still has live is a missing row."""
    src, tgt = dbs("postgresql"), dbs("sqlite")
    s_name = src.create(f"rc_src_{unique}")
    t_name = f"rc_sink_{unique}"
    tgt.made.append(t_name)
    src.insert(s_name, [dossier(i) for i in range(1, 41)])
    dataset = f"tthc.rc_{unique}"
    source, sink = f"rc-src-{unique}", f"rc-sink-{unique}"
    register(
        settings, _connector(source, "source", src.url, s_name, dataset, deleted_flag="da_xoa")
    )
    register(settings, _connector(sink, "sink", tgt.url, t_name, dataset, on_delete="mark"))
    sync.run(settings, source)
    sync.run(settings, sink)
    with tgt.engine.connect() as conn:
        marked = conn.exec_driver_sql(
            f"SELECT COUNT(*) FROM {t_name} WHERE _lgsp_deleted = 1"  # noqa: S608
        ).scalar()
    assert marked == 4  # ids 9, 18, 27, 36
    report = run_reconcile(settings, source, s_name, sink)
    assert report.agree, report.to_dict()
    assert report.source.rows == report.target.rows == 36

    src.update(s_name, {"id": 18}, da_xoa=False)  # undeleted at the source, not synced yet
    report = run_reconcile(settings, source, s_name, sink, repair=True)
    assert [d.key["id"] for d in report.missing] == ["18"]
    sync.run(settings, sink)
    assert run_reconcile(settings, source, s_name, sink).agree


def test_pii_names_come_from_the_catalogue(
    settings: Settings, dbs: Callable[[str], Db], unique: str, tmp_path: Path
) -> None:
    from bus.connectors_db import ConnectorStore
    from bus.envelope import record_schema_of
    from bus.registry import Registry, subject_for

    src, s_name, tgt, t_name, source, sink = _setup(settings, dbs, unique, "sqlite", "sqlite2")
    # the dataset's schema is the record the source connector registered on its topic
    topic = next(iter(ConnectorStore(settings).get(source).topics.values()))
    record = record_schema_of(Registry(settings).latest(subject_for(topic)).schema)
    publish_ward_dataset(settings, tmp_path, unique, record, ["ho_ten", "cccd"])
    tgt.update(t_name, {"id": 3}, ho_ten="Tên Khác", cccd="079999999999", ma_ho_so="HS-khac")
    report = run_reconcile(settings, source, s_name, sink)
    assert report.different[0].values == {
        "cccd": {"source": "***", "target": "***"},
        "ho_ten": {"source": "***", "target": "***"},
        "ma_ho_so": {"source": "HS-26734-000003", "target": "HS-khac"},
    }
    stored = json.dumps(get_report(settings, report.report_id or 0), ensure_ascii=False)
    assert "079999999999" not in stored and "Tên Khác" not in stored


def _versions(db: Db, table: str, ids: list[int]) -> dict[int, int]:
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            f"SELECT id, _lgsp_ts_ms FROM {table} WHERE id IN ({', '.join(map(str, ids))})"  # noqa: S608
        ).all()
    return {int(i): int(v) for i, v in rows}


def test_repair_versions_suit_the_sink(
    settings: Settings, dbs: Callable[[str], Db], unique: str
) -> None:
    """Repair events are stamped after the copy's stored version (a copy whose version ran
    ahead is still fixed) and otherwise with the row's cursor time (so a later real change,
    older than the time of the repair, still applies)."""
    src, tgt = dbs("postgresql"), dbs("sqlite")
    s_name = src.create(f"rc_src_{unique}")
    t_name = f"rc_sink_{unique}"
    tgt.made.append(t_name)
    src.insert(s_name, [dossier(i) for i in range(1, 41)])
    dataset = f"tthc.rc_{unique}"
    source, sink = f"rc-src-{unique}", f"rc-sink-{unique}"
    register(settings, _connector(source, "source", src.url, s_name, dataset, cursor="cap_nhat"))
    register(settings, _connector(sink, "sink", tgt.url, t_name, dataset))
    sync.run(settings, source)
    sync.run(settings, sink)
    cursor_ms = {i: to_epoch_ms(dossier(i)["cap_nhat"]) for i in (5, 7)}
    assert _versions(tgt, t_name, [5, 7]) == cursor_ms

    ahead = to_epoch_ms(dt.datetime.now(dt.UTC)) + 86_400_000  # a version from the future
    tgt.update(t_name, {"id": 5}, ma_ho_so="HS-sai", _lgsp_ts_ms=ahead)
    tgt.update(t_name, {"id": 7}, ma_ho_so="HS-sai")
    tgt.insert(t_name, [{**_sink_row(900), "_lgsp_ts_ms": ahead + 5}])
    report = run_reconcile(settings, source, s_name, sink, repair=True)
    assert report.counts == {"missing": 0, "extra": 1, "different": 2}
    sync.run(settings, sink)
    after = run_reconcile(settings, source, s_name, sink)
    assert after.agree, after.to_dict()
    assert _versions(tgt, t_name, [5, 7]) == {5: ahead + 1, 7: cursor_ms[7] + 1}

    # a real change after the repair, with a cursor time long before the repair: applied
    later = dt.datetime(2024, 6, 2, tzinfo=dt.UTC)
    src.update(s_name, {"id": 7}, ma_ho_so="HS-moi", cap_nhat=later)
    sync.run(settings, source)
    sync.run(settings, sink)
    final = run_reconcile(settings, source, s_name, sink)
    assert final.agree, final.to_dict()
    assert _versions(tgt, t_name, [7]) == {7: to_epoch_ms(later)}
