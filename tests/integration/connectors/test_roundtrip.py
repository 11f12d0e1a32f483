"""Source DB -> topic -> sink DB through the real broker, and a crash before the commit."""

from __future__ import annotations

import datetime as dt
import decimal
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.db import session_scope
from bus.db.models import Run
from bus.kafka.ends import end_offsets
from bus.sync import run
from conftest import MYSQL_URL, PG_URL
from tests.helpers import drop_tables, read_rows
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

UTC7 = dt.timezone(dt.timedelta(hours=7))
NAMES = ["Nguyễn Văn An", "Trần Thị Bích Ngọc", "Lê Đức Thọ", "Huỳnh Tấn Phát", "Đặng Thị Ánh"]


def _url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/roundtrip.db"
    return PG_URL if kind == "postgresql" else MYSQL_URL


def _table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ho_ten", sa.String(100), nullable=False),
        sa.Column("so_tien", sa.Numeric(14, 2)),
        sa.Column("ngay_sinh", sa.Date),
        sa.Column("tiep_nhan", sa.DateTime(timezone=True)),
        sa.Column("cap_nhat", sa.DateTime, nullable=False),
        sa.Column("da_xoa", sa.Boolean, nullable=False),
        mysql_charset="utf8mb4",
    )


def _row(i: int, changed: dt.datetime) -> dict[str, Any]:
    name = NAMES[i % len(NAMES)]
    return {
        "id": i,
        "ho_ten": unicodedata.normalize("NFD", name) if i % 3 == 0 else name,
        "so_tien": None if i % 5 == 0 else decimal.Decimal(f"{i * 12345}.{i % 100:02d}"),
        "ngay_sinh": None if i % 4 == 0 else dt.date(1950 + i, 1 + i % 12, 1 + i % 28),
        "tiep_nhan": None if i % 6 == 0 else dt.datetime(2025, 6, 1, 9, i % 60, tzinfo=UTC7),
        "cap_nhat": changed,
        "da_xoa": False,
    }


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, float | decimal.Decimal):
        return decimal.Decimal(str(value)).quantize(decimal.Decimal("0.01"))
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    return value


def _rows(url: str, name: str, *, live_only: bool) -> dict[int, dict[str, Any]]:
    out = {}
    for row in read_rows(url, name):
        if live_only and row["da_xoa"]:
            continue
        values = {k: _norm(v) for k, v in row.items() if not k.startswith("_lgsp_")}
        values["da_xoa"] = bool(values["da_xoa"])
        out[int(row["id"])] = values
    return out


class Pair:
    """A registered source and sink around one source table."""

    def __init__(self, settings: Settings, src: str, dst: str, tmp_path: Path, unique: str):
        self.settings = settings
        self.src_url, self.dst_url = _url(src, tmp_path), _url(dst, tmp_path)
        self.src_table, self.dst_table = f"rt_src_{unique}", f"rt_dst_{unique}"
        self.table = _table(self.src_table)
        engine = sa.create_engine(self.src_url)
        self.table.metadata.create_all(engine)
        engine.dispose()
        dataset = f"rt.x{unique}"
        self.source_name, self.sink_name = f"src-{unique}", f"dst-{unique}"
        register(
            settings,
            config(
                src,
                "source",
                self.src_url,
                [
                    {
                        "table": self.src_table,
                        "dataset": dataset,
                        "cursor": "cap_nhat",
                        "deleted_flag": "da_xoa",
                    }
                ],
                name=self.source_name,
                batch_size=10,
            ),
        )
        register(
            settings,
            config(
                dst,
                "sink",
                self.dst_url,
                [{"table": self.dst_table, "dataset": dataset}],
                name=self.sink_name,
            ),
        )
        self.topic = ConnectorStore(settings).get(self.source_name).topics[self.src_table]

    def execute(self, statement: Any, rows: list[dict[str, Any]] | None = None) -> None:
        engine = sa.create_engine(self.src_url)
        with engine.begin() as conn:
            conn.execute(statement, rows) if rows else conn.execute(statement)
        engine.dispose()

    def insert(self, rows: list[dict[str, Any]]) -> None:
        self.execute(self.table.insert(), rows)

    def update(self, ids: list[int], **values: Any) -> None:
        self.execute(self.table.update().where(self.table.c.id.in_(ids)).values(**values))

    def sync(self) -> None:
        run(self.settings, self.source_name)
        run(self.settings, self.sink_name)

    def assert_equal(self) -> None:
        source = _rows(self.src_url, self.src_table, live_only=True)
        target = _rows(self.dst_url, self.dst_table, live_only=False)
        assert target == source

    def records_on_topic(self) -> int:
        return sum(end_offsets(self.settings, [self.topic]).values())

    def drop(self) -> None:
        drop_tables(self.src_url, [self.src_table])
        drop_tables(self.dst_url, [self.dst_table])


@pytest.fixture
def pair(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path, unique: str
) -> Iterator[Pair]:
    src, dst = request.param
    made = Pair(settings, src, dst, tmp_path, unique)
    try:
        yield made
    finally:
        made.drop()


T0 = dt.datetime(2025, 7, 1, 8, 0, 0)


@pytest.mark.parametrize(
    "pair",
    [("postgresql", "postgresql"), ("mariadb", "postgresql"), ("sqlite", "mariadb")],
    indirect=True,
    ids=["pg-pg", "mariadb-pg", "sqlite-mariadb"],
)
def test_round_trip_inserts_updates_deletes(pair: Pair) -> None:
    # 25 rows, several sharing a cursor value (ties across batch boundaries of 10)
    pair.insert([_row(i, T0 + dt.timedelta(seconds=i // 7)) for i in range(1, 26)])
    pair.sync()
    pair.assert_equal()

    later = T0 + dt.timedelta(hours=1, milliseconds=250)
    pair.update(
        [2, 3, 11], ho_ten="Phạm Thị Hồng Đào", so_tien=decimal.Decimal("-7.05"), cap_nhat=later
    )
    pair.update([4], so_tien=None, ngay_sinh=None, tiep_nhan=None, cap_nhat=later)
    pair.update([5, 20], da_xoa=True, cap_nhat=later)
    pair.insert([_row(i, later) for i in range(26, 31)])
    pair.sync()
    pair.assert_equal()
    target = _rows(pair.dst_url, pair.dst_table, live_only=False)
    assert 5 not in target and 20 not in target and len(target) == 28
    assert target[2]["ho_ten"] == "Phạm Thị Hồng Đào"
    assert target[4]["so_tien"] is None

    # a run with nothing new changes nothing
    before = pair.records_on_topic()
    pair.sync()
    assert pair.records_on_topic() == before
    pair.assert_equal()


@pytest.mark.parametrize("pair", [("postgresql", "postgresql")], indirect=True, ids=["pg-pg"])
def test_crash_between_publish_and_commit_replays_at_most_one_batch(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair.insert([_row(i, T0 + dt.timedelta(seconds=i)) for i in range(1, 31)])  # 3 batches
    real_save = ConnectorStore.save_position
    calls = {"n": 0}

    def crash_on_second(self: ConnectorStore, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("process killed after the broker acknowledged batch 2")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(ConnectorStore, "save_position", crash_on_second)
    with pytest.raises(RuntimeError):
        run(pair.settings, pair.source_name)
    monkeypatch.setattr(ConnectorStore, "save_position", real_save)
    assert pair.records_on_topic() == 20  # two batches published, one position committed
    with session_scope(pair.settings) as s:
        statuses = [r.status for r in s.query(Run).filter(Run.name == pair.source_name)]
    assert statuses == ["failed"]

    report = run(pair.settings, pair.source_name)
    assert report.rows == 20  # batch 2 again, then batch 3
    assert pair.records_on_topic() == 30 + 10  # the replay is at most one batch
    run(pair.settings, pair.sink_name)
    pair.assert_equal()
    target = _rows(pair.dst_url, pair.dst_table, live_only=False)
    assert sorted(target) == list(range(1, 31))
