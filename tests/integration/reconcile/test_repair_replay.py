"""A hard delete repaired by ``reconcile --repair`` is not back-dated: the archive's history
still shows the row until the repair observed it gone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus import sync
from bus.archive.archiver import Archiver
from bus.archive.replay import replay_as_of
from bus.config import Settings
from bus.connector_service.registration import register
from bus.reconcile.service import run_reconcile
from tests.integration.reconcile.conftest import Db, dossier
from tests.integration.reconcile.test_reconcile_connectors import _connector

pytestmark = pytest.mark.integration


def _ids(url: str, table: str) -> set[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {int(i) for i in conn.exec_driver_sql(f"SELECT id FROM {table}").scalars()}  # noqa: S608
    finally:
        engine.dispose()


def test_replay_before_the_repair_still_shows_the_hard_deleted_row(
    settings: Settings, dbs: Callable[[str], Db], unique: str, tmp_path: Path
) -> None:
    src, tgt = dbs("sqlite"), dbs("sqlite2")
    s_name = src.create(f"rr_src_{unique}")
    t_name = f"rr_sink_{unique}"
    tgt.made.append(t_name)
    src.insert(s_name, [dossier(i) for i in range(1, 11)])  # last updated 2024-06-01 08:31..40
    dataset = f"tthc.rr_{unique}"
    source, sink = f"rr-src-{unique}", f"rr-sink-{unique}"
    register(settings, _connector(source, "source", src.url, s_name, dataset, cursor="cap_nhat"))
    register(settings, _connector(sink, "sink", tgt.url, t_name, dataset))
    sync.run(settings, source)
    sync.run(settings, sink)

    src.delete(s_name, {"id": 5})  # a hard delete: polling does not see it
    before_repair = dt.datetime.now(dt.UTC)
    report = run_reconcile(settings, source, s_name, sink, repair=True)
    assert report.counts["extra"] == 1 and report.repair["ops"]["d"] == 1
    sync.run(settings, sink)
    assert run_reconcile(settings, source, s_name, sink).agree  # the delete won on the sink
    assert 5 not in _ids(tgt.url, t_name)
    Archiver(settings).run_once(f"lgsp.*.{dataset}")

    url = f"sqlite:///{tmp_path / 'asof.db'}"
    between = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # after the row's last update, before repair
    assert between < before_repair
    replay_as_of(settings, dataset, between, into=url, table="asof_then", purpose="kiểm tra")
    assert _ids(url, "asof_then") == set(range(1, 11))  # the row still existed then
    after = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    replay_as_of(settings, dataset, after, into=url, table="asof_now", purpose="kiểm tra")
    assert _ids(url, "asof_now") == set(range(1, 11)) - {5}
