"""The stored row hash (``lgsp reconcile prepare``): the same numbers as the computed hash on
every column kind, the same reports, never trusted when stale, clear errors on bad input."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bus.cli.main import cli
from bus.errors import ConfigurationError, NotFoundError
from bus.reconcile import Endpoint, Options, reconcile
from bus.reconcile import stored as st
from bus.reconcile.dialects import dialect_for, make_engine
from bus.reconcile.schema import reflect_table
from tests.integration.reconcile.conftest import Db, dossier, nfd
from tests.integration.reconcile.test_reconcile_dialects import EXPECTED_DIFFERENT, _inject

pytestmark = pytest.mark.integration

# Every kind the reconciliation renders in SQL, per dialect (floats only where allowed).
WIDE = {
    "postgresql": (
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, ma VARCHAR(40) NOT NULL, ten TEXT, "
        "ky CHAR(6), so NUMERIC(14,4), nho SMALLINT, ngay DATE, luc TIMESTAMPTZ, "
        "luc_tho TIMESTAMP, gio TIME, co BOOLEAN, tai_lieu JSONB, ma_u UUID, du_lieu BYTEA)"
    ),
    "mysql": (
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, ma VARCHAR(40) NOT NULL, ten TEXT, "
        "ky CHAR(6), so DECIMAL(14,4), nho SMALLINT, ngay DATE, luc DATETIME(6), "
        "luc_tho DATETIME, gio TIME(3), co TINYINT(1), tai_lieu JSON, cu VARCHAR(20) "
        "CHARACTER SET latin1, du_lieu VARBINARY(16), thuc DOUBLE) CHARACTER SET utf8mb4"
    ),
}


def _wide_rows(dialect: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    base = dt.datetime(2024, 1, 1, 7, 0, tzinfo=dt.UTC)
    for i in range(1, 41):
        row: dict[str, Any] = {
            "id": i,
            "ma": f"HS-{i:04d}" if i % 6 else nfd(f"Tân Định-{i}"),
            "ten": None if i % 5 == 0 else ("" if i % 7 == 0 else f"Nguyễn Thị Ánh {i}"),
            "ky": None if i % 4 == 0 else ("ab  " if i % 3 else ""),
            "so": None if i % 8 == 0 else decimal.Decimal(i) / decimal.Decimal(8) - 2,
            "nho": None if i % 9 == 0 else -i,
            "ngay": None if i % 10 == 0 else dt.date(1990 + i, 2, 28) + dt.timedelta(days=i),
            "luc": None if i % 11 == 0 else base + dt.timedelta(seconds=i, microseconds=i * 7919),
            "luc_tho": None if i % 12 == 0 else dt.datetime(2023, 12, 31, 23, 59, 59 - i),
            "gio": None if i % 13 == 0 else dt.time(i % 24, 5, 9, (i * 1000) % 1_000_000),
            "co": None if i % 14 == 0 else i % 2 == 0,
            "tai_lieu": None if i % 15 == 0 else f'{{"b": {i}, "a": ["Hồ sơ", null]}}',
            "du_lieu": None if i % 16 == 0 else bytes([i, 0, 255]),
        }
        if i == 3:
            row["ten"] = "a\x1fb\x1ec\x1dd"  # the form's control characters, escaped
        if dialect == "postgresql":
            row["ma_u"] = None if i % 17 == 0 else f"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD3800{i:02d}"
        else:
            row["luc"] = row["luc"] and row["luc"].replace(tzinfo=None)
            row["gio"] = row["gio"] and row["gio"].replace(
                microsecond=row["gio"].microsecond // 1000 * 1000
            )
            row["cu"] = None if i % 17 == 0 else f"café {i}"
            row["thuc"] = None if i % 18 == 0 else [0.1, 1e16, -2.5, 1 / 3][i % 4]
        rows.append(row)
    return rows


def _live_vs_stored(db: Db, table: str) -> tuple[int, int]:
    """(rows, rows whose stored hash differs from the hash a reconciliation computes)."""
    engine = make_engine(db.url)
    try:
        dialect = dialect_for(engine)
        info = reflect_table(engine, table, "copy")
        cols = st.table_columns(info)
        kinds = ["", "record"] if dialect.name == "postgresql" else [""]
        differ = 0
        for native in kinds:
            live = dialect.hash_expr(cols, native=native, nfc=False)
            column = dialect.q(st.COLUMNS[native])
            assert st.usable(engine, dialect, info, cols, native)
            with engine.connect() as conn:
                total, wrong = conn.execute(
                    sa.text(
                        f"SELECT COUNT(*), SUM(CASE WHEN {column} = {live} "  # noqa: S608 - test's own table
                        f"THEN 0 ELSE 1 END) FROM {dialect.table_ref(info)}"
                    )
                ).one()
            differ += int(wrong or 0)
        return int(total), differ
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_stored_hash_equals_computed_on_every_kind(
    dbs: Callable[[str], Db], unique: str, dialect: str
) -> None:
    db = dbs(dialect)
    name = f"rc_wide_{unique}"
    with db.engine.begin() as conn:
        conn.exec_driver_sql(WIDE[dialect].format(t=name))
    db.made.append(name)
    rows = _wide_rows(dialect)
    db.insert(name, rows[:20])
    assert "added" in st.prepare_url(db.url, name)
    # rows written after the column exists, by a session with other settings: the stored
    # text of dates and times must not follow them
    table = db.table(name)
    with db.engine.begin() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql("SET DateStyle TO 'SQL, DMY'")
            conn.exec_driver_sql("SET TimeZone TO 'Asia/Ho_Chi_Minh'")
            conn.exec_driver_sql("SET extra_float_digits TO 0")
        else:
            conn.exec_driver_sql("SET time_zone = '+07:00'")
        conn.execute(table.insert(), rows[20:])
    assert _live_vs_stored(db, name) == (40, 0)
    if dialect == "postgresql":
        db.execute(
            f"INSERT INTO {name} (id, ma, ngay, luc, luc_tho) VALUES "  # noqa: S608 - own table
            "(100, 'inf', 'infinity', '-infinity', 'infinity'), "
            "(101, 'far', '10000-01-01', '0099-06-01 00:00:00+00', '2024-02-29 00:00:09.5')"
        )
        assert _live_vs_stored(db, name) == (42, 0)
    assert "up to date" in st.prepare_url(db.url, name)


def _prepared_copy(src: Db, tgt: Db, unique: str, n: int = 300) -> tuple[str, str]:
    """An ``n``-row table and its copy, the copy prepared (``lgsp reconcile prepare``)."""
    s_name = src.create(f"rc_src_{unique}")
    t_name = tgt.create(f"rc_tgt_{unique}")
    rows = [dossier(i) for i in range(1, n + 1)]
    src.insert(s_name, rows)
    tgt.insert(t_name, rows)
    st.prepare_url(tgt.url, t_name)
    return s_name, t_name


PAIRS = [("postgresql", "postgresql"), ("postgresql", "mysql"), ("mysql", "postgresql")]


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a}-vs-{b}" for a, b in PAIRS])
def test_same_report_with_the_stored_hash(
    dbs: Callable[[str], Db], unique: str, a: str, b: str
) -> None:
    src, tgt = dbs(a), dbs(b)
    s_name, t_name = _prepared_copy(src, tgt, unique)
    # a PostgreSQL pair reads the stored record hash, the others the portable one
    opts = Options(recheck_delay=0.0, pii=("ho_ten",))
    agree = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), opts)
    assert agree.agree, agree.to_dict()
    assert agree.stats.stored_hash == ["target"]
    assert agree.stats.hash == ("native-record" if a == b else "portable")
    assert agree.stats.rows_fetched == 0
    assert st.COLUMN not in agree.columns

    _inject(src, s_name, tgt, t_name)
    with_stored = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), opts)
    computed = reconcile(
        Endpoint(src.url, s_name),
        Endpoint(tgt.url, t_name),
        Options(recheck_delay=0.0, pii=("ho_ten",), stored_hash=False),
    )
    assert with_stored.stats.stored_hash == ["target"]
    assert computed.stats.stored_hash == []
    assert computed.stats.hash == with_stored.stats.hash
    data, expected = with_stored.to_dict(), computed.to_dict()
    for part in ("missing", "extra", "different", "counts", "schema", "columns"):
        assert data[part] == expected[part], part
    got = {int(d["key"]["id"]): d["columns"] for d in data["different"]}
    assert got == EXPECTED_DIFFERENT
    # a --ignore list that does not name it still leaves the column out
    ignoring = reconcile(
        Endpoint(src.url, s_name),
        Endpoint(tgt.url, t_name),
        Options(recheck_delay=0.0, ignore_columns=("cccd",), hash="portable"),
    )
    assert st.COLUMN not in ignoring.columns
    assert not ignoring.schema


def _stored_used(src: Db, s_name: str, tgt: Db, t_name: str) -> tuple[bool, Any]:
    report = reconcile(
        Endpoint(src.url, s_name),
        Endpoint(tgt.url, t_name),
        Options(recheck_delay=0.0, hash="portable"),
    )
    return report.stats.stored_hash == ["target"], report


@pytest.mark.parametrize("b", ["postgresql", "mysql"])
def test_stale_column_is_not_trusted(dbs: Callable[[str], Db], unique: str, b: str) -> None:
    src, tgt = dbs("postgresql"), dbs(b)
    s_name, t_name = _prepared_copy(src, tgt, unique, 60)
    used, report = _stored_used(src, s_name, tgt, t_name)
    assert used and report.agree
    # other options render otherwise (timestamps to the millisecond): computed
    ms = reconcile(
        Endpoint(src.url, s_name),
        Endpoint(tgt.url, t_name),
        Options(recheck_delay=0.0, time_precision=3, hash="portable"),
    )
    assert ms.stats.stored_hash == [] and ms.agree

    # a column added to both tables after prepare: the stored hash does not cover it
    src.execute(f"ALTER TABLE {s_name} ADD COLUMN moi INT")
    tgt.execute(f"ALTER TABLE {t_name} ADD COLUMN moi INT")
    tgt.update(t_name, {"id": 7}, moi=5)
    used, report = _stored_used(src, s_name, tgt, t_name)
    assert not used
    assert {int(d.key["id"]): d.columns for d in report.different} == {7: ["moi"]}
    auto = reconcile(
        Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), Options(recheck_delay=0.0)
    )
    assert auto.stats.stored_hash == []
    assert {int(d.key["id"]): d.columns for d in auto.different} == {7: ["moi"]}
    assert "replaced" in st.prepare_url(tgt.url, t_name)
    used, report = _stored_used(src, s_name, tgt, t_name)
    assert used
    assert {int(d.key["id"]): d.columns for d in report.different} == {7: ["moi"]}

    # a comment from an older rule: not trusted
    engine = make_engine(tgt.url)
    try:
        dialect = dialect_for(engine)
        info = reflect_table(engine, t_name, "copy")
        catalog = st.read_catalog(engine, dialect, info)
        assert catalog is not None and st.trusted(
            catalog, st.expression(dialect, st.table_columns(info))
        )
        old = catalog.comment.replace("lgsp-rowhash v1 ", "lgsp-rowhash v0 ")
        assert not st.trusted(
            st.Catalog(catalog.expression, old, True),
            st.expression(dialect, st.table_columns(info)),
        )
        # the database's expression changed under the same comment: not trusted
        changed = st.Catalog(catalog.expression + " + 0", catalog.comment, True)
        assert not st.trusted(changed, st.expression(dialect, st.table_columns(info)))
        if b == "postgresql":
            # the same, really done: another expression, the old comment copied over
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {t_name} DROP COLUMN {st.COLUMN}")
                conn.exec_driver_sql(
                    f"ALTER TABLE {t_name} ADD COLUMN {st.COLUMN} BIGINT "
                    "GENERATED ALWAYS AS (id) STORED"
                )
                conn.exec_driver_sql(
                    f"COMMENT ON COLUMN {t_name}.{st.COLUMN} IS '{catalog.comment}'"
                )
        else:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    f"ALTER TABLE {t_name} MODIFY COLUMN {st.COLUMN} BIGINT AS (id) "
                    f"PERSISTENT COMMENT '{catalog.comment}'"
                )
    finally:
        engine.dispose()
    used, report = _stored_used(src, s_name, tgt, t_name)
    assert not used
    assert {int(d.key["id"]): d.columns for d in report.different} == {7: ["moi"]}


def test_bad_inputs(dbs: Callable[[str], Db], unique: str) -> None:
    pg, my, lite = dbs("postgresql"), dbs("mysql"), dbs("sqlite")
    with pytest.raises(NotFoundError, match="does not exist"):
        st.prepare_url(pg.url, f"rc_none_{unique}")
    pg.execute(f"CREATE TABLE rc_nokey_{unique} (id INT, ten TEXT)")
    pg.made.append(f"rc_nokey_{unique}")
    with pytest.raises(ConfigurationError, match="primary key"):
        st.prepare_url(pg.url, f"rc_nokey_{unique}")
    pg.execute(f"CREATE TABLE rc_float_{unique} (id INT PRIMARY KEY, thuc DOUBLE PRECISION)")
    pg.made.append(f"rc_float_{unique}")
    with pytest.raises(ConfigurationError, match="thuc.*extra_float_digits"):
        st.prepare_url(pg.url, f"rc_float_{unique}")
    my.execute(f"CREATE TABLE rc_ts_{unique} (id INT PRIMARY KEY, luc TIMESTAMP NULL)")
    my.made.append(f"rc_ts_{unique}")
    with pytest.raises(ConfigurationError, match="luc.*time zone"):
        st.prepare_url(my.url, f"rc_ts_{unique}")
    name = lite.create(f"rc_lite_{unique}")
    with pytest.raises(ConfigurationError, match="PostgreSQL or MariaDB"):
        st.prepare_url(lite.url, name)
    with pytest.raises(ConfigurationError, match="url"):
        st.prepare_url("nota://url", name)


def _statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_mariadb_copy_sums_are_read_from_the_stored_hash_index(
    dbs: Callable[[str], Db], unique: str
) -> None:
    """``prepare`` gives a MariaDB copy an index over its key and the portable hash; the
    segment sums and row hashes read it alone (``FORCE INDEX``), with the same report as the
    computed hash, and without it (a copy prepared before the index) as before."""
    src, tgt = dbs("postgresql"), dbs("mysql")
    s_name, t_name = _prepared_copy(src, tgt, unique)
    _inject(src, s_name, tgt, t_name)
    engine = make_engine(tgt.url)
    try:
        dialect = dialect_for(engine)
        assert st.index_columns(engine, dialect, reflect_table(engine, t_name, "copy")) == [
            "id",
            st.COLUMN,
        ]
        seen = _statements(engine)

        def run(**options: Any) -> Any:
            seen.clear()
            opts = Options(recheck_delay=0.0, pii=("ho_ten",), **options)
            return reconcile(
                Endpoint(src.url, s_name), Endpoint(tgt.url, t_name, engine=engine), opts
            )

        def hinted() -> list[str]:
            return [s for s in seen if "FORCE INDEX" in s]

        indexed = run()
        assert indexed.stats.stored_hash == ["target"]
        sums = [s for s in seen if "COUNT(*)" in s and "GROUP BY" in s]
        assert sums and all(f"FORCE INDEX ({st.INDEX})" in s for s in sums), sums
        computed = run(stored_hash=False)
        assert computed.stats.stored_hash == [] and not hinted()
        data, expected = indexed.to_dict(), computed.to_dict()
        for part in ("missing", "extra", "different", "counts", "schema", "columns"):
            assert data[part] == expected[part], part
        assert {int(d["key"]["id"]): d["columns"] for d in data["different"]} == EXPECTED_DIFFERENT

        # a copy prepared before the index: the stored hash is still read, from the table
        with engine.connect() as conn:
            conn.exec_driver_sql(f"ALTER TABLE `{t_name}` DROP INDEX `{st.INDEX}`")
        unindexed = run()
        assert unindexed.stats.stored_hash == ["target"] and not hinted()
        assert unindexed.to_dict()["different"] == data["different"]
        # an index over other columns is not used either, and prepare puts the right one back
        with engine.connect() as conn:
            conn.exec_driver_sql(f"ALTER TABLE `{t_name}` ADD INDEX `{st.INDEX}` (ma_ho_so)")
        assert run().stats.stored_hash == ["target"]
        assert not hinted()
        assert f"index {st.INDEX} replaced" in st.prepare_url(tgt.url, t_name)
        assert "up to date (" in st.prepare_url(tgt.url, t_name)
        run()
        assert hinted()
        # --drop removes the index with the column
        st.prepare_url(tgt.url, t_name, remove=True)
        info = reflect_table(engine, t_name, "copy")
        assert st.index_columns(engine, dialect, info) is None
        assert st.COLUMN not in info.columns
    finally:
        engine.dispose()


def test_cli_prepare_and_drop(dbs: Callable[[str], Db], unique: str) -> None:
    db = dbs("mysql")
    name = db.create(f"rc_cli_{unique}")
    db.insert(name, [dossier(i) for i in range(1, 6)])
    runner = CliRunner()
    result = runner.invoke(cli, ["reconcile", "prepare", db.url, name])
    assert result.exit_code == 0, result.output
    assert f"{name}: {st.COLUMN} added (9 columns)" in result.output
    result = runner.invoke(cli, ["reconcile", "prepare", db.url, name])
    assert "up to date" in result.output
    result = runner.invoke(cli, ["reconcile", "prepare", db.url, name, "--drop"])
    assert result.exit_code == 0 and "dropped" in result.output
    assert st.COLUMN not in [c.name for c in db.table(name).columns]
    result = runner.invoke(cli, ["reconcile", "prepare", db.url, f"rc_none_{unique}"])
    assert result.exit_code != 0
    assert "does not exist" in result.output


@pytest.mark.parametrize("sink_kind", ["postgresql", "mysql"])
def test_sink_writes_into_a_prepared_copy(
    settings: Any, dbs: Callable[[str], Db], unique: str, sink_kind: str
) -> None:
    """A sink keeps writing into a copy with the stored hash columns (they are generated,
    never written), the connector reconciliation reads them and agrees, then finds and
    repairs what changed; the columns never show as compared columns."""
    from bus import sync
    from bus.reconcile.service import run_reconcile
    from tests.integration.reconcile.test_reconcile_connectors import _setup

    src, s_name, tgt, t_name, source, sink = _setup(settings, dbs, unique, "postgresql", sink_kind)
    st.prepare_url(tgt.url, t_name)
    first = run_reconcile(settings, source, s_name, sink)
    assert first.agree, first.to_dict()
    assert first.stats.stored_hash == ["target"]
    assert not any(c.startswith(st.COLUMN) for c in first.columns)
    src.update(s_name, {"id": 9}, so_tien=9999, ho_ten="Trần Văn Mới")
    src.insert(s_name, [dossier(500)])
    sync.run(settings, source)
    sync.run(settings, sink)  # upserts into the prepared table
    after = run_reconcile(settings, source, s_name, sink)
    assert after.agree, after.to_dict()
    assert after.stats.stored_hash == ["target"]
    tgt.update(t_name, {"id": 10}, ghi_chu="sửa tay")
    report = run_reconcile(settings, source, s_name, sink, repair=True)
    assert {d.key["id"]: d.columns for d in report.different} == {"10": ["ghi_chu"]}
    sync.run(settings, sink)
    assert run_reconcile(settings, source, s_name, sink).agree


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_a_prepared_table_read_by_a_source_publishes_no_hash(
    dbs: Callable[[str], Db], unique: str, kind: str
) -> None:
    """Should a prepared table also be a source's, its stored hashes are not fields."""
    from connectors.plugins import build
    from tests.integration.connectors.helpers import config

    db = dbs(kind)
    name = db.create(f"rc_srcprep_{unique}")
    db.insert(name, [dossier(i) for i in range(1, 4)])
    st.prepare_url(db.url, name)
    cfg = config(kind, "source", db.url, [{"table": name, "dataset": "tthc.hoso"}])
    with build(cfg) as source:
        [stream] = source.discover()
        assert not [c.name for c in stream.columns if c.name.startswith("_lgsp_rowhash")]
        assert "_lgsp_rowhash" not in json.dumps(stream.record_schema)
        events = [e for b in source.read_stream(stream, None) for e in b.events]
    assert len(events) == 3
    assert "_lgsp_rowhash" not in repr(events[0])
