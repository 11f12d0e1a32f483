"""Timestamps with microseconds through the bus (PostgreSQL -> PostgreSQL): they travel as
``timestamp-micros`` and arrive intact, and reconcile compares them to the microsecond."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.connector_service.registration import register
from bus.reconcile.service import run_reconcile
from bus.sync import run
from conftest import PG_URL
from tests.helpers import drop_tables
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration


def test_microseconds_arrive_and_are_compared(settings: Settings, unique: str) -> None:
    src_table, dst_table, dataset = f"us_src_{unique}", f"us_dst_{unique}", f"prec.u{unique}"
    engine = sa.create_engine(PG_URL)
    table = sa.Table(
        src_table,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tiep_nhan", sa.DateTime(timezone=True), nullable=False),
    )
    table.create(engine)
    at = dt.datetime(2025, 7, 1, 8, 0, 0, tzinfo=dt.UTC)
    try:
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {"id": 1, "tiep_nhan": at.replace(microsecond=123000)},  # whole ms
                    {"id": 2, "tiep_nhan": at.replace(microsecond=123456)},
                ],
            )
        src, dst = f"us-src-{unique}", f"us-dst-{unique}"
        entry = {"table": src_table, "dataset": dataset, "cursor": "tiep_nhan"}
        register(settings, config("postgresql", "source", PG_URL, [entry], name=src))
        sink_entry = {"table": dst_table, "dataset": dataset}
        register(settings, config("postgresql", "sink", PG_URL, [sink_entry], name=dst))
        run(settings, src)
        run(settings, dst)
        with engine.connect() as conn:
            copied = conn.execute(sa.text(f"SELECT tiep_nhan FROM {dst_table} WHERE id = 2"))  # noqa: S608
            assert copied.scalar_one() == at.replace(microsecond=123456)
        assert run_reconcile(settings, src, src_table, dst).agree
        with engine.begin() as conn:  # a copy cut to the millisecond is a difference
            conn.execute(
                sa.text(f"UPDATE {dst_table} SET tiep_nhan = date_trunc('milliseconds', tiep_nhan)")  # noqa: S608
            )
        report = run_reconcile(settings, src, src_table, dst)
        assert not report.agree
        assert report.counts == {"missing": 0, "extra": 0, "different": 1}
        assert [d.key["id"] for d in report.different] == ["2"]
    finally:
        engine.dispose()
        drop_tables(PG_URL, [src_table, dst_table])
