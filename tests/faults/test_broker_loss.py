"""A broker that lost what the bus published is noticed by every run and restored from the
archive: a PostgreSQL source, a SQLite sink, the archive, and a broker of the test's own (the
embedded broker keeps topics in memory: ``lgsp broker stop; lgsp broker start`` empties it)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from bus.config import reset_settings
from conftest import PG_URL
from tests.helpers import assert_broker_lost_refusal, drop_tables, recreate_topic
from tests.helpers import own_broker as broker_of_its_own
from tests.helpers import run_cli as lgsp

pytestmark = pytest.mark.integration

UNIT = "26734"
FIRST, LATER = 30, 20  # rows archived before the loss, rows published after the archive run


@pytest.fixture
def own_broker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state folder with an embedded broker of its own (not the session's)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("LGSP_HOME", str(home))
    monkeypatch.delenv("LGSP_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("LGSP_DATABASE_URL", raising=False)
    reset_settings()
    try:
        with broker_of_its_own(home):
            yield home
    finally:
        reset_settings()


def _rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    base = dt.datetime(2025, 7, 1, tzinfo=dt.UTC)
    return [
        {
            "ma_ho_so": f"HS{i:04d}",
            "nguoi_nop": f"Nguyễn Văn {i}",
            "so_tien": i * 1000 + 7,
            "cap_nhat": base + dt.timedelta(minutes=i),
        }
        for i in range(start, start + n)
    ]


class Pipeline:
    """A PostgreSQL source table, its connector, a SQLite sink connector, run by the CLI."""

    def __init__(self, home: Path, unique: str) -> None:
        self.table = f"loss_src_{unique}"
        self.source = f"src-{unique}"
        self.sink = f"dst-{unique}"
        self.dataset = f"tthc.loss{unique}"
        self.topic = f"lgsp.79.760.{UNIT}.{self.dataset}"
        self.sink_url = f"sqlite:///{home / 'sink.db'}"
        self.src = sa.Table(
            self.table,
            sa.MetaData(),
            sa.Column("ma_ho_so", sa.String(20), primary_key=True),
            sa.Column("nguoi_nop", sa.String(100), nullable=False),
            sa.Column("so_tien", sa.BigInteger, nullable=False),
            sa.Column("cap_nhat", sa.DateTime(timezone=True), nullable=False),
        )
        engine = sa.create_engine(PG_URL)
        self.src.metadata.create_all(engine)
        engine.dispose()
        for name, role, url, table in (
            (self.source, "source", PG_URL, {"cursor": "cap_nhat"}),
            (self.sink, "sink", self.sink_url, {}),
        ):
            path = home / f"{role}.yaml"
            data = {
                "name": name,
                "type": "postgresql" if role == "source" else "sqlite",
                "role": role,
                "agency": "ubnd-phuong-tan-dinh",
                "unit": UNIT,
                "connection": {"url": url},
                "batch_size": 10,
                "tables": [{"table": self.table, "dataset": self.dataset, **table}],
            }
            path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
            code, _, err = lgsp("connector", "add", str(path))
            assert code == 0, err

    def insert(self, rows: list[dict[str, Any]]) -> None:
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:
            conn.execute(self.src.insert(), rows)
        engine.dispose()

    def run(self, name: str) -> tuple[int, str, str]:
        return lgsp("connector", "run", name)

    def ok(self, *args: str) -> str:
        code, out, err = lgsp(*args)
        assert code == 0, err
        return out

    def source_rows(self) -> list[tuple[Any, ...]]:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(self.src).order_by(self.src.c.ma_ho_so)).all()
        engine.dispose()
        return [(r[0], r[1], r[2], r[3].astimezone(dt.UTC)) for r in rows]

    def sink_rows(self) -> list[tuple[Any, ...]]:
        engine = sa.create_engine(self.sink_url)
        columns = ", ".join(c.name for c in self.src.columns)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(f"SELECT {columns} FROM {self.table} ORDER BY ma_ho_so")  # noqa: S608
            ).all()
        engine.dispose()
        return [(r[0], r[1], int(r[2]), _utc(r[3])) for r in rows]

    def drop(self) -> None:
        drop_tables(PG_URL, [self.table])


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@pytest.fixture
def pipeline(own_broker: Path, unique: str) -> Iterator[Pipeline]:
    p = Pipeline(own_broker, unique)
    try:
        yield p
    finally:
        p.drop()


def _archived_then_more(p: Pipeline) -> None:
    """FIRST rows published, sunk and archived; LATER rows published (not archived) and sunk."""
    p.insert(_rows(FIRST))
    p.ok("connector", "run", p.source)
    p.ok("connector", "run", p.sink)
    p.ok("archive", "run")
    p.insert(_rows(LATER, start=FIRST))
    p.ok("connector", "run", p.source)


def _refused(result: tuple[int, str, str]) -> None:
    code, out, err = result
    assert_broker_lost_refusal(code, err, out)


def _restore_and_catch_up(p: Pipeline) -> None:
    code, out, err = lgsp("broker", "restore", "--dry-run")
    assert code == 0, err
    assert out.startswith(f"would restore {FIRST} event(s) in ") and "of 1 topic(s)" in out
    _refused(p.run(p.sink))  # a dry run changes nothing
    out = p.ok("broker", "restore")
    assert f"restored {FIRST} event(s)" in out and "1 source position(s) moved back" in out
    again = p.ok("broker", "restore")  # idempotent
    assert again.startswith("restored 0 event(s) in 0 partition(s)"), again
    assert "0 source position(s)" in again and "0 consumer group(s)" in again
    p.ok("connector", "run", p.source)  # publishes again what never reached the archive
    p.ok("connector", "run", p.sink)
    assert p.sink_rows() == p.source_rows()
    assert len(p.source_rows()) == FIRST + LATER
    p.ok("archive", "run")
    p.ok("audit", "verify")


def test_a_restarted_broker_stops_every_run_until_restored(pipeline: Pipeline) -> None:
    p = pipeline
    _archived_then_more(p)
    p.ok("broker", "stop")
    p.ok("broker", "start")
    _refused(p.run(p.sink))  # the old code: "rows 0", exit 0
    _refused(p.run(p.source))
    _refused(lgsp("archive", "run"))
    _restore_and_catch_up(p)


def test_a_topic_deleted_and_recreated_is_noticed(pipeline: Pipeline) -> None:
    from bus.config import get_settings

    p = pipeline
    _archived_then_more(p)
    recreate_topic(get_settings(), p.topic, p.dataset)  # waits for the delete to complete
    _refused(p.run(p.sink))
    _refused(p.run(p.source))
    _restore_and_catch_up(p)


def _jsonl(path: Path, first: int, count: int) -> Path:
    """``count`` bare records (keys HS9000...) for ``lgsp publish``."""
    import json

    path.write_text(
        "".join(
            json.dumps(
                {
                    "ma_ho_so": f"HS9{i:03d}",
                    "nguoi_nop": "X",
                    "so_tien": 1,
                    "cap_nhat": 1751328000000,
                }
            )
            + "\n"
            for i in range(first, first + count)
        ),
        encoding="utf-8",
    )
    return path


def test_events_no_rerun_publishes_again_are_reported_and_fail_the_restore(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    """Events of ``lgsp publish`` after the last archive run: no source position rewinds to
    them, so the restore names them lost for good and exits 4 (the old code: exit 0, no word)."""
    p = pipeline
    _archived_then_more(p)
    p.ok("publish", p.topic, "--file", str(_jsonl(tmp_path / "extra.jsonl", 0, 5)))
    p.ok("broker", "stop")
    p.ok("broker", "start")
    lost_line = re.compile(
        rf"  lost for good: {re.escape(p.topic)}\[\d\]: events up to offset \d+ published by "
        "lgsp publish after the last archive run are lost; re-publish them from their files"
    )
    for args in (("broker", "restore", "--dry-run"), ("broker", "restore")):
        code, out, err = lgsp(*args)
        assert code == 4, (code, out, err)
        lost = [line for line in out.splitlines() if "lost for good" in line]
        assert lost and all(lost_line.fullmatch(line) for line in lost), out
        assert err.startswith("error: broker restore: events that neither the archive"), err
        assert len(err.strip().splitlines()) == 1
    assert f"restored {FIRST} event(s)" in out and "1 source position(s) moved back" in out
    p.ok("connector", "run", p.source)  # the source's own events come back
    p.ok("connector", "run", p.sink)
    assert len(p.sink_rows()) == FIRST + LATER
    p.ok("publish", p.topic, "--file", str(tmp_path / "extra.jsonl"))  # as the line says
    p.ok("connector", "run", p.sink)
    assert len(p.sink_rows()) == FIRST + LATER + 5


def test_dead_letters_a_consumer_parked_are_reported_lost(pipeline: Pipeline) -> None:
    """A record the sink cannot decode is parked in ``<topic>.dlq`` by the consumer's own
    producer; a broker loss takes it: the restore names it lost for good (the old code: its
    end was never recorded, the restore said nothing and exited 0)."""
    from bus.config import get_settings
    from bus.kafka import clients

    p = pipeline
    p.insert(_rows(FIRST))
    p.ok("connector", "run", p.source)
    p.ok("archive", "run")
    producer = clients.producer(get_settings())
    try:
        producer.send(p.topic, key=b"HS0000", value=b"not avro", partition=0).get(timeout=10)
    finally:
        producer.close(timeout=5)
    out = p.ok("connector", "run", p.sink)
    assert "DLQ 1," in out, out
    p.ok("broker", "stop")
    p.ok("broker", "start")
    code, out, err = lgsp("broker", "restore")
    assert code == 4, (code, out, err)
    parked = re.compile(
        rf"  lost for good: {re.escape(p.topic)}\.dlq\[\d\]: events up to offset 1 published "
        rf"by the dead-letter parking of consumer group lgsp\.sink\.{p.sink} after the last "
        "archive run are lost; the records they held are at the origin offsets the consumer logged"
    )
    assert any(parked.fullmatch(line) for line in out.splitlines()), out
    # the foreign record itself (sent by no bus publisher) is named too
    assert re.search(rf"{re.escape(p.topic)}\[0\]: records up to offset \d+ that no publisher", out)


class _Killed(Exception):
    """Stands for a kill -9 between sending the archive and recording the new ends."""


def test_a_rerun_of_an_interrupted_restore_keeps_shifted_offsets_at_0(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An archive whose first offset is not 0 (retention, a new epoch): restored records do
    not sit at their old offsets, so a group moves to 0. The restore is killed after it sent
    everything, then run again: it sends nothing, and must still move the group to 0 (the old
    code: to min(committed, archived) in the old numbering, past unread records)."""
    from kafka import TopicPartition

    from bus import broker_guard, broker_restore
    from bus.archive.models import ArchiveEntry
    from bus.config import get_settings
    from bus.db import open_engine
    from bus.kafka import clients

    p = pipeline
    p.insert(_rows(FIRST))
    p.ok("connector", "run", p.source)
    p.ok("connector", "run", p.sink)
    p.ok("archive", "run")
    settings = get_settings()
    entries = ArchiveEntry.__table__
    at_1 = (entries.c.topic == p.topic, entries.c.kafka_partition == 1)
    with open_engine(settings).begin() as conn:  # the archive starts at offset 3 of p1
        first = sa.select(entries.c.seq).where(*at_1).order_by(entries.c.seq).limit(3)
        conn.execute(sa.delete(entries).where(*at_1, entries.c.seq.in_(first.scalar_subquery())))
    p.ok("broker", "stop")
    p.ok("broker", "start")

    def killed(*_: Any) -> None:
        raise _Killed

    with monkeypatch.context() as m:
        m.setattr(broker_guard, "replace_ends", killed)
        with pytest.raises(_Killed):
            broker_restore.restore(settings)
    out = p.ok("broker", "restore")
    assert out.startswith("restored 0 event(s)"), out
    assert f"{p.topic}[1]: 0 event(s), offsets shifted" in out, out
    consumer = clients.consumer(settings, f"lgsp.sink.{p.sink}")
    try:
        assert consumer.committed(TopicPartition(p.topic, 1)) == 0
    finally:
        consumer.close(autocommit=False)


def test_one_restore_at_a_time(pipeline: Pipeline) -> None:
    """A restore running elsewhere holds the restore lock: a second one sends nothing (the
    old code: both sent, duplicating every event); a crashed one of this host is taken over."""
    import socket
    import subprocess
    import sys

    from bus import processes
    from bus.config import get_settings
    from bus.connectors_db import ConnectorStore
    from bus.connectors_db.models import OperationLock

    p = pipeline
    _archived_then_more(p)
    p.ok("broker", "stop")
    p.ok("broker", "start")
    store = ConnectorStore(get_settings())
    lock = "broker-restore"
    elsewhere = "otherhost:4242:1:-:r1"
    store.acquire_lock(lock, elsewhere, 3600, OperationLock)
    code, out, err = lgsp("broker", "restore")
    assert code != 0 and "broker-restore is already running" in err, (code, out, err)
    store.release_lock(lock, elsewhere, OperationLock)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    crashed = f"{socket.gethostname()}:{gone.pid}:-:{processes.pid_scope()}:r2"
    store.acquire_lock(lock, crashed, 3600, OperationLock)
    out = p.ok("broker", "restore")  # the crashed holder's lock is taken over at once
    assert f"restored {FIRST} event(s)" in out, out
    assert store.lock(lock, OperationLock) is None
