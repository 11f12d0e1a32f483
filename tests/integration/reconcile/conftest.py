"""Fixtures: the same dossier table on PostgreSQL, MariaDB or SQLite, dropped after the test."""

from __future__ import annotations

import datetime as dt
import decimal
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

DDL = {
    "postgresql": (
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, ma_ho_so VARCHAR(40) NOT NULL, ho_ten TEXT, "
        "cccd VARCHAR(12), so_tien NUMERIC(12,{scale}), ngay_nop DATE, cap_nhat TIMESTAMPTZ, "
        "da_xoa BOOLEAN, ghi_chu TEXT{extra})"
    ),
    "mysql": (
        "CREATE TABLE {t} (id BIGINT PRIMARY KEY, ma_ho_so VARCHAR(40) NOT NULL, ho_ten TEXT, "
        "cccd VARCHAR(12), so_tien DECIMAL(12,{scale}), ngay_nop DATE, cap_nhat DATETIME(6), "
        "da_xoa TINYINT(1), ghi_chu TEXT{extra}) CHARACTER SET utf8mb4"
    ),
    "sqlite": (
        "CREATE TABLE {t} (id INTEGER PRIMARY KEY, ma_ho_so VARCHAR(40) NOT NULL, ho_ten TEXT, "
        "cccd VARCHAR(12), so_tien NUMERIC(12,{scale}), ngay_nop DATE, cap_nhat DATETIME, "
        "da_xoa BOOLEAN, ghi_chu TEXT{extra})"
    ),
}

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ", "Đặng", "Bùi"]
GIVEN = ["Thị Minh Khai", "Văn Tám", "Ngọc Ánh", "Quốc Việt", "Thùy Dương", "Hữu Phước"]


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def dossier(i: int) -> dict[str, Any]:
    """Row ``i`` of the dossier table (deterministic; NULLs, '' and microseconds included)."""
    micro = 123400 if i % 7 == 0 else 0
    return {
        "id": i,
        "ma_ho_so": f"HS-26734-{i:06d}",
        "ho_ten": f"{FAMILY[i % len(FAMILY)]} {GIVEN[i % len(GIVEN)]}",
        "cccd": f"0792{i:08d}",
        "so_tien": (decimal.Decimal(i) * decimal.Decimal("1.25")).quantize(decimal.Decimal("0.01")),
        "ngay_nop": dt.date(2024, 1, 1) + dt.timedelta(days=i % 400),
        "cap_nhat": dt.datetime(2024, 6, 1, 8, 30, tzinfo=dt.UTC)
        + dt.timedelta(minutes=i, microseconds=micro),
        "da_xoa": i % 9 == 0,
        "ghi_chu": None if i % 5 == 0 else ("" if i % 11 == 0 else f"Hồ sơ đất đai số {i}"),
    }


@dataclass
class Db:
    """One database of the test: its URL, engine and the tables made in it."""

    dialect: str
    url: str
    engine: sa.Engine
    made: list[str] = field(default_factory=list)

    def create(self, name: str, *, scale: int = 2, extra: str = "") -> str:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(DDL[self.dialect].format(t=name, scale=scale, extra=extra))
        self.made.append(name)
        return name

    def table(self, name: str) -> sa.Table:
        return sa.Table(name, sa.MetaData(), autoload_with=self.engine)

    def _fit(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for k, v in out.items():
            if isinstance(v, dt.datetime) and v.tzinfo is not None and self.dialect != "postgresql":
                out[k] = v.astimezone(dt.UTC).replace(tzinfo=None)
        return out

    def insert(self, name: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        table = self.table(name)
        with self.engine.begin() as conn:
            conn.execute(table.insert(), [self._fit(r) for r in rows])

    def update(self, name: str, key: dict[str, Any], **values: Any) -> None:
        table = self.table(name)
        cond = sa.and_(*[table.c[k] == v for k, v in key.items()])
        with self.engine.begin() as conn:
            assert (
                conn.execute(table.update().where(cond).values(**self._fit(values))).rowcount == 1
            )

    def delete(self, name: str, key: dict[str, Any]) -> None:
        table = self.table(name)
        cond = sa.and_(*[table.c[k] == v for k, v in key.items()])
        with self.engine.begin() as conn:
            assert conn.execute(table.delete().where(cond)).rowcount == 1

    def execute(self, sql: str) -> None:
        with self.engine.begin() as conn:
            conn.exec_driver_sql(sql)

    def drop_all(self) -> None:
        for name in reversed(self.made):
            with self.engine.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
        self.made.clear()


@pytest.fixture
def dbs(pg_url: str, mysql_url: str, tmp_path: Path) -> Iterator[Callable[[str], Db]]:
    """``dbs("postgresql" | "mysql" | "sqlite" | "sqlite2")``: a database of that dialect."""
    made: dict[str, Db] = {}

    def get(which: str) -> Db:
        if which not in made:
            if which == "postgresql":
                url = pg_url
            elif which == "mysql":
                url = mysql_url
            else:
                url = f"sqlite:///{tmp_path / (which + '.db')}"
            made[which] = Db(which.rstrip("2"), url, sa.create_engine(url))
        return made[which]

    try:
        yield get
    finally:
        for db in made.values():
            try:
                db.drop_all()
            finally:
                db.engine.dispose()
