"""Reconciliation: N vs N rows with 10 differences, beside one full server-side read.

The source table (9 columns: integers, text with Vietnamese letters, a citizen ID, a decimal,
a date, a timestamp with microseconds, a boolean, a nullable note) is generated inside the
database in database ``lgsp_bench_a`` on PostgreSQL; its copy in ``lgsp_bench_b`` (PostgreSQL
vs PostgreSQL) and in MariaDB's ``test`` (PostgreSQL vs MariaDB). The copy then loses 3 rows,
gains 3 and has 4 rows changed in non-key columns. Figures: wall time of ``reconcile`` (the
re-check runs, with no pause), differences found, rows fetched into Python, and, in the same
run, the time of ``COPY (SELECT * FROM source) TO '/dev/null'`` (one full read on the server).
Targets: reconcile <= 2x that read; rows fetched grow with the differences, not the table.

``test_bench_reconcile_vs_reladiff`` times whole processes on the same tables: ``lgsp reconcile
urls`` against reladiff (data-diff's maintained fork, the ``bench`` dependency group) comparing
every column (``-c '%'``), interleaved, medians; both must find the 10 differences; target: lgsp
at least 3x faster on both pairs. The load average is recorded with the figures. Each copy
also exists as ``<table>_h`` with the stored row hash (``lgsp reconcile prepare``; on MariaDB
with its index over key and hash); lgsp is timed on both (interleaved with reladiff, which
compares the plain copy).
N = 1,000,000 with LGSP_BENCH_FULL=1, else 20,000.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench._report import machine, record, size
from bus.reconcile import Endpoint, Options, reconcile
from bus.reconcile.stored import prepare_url

pytestmark = pytest.mark.bench

PG_URL = os.environ.get("LGSP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LGSP_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")

N = size(1_000_000, 20_000)
DIFFERENCES = 10
PREPARE_S: dict[str, float] = {}  # seconds of ``lgsp reconcile prepare`` per copy

PG_DDL = (
    "CREATE TABLE {t} (id BIGINT PRIMARY KEY, ma_ho_so VARCHAR(40) NOT NULL, ho_ten TEXT, "
    "cccd VARCHAR(12), so_tien NUMERIC(12,2), ngay_nop DATE, cap_nhat TIMESTAMPTZ, "
    "da_xoa BOOLEAN, ghi_chu TEXT)"
)
PG_FILL = (
    "INSERT INTO {t} SELECT g, 'HS-26734-' || lpad(g::text, 8, '0'), "
    "'Nguyễn Thị Minh Khai ' || g, '0792' || lpad(g::text, 8, '0'), (g % 100000) / 100.0, "
    "DATE '2020-01-01' + (g % 2000), "
    "TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL '1 second' "
    "+ (g % 7) * INTERVAL '1 microsecond' * 123457, "
    "g % 9 = 0, CASE WHEN g % 5 = 0 THEN NULL ELSE 'Hồ sơ đất đai số ' || g END "
    "FROM generate_series(1, {n}) g"
)
MY_DDL = (
    "CREATE TABLE {t} (id BIGINT PRIMARY KEY, ma_ho_so VARCHAR(40) NOT NULL, ho_ten TEXT, "
    "cccd VARCHAR(12), so_tien DECIMAL(12,2), ngay_nop DATE, cap_nhat DATETIME(6), "
    "da_xoa TINYINT(1), ghi_chu TEXT) CHARACTER SET utf8mb4"
)
MY_FILL = (
    "INSERT INTO {t} SELECT seq, CONCAT('HS-26734-', LPAD(seq, 8, '0')), "
    "CONCAT('Nguyễn Thị Minh Khai ', seq), CONCAT('0792', LPAD(seq, 8, '0')), "
    "(seq % 100000) / 100.0, DATE_ADD('2020-01-01', INTERVAL seq % 2000 DAY), "
    "DATE_ADD(DATE_ADD('2024-01-01 00:00:00', INTERVAL seq SECOND), "
    "INTERVAL (seq % 7) * 123457 MICROSECOND), "
    "seq % 9 = 0, IF(seq % 5 = 0, NULL, CONCAT('Hồ sơ đất đai số ', seq)) "
    "FROM seq_1_to_{n}"
)


def _exec(conn: sa.Connection, statement: str) -> None:
    conn.execute(sa.text(statement))


def _pg_database(name: str) -> str:
    url = sa.engine.make_url(PG_URL)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).scalar()
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _changes(n: int) -> tuple[list[int], list[int], list[int]]:
    step = n // 8
    missing = [step, 3 * step + 1, 7 * step + 2]
    changed = [2 * step + 3, 4 * step + 4, 5 * step + 5, 6 * step + 6]
    extra = [n + 1, n + 2, n + 3]
    return missing, extra, changed


# Statements on the benchmark's own generated table names and integer keys only.
DELETE = "DELETE FROM {t} WHERE id = {k}"
CHANGES = (
    "UPDATE {t} SET ho_ten = 'Trần Văn Khác' WHERE id = {k}",
    "UPDATE {t} SET so_tien = so_tien + 0.01 WHERE id = {k}",
    "UPDATE {t} SET ghi_chu = CASE WHEN ghi_chu IS NULL THEN 'Ghi chú' END WHERE id = {k}",
    "UPDATE {t} SET da_xoa = NOT da_xoa WHERE id = {k}",
)
FULL_READ = "COPY (SELECT * FROM {t}) TO '/dev/null'"


def _inject(engine: sa.Engine, table: str, n: int, dialect: str) -> None:
    missing, extra, changed = _changes(n)
    copy_rows = (
        PG_FILL.replace("generate_series(1, {n}) g", "generate_series({a}, {b}) g")
        if dialect == "postgresql"
        else MY_FILL.replace("seq_1_to_{n}", "seq_{a}_to_{b}")
    )
    with engine.begin() as conn:
        for key in missing:
            _exec(conn, DELETE.format(t=table, k=key))
        _exec(conn, copy_rows.format(t=table, a=extra[0], b=extra[-1]))
        for statement, key in zip(CHANGES, changed, strict=True):
            _exec(conn, statement.format(t=table, k=key))


@pytest.fixture(scope="module")
def tables() -> Iterator[dict[str, tuple[str, str]]]:
    """The source and two copies (PostgreSQL, MariaDB), made inside the databases."""
    name = f"rc_bench_{uuid.uuid4().hex[:8]}"
    url_a, url_b = _pg_database("lgsp_bench_a"), _pg_database("lgsp_bench_b")
    engines = {
        "a": sa.create_engine(url_a),
        "b": sa.create_engine(url_b),
        "my": sa.create_engine(MYSQL_URL),
    }
    made: list[str] = []
    try:
        for key in ("a", "b"):
            with engines[key].begin() as conn:
                _exec(conn, PG_DDL.format(t=name))
                made.append(key)
                _exec(conn, PG_FILL.format(t=name, n=N))
            with engines[key].connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    f"VACUUM ANALYZE {name}"
                )
        with engines["my"].begin() as conn:
            _exec(conn, MY_DDL.format(t=name))
            made.append("my")
            _exec(conn, MY_FILL.format(t=name, n=N))
        _inject(engines["b"], name, N, "postgresql")
        _inject(engines["my"], name, N, "mysql")
        # the same copies with the stored row hash (``lgsp reconcile prepare``), beside them
        hashed = f"{name}_h"
        with engines["b"].begin() as conn:
            _exec(conn, f"CREATE TABLE {hashed} (LIKE {name} INCLUDING ALL)")
            made.append("b_h")
            _exec(conn, f"INSERT INTO {hashed} SELECT * FROM {name}")  # noqa: S608 - own names
        with engines["my"].begin() as conn:
            _exec(conn, f"CREATE TABLE {hashed} LIKE {name}")
            made.append("my_h")
            _exec(conn, f"INSERT INTO {hashed} SELECT * FROM {name}")  # noqa: S608 - own names
        for key, url in (("b", url_b), ("my", MYSQL_URL)):
            started = time.perf_counter()
            prepare_url(url, hashed)
            PREPARE_S[key] = time.perf_counter() - started
        with engines["b"].connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                f"VACUUM ANALYZE {hashed}"
            )
        yield {
            "a": (url_a, name),
            "b": (url_b, name),
            "my": (MYSQL_URL, name),
            "b_h": (url_b, hashed),
            "my_h": (MYSQL_URL, hashed),
        }
    finally:
        for key in made:
            with engines[key.removesuffix("_h")].begin() as conn:
                _exec(conn, f"DROP TABLE IF EXISTS {name}{'_h' if key.endswith('_h') else ''}")
        for engine in engines.values():
            engine.dispose()


def _full_read(url: str, table: str) -> float:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            started = time.perf_counter()
            _exec(conn, FULL_READ.format(t=table))
            return time.perf_counter() - started
    finally:
        engine.dispose()


PAIRS = {
    "b": "postgresql-vs-postgresql",
    "my": "postgresql-vs-mariadb",
    "b_h": "postgresql-vs-postgresql, stored hash",
    "my_h": "postgresql-vs-mariadb, stored hash",
}


@pytest.mark.parametrize("copy", list(PAIRS), ids=[p.replace(", ", "-") for p in PAIRS.values()])
def test_bench_reconcile(tables: dict[str, tuple[str, str]], copy: str) -> None:
    src_url, table = tables["a"]
    tgt_url, tgt_table = tables[copy]
    opts = Options(recheck_delay=0.0)
    reads: list[float] = []
    runs: list[float] = []
    report = None
    for _ in range(2):  # alternate, keep the best of each: the machine is shared
        reads.append(_full_read(src_url, table))
        started = time.perf_counter()
        report = reconcile(Endpoint(src_url, table), Endpoint(tgt_url, tgt_table), opts)
        runs.append(time.perf_counter() - started)
    assert report is not None
    missing, extra, changed = _changes(N)
    assert [int(d.key["id"]) for d in report.missing] == missing
    assert [int(d.key["id"]) for d in report.extra] == extra
    assert {int(d.key["id"]): d.columns for d in report.different} == {
        changed[0]: ["ho_ten"],
        changed[1]: ["so_tien"],
        changed[2]: ["ghi_chu"],
        changed[3]: ["da_xoa"],
    }
    found = report.differences
    assert found == DIFFERENCES
    fetched = report.stats.rows_fetched
    # a correctness property: rows fetched follow the differences, not the table size
    assert fetched < 50 * DIFFERENCES, report.stats.to_dict()
    wall, read = min(runs), min(reads)
    assert report.stats.stored_hash == (["target"] if copy.endswith("_h") else [])
    record(
        f"reconcile {PAIRS[copy]}",
        {
            "rows": N,
            "seconds": round(wall, 3),
            "full_read_s": round(read, 3),
            "ratio": round(wall / read, 2),
            "differences_found": found,
            "rows_fetched": fetched,
            "hash_rows": report.stats.hash_rows_fetched,
            "full_rows": report.stats.full_rows_fetched,
            "segments": report.stats.segments,
            "levels": report.stats.levels,
            "mode": report.stats.mode,
            "hash": report.stats.hash,
            "stored_hash": report.stats.stored_hash,
            "machine": machine(),
        },
        target="<= 2x one full server-side read (COPY ... TO '/dev/null'); "
        f"rows fetched < {50 * DIFFERENCES}",
    )


PEER_RUNS = size(3, 2)
PEER_TARGET = 3.0
LGSP = "from bus.cli.main import main; main()"


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    return time.perf_counter() - started, done


def _lgsp_found(done: subprocess.CompletedProcess[str]) -> set[int]:
    """Keys ``lgsp reconcile urls --json`` reports (exit 1: the copies differ)."""
    assert done.returncode == 1, done.stderr[-2000:]
    report = json.loads(done.stdout)
    return {int(d["key"]["id"]) for kind in ("missing", "extra", "different") for d in report[kind]}


def _reladiff_found(done: subprocess.CompletedProcess[str]) -> set[int]:
    """Keys of reladiff's ``--json`` lines (``["-"|"+", [key, ...]]``, one per side of a
    differing row; its console may wrap them, so they are found by their opening)."""
    assert done.returncode == 0, done.stderr[-2000:]
    assert " ERROR " not in done.stderr, done.stderr[-2000:]
    return {int(k) for k in re.findall(r'\["[+-]", \["(-?\d+)"', done.stdout)}


def _reladiff_url(url: str) -> str:
    """reladiff's own URL form (``postgresql://``, ``mysql://``: it picks its drivers)."""
    parsed = sa.engine.make_url(url)
    scheme = "postgresql" if parsed.get_backend_name() == "postgresql" else "mysql"
    return parsed.set(drivername=scheme).render_as_string(hide_password=False)


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


@pytest.mark.parametrize(
    "copy", ["b", "my"], ids=["postgresql-vs-postgresql", "postgresql-vs-mariadb"]
)
def test_bench_reconcile_vs_reladiff(
    tables: dict[str, tuple[str, str]], copy: str, tmp_path: Path
) -> None:
    src_url, table = tables["a"]
    tgt_url, tgt_table = tables[copy]
    hashed_table = tables[f"{copy}_h"][1]  # the same copy with the stored row hash
    env = {**os.environ, "LGSP_HOME": str(tmp_path / "home")}
    env.pop("LGSP_DATABASE_URL", None)
    ours = [sys.executable, "-c", LGSP, "reconcile", "urls", src_url, table, tgt_url, tgt_table]
    ours += ["--key", "id", "--recheck-delay", "0", "--no-store", "--json"]
    stored = [*ours[:8], hashed_table, *ours[9:]]
    env["COLUMNS"] = "100000"  # reladiff's console: one line per difference
    reladiff = Path(sys.executable).with_name("reladiff")
    assert reladiff.is_file(), "reladiff missing: pip install -e '.[bench]'"
    theirs = [str(reladiff), _reladiff_url(src_url), table, _reladiff_url(tgt_url), tgt_table]
    # --skip-sort-results: reladiff 0.6.0 sorts a segment's differing rows by all their values,
    # fails on NULL against text (one of the changes here), logs an ERROR and exits 0 having
    # skipped the rest of the segments; unsorted it finds all 10.
    theirs += ["-k", "id", "-c", "%", "--json", "--skip-sort-results"]
    missing, extra, changed = _changes(N)
    expected = {*missing, *extra, *changed}
    load_before = _load()
    times: dict[str, list[float]] = {"lgsp": [], "lgsp_stored": [], "reladiff": []}
    for _ in range(PEER_RUNS):  # interleaved: the machine is shared, its speed drifts
        seconds, done = _timed(ours, env)
        assert _lgsp_found(done) == expected
        times["lgsp"].append(seconds)
        seconds, done = _timed(stored, env)
        assert _lgsp_found(done) == expected
        assert json.loads(done.stdout)["stats"]["stored_hash"] == ["target"]
        times["lgsp_stored"].append(seconds)
        seconds, done = _timed(theirs, env)
        assert _reladiff_found(done) == expected
        times["reladiff"].append(seconds)
    lgsp_s, stored_s, reladiff_s = (
        statistics.median(times[k]) for k in ("lgsp", "lgsp_stored", "reladiff")
    )
    pair = "postgresql-vs-postgresql" if copy == "b" else "postgresql-vs-mariadb"
    record(
        f"reconcile {pair}: lgsp vs reladiff, whole processes",
        {
            "rows": N,
            "runs": PEER_RUNS,
            "lgsp_s": round(lgsp_s, 3),
            "reladiff_s": round(reladiff_s, 3),
            "speedup": round(reladiff_s / lgsp_s, 2),
            "lgsp_stored_s": round(stored_s, 3),
            "speedup_stored": round(reladiff_s / stored_s, 2),
            "prepare_s": round(PREPARE_S[copy], 2),
            "lgsp_runs_s": [round(t, 2) for t in times["lgsp"]],
            "lgsp_stored_runs_s": [round(t, 2) for t in times["lgsp_stored"]],
            "reladiff_runs_s": [round(t, 2) for t in times["reladiff"]],
            "differences_found_each": len(expected),
            "load_avg_before": load_before,
            "load_avg_after": _load(),
            "machine": machine(),
        },
        target=f"lgsp >= {PEER_TARGET}x faster than reladiff -c '%', all 10 found by both",
    )
