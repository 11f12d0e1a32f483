"""What the server is told of a ``mode: log`` slot: while received changes wait for the broker,
keepalives (WAL moved by another table) never move the slot past them; once nothing waits, a
keepalive's WAL end is confirmed, so a slot over quiet tables does not retain WAL without
bound. And a replication connection the server refuses gives the connector's error."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bus.config import Settings
from bus.sync import run
from connectors.errors import ConnectorUnavailableError
from connectors.sql import pglog
from connectors.sql import pgoutput as pg
from tests.integration.cdc.helpers import confirmed_flush, drop_log, execute, log_source
from tests.integration.cdc.pg_cluster import Cluster

pytestmark = pytest.mark.integration

# the walsender asks for a reply after half of it, and ends a stream silent for all of it


def lsn_of(url: str, sql: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pg.parse_lsn(conn.exec_driver_sql(sql).scalar_one())
    finally:
        engine.dispose()


def wal_now(url: str) -> int:
    return lsn_of(url, "SELECT pg_current_wal_insert_lsn()::text")


def test_a_slot_over_quiet_tables_moves_with_wal_written_elsewhere(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    url, quiet, busy = logical_pg.url, f"lang_{unique}", f"on_{unique}"
    execute(url, "CREATE TABLE {t} (id int PRIMARY KEY, ten text)", table=quiet)
    execute(url, "CREATE TABLE {t} (id serial PRIMARY KEY, ghi_chu text)", table=busy)
    log_source(settings, url, "lang", quiet, f"tthc.l{unique}")
    other_db = url.rsplit("/", 1)[0] + "/postgres"
    try:
        assert run(settings, "lang").rows == 0
        before = confirmed_flush(url, "lgsp_lang")
        for n in range(2):
            execute(
                url, "INSERT INTO {t} (ghi_chu) SELECT 'x' FROM generate_series(1, 300)", table=busy
            )
            # another database's WAL is the same WAL
            execute(other_db, f"CREATE TABLE khac_{unique}_{n} AS SELECT 1 AS id")
            written = wal_now(url)
            assert run(settings, "lang").rows == 0
            now = confirmed_flush(url, "lgsp_lang")
            assert now >= written > before, f"run {n + 1}: the slot stayed at {before}"
            before = now
    finally:
        for n in range(2):
            execute(other_db, f"DROP TABLE IF EXISTS khac_{unique}_{n}")
        drop_log(url, "lang", quiet, busy)


def test_a_refused_replication_connection_names_the_attribute_and_pg_hba(
    logical_pg: Cluster,
) -> None:
    """A role the server refuses a replication connection (no REPLICATION attribute; ``add``
    and each run check it first, but it may be revoked in between): the connector's error, not
    a driver's, and no password or server message in it."""
    role = "lgsp_tu_choi"
    execute(logical_pg.url, f"DROP ROLE IF EXISTS {role}", f"CREATE ROLE {role} LOGIN")
    try:
        url = make_url(logical_pg.url_for(role)).set(password="bi-mat-123")
        with pytest.raises(ConnectorUnavailableError) as caught:
            pglog._Replication(pglog._replication_conninfo(url, 3), f"{url.host}:{url.port}")
        text = str(caught.value)
        assert "cannot open a replication connection" in text
        assert "REPLICATION attribute" in text and "pg_hba.conf" in text
        assert "bi-mat-123" not in text and "superuser" not in text
    finally:
        execute(logical_pg.url, f"DROP ROLE {role}")
