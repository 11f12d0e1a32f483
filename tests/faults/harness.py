"""The fault harness: real bus processes, killed and disturbed at seeded random points.

Everything runs as it does in production: each bus process is ``lgsp ...`` in its own
subprocess (a source, a route, a sink, the archiver; bounded or ``--follow``), against real
PostgreSQL, MariaDB and SQLite tables and the session's broker. A fault is applied at a random
moment drawn from one seeded RNG: the seed is printed and can be set with ``LGSP_FAULT_SEED``,
so a failure is replayed exactly (same faults in the same order; timing still varies with the
machine's load). ``LGSP_FAULT_KILLS`` sets how many faults a scenario applies (default 3,
2 in the followed scenario; 30 with ``LGSP_BENCH_FULL=1``, which also adds dialect pairs).

After a scenario, ``Pipeline.assert_invariant`` checks what must hold whatever happened:

* the sink table equals the source table on every column (exact comparison of the rows, with
  values normalised only where the documented type mapping changes their Python form, see
  ``normalise``), not a count;
* every dead letter is accounted for (a scenario that parks nothing must leave every DLQ
  empty; one that parks rows says which);
* ``lgsp audit verify`` passes after a last ``lgsp archive run``, and the archive holds every
  offset of the topics;
* a run that exited 0 reported success truthfully: its run-history row says ``ok`` and its
  stage's output was complete when it ended (``Pipeline.check_completed`` right after it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.dialects import mysql

from bus.archive.models import ArchiveEntry
from bus.archive.verify import verify
from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.consume import Consumer, Message
from bus.db import session_scope
from bus.dlq_ops import list_dead_letters
from bus.kafka.ends import end_offsets
from bus.runs import list_runs
from tests.helpers import assert_broker_lost_refusal, drop_tables, read_rows
from tests.integration.connectors.helpers import config
from tests.unit.catalog.support import write_dataset

SEED_ENV = "LGSP_FAULT_SEED"
KILLS_ENV = "LGSP_FAULT_KILLS"
LGSP = str(Path(sys.executable).with_name("lgsp"))
WARD, DISTRICT = "26734", "760"
AGENCY = "ubnd-phuong-tan-dinh"


def fault_rng(label: str) -> random.Random:
    """The scenario's RNG: seeded from ``LGSP_FAULT_SEED`` or a fresh seed, printed (pytest
    shows it with the output of a failing test) so the run can be repeated."""
    seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1, 2**31))
    print(f"{label}: fault seed {seed} (repeat with {SEED_ENV}={seed})")
    return random.Random(seed)


def full_size() -> bool:
    """More scenarios and faults (``LGSP_BENCH_FULL=1``, as ``make bench``)."""
    return bool(os.environ.get("LGSP_BENCH_FULL"))


def fault_count(default: int = 3) -> int:
    """How many faults a scenario applies: ``LGSP_FAULT_KILLS``, else 30 with
    ``LGSP_BENCH_FULL=1``, else ``default`` (sized for ``make test``)."""
    if os.environ.get(KILLS_ENV):
        return int(os.environ[KILLS_ENV])
    return 30 if full_size() else default


# ---- processes ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one bus process ended: ``rc`` None when it was killed."""

    args: tuple[str, ...]
    rc: int | None
    seconds: float
    out: str
    err: str

    @property
    def killed(self) -> bool:
        return self.rc is None

    def describe(self) -> str:
        how = "killed -9" if self.killed else f"exit {self.rc}"
        return f"lgsp {' '.join(self.args)}: {how} after {self.seconds:.2f} s\n{self.err[-2000:]}"


class Running:
    """One ``lgsp ...`` subprocess (its own process group, output to files)."""

    def __init__(self, env: dict[str, str], logs: Path, args: tuple[str, ...]) -> None:
        self.args = args
        logs.mkdir(parents=True, exist_ok=True)
        stem = logs / f"{time.monotonic_ns()}"
        self._out, self._err = stem.with_suffix(".out"), stem.with_suffix(".err")
        self.started = time.monotonic()
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.proc = subprocess.Popen(
                [LGSP, *args], env=env, stdout=out, stderr=err, start_new_session=True
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill9(self) -> Outcome:
        """SIGKILL now if it still runs (then ``rc`` is None), else how it ended."""
        killed = self.alive()
        if killed:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return self._outcome(None if killed else self.proc.returncode)

    def stop(self, timeout: float = 60) -> Outcome:
        """SIGTERM (a followed run stops after the batch in hand), then wait."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 120) -> Outcome:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            self.kill9()
            raise AssertionError(f"lgsp {' '.join(self.args)} still ran after {timeout} s") from exc
        return self._outcome(self.proc.returncode)

    def _outcome(self, rc: int | None) -> Outcome:
        return Outcome(
            self.args,
            rc,
            time.monotonic() - self.started,
            self._out.read_text("utf-8", "replace"),
            self._err.read_text("utf-8", "replace"),
        )


class Processes:
    """Starts bus processes in one state folder and on one broker, and keeps their outcomes."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.env = {**os.environ, "LGSP_HOME": str(settings.home)}
        self.env.pop("LGSP_DATABASE_URL", None)
        self.env.pop("LGSP_KAFKA_BOOTSTRAP", None)
        if settings.kafka_bootstrap:  # else the state folder's own embedded broker
            self.env["LGSP_KAFKA_BOOTSTRAP"] = str(settings.kafka_bootstrap)
        self.outcomes: list[Outcome] = []
        self._typical: dict[str, float] = {}

    def start(self, *args: str) -> Running:
        return Running(self.env, self.logs, args)

    def run(self, *args: str, timeout: float = 120) -> Outcome:
        """Run to the end; the outcome is kept (and returned whatever its exit code)."""
        outcome = self.start(*args).wait(timeout)
        self.outcomes.append(outcome)
        if outcome.rc == 0:
            self._typical[args[0]] = max(outcome.seconds, 1.0)
        return outcome

    def ok(self, *args: str, timeout: float = 120) -> Outcome:
        outcome = self.run(*args, timeout=timeout)
        assert outcome.rc == 0, outcome.describe()
        return outcome

    def run_or_kill(self, rng: random.Random, *args: str) -> Outcome:
        """Start, wait a random time within about how long such a run takes, and kill -9 it
        if it still runs."""
        running = self.start(*args)
        deadline = rng.uniform(0.3, 1.3 * self._typical.get(args[0], 3.0))
        while running.alive() and time.monotonic() - running.started < deadline:
            time.sleep(0.02)
        outcome = running.kill9()
        self.outcomes.append(outcome)
        return outcome

    def wait_until_running(self, connector: str, running: Running, timeout: float = 60) -> None:
        """Wait until ``running`` holds the run lock of ``connector`` (past its start-up: a
        followed run handles SIGTERM from then on)."""
        store = ConnectorStore(self.settings)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            held = store.lock(connector)
            if held is not None and int(held.owner.split(":")[1]) == running.proc.pid:
                return
            assert running.alive(), running.wait().describe()
            time.sleep(0.05)
        raise AssertionError(f"lgsp {' '.join(running.args)} took no lock in {timeout} s")

    def release_dead_lock(self, connector: str) -> None:
        """What the operator does after a crash (``lgsp connector unlock``): release the run
        lock of a killed run, in process (a CLI start costs a second of CPU)."""
        store = ConnectorStore(self.settings)
        held = store.lock(connector)
        if held is not None:
            pid = int(held.owner.split(":")[1])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 0)
                return  # its holder is alive: not a crashed run's lock
            store.release_lock(connector, held.owner)


# ---- comparison -----------------------------------------------------------------------------


def normalise(value: Any) -> Any:
    """A value in the form in which the documented type mapping keeps it across dialects:
    an aware timestamp as naive UTC (MariaDB and SQLite store timestamps as UTC without a
    zone); everything else as it is (a ``Decimal`` compares by value, not rounded; booleans
    are made ``bool`` by the caller, MariaDB's ``TINYINT(1)`` giving 0/1)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def table_rows(
    url: str, table: str, columns: list[str], key: str, *, booleans: tuple[str, ...] = ()
) -> dict[Any, tuple[Any, ...]]:
    """``{key: (column values...)}`` of ``table``, normalised."""
    rows = read_rows(url, table, columns)
    return {row[key]: _values(row, columns, booleans) for row in rows}


def _values(row: dict[str, Any], columns: list[str], booleans: tuple[str, ...]) -> tuple:
    return tuple(
        bool(row[c]) if c in booleans and row[c] is not None else normalise(row[c]) for c in columns
    )


def assert_same_rows(expected: dict[Any, tuple], actual: dict[Any, tuple], what: str) -> None:
    """Equal on every key and every column; the message names the first differences."""
    if expected == actual:
        return
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    lines = [
        f"{what}: {len(expected)} expected rows, {len(actual)} found; {len(missing)} missing "
        f"{missing[:10]}, {len(extra)} extra {extra[:10]}, {len(changed)} differ"
    ]
    lines += [f"  key {k}: expected {expected[k]}, found {actual[k]}" for k in changed[:5]]
    raise AssertionError("\n".join(lines))


def read_topic(settings: Settings, topic: str) -> list[Message]:
    out: list[Message] = []
    with Consumer(settings, None) as consumer:  # type: ignore[arg-type]
        consumer.run_bounded([topic], out.extend, from_beginning=True, commit=False)
    return out


def topic_state(
    settings: Settings, topic: str, columns: list[str], key: str, booleans: tuple[str, ...] = ()
) -> dict[Any, tuple]:
    """The table a topic describes: the newest event of each key (by source version, then
    offset, as the sinks' version rule applies them), deleted keys left out."""
    newest: dict[Any, tuple[int, int, dict[str, Any]]] = {}
    for message in read_topic(settings, topic):
        event = message.value
        k = json.loads(event["key"])[key]  # the canonical key (JSON)
        rank = (event["ts_ms"], message.offset)
        if k not in newest or rank >= newest[k][:2]:
            newest[k] = (*rank, event)
    return {
        k: _values(e["after"], columns, booleans)
        for k, (_ts, _o, e) in newest.items()
        if e["op"] != "d"
    }


# ---- the pipeline under test ----------------------------------------------------------------

RECORD = {
    "type": "record",
    "name": "HoSo",
    "namespace": "faults",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "ho_ten", "type": "string"},
        {
            "name": "so_tien",
            "type": [
                "null",
                {"type": "bytes", "logicalType": "decimal", "precision": 14, "scale": 2},
            ],
            "default": None,
        },
        {"name": "ngay_sinh", "type": ["null", {"type": "int", "logicalType": "date"}]},
        {"name": "cap_nhat", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "da_xoa", "type": "boolean"},
    ],
}
COLUMNS = [f["name"] for f in RECORD["fields"]]
LIVE = [c for c in COLUMNS if c != "da_xoa"]  # the sink deletes a soft-deleted row
NAMES = ["Nguyễn Văn An", "Trần Thị Bích Ngọc", "Lê Đức Thọ", "Huỳnh Tấn Phát", "Đặng Thị Ánh"]


def source_table(name: str, *, seconds_cursor: bool = False) -> sa.Table:
    """The source table; on MariaDB its cursor keeps microseconds (``DATETIME(6)``) unless
    ``seconds_cursor`` (MariaDB's default ``DATETIME``: the cursor-polling hole)."""
    cursor = sa.DateTime(timezone=True)
    if not seconds_cursor:
        cursor = cursor.with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ho_ten", sa.String(100), nullable=False),
        sa.Column("so_tien", sa.Numeric(14, 2)),
        sa.Column("ngay_sinh", sa.Date),
        sa.Column("cap_nhat", cursor, nullable=False),
        sa.Column("da_xoa", sa.Boolean, nullable=False),
        mysql_charset="utf8mb4",
    )


@dataclass
class Pipeline:
    """A catalogued dataset published by a ward source table, rolled up into the district
    topic, applied by a district sink, archived: each stage a separate ``lgsp`` process.

    With ``route=False`` the sink sits at the ward and reads the source's topic directly."""

    settings: Settings
    procs: Processes
    unique: str
    src_url: str
    dst_url: str
    folder: Path
    route: bool = True
    batch_size: int = 25
    seconds_cursor: bool = False
    archive: bool = True
    clock: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC))
    next_id: int = 1
    # (start, end) of each time the broker had lost data (``restart_broker`` to
    # ``recover_broker``): no run may report success within one
    broker_lost: list[tuple[dt.datetime, dt.datetime | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dataset = f"faults.f{self.unique}"
        self.src_table, self.dst_table = f"fs_{self.unique}", f"fd_{self.unique}"
        self.source, self.sink = f"fsrc-{self.unique}", f"fdst-{self.unique}"
        self.table = source_table(self.src_table, seconds_cursor=self.seconds_cursor)
        engine = sa.create_engine(self.src_url)
        self.table.metadata.create_all(engine)
        engine.dispose()
        schema = self.folder / "faults.HoSo.avsc"
        schema.write_text(json.dumps(RECORD), encoding="utf-8")
        doc = write_dataset(
            self.folder,
            self.dataset,
            publisher=AGENCY,
            publisher_display="UBND phường Tân Định",
            units=[WARD],
            schema=str(schema),
            key=["id"],
            pii=["ho_ten"],
        )
        self.procs.ok("dataset", "publish", str(doc))
        if self.route:
            self.procs.ok("route", "init", self.dataset)
        source = {"table": self.src_table, "dataset": self.dataset}
        source |= {"cursor": "cap_nhat", "deleted_flag": "da_xoa"}
        register(
            self.settings,
            config(
                _kind(self.src_url),
                "source",
                self.src_url,
                [source],
                name=self.source,
                batch_size=self.batch_size,
            ),
        )
        self.register_sink(self.dst_url)
        stored = ConnectorStore(self.settings)
        self.ward_topic = stored.get(self.source).topics[self.src_table]
        self.sink_topic = stored.get(self.sink).topics[self.dst_table]

    def register_sink(self, url: str, *, replace: bool = False) -> None:
        register(
            self.settings,
            config(
                _kind(url),
                "sink",
                url,
                [{"table": self.dst_table, "dataset": self.dataset, "key": ["id"]}],
                name=self.sink,
                unit=DISTRICT if self.route else WARD,
                batch_size=self.batch_size,
            ),
            replace=replace,
        )

    # -- changes to the source table

    def tick(self) -> dt.datetime:
        self.clock += dt.timedelta(milliseconds=37)
        return self.clock

    def change(self, rng: random.Random, inserts: int, updates: int, deletes: int) -> None:
        """Insert, update and soft-delete rows of the source table, each with a new cursor
        value (milliseconds: the envelope carries timestamps to the millisecond)."""
        rows = []
        for _ in range(inserts):
            i, self.next_id = self.next_id, self.next_id + 1
            rows.append(
                {
                    "id": i,
                    "ho_ten": f"{NAMES[i % len(NAMES)]} {i}",
                    "so_tien": None
                    if i % 5 == 0
                    else decimal.Decimal(f"{rng.randrange(10**9)}.{i % 100:02d}"),
                    "ngay_sinh": None if i % 4 == 0 else dt.date(1950, 1, 1) + dt.timedelta(i),
                    "cap_nhat": self.tick(),
                    "da_xoa": False,
                }
            )
        engine = sa.create_engine(self.src_url)
        try:
            with engine.begin() as conn:
                if rows:
                    conn.execute(self.table.insert(), rows)
                existing = list(range(1, self.next_id - inserts))
                for i in rng.sample(existing, min(updates, len(existing))):
                    conn.execute(
                        self.table.update()
                        .where(self.table.c.id == i)
                        .values(
                            ho_ten=f"{NAMES[(i + 1) % len(NAMES)]} {i} v{rng.randrange(100)}",
                            so_tien=decimal.Decimal(f"-{rng.randrange(10**6)}.05"),
                            cap_nhat=self.tick(),
                        )
                    )
                for i in rng.sample(existing, min(deletes, len(existing))):
                    conn.execute(
                        self.table.update()
                        .where(self.table.c.id == i)
                        .values(da_xoa=True, cap_nhat=self.tick())
                    )
        finally:
            engine.dispose()

    # -- states

    def source_state(self) -> dict[Any, tuple]:
        rows = table_rows(self.src_url, self.src_table, COLUMNS, "id", booleans=("da_xoa",))
        live = {k: v for k, v in rows.items() if not v[COLUMNS.index("da_xoa")]}
        return {k: v[: len(LIVE)] for k, v in live.items()}

    def sink_state(self) -> dict[Any, tuple]:
        return table_rows(self.dst_url, self.dst_table, LIVE, "id")

    def topic_rows(self, topic: str) -> dict[Any, tuple]:
        return topic_state(self.settings, topic, LIVE, "id")

    # -- stages: (args of the lgsp process, the name of its runs in the history)

    @property
    def stages(self) -> dict[str, tuple[tuple[str, ...], str]]:
        out = {"source": (("connector", "run", self.source, "--json"), self.source)}
        if self.route:
            out["route"] = (
                ("route", "run", self.dataset, "--level", "district", "--json"),
                f"{self.dataset}:district",
            )
        out["sink"] = (("connector", "run", self.sink, "--json"), self.sink)
        # only this scenario's topics: the session's broker holds other tests' topics, whose
        # schemas this state folder's registry does not know
        if self.archive:
            out["archive"] = (("archive", "run", "--topics", f"*.{self.dataset}"), "")
        return out

    def after_kill(self, stage: str) -> None:
        if stage in ("source", "sink"):
            self.procs.release_dead_lock(self.source if stage == "source" else self.sink)

    def check_completed(self, stage: str, outcome: Outcome) -> None:
        """A run that exited 0 said it did its work: its history row says ``ok`` and its
        output is complete now (nothing runs concurrently in a bounded round)."""
        assert outcome.rc == 0, outcome.describe()
        _, run_name = self.stages[stage]
        if run_name:
            latest = list_runs(self.settings, name=run_name, limit=1)
            assert latest and latest[0].status in ("ok", "success"), (stage, latest)
        if stage == "source":
            assert_same_rows(
                self.source_state(), self.topic_rows(self.ward_topic), "source run exit 0: topic"
            )
        elif stage == "route":
            ward = {m.value["event_id"] for m in read_topic(self.settings, self.ward_topic)}
            district = {m.value["event_id"] for m in read_topic(self.settings, self.sink_topic)}
            assert ward <= district, f"route run exit 0: {len(ward - district)} events not routed"
        elif stage == "sink":
            assert_same_rows(
                self.topic_rows(self.sink_topic), self.sink_state(), "sink run exit 0: sink table"
            )
        else:
            self.assert_archive_complete()

    def run_all(self) -> None:
        """Every stage once to the end, in order (each must exit 0)."""
        for stage, (args, _) in self.stages.items():
            self.check_completed(stage, self.procs.run(*args))

    # -- the invariant

    def assert_archive_complete(self) -> None:
        report = verify(self.settings)
        assert report.ok, [str(p) for p in report.problems]
        ends = end_offsets(self.settings, [self.ward_topic, self.sink_topic])
        with session_scope(self.settings) as s:
            archived = {
                (t, p): n
                for t, p, n in s.execute(
                    select(ArchiveEntry.topic, ArchiveEntry.kafka_partition, func.count())
                    .where(ArchiveEntry.topic.in_([self.ward_topic, self.sink_topic]))
                    .group_by(ArchiveEntry.topic, ArchiveEntry.kafka_partition)
                )
            }
        assert {tp: n for tp, n in archived.items() if n} == {
            tp: n for tp, n in ends.items() if n
        }, "the archive does not hold every offset of the topics, once"

    def dead_letters(self) -> list[Any]:
        return [
            entry
            for topic in {self.ward_topic, self.sink_topic}
            for entry in list_dead_letters(self.settings, topic)
        ]

    def assert_invariant(self) -> None:
        """After the faults and a last clean run of every stage: sink = source on every
        column, no dead letter, the archive complete and ``lgsp audit verify`` passing."""
        self.run_all()
        expected = self.source_state()
        assert expected, "the scenario wrote no rows"
        assert_same_rows(expected, self.sink_state(), "sink table against source table")
        assert self.dead_letters() == [], "rows were parked although none was bad"
        if self.archive:
            self.procs.ok("audit", "verify", "--dataset", self.dataset)
        self.assert_runs_truthful()

    def assert_runs_truthful(self) -> None:
        """No run in the history reports success with an error recorded, or started while the
        broker had lost data (a process that exited non-zero is checked where it ends:
        ``check_completed``, the scenarios)."""
        for info in list_runs(self.settings, limit=10_000):
            if info.status in ("ok", "success"):
                assert not (info.detail or {}).get("error"), info
                for start, end in self.broker_lost:
                    lost = start <= info.started_at and (end is None or info.started_at < end)
                    assert not lost, f"a run reported success on a broker that lost data: {info}"


def _kind(url: str) -> str:
    if url.startswith("sqlite"):
        return "sqlite"
    return "postgresql" if url.startswith("postgresql") else "mariadb"


@contextlib.contextmanager
def pipeline(
    settings: Settings, tmp_path: Path, unique: str, src_url: str, dst_url: str, **kw: Any
) -> Iterator[Pipeline]:
    procs = Processes(settings, tmp_path / "logs")
    made = Pipeline(settings, procs, unique, src_url, dst_url, tmp_path, **kw)
    try:
        yield made
    finally:
        drop_tables(src_url, [made.src_table])
        drop_tables(dst_url, [made.dst_table])


# ---- broker restart -------------------------------------------------------------------------

# The embedded broker keeps topics in memory: a restart loses them. Every run must then refuse
# (exit 4, one line naming ``lgsp broker restore``) until the operator runs that command, which
# re-publishes the archived events and moves source positions and consumer offsets back; the
# source rerun publishes again what never reached the archive (issue 13, hole 3). Only a
# pipeline on a broker of its own (``own_broker``) may be restarted, never the session's.


def restart_broker(pipe: Pipeline) -> None:
    """``lgsp broker stop; lgsp broker start`` of the pipeline's own embedded broker."""
    assert pipe.settings.kafka_bootstrap is None, "only a broker of the test's own is restarted"
    stopped = pipe.procs.ok("broker", "stop")
    assert stopped.out.strip() == "stopped", stopped.describe()
    pipe.broker_lost.append((dt.datetime.now(dt.UTC), None))
    pipe.procs.ok("broker", "start")


def assert_refused(outcome: Outcome) -> None:
    """A run on a broker that lost data: exit 4 and one line naming the recovery command."""
    assert_broker_lost_refusal(outcome.rc, outcome.err, outcome.describe())


def recover_broker(pipe: Pipeline) -> None:
    """``lgsp broker restore`` (then the broker guard lets runs go again)."""
    restored = pipe.procs.ok("broker", "restore")
    assert restored.out.startswith("restored "), restored.describe()
    start, end = pipe.broker_lost[-1]
    assert end is None, "recover_broker without restart_broker"
    pipe.broker_lost[-1] = (start, dt.datetime.now(dt.UTC))


# ---- a database account of the test's own, for faults aimed at one client -------------------


@dataclass
class Account:
    """A login of its own (PostgreSQL: a role with its own schema; MariaDB: a user with its
    own database), so that faults hit only this test's sessions and tables."""

    kind: str
    name: str
    admin_url: str

    @property
    def url(self) -> str:
        if self.kind == "postgresql":
            return f"postgresql+psycopg://{self.name}@127.0.0.1:5432/test"
        return f"mysql+pymysql://{self.name}@127.0.0.1:3306/{self.name}"

    def admin(self, *statements: str, **params: Any) -> list[Any]:
        engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                out: list[Any] = []
                for statement in statements:
                    result = conn.execute(sa.text(statement), params)
                    out = list(result) if result.returns_rows else []
                return out
        finally:
            engine.dispose()

    def create(self) -> None:
        n = self.name
        if self.kind == "postgresql":
            self.admin(
                f"CREATE ROLE {n} LOGIN",
                f"CREATE SCHEMA {n} AUTHORIZATION {n}",
                f"ALTER ROLE {n} SET search_path = {n}",
                f"GRANT TEMPORARY ON DATABASE test TO {n}",  # the COPY path of the sink
            )
        else:
            self.admin(
                f"CREATE DATABASE {n} CHARACTER SET utf8mb4",
                f"CREATE USER '{n}'@'%'",
                f"GRANT ALL ON {n}.* TO '{n}'@'%'",
            )

    def remove(self) -> None:
        n = self.name
        self.terminate_sessions()
        if self.kind == "postgresql":
            self.admin(
                f"DROP SCHEMA IF EXISTS {n} CASCADE",
                f"REVOKE TEMPORARY ON DATABASE test FROM {n}",
                f"DROP ROLE IF EXISTS {n}",
            )
        else:
            self.admin(f"DROP USER IF EXISTS '{n}'@'%'", f"DROP DATABASE IF EXISTS {n}")

    def sessions(self) -> int:
        """How many server sessions this login has open."""
        if self.kind == "postgresql":
            query = "SELECT count(*) FROM pg_stat_activity WHERE usename = :u"
        else:
            query = "SELECT count(*) FROM information_schema.processlist WHERE user = :u"
        return int(self.admin(query, u=self.name)[0][0])

    def terminate_sessions(self) -> int:
        """End every server session of this login (``pg_terminate_backend``, ``KILL``)."""
        if self.kind == "postgresql":
            rows = self.admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :u",
                u=self.name,
            )
            return sum(1 for (ok,) in rows if ok)
        ids = self.admin(
            "SELECT id FROM information_schema.processlist WHERE user = :u", u=self.name
        )
        killed = 0
        for (session,) in ids:
            with contextlib.suppress(sa.exc.DBAPIError):  # it ended meanwhile
                self.admin(f"KILL {int(session)}")
                killed += 1
        return killed

    def waiting_on_lock(self) -> bool:
        """Whether a session of this login waits for a lock (on the server's own account)."""
        if self.kind == "postgresql":
            query = (
                "SELECT count(*) FROM pg_stat_activity WHERE usename = :u "
                "AND wait_event_type = 'Lock'"
            )
        else:
            query = (
                "SELECT count(*) FROM information_schema.processlist WHERE user = :u "
                "AND state LIKE 'Waiting for%lock%'"
            )
        return bool(self.admin(query, u=self.name)[0][0])

    def revoke_writes(self, table: str) -> None:
        if self.kind == "postgresql":
            self.admin(f"REVOKE INSERT, UPDATE ON {self.name}.{table} FROM {self.name}")
        else:  # the grant is on the database: revoke it there
            self.admin(f"REVOKE INSERT, UPDATE ON {self.name}.* FROM '{self.name}'@'%'")

    def can_write(self, table: str) -> bool:
        """Whether this login may INSERT into ``table`` (asked of the server, to know that a
        revoke or a grant landed)."""
        if self.kind == "postgresql":
            query = "SELECT has_table_privilege(:u, :t, 'INSERT')"
            return bool(self.admin(query, u=self.name, t=f"{self.name}.{table}")[0][0])
        query = (
            "SELECT count(*) FROM information_schema.schema_privileges "
            "WHERE grantee = :g AND table_schema = :s AND privilege_type = 'INSERT'"
        )
        return bool(self.admin(query, g=f"'{self.name}'@'%'", s=self.name)[0][0])

    def grant_writes(self, table: str) -> None:
        if self.kind == "postgresql":
            self.admin(f"GRANT INSERT, UPDATE ON {self.name}.{table} TO {self.name}")
        else:
            self.admin(f"GRANT INSERT, UPDATE ON {self.name}.* TO '{self.name}'@'%'")

    @contextlib.contextmanager
    def table_locked(self, table: str) -> Iterator[None]:
        """Hold an exclusive lock on ``table`` from a second (admin) connection."""
        engine = sa.create_engine(self.admin_url)
        try:
            with engine.connect() as conn:
                if self.kind == "postgresql":
                    lock = f"LOCK TABLE {self.name}.{table} IN ACCESS EXCLUSIVE MODE"
                    conn.execute(sa.text(lock))
                    yield
                    conn.rollback()
                else:
                    conn.execute(sa.text(f"LOCK TABLES {self.name}.{table} WRITE"))
                    yield
                    conn.execute(sa.text("UNLOCK TABLES"))
        finally:
            engine.dispose()


@contextlib.contextmanager
def account(kind: str, admin_url: str, unique: str) -> Iterator[Account]:
    made = Account(kind, f"lgspf_{unique}", admin_url)
    made.create()
    try:
        yield made
    finally:
        made.remove()
