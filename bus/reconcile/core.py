"""Compare a table with its copy: segment checksums inside each database, rows only where needed.

1. Schema check (primary keys, column sets, types) before any data is read.
2. Level 0: each database computes ``count(*)`` and the sum of the row hashes per key segment
   in one scan (both sides at once, in two threads).
   - *range* segments when the first key column is an integer on both sides: segment ``b`` of
     width ``W`` holds the keys ``lo + b*W <= k < lo + (b+1)*W``; deeper levels are index range
     scans of the differing segments only (``W`` shrinks by the fan-out, a power of it).
   - *hash* segments otherwise (text, UUID, composite keys...): segment ``b`` holds the keys
     whose key hash ``mod M`` is ``b``; deeper levels use ``M * fanout``. Key hashes are the same
     on every dialect, so collations never matter; each level is a scan of the key hash.
3. Segments that differ are split until they hold at most ``leaf_rows`` rows; then each side
   sends (key, row hash) of those segments only; keys whose hash or presence differ are fetched
   as full rows and compared column by column in Python (NFC text, UTC times, plain decimals),
   which also drops differences that only the SQL rendering saw (NFD text on MariaDB, floats).
   Key text is compared byte-exactly everywhere (never NFC, in SQL under a binary collation):
   two keys that differ only by case or normalisation are two rows on each side, and a
   target whose key column merged them shows the rows it lost.
4. Re-check: after ``recheck_delay`` seconds the differing keys are read again on both sides;
   only differences that persist are reported. Reads are plain autocommit ``SELECT``s:
   no lock, no ``FOR UPDATE``, no long transaction.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bus.errors import ConfigurationError, DatabaseUnavailableError, FatalError, NotFoundError
from bus.reconcile.canonical import KEY_KINDS, canon, fold
from bus.reconcile.dialects import (
    SqlDialect,
    dialect_for,
    display_url,
    error_code,
    keys_in,
    make_engine,
)
from bus.reconcile.report import Masker, Report, RowDiff, SideInfo, masked_key
from bus.reconcile.schema import (
    DEFAULT_IGNORED,
    ColumnInfo,
    TableInfo,
    compare_schemas,
    reflect_table,
)
from bus.reconcile.stored import COLUMNS as STORED_COLUMNS
from bus.reconcile.stored import INDEX as STORED_INDEX
from bus.reconcile.stored import covered as stored_covered
from bus.reconcile.stored import usable as stored_usable

CanonKey = tuple[str | None, ...]
Agg = dict[int, tuple[int, int]]


@dataclass
class Endpoint:
    """One side: a database URL and a table (``schema.table`` allowed).

    ``columns`` limits the compared columns (a source connector's ``columns:``);
    ``deleted_flag`` names a soft-delete column whose set rows count as absent (a source's
    ``deleted_flag``, a sink's ``_lgsp_deleted``); ``where`` keeps only rows whose columns
    equal the given values (e.g. the unit column of a city table that gathers many wards), or
    lie in a :class:`Between` range (e.g. the sink's ``_lgsp_ts_ms`` since a cut-over).
    """

    url: str | sa.URL
    table: str
    connector: str | None = None
    key: list[str] | None = None
    columns: list[str] | None = None
    deleted_flag: str | None = None
    where: dict[str, Any] = field(default_factory=dict)
    connect_args: dict[str, Any] = field(default_factory=dict)
    engine: Engine | None = None

    @property
    def masked_url(self) -> str:
        return display_url(self.url)


@dataclass(frozen=True)
class OneOf:
    """A ``where`` value: the column's text one of ``values`` or (``negate``) none of them
    or NULL (the rows a split's rule sends to its default part)."""

    values: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class Between:
    """A ``where`` value: the column at least ``low`` and below ``below`` (either open)."""

    low: Any = None
    below: Any = None


@dataclass
class ConnectorPair:
    """Both sides of a connector reconciliation, and what a repair needs."""

    source: Endpoint
    target: Endpoint
    source_name: str
    sink_name: str
    table: str
    dataset: str
    topic: str
    pii: list[str]
    warnings: list[str]
    origin_unit: str | None = None  # the source's unit, when the sink gathers many units
    json_columns: list[str] = field(default_factory=list)
    mapped: Any = None  # a ThroughMapping: an old unit's table against the new unit's copy
    unit_columns: list[str] = field(default_factory=list)  # the source's unit fields' columns
    field_columns: dict[str, str] = field(default_factory=dict)  # record field -> source column


@dataclass
class Options:
    """How to compare; the defaults suit tables from a few rows to tens of millions."""

    hash: str = "auto"  # auto | portable | native
    nfc_in_db: bool = False
    nfc_retry_ratio: float = 0.05
    parallel: int = 2
    fanout: int = 16
    leaf_rows: int = 16
    segment_rows: int = 256
    max_segments: int = 1 << 16
    recheck: bool = True
    recheck_delay: float = 2.0
    max_listed: int = 1000
    ignore_columns: tuple[str, ...] = DEFAULT_IGNORED
    pii: tuple[str, ...] = ()
    json_columns: tuple[str, ...] = ()  # compared as JSON documents on both sides
    pii_guess: bool = False  # also mask columns named like personal identifiers (ho_ten, cccd)
    # More PII names and a token, asked for only when masking is first needed (after the
    # checksums), so that a catalogue read can run while the databases compute.
    pii_from: Callable[[], tuple[tuple[str, ...], Callable[[Any], str] | None]] | None = None
    token: Callable[[Any], str] | None = None
    before_recheck: Callable[[int], None] | None = None
    chunk: int = 500
    time_precision: int = 6  # 6: microseconds; 3: milliseconds (the bus's Avro timestamps)
    stored_hash: bool = True  # read a side's trusted _lgsp_rowhash column (bus.reconcile.stored)

    def validate(self) -> None:
        if self.time_precision not in (3, 6):
            raise ConfigurationError("time_precision: expected 3 (milliseconds) or 6")
        if self.parallel < 1:
            raise ConfigurationError("parallel: expected at least 1")
        if self.hash not in ("auto", "portable", "native"):
            raise ConfigurationError("hash: expected auto, portable or native")
        if self.fanout < 2:
            raise ConfigurationError("fanout: expected at least 2")
        if self.leaf_rows < 1 or self.segment_rows < 1:
            raise ConfigurationError("leaf_rows, segment_rows: expected at least 1")
        if self.recheck_delay < 0:
            raise ConfigurationError("recheck_delay: expected 0 or more seconds")


@dataclass
class _Counters:
    queries: int = 0
    segment_rows: int = 0
    hash_rows: int = 0
    full_rows: int = 0


class _Side:
    """One table being compared: its SQL pieces and what it has read."""

    def __init__(
        self,
        label: str,
        endpoint: Endpoint,
        engine: Engine,
        dialect: SqlDialect,
        info: TableInfo,
        cols: list[ColumnInfo],
        key: list[ColumnInfo],
        *,
        native: str,
        nfc: bool,
        stored: bool = False,
        covered: bool = False,
    ) -> None:
        self.label = label
        self.endpoint = endpoint
        self.engine = engine
        self.dialect = dialect
        self.info = info
        self.cols = cols
        self.key = key
        self.kinds = [c.kind for c in cols]
        self.key_kinds = [c.kind for c in key]
        self.key_pos = [next(i for i, c in enumerate(cols) if c.name == k.name) for k in key]
        self.tref = dialect.table_ref(info)
        self.native = native
        # the stored hash column (bus.reconcile.stored) holds this hash of these cols
        self.stored = stored and native in STORED_COLUMNS
        self.h = (
            dialect.q(STORED_COLUMNS[native])
            if self.stored
            else dialect.hash_expr(cols, native=native, nfc=nfc)
        )
        self.kh = dialect.hash_expr(key, native=native, nfc=nfc)
        self.k0 = dialect.q(key[0].name)
        self.key_sql = ", ".join(dialect.q(k.name) for k in key)
        extra = [c for c in (endpoint.deleted_flag, *endpoint.where) if c and c not in cols]
        self.lite = sa.table(
            info.name, *[sa.column(n) for n in [c.name for c in cols] + extra], schema=info.schema
        )
        conds: list[str] = []
        self.params: dict[str, Any] = {}
        if endpoint.deleted_flag:
            conds.append(dialect.not_deleted(info.columns[endpoint.deleted_flag]))
        for i, (name, value) in enumerate(endpoint.where.items()):
            if isinstance(value, Between):
                if value.low is not None:
                    conds.append(f"{dialect.q(name)} >= :rcw{i}lo")
                    self.params[f"rcw{i}lo"] = value.low
                if value.below is not None:
                    conds.append(f"{dialect.q(name)} < :rcw{i}hi")
                    self.params[f"rcw{i}hi"] = value.below
                continue
            if isinstance(value, OneOf):
                names = [f"rcw{i}_{j}" for j in range(len(value.values))]
                self.params.update(zip(names, value.values, strict=True))
                listed = ", ".join(f":{n}" for n in names)
                column = dialect.q(name)
                if value.negate:
                    conds.append(
                        f"({column} IS NULL OR {column} NOT IN ({listed}))" if names else "1 = 1"
                    )
                else:
                    conds.append(f"{column} IN ({listed})" if names else "1 = 0")
                continue
            conds.append(f"{dialect.q(name)} = :rcw{i}")
            self.params[f"rcw{i}"] = value
        self.filter = " AND ".join(conds)
        # the stored hash's index holds the key and the hash (bus.reconcile.stored.INDEX):
        # sums and row hashes read it alone, unless a row filter needs other columns
        self.covered = covered and not self.filter
        self.n = _Counters()

    @property
    def sums_ref(self) -> str:
        """The table in the ``FROM`` of the segment sums and row hashes."""
        if self.stored and self.covered:
            return self.tref + self.dialect.index_hint(STORED_INDEX)
        return self.tref

    def where(self, extra: str | None = None) -> str:
        """`` WHERE ...`` with the side's row filter and ``extra`` (or nothing)."""
        parts = [p for p in (self.filter, extra) if p]
        if not parts:
            return ""
        return " WHERE " + " AND ".join(f"({p})" for p in parts)

    def query(self, sql: str, phase: str) -> list[Sequence[Any]]:
        """Rows of ``sql`` (with the side's filter parameters); ``phase`` names the step."""
        self.n.queries += 1
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(sa.text(sql), self.params).all())
        except SQLAlchemyError as exc:
            raise self.error(exc, phase) from exc

    def error(self, exc: SQLAlchemyError, phase: str) -> Exception:
        """What a failed read raises: the error class and driver code, never its message
        (database messages may quote row values)."""
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            return DatabaseUnavailableError(
                f"{self.label} database {self.endpoint.masked_url} failed a read of table "
                f"{self.info.display} ({phase}; {error_code(exc)})"
            )
        return FatalError(
            f"{self.label} table {self.info.display}: a reconciliation query failed "
            f"({phase}; {error_code(exc)})"
        )

    def canon_key(self, values: Sequence[Any]) -> CanonKey:
        return tuple(canon(v, k) for v, k in zip(values, self.key_kinds, strict=True))

    def fetch_rows(
        self, keys: list[tuple[Any, ...]], chunk: int
    ) -> dict[CanonKey, tuple[Any, ...]]:
        """Full rows (compared columns) of ``keys``, by canonical key."""
        out: dict[CanonKey, tuple[Any, ...]] = {}
        names = [c.name for c in self.cols]
        key_cols = [self.lite.c[k.name] for k in self.key]
        for cond in keys_in(key_cols, keys, chunk):
            stmt = sa.select(*[self.lite.c[n] for n in names]).where(cond)
            if self.filter:
                stmt = stmt.where(sa.text(self.filter).bindparams(**self.params))
            self.n.queries += 1
            try:
                with self.engine.connect() as conn:
                    rows = conn.execute(stmt).all()
            except SQLAlchemyError as exc:
                raise self.error(exc, "full rows") from exc
            self.n.full_rows += len(rows)
            for row in rows:
                values = tuple(row)
                out[self.canon_key([values[i] for i in self.key_pos])] = values
        return out


# ---- segment plans ---------------------------------------------------------------------------


class _RangePlan:
    """Segments by ranges of the first key column (an integer on both sides)."""

    mode = "range"

    def __init__(self, lo: int, hi: int, opts: Options) -> None:
        self.lo = lo
        self.fanout = opts.fanout
        span = hi - lo + 1
        # Sized as if the keys were dense: sparse keys only make segments smaller.
        wanted = max(1, min(opts.max_segments, math.ceil(span / opts.segment_rows)))
        per = max(1, math.ceil(span / wanted))
        width = 1
        while width < per:
            width *= opts.fanout
        self.segments0 = math.ceil(span / width)
        self.widths = [width]
        while self.widths[-1] > 1:
            self.widths.append(self.widths[-1] // opts.fanout)

    def can_split(self, level: int) -> bool:
        return level + 1 < len(self.widths)

    def _runs(self, indexes: Sequence[int]) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []
        for b in sorted(indexes):
            if runs and runs[-1][1] == b - 1:
                runs[-1] = (runs[-1][0], b)
            else:
                runs.append((b, b))
        return runs

    def filters(self, side: _Side, level: int, indexes: Sequence[int], chunk: int) -> list[str]:
        width = self.widths[level]
        runs = self._runs(indexes)
        out = []
        for start in range(0, len(runs), chunk):
            parts = [
                f"({side.k0} BETWEEN {self.lo + a * width} AND {self.lo + (b + 1) * width - 1})"
                for a, b in runs[start : start + chunk]
            ]
            out.append(" OR ".join(parts))
        return out

    def bucket(self, side: _Side, level: int) -> str:
        return side.dialect.bucket(side.k0, self.lo, self.widths[level])

    def parts(self, side: _Side, count: int) -> list[str]:
        """Level 0 cut into ``count`` contiguous key ranges (segment-aligned)."""
        step = max(1, math.ceil(self.segments0 / count))
        return [
            f"({side.k0} BETWEEN {self.lo + a * self.widths[0]} AND "
            f"{self.lo + min(a + step, self.segments0) * self.widths[0] - 1})"
            for a in range(0, self.segments0, step)
        ]


class _HashPlan:
    """Segments by the key hash modulo ``M`` (any key type; collation-free)."""

    mode = "hash"
    max_levels = 6

    def __init__(self, rows: int, opts: Options) -> None:
        m0 = max(1, min(opts.max_segments, math.ceil(rows / opts.leaf_rows)))
        self.moduli = [m0 * opts.fanout**level for level in range(self.max_levels)]

    def can_split(self, level: int) -> bool:
        return level + 1 < len(self.moduli)

    def filters(self, side: _Side, level: int, indexes: Sequence[int], chunk: int) -> list[str]:
        expr = side.dialect.mod(side.kh, self.moduli[level])
        ordered = sorted(indexes)
        return [
            f"{expr} IN ({', '.join(str(int(b)) for b in ordered[i : i + chunk * 2])})"
            for i in range(0, len(ordered), chunk * 2)
        ]

    def bucket(self, side: _Side, level: int) -> str:
        return side.dialect.mod(side.kh, self.moduli[level])


Plan = _RangePlan | _HashPlan


def _aggregate(side: _Side, plan: Plan, level: int, where: str | None) -> Agg:
    bucket = plan.bucket(side, level)
    hsum = side.dialect.hsum(side.h)
    sql = f"SELECT {bucket} AS b, COUNT(*) AS n, {hsum} AS s FROM {side.sums_ref}"  # noqa: S608 - quoted identifiers and integers only
    sql += side.where(where) + " GROUP BY 1"
    out: Agg = {}
    for b, n, s in side.query(sql, f"segment checksums, level {level}"):
        out[int(b)] = (int(n), fold(s))
    side.n.segment_rows += len(out)
    return out


def _level(
    pool: ThreadPoolExecutor,
    src: _Side,
    tgt: _Side,
    plan: Plan,
    level: int,
    parents: Sequence[int] | None,
    opts: Options,
) -> tuple[Agg, Agg]:
    """Both sides' aggregates of one level; level 0 is cut into ``parallel`` parts per side."""
    jobs: list[tuple[_Side, str | None]] = []
    for side in (src, tgt):
        if parents is not None:
            wheres: list[str | None] = list(plan.filters(side, level - 1, parents, opts.chunk))
        elif isinstance(plan, _RangePlan) and opts.parallel > 1:
            wheres = list(plan.parts(side, opts.parallel))
        else:
            wheres = [None]
        jobs += [(side, w) for w in wheres]
    futures = [(side, pool.submit(_aggregate, side, plan, level, w)) for side, w in jobs]
    agg_s: Agg = {}
    agg_t: Agg = {}
    for side, future in futures:
        (agg_s if side is src else agg_t).update(future.result())
    return agg_s, agg_t


def _leaf_rows(
    side: _Side, plan: Plan, leaves: dict[int, list[int]], chunk: int
) -> dict[CanonKey, tuple[tuple[Any, ...], int]]:
    out: dict[CanonKey, tuple[tuple[Any, ...], int]] = {}
    nkey = len(side.key)
    for level, indexes in sorted(leaves.items()):
        for where in plan.filters(side, level, indexes, chunk):
            sql = f"SELECT {side.key_sql}, {side.h} AS h FROM {side.sums_ref}{side.where(where)}"  # noqa: S608 - quoted identifiers and integers only
            rows = side.query(sql, f"row hashes, level {level}")
            side.n.hash_rows += len(rows)
            for row in rows:
                native = tuple(row[:nkey])
                out[side.canon_key(native)] = (native, int(row[nkey]))
    return out


# ---- the comparison --------------------------------------------------------------------------


@dataclass
class _State:
    status: str  # missing | extra | different
    columns: list[str] = field(default_factory=list)
    source_row: tuple[Any, ...] | None = None
    target_row: tuple[Any, ...] | None = None


def _classify(
    src: _Side,
    tgt: _Side,
    keys: list[CanonKey],
    rows_s: dict[CanonKey, tuple[Any, ...]],
    rows_t: dict[CanonKey, tuple[Any, ...]],
) -> dict[CanonKey, _State]:
    out: dict[CanonKey, _State] = {}
    for ck in keys:
        rs, rt = rows_s.get(ck), rows_t.get(ck)
        if rs is None and rt is None:
            continue
        if rt is None:
            out[ck] = _State("missing", source_row=rs)
        elif rs is None:
            out[ck] = _State("extra", target_row=rt)
        else:
            cols = [
                c.name
                for i, c in enumerate(src.cols)
                if canon(rs[i], src.kinds[i]) != canon(rt[i], tgt.kinds[i])
            ]
            if cols:
                out[ck] = _State("different", cols, rs, rt)
    return out


def _open(endpoint: Endpoint, label: str) -> tuple[Engine, bool]:
    if endpoint.engine is not None:
        return endpoint.engine, False
    try:
        url = sa.engine.make_url(endpoint.url)
    except sa.exc.ArgumentError as exc:
        raise ConfigurationError(
            f"{label} url: not a SQLAlchemy URL (dialect://user@host:port/database)"
        ) from exc
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).is_file():
            raise NotFoundError(f"{label} url: the SQLite file {url.database} does not exist")
    return make_engine(endpoint.url, endpoint.connect_args), True


def reconcile(source: Endpoint, target: Endpoint, options: Options | None = None) -> Report:
    """Compare ``source`` with its copy ``target``; see the module docstring for how."""
    opts = options or Options()
    opts.validate()
    started = time.monotonic()
    engines: list[Engine] = []
    try:
        src_engine, own = _open(source, "source")
        if own:
            engines.append(src_engine)
        tgt_engine, own = _open(target, "target")
        if own:
            engines.append(tgt_engine)
        # both databases at once (connect, version, reflection): two servers, two threads;
        # the source's error first when both fail
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconcile-open") as opening:
            described = [
                opening.submit(_describe, engine, endpoint, label, key)
                for engine, endpoint, label, key in (
                    (src_engine, source, "source", source.key),
                    (tgt_engine, target, "target", target.key or source.key),
                )
            ]
            (src_dialect, src_info), (tgt_dialect, tgt_info) = [f.result() for f in described]
        report = Report(
            source=SideInfo(
                "source",
                src_dialect.name,
                src_info.display,
                source.masked_url,
                connector=source.connector,
            ),
            target=SideInfo(
                "target",
                tgt_dialect.name,
                tgt_info.display,
                target.masked_url,
                connector=target.connector,
            ),
        )
        for endpoint, info in ((source, src_info), (target, tgt_info)):
            _check_filter_columns(endpoint, info)
        # the stored hash columns are never compared, whatever the ignore list
        ignore = (*opts.ignore_columns, *STORED_COLUMNS.values())
        check = compare_schemas(src_info, tgt_info, ignore, only=source.columns)
        report.schema = check.issues
        report.key = check.key
        report.columns = check.compared
        report.ignored = {"source": check.ignored_source, "target": check.ignored_target}
        if not check.comparable:
            _set_masked(report, opts)
            report.finished_at = dt.datetime.now(dt.UTC)
            report.stats.seconds = time.monotonic() - started
            return report
        native = _native(opts.hash, src_dialect, tgt_dialect, src_info, tgt_info, check.compared)
        report.stats.nfc_in_db = opts.nfc_in_db
        if src_dialect.name == "sqlite" or tgt_dialect.name == "sqlite":
            if len(check.compared) > SQLiteLimit.columns:
                raise ConfigurationError(
                    f"table: {len(check.compared)} columns; SQLite functions take at most "
                    f"{SQLiteLimit.columns} (exclude some with ignore_columns)"
                )
        prepared: list[tuple[list[ColumnInfo], list[ColumnInfo]]] = []
        for info in (src_info, tgt_info):
            cols = [
                _as_json_if_other_is(
                    _precise(info.columns[n], opts.time_precision),
                    src_info.columns[n],
                    tgt_info.columns[n],
                    opts.json_columns,
                )
                for n in check.compared
            ]
            key = [_exact_key(_precise(info.columns[n], opts.time_precision)) for n in check.key]
            exact = {k.name: k for k in key}
            prepared.append(([exact.get(c.name, c) for c in cols], key))
        stored = [False, False]
        # a side's stored column of the pair's hash: the portable one (PostgreSQL vs MariaDB,
        # --hash portable) or PostgreSQL's record hash (a PostgreSQL pair)
        if opts.stored_hash and native in STORED_COLUMNS and not opts.nfc_in_db:
            stored = [
                stored_usable(engine, dialect, info, cols, native)
                for (cols, _), engine, dialect, info in zip(
                    prepared,
                    (src_engine, tgt_engine),
                    (src_dialect, tgt_dialect),
                    (src_info, tgt_info),
                    strict=True,
                )
            ]
        # a MariaDB copy's index over its key and portable hash (bus.reconcile.stored.INDEX)
        covered = [
            used and not native and stored_covered(engine, dialect, info, [k.name for k in key])
            for used, (_, key), engine, dialect, info in zip(
                stored,
                prepared,
                (src_engine, tgt_engine),
                (src_dialect, tgt_dialect),
                (src_info, tgt_info),
                strict=True,
            )
        ]
        report.stats.hash = {"": "portable", "text": "native-text", "record": "native-record"}[
            native
        ]
        report.stats.stored_hash = [
            label for label, used in zip(("source", "target"), stored, strict=True) if used
        ]
        sides = [
            _Side(
                label,
                endpoint,
                engine,
                dialect,
                info,
                cols,
                key,
                native=native,
                nfc=opts.nfc_in_db,
                stored=used,
                covered=indexed,
            )
            for label, endpoint, engine, dialect, info, (cols, key), used, indexed in zip(
                ("source", "target"),
                (source, target),
                (src_engine, tgt_engine),
                (src_dialect, tgt_dialect),
                (src_info, tgt_info),
                prepared,
                stored,
                covered,
                strict=True,
            )
        ]
        src, tgt = sides
        workers = 2 * max(1, opts.parallel)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
            _compare(report, src, tgt, opts, pool)
        _set_masked(report, opts)
        report.stats.queries = src.n.queries + tgt.n.queries
        report.stats.segment_rows = src.n.segment_rows + tgt.n.segment_rows
        report.stats.hash_rows_fetched = src.n.hash_rows + tgt.n.hash_rows
        report.stats.full_rows_fetched = src.n.full_rows + tgt.n.full_rows
        report.finished_at = dt.datetime.now(dt.UTC)
        report.stats.seconds = time.monotonic() - started
        return report
    finally:
        for engine in engines:
            engine.dispose()


def _masker(opts: Options) -> Masker:
    pii, token = opts.pii, opts.token
    if opts.pii_from is not None:
        more, more_token = opts.pii_from()
        pii, token = tuple(dict.fromkeys([*pii, *more])), token or more_token
    return Masker(pii, token, guess=opts.pii_guess)


def _set_masked(report: Report, opts: Options) -> None:
    masker = _masker(opts)
    names = dict.fromkeys([*report.key, *report.columns])
    report.masked = [n for n in names if masker.is_pii(n)]


def _check_filter_columns(endpoint: Endpoint, info: TableInfo) -> None:
    for name in [*endpoint.where, *([endpoint.deleted_flag] if endpoint.deleted_flag else [])]:
        if name not in info.columns:
            raise ConfigurationError(
                f"{info.label} table {info.display} has no column {name!r} (used as a row filter)"
            )
    for name in endpoint.columns or []:
        if name not in info.columns:
            raise ConfigurationError(f"columns: {info.label} table {info.display} has no {name!r}")


def _as_json_if_other_is(
    col: ColumnInfo, a: ColumnInfo, b: ColumnInfo, json_columns: tuple[str, ...] = ()
) -> ColumnInfo:
    """A JSON column copied into a text column (a sink's nested values), or a column named in
    ``json_columns``, is compared as JSON on both sides: same document, same value, whatever
    the spacing or key order."""
    if {a.kind, b.kind} in ({"json", "text"}, {"json", "char"}):
        return replace(col, kind="json")
    if col.name in json_columns and col.kind in ("json", "text", "char"):
        return replace(col, kind="json")
    return col


def _exact_key(col: ColumnInfo) -> ColumnInfo:
    """A key column: its text compared byte-exactly, never NFC-normalised (in SQL and in
    Python), so that two keys differing only by normalisation stay two keys on both sides."""
    kind = KEY_KINDS.get(col.kind)
    return replace(col, kind=kind) if kind else col


def _precise(col: ColumnInfo, precision: int) -> ColumnInfo:
    if precision == 3 and col.kind in ("datetime", "time"):
        return replace(col, kind=col.kind + "_ms")
    return col


class SQLiteLimit:
    columns = 120


def _dialect(engine: Engine, endpoint: Endpoint, label: str) -> SqlDialect:
    try:
        return dialect_for(engine)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise DatabaseUnavailableError(
            f"{label} database {endpoint.masked_url} does not answer ({type(exc).__name__})"
        ) from exc


def _describe(
    engine: Engine, endpoint: Endpoint, label: str, key: list[str] | None
) -> tuple[SqlDialect, TableInfo]:
    """One side's dialect (its server's version) and table."""
    dialect = _dialect(engine, endpoint, label)
    return dialect, reflect_table(engine, endpoint.table, label, key)


def _native(
    mode: str, a: SqlDialect, b: SqlDialect, src: TableInfo, tgt: TableInfo, names: list[str]
) -> str:
    """'' (portable MD5), 'text' (hashtextextended) or 'record' (hash_record_extended).

    The native hashes need PostgreSQL on both sides (11+, and 14+ with the same column kinds
    for ``hash_record_extended``, which hashes typed values without rendering them as text).
    """
    possible = a.name == b.name == "postgresql" and a.supports_native and b.supports_native
    if mode == "native" and not possible:
        raise ConfigurationError(
            "hash: 'native' needs PostgreSQL 11+ on both sides; use 'portable' or 'auto'"
        )
    if not possible or mode == "portable":
        return ""
    same_kinds = all(src.columns[n].kind == tgt.columns[n].kind for n in names)
    records = getattr(a, "has_hash_record", False) and getattr(b, "has_hash_record", False)
    return "record" if records and same_kinds else "text"


def _both(
    pool: ThreadPoolExecutor, fn: Callable[..., Any], a: Any, b: Any, *args: Any
) -> tuple[Any, Any]:
    fa = pool.submit(fn, a, *args)
    fb = pool.submit(fn, b, *args)
    return fa.result(), fb.result()


def _bounds(side: _Side) -> tuple[int | None, int | None]:
    sql = f"SELECT MIN({side.k0}), MAX({side.k0}) FROM {side.tref}{side.where()}"  # noqa: S608 - quoted identifiers only
    rows = side.query(sql, "key bounds")
    lo, hi = rows[0]
    return (None if lo is None else int(lo)), (None if hi is None else int(hi))


def _count(side: _Side) -> int:
    rows = side.query(f"SELECT COUNT(*) FROM {side.tref}{side.where()}", "row count")  # noqa: S608 - quoted identifiers only
    return int(rows[0][0])


def _plan(src: _Side, tgt: _Side, opts: Options, pool: ThreadPoolExecutor) -> Plan | None:
    """Range segments for an integer first key column, hash segments otherwise."""
    if src.key[0].kind == "int" and tgt.key[0].kind == "int":
        (los, his), (lot, hit) = _both(pool, _bounds, src, tgt)
        lows = [v for v in (los, lot) if v is not None]
        if not lows:
            return None
        lo, hi = min(lows), max(v for v in (his, hit) if v is not None)
        if hi - lo < (1 << 62):
            return _RangePlan(lo, hi, opts)
    ns, nt = _both(pool, _count, src, tgt)
    if ns == 0 and nt == 0:
        return None
    return _HashPlan(max(ns, nt), opts)


def _compare(
    report: Report, src: _Side, tgt: _Side, opts: Options, pool: ThreadPoolExecutor
) -> None:
    plan = _plan(src, tgt, opts, pool)
    if plan is None:
        report.stats.mode = "empty"
        return
    stats = report.stats
    stats.mode = plan.mode
    # ---- checksum tree ----
    leaves: dict[int, list[int]] = {}
    level, parents = 0, None
    while True:
        agg_s, agg_t = _level(pool, src, tgt, plan, level, parents, opts)
        if level == 0:
            report.source.rows = sum(n for n, _ in agg_s.values())
            report.target.rows = sum(n for n, _ in agg_t.values())
            if _retry_with_nfc(src, tgt, agg_s, agg_t, opts):
                report.stats.nfc_in_db = True
                agg_s, agg_t = _level(pool, src, tgt, plan, level, parents, opts)
        buckets = set(agg_s) | set(agg_t)
        stats.levels = level + 1
        stats.segments += len(buckets)
        differing = sorted(b for b in buckets if agg_s.get(b) != agg_t.get(b))
        stats.segments_differing += len(differing)
        split: list[int] = []
        for b in differing:
            ns, nt = agg_s.get(b, (0, 0))[0], agg_t.get(b, (0, 0))[0]
            # a segment one side lacks entirely differs in every row: no use splitting it
            if max(ns, nt) <= opts.leaf_rows or not ns or not nt or not plan.can_split(level):
                leaves.setdefault(level, []).append(b)
            else:
                split.append(b)
        if not split:
            break
        level, parents = level + 1, split
    if not leaves:
        return
    # ---- rows of the differing leaves: (key, row hash) ----
    hs, ht = _both(pool, _leaf_rows, src, tgt, plan, leaves, opts.chunk)
    candidates = [
        ck
        for ck in sorted(set(hs) | set(ht), key=_sort_key)
        if ck not in hs or ck not in ht or hs[ck][1] != ht[ck][1]
    ]
    stats.candidates = len(candidates)
    if not candidates:
        return
    native_s = {ck: v[0] for ck, v in hs.items()}
    native_t = {ck: v[0] for ck, v in ht.items()}
    states = _full_compare(src, tgt, candidates, native_s, native_t, opts, pool)
    if states and opts.recheck:
        if opts.before_recheck is not None:
            opts.before_recheck(len(states))
        stats.recheck_delay = opts.recheck_delay
        time.sleep(opts.recheck_delay)
        first = states
        again = _full_compare(src, tgt, list(first), native_s, native_t, opts, pool)
        report.transient = len(first) - len(again)
        states = again
    _fill(report, src, tgt, states, native_s, native_t, opts)


def _retry_with_nfc(src: _Side, tgt: _Side, agg_s: Agg, agg_t: Agg, opts: Options) -> bool:
    """Many differing level-0 segments and text columns: maybe one side holds NFD text.

    NFC normalisation in SQL costs a scan about 1.7x on PostgreSQL, so it is off by default;
    when more than ``nfc_retry_ratio`` of the segments differ, level 0 is computed again with
    it, on the sides that can normalise (PostgreSQL 13+, SQLite; MariaDB cannot).
    """
    if opts.nfc_in_db or opts.nfc_retry_ratio >= 1:
        return False
    if not any(c.kind in ("text", "char") for c in src.cols):
        return False
    if not (src.dialect.can_nfc or tgt.dialect.can_nfc):
        return False
    buckets = set(agg_s) | set(agg_t)
    differing = sum(1 for b in buckets if agg_s.get(b) != agg_t.get(b))
    if not buckets or differing / len(buckets) <= opts.nfc_retry_ratio:
        return False
    for side in (src, tgt):
        if side.stored and not side.dialect.can_nfc:
            continue  # its computed hash would be the stored one (no NFC there either)
        side.stored = False
        side.h = side.dialect.hash_expr(side.cols, native=side.native, nfc=True)
    return True


def _sort_key(ck: CanonKey) -> tuple[tuple[int, int, str], ...]:
    """Keys in a natural order for listing: integers by value, then text."""
    return tuple(
        (0, 0, "") if v is None else ((1, int(v), "") if _is_int(v) else (2, 0, v)) for v in ck
    )


def _is_int(text: str) -> bool:
    return text.isdigit() or (text[:1] == "-" and text[1:].isdigit())


def _full_compare(
    src: _Side,
    tgt: _Side,
    keys: list[CanonKey],
    native_s: dict[CanonKey, tuple[Any, ...]],
    native_t: dict[CanonKey, tuple[Any, ...]],
    opts: Options,
    pool: ThreadPoolExecutor,
) -> dict[CanonKey, _State]:
    ks = [native_s.get(ck) or native_t[ck] for ck in keys]
    kt = [native_t.get(ck) or native_s[ck] for ck in keys]
    fs = pool.submit(src.fetch_rows, ks, opts.chunk)
    ft = pool.submit(tgt.fetch_rows, kt, opts.chunk)
    return _classify(src, tgt, keys, fs.result(), ft.result())


def _fill(
    report: Report,
    src: _Side,
    tgt: _Side,
    states: dict[CanonKey, _State],
    native_s: dict[CanonKey, tuple[Any, ...]],
    native_t: dict[CanonKey, tuple[Any, ...]],
    opts: Options,
) -> None:
    masker = _masker(opts)
    key_names = [k.name for k in src.key]
    upserts: list[tuple[str, tuple[Any, ...], CanonKey]] = []
    deletes: list[tuple[tuple[Any, ...], CanonKey]] = []
    for ck, state in states.items():
        report.counts[state.status] += 1
        if state.status == "extra":
            deletes.append((native_t.get(ck) or native_s[ck], ck))
        else:
            upserts.append((state.status, native_s.get(ck) or native_t[ck], ck))
        target_list = getattr(report, state.status)
        if len(target_list) >= opts.max_listed:
            continue
        row = state.source_row if state.source_row is not None else state.target_row
        side = src if state.source_row is not None else tgt
        assert row is not None
        key_values = tuple(row[i] for i in side.key_pos)
        diff = RowDiff(state.status, masked_key(masker, key_names, side.key_kinds, key_values))
        if state.status == "different":
            assert state.source_row is not None and state.target_row is not None
            diff.columns = state.columns
            for name in state.columns:
                i = report.columns.index(name)
                diff.values[name] = {
                    "source": masker.value(name, canon(state.source_row[i], src.kinds[i])),
                    "target": masker.value(name, canon(state.target_row[i], tgt.kinds[i])),
                }
        target_list.append(diff)
    # native key values, with their canonical form and the target key's kinds, so that a
    # repair can find each key's stored version in the copy
    report._repair_keys = {"upsert": upserts, "delete": deletes, "target_kinds": tgt.key_kinds}
