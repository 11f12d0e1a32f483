"""Injected differences of every kind, found across PostgreSQL, MariaDB and SQLite."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Callable

import pytest

from bus.errors import NotFoundError
from bus.reconcile import Endpoint, Options, reconcile
from tests.integration.reconcile.conftest import Db, dossier, nfd

pytestmark = pytest.mark.integration

PAIRS = [
    ("postgresql", "postgresql"),
    ("postgresql", "mysql"),
    ("mysql", "postgresql"),
    ("sqlite", "postgresql"),
    ("mysql", "sqlite"),
    ("mysql", "mysql"),
    ("sqlite", "sqlite2"),
]

ROWS = 300


def _opts(**kw: object) -> Options:
    base: dict[str, object] = {"recheck_delay": 0.05, "pii": ("ho_ten", "cccd")}
    base.update(kw)
    return Options(**base)  # type: ignore[arg-type]


def _pair(dbs: Callable[[str], Db], a: str, b: str, unique: str) -> tuple[Db, str, Db, str]:
    src, tgt = dbs(a), dbs(b)
    s_name = src.create(f"rc_src_{unique}")
    t_name = tgt.create(f"rc_tgt_{unique}")
    rows = [dossier(i) for i in range(1, ROWS + 1)]
    src.insert(s_name, rows)
    tgt.insert(t_name, rows)
    return src, s_name, tgt, t_name


def _inject(src: Db, s_name: str, tgt: Db, t_name: str) -> None:
    # missing in the target
    tgt.delete(t_name, {"id": 10})
    tgt.delete(t_name, {"id": 150})
    # extra in the target
    tgt.insert(t_name, [dossier(1000), dossier(1001)])
    # changed value
    tgt.update(t_name, {"id": 20}, ma_ho_so="HS-26734-XXXXXX")
    # changed NULL-ness: a value became NULL, a NULL became ''
    tgt.update(t_name, {"id": 31}, ghi_chu=None)
    tgt.update(t_name, {"id": 35}, ghi_chu="")
    # changed decimal scale of a value: 51.25 -> 51.3
    tgt.update(t_name, {"id": 41}, so_tien=decimal.Decimal("51.3"))
    # one microsecond later
    tgt.update(t_name, {"id": 60}, cap_nhat=dossier(60)["cap_nhat"] + dt.timedelta(microseconds=1))
    # boolean flipped
    tgt.update(t_name, {"id": 70}, da_xoa=True)
    # PII field changed: reported, value masked
    tgt.update(t_name, {"id": 80}, ho_ten="Trần Văn Khác")
    # NFD vs NFC of the same text, on either side: NOT a difference
    tgt.update(t_name, {"id": 50}, ho_ten=nfd(dossier(50)["ho_ten"]))
    src.update(s_name, {"id": 51}, ghi_chu=nfd(str(dossier(51)["ghi_chu"])))
    tgt.update(t_name, {"id": 52}, ma_ho_so=nfd("HS-Tân Định-52"))
    src.update(s_name, {"id": 52}, ma_ho_so="HS-Tân Định-52")


EXPECTED_DIFFERENT = {
    20: ["ma_ho_so"],
    31: ["ghi_chu"],
    35: ["ghi_chu"],
    41: ["so_tien"],
    60: ["cap_nhat"],
    70: ["da_xoa"],
    80: ["ho_ten"],
}


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a}-vs-{b}" for a, b in PAIRS])
def test_every_kind_of_difference(dbs: Callable[[str], Db], unique: str, a: str, b: str) -> None:
    src, s_name, tgt, t_name = _pair(dbs, a, b, unique)
    agree = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    assert agree.agree, agree.to_dict()
    assert agree.source.rows == agree.target.rows == ROWS
    assert agree.stats.rows_fetched == 0

    _inject(src, s_name, tgt, t_name)
    report = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    data = report.to_dict()
    assert not report.agree
    assert [int(d["key"]["id"]) for d in data["missing"]] == [10, 150]
    assert [int(d["key"]["id"]) for d in data["extra"]] == [1000, 1001]
    got = {int(d["key"]["id"]): d["columns"] for d in data["different"]}
    assert got == EXPECTED_DIFFERENT, data["different"]
    assert data["counts"] == {"missing": 2, "extra": 2, "different": len(EXPECTED_DIFFERENT)}
    assert data["schema"] == []
    values = {int(d["key"]["id"]): d["values"] for d in data["different"]}
    assert values[80]["ho_ten"] == {"source": "***", "target": "***"}
    assert values[41]["so_tien"] == {"source": "51.25", "target": "51.3"}
    assert values[31]["ghi_chu"]["target"] is None
    assert values[35]["ghi_chu"] == {"source": None, "target": ""}
    assert "Trần Văn Khác" not in str(data)
    # rows fetched grow with the differences, not with the table
    assert report.stats.rows_fetched < ROWS
    assert report.summary.startswith("DIFFER: ")
    assert "2 missing, 2 extra, 7 different" in report.summary


def test_decimal_column_scale_changed(dbs: Callable[[str], Db], unique: str) -> None:
    """A copy whose column keeps fewer decimals: a schema difference, and the rows whose value
    was rounded; 2.50 stored as 2.5 is the same value."""
    src, tgt = dbs("postgresql"), dbs("mysql")
    s_name = src.create(f"rc_src_{unique}")
    t_name = tgt.create(f"rc_tgt_{unique}", scale=1)
    rows = [dossier(i) for i in range(1, 41)]
    src.insert(s_name, rows)
    tgt.insert(t_name, rows)  # MariaDB rounds 1.25 -> 1.3 (ids with an odd quarter)
    report = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    assert [i.kind for i in report.schema_errors] == ["scale"]
    assert "decimal scale 2 in the source, 1 in the target" in report.schema_errors[0].message
    different = {int(d.key["id"]) for d in report.different}
    expected = {
        i
        for i in range(1, 41)
        if (decimal.Decimal(i) * decimal.Decimal("1.25")) % decimal.Decimal("0.1")
    }
    assert different == expected
    assert 2 not in different  # 2.50 == 2.5
    assert not report.agree


@pytest.mark.parametrize(("a", "b"), [("postgresql", "mysql"), ("sqlite", "postgresql")])
def test_composite_text_key_uses_hash_segments(
    dbs: Callable[[str], Db], unique: str, a: str, b: str
) -> None:
    src, tgt = dbs(a), dbs(b)
    ddl = (
        "CREATE TABLE {t} (ma_dv VARCHAR(10) NOT NULL, so_ho_so VARCHAR(40) NOT NULL, "
        "nam INTEGER NOT NULL, trang_thai VARCHAR(20), PRIMARY KEY (ma_dv, so_ho_so, nam))"
    )
    s_name, t_name = f"rc_ck_src_{unique}", f"rc_ck_tgt_{unique}"
    src.execute(ddl.format(t=s_name))
    src.made.append(s_name)
    tgt.execute(ddl.format(t=t_name))
    tgt.made.append(t_name)
    rows = [
        {
            "ma_dv": str(26734 + i % 10),
            "so_ho_so": f"Số {i}",
            "nam": 2024 + i % 2,
            "trang_thai": "đã xử lý" if i % 3 else None,
        }
        for i in range(500)
    ]
    src.insert(s_name, rows)
    tgt.insert(t_name, rows)
    tgt.delete(t_name, {"ma_dv": "26737", "so_ho_so": "Số 3", "nam": 2025})
    tgt.update(t_name, {"ma_dv": "26735", "so_ho_so": "Số 1", "nam": 2025}, trang_thai="mới")
    tgt.insert(t_name, [{"ma_dv": "27460", "so_ho_so": "Số 9999", "nam": 2024, "trang_thai": None}])
    report = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    assert report.stats.mode == "hash"
    assert report.key == ["ma_dv", "so_ho_so", "nam"]
    assert [d.key for d in report.missing] == [
        {"ma_dv": "26737", "so_ho_so": "Số 3", "nam": "2025"}
    ]
    assert [d.key for d in report.extra] == [
        {"ma_dv": "27460", "so_ho_so": "Số 9999", "nam": "2024"}
    ]
    assert [(d.key["so_ho_so"], d.columns) for d in report.different] == [("Số 1", ["trang_thai"])]
    assert report.stats.rows_fetched < 200


@pytest.mark.parametrize("empty", ["source", "target", "both"])
def test_empty_tables(dbs: Callable[[str], Db], unique: str, empty: str) -> None:
    src, tgt = dbs("postgresql"), dbs("mysql")
    s_name = src.create(f"rc_src_{unique}")
    t_name = tgt.create(f"rc_tgt_{unique}")
    rows = [dossier(i) for i in range(1, 21)]
    if empty == "target":
        src.insert(s_name, rows)
    elif empty == "source":
        tgt.insert(t_name, rows)
    report = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    if empty == "both":
        assert report.agree and report.stats.mode == "empty"
        assert report.source.rows == report.target.rows == 0
    elif empty == "target":
        assert report.counts == {"missing": 20, "extra": 0, "different": 0}
    else:
        assert report.counts == {"missing": 0, "extra": 20, "different": 0}


def test_schema_differences_are_reported_first(dbs: Callable[[str], Db], unique: str) -> None:
    src, tgt = dbs("postgresql"), dbs("sqlite")
    s_name = src.create(f"rc_src_{unique}", extra=", so_trang INTEGER")
    t_name = tgt.create(f"rc_tgt_{unique}", extra=", _lgsp_synced_at TEXT, ghi_chu_2 TEXT")
    rows = [dossier(i) for i in range(1, 11)]
    src.insert(s_name, rows)
    tgt.insert(t_name, rows)
    report = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    kinds = sorted((i.kind, i.column) for i in report.schema_errors)
    assert kinds == [("extra_column", "ghi_chu_2"), ("missing_column", "so_trang")]
    assert report.ignored["target"] == ["_lgsp_synced_at"]
    # the common columns are still compared, and agree
    assert report.differences == 0
    assert not report.agree
    assert report.summary.startswith("DIFFER:") and "2 schema difference(s)" in report.summary


def test_different_primary_keys(dbs: Callable[[str], Db], unique: str) -> None:
    src, tgt = dbs("postgresql"), dbs("postgresql")
    s_name = src.create(f"rc_src_{unique}")
    t_name = f"rc_tgt_{unique}"
    tgt.execute(
        f"CREATE TABLE {t_name} (id BIGINT, ma_ho_so VARCHAR(40) PRIMARY KEY, ho_ten TEXT, "
        "cccd VARCHAR(12), so_tien NUMERIC(12,2), ngay_nop DATE, cap_nhat TIMESTAMPTZ, "
        "da_xoa BOOLEAN, ghi_chu TEXT)"
    )
    tgt.made.append(t_name)
    report = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    assert [i.kind for i in report.schema_errors] == ["primary_key"]
    assert "primary keys differ: source (id), target (ma_ho_so)" in report.schema_errors[0].message
    assert report.stats.mode == "" and not report.agree


def test_table_that_does_not_exist(dbs: Callable[[str], Db], unique: str) -> None:
    src = dbs("mysql")
    s_name = src.create(f"rc_src_{unique}")
    with pytest.raises(NotFoundError, match=r"target table 'rc_nope_.*' does not exist"):
        reconcile(Endpoint(src.url, s_name), Endpoint(src.url, f"rc_nope_{unique}"), _opts())


def test_changes_during_the_check_are_not_reported(dbs: Callable[[str], Db], unique: str) -> None:
    """A difference that a sync fixes between the scan and the re-check does not count."""
    src, s_name, tgt, t_name = _pair(dbs, "postgresql", "mysql", unique)
    tgt.delete(t_name, {"id": 7})
    tgt.update(t_name, {"id": 8}, ma_ho_so="changed")
    seen: list[int] = []

    def sync_meanwhile(pending: int) -> None:
        seen.append(pending)
        tgt.insert(t_name, [dossier(7)])

    report = reconcile(
        Endpoint(src.url, s_name),
        Endpoint(tgt.url, t_name),
        _opts(recheck_delay=0.2, before_recheck=sync_meanwhile),
    )
    assert seen == [2]
    assert report.transient == 1
    assert report.counts == {"missing": 0, "extra": 0, "different": 1}
    assert "1 changed during the check, not counted" in report.summary


def test_small_segments_recurse_and_fetch_little(dbs: Callable[[str], Db], unique: str) -> None:
    src, s_name, tgt, t_name = _pair(dbs, "postgresql", "postgresql", unique)
    tgt.update(t_name, {"id": 123}, so_tien=decimal.Decimal("0.01"))
    report = reconcile(
        Endpoint(src.url, s_name),
        Endpoint(tgt.url, t_name),
        _opts(segment_rows=64, fanout=4, leaf_rows=2),
    )
    assert report.stats.levels >= 3
    assert [d.key["id"] for d in report.different] == ["123"]
    assert report.stats.hash_rows_fetched <= 2 * 2
    assert report.stats.full_rows_fetched == 4  # both sides, scan and re-check


@pytest.mark.parametrize(("a", "b"), [("postgresql", "postgresql"), ("postgresql", "mysql")])
def test_a_copy_stored_in_nfd_agrees(dbs: Callable[[str], Db], unique: str, a: str, b: str) -> None:
    """Every text of the source stored decomposed (NFD): the same strings, so no difference.
    PostgreSQL can normalise in SQL: level 0 is computed again with NFC and nothing is
    fetched; MariaDB cannot, so its side is compared row by row in Python, still agreeing."""
    src, tgt = dbs(a), dbs(b)
    s_name = src.create(f"rc_src_{unique}")
    t_name = tgt.create(f"rc_tgt_{unique}")
    rows = [dossier(i) for i in range(1, 201)]
    decomposed = [{k: nfd(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]
    src.insert(s_name, decomposed)
    tgt.insert(t_name, rows)
    report = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    assert report.agree, report.to_dict()
    assert report.stats.nfc_in_db is True
    assert report.stats.rows_fetched == 0


def test_mariadb_copy_in_nfd_is_compared_in_python(dbs: Callable[[str], Db], unique: str) -> None:
    src, tgt = dbs("postgresql"), dbs("mysql")
    s_name = src.create(f"rc_src_{unique}")
    t_name = tgt.create(f"rc_tgt_{unique}")
    rows = [dossier(i) for i in range(1, 101)]
    src.insert(s_name, rows)
    tgt.insert(
        t_name, [{k: nfd(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
    )
    tgt.update(t_name, {"id": 9}, ho_ten="Khác")
    report = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    assert [(d.key["id"], d.columns) for d in report.different] == [("9", ["ho_ten"])]
    assert report.differences == 1
    assert report.stats.candidates == 100  # every row differed in SQL, Python decided


def test_row_filters_and_column_subset(dbs: Callable[[str], Db], unique: str) -> None:
    """A source's soft-deleted rows and a target's other units count as absent; columns a
    connector does not publish are not compared."""
    src, tgt = dbs("sqlite"), dbs("postgresql")
    s_name = src.create(f"rc_src_{unique}")
    t_name = tgt.create(f"rc_tgt_{unique}", extra=", ma_dv VARCHAR(10)")
    rows = [dossier(i) for i in range(1, 31)]
    src.insert(s_name, rows)
    tgt.insert(t_name, [dict(r, ma_dv="26734") for r in rows if not r["da_xoa"]])
    tgt.insert(t_name, [dict(dossier(i), ma_dv="26737") for i in range(100, 110)])
    tgt.update(t_name, {"id": 4}, ghi_chu="not compared: left out by ignore_columns")
    report = reconcile(
        Endpoint(
            src.url,
            s_name,
            deleted_flag="da_xoa",
            columns=["ma_ho_so", "ho_ten", "so_tien", "cap_nhat", "da_xoa"],
        ),
        Endpoint(tgt.url, t_name, where={"ma_dv": "26734"}),
        _opts(ignore_columns=("_lgsp_*", "ma_dv", "ghi_chu", "cccd", "ngay_nop")),
    )
    assert report.agree, report.to_dict()
    assert report.source.rows == report.target.rows == 27
    assert "ghi_chu" not in report.columns


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_no_lock_is_held_on_the_source(dbs: Callable[[str], Db], unique: str, kind: str) -> None:
    """Between its reads a reconciliation holds nothing: another session can take an
    exclusive lock on the source table at once (plain autocommit SELECTs, no FOR UPDATE)."""
    src, s_name, tgt, t_name = _pair(dbs, kind, kind, unique)
    tgt.update(t_name, {"id": 3}, ma_ho_so="changed")
    locked: list[bool] = []

    def lock_source(_pending: int) -> None:
        with src.engine.connect() as conn:
            if kind == "postgresql":
                conn.exec_driver_sql("SET lock_timeout = '2s'")
                conn.exec_driver_sql(f"LOCK TABLE {s_name} IN ACCESS EXCLUSIVE MODE")
            else:
                conn.exec_driver_sql("SET SESSION lock_wait_timeout = 2")
                conn.exec_driver_sql(f"LOCK TABLES {s_name} WRITE")
                conn.exec_driver_sql("UNLOCK TABLES")
            conn.commit()
        locked.append(True)

    report = reconcile(
        Endpoint(src.url, s_name),
        Endpoint(tgt.url, t_name),
        _opts(before_recheck=lock_source),
    )
    assert locked == [True]
    assert report.counts["different"] == 1


CONTROL_PAIRS = [("postgresql", "postgresql"), ("postgresql", "mysql"), ("mysql", "sqlite")]


@pytest.mark.parametrize(("a", "b"), CONTROL_PAIRS, ids=[f"{a}-vs-{b}" for a, b in CONTROL_PAIRS])
def test_text_holding_the_forms_control_characters(
    dbs: Callable[[str], Db], unique: str, a: str, b: str
) -> None:
    """Text may hold the canonical form's own separator, NULL marker and escape: each
    database's SQL rendering escapes them as the Python form does (equal copies agree without
    fetching a row), and a value moved across the separator into the next column
    (``ghi_chu``, ``ho_ten`` are neighbours in the form) is a difference, not a collision."""
    src, s_name, tgt, t_name = _pair(dbs, a, b, unique)
    for db, name in ((src, s_name), (tgt, t_name)):
        db.update(name, {"id": 3}, ghi_chu="a\x1fb\x1ec\x1d1", ho_ten="\x1e")
        db.update(name, {"id": 4}, ghi_chu="x\x1fy", ho_ten="z")
    agree = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    assert agree.agree, agree.to_dict()
    assert agree.stats.rows_fetched == 0
    tgt.update(t_name, {"id": 4}, ghi_chu="x", ho_ten="y\x1fz")
    report = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), _opts())
    assert [(d.key["id"], d.columns) for d in report.different] == [("4", ["ghi_chu", "ho_ten"])]
