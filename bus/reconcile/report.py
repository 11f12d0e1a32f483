"""The result of a reconciliation: what differs, the figures, a one-line summary, JSON.

Values of personal-data fields never leave this module in clear: a PII column's values are
shown as ``***``, and a PII key column's values as a keyed token (``tok_...``) so that a
person can still follow one row across reports without seeing the value. Column names are
compared without case, accents or separators (``Họ tên`` is ``ho_ten``); with ``guess``, names
that look like personal identifiers (``PERSONAL_NAMES`` as a whole word: ``so_cccd``,
``dia_chi_thuong_tru``, ``SoDienThoai``) are masked too.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bus.reconcile.canonical import canon
from bus.reconcile.schema import SchemaIssue

MASK = "***"
MAX_VALUE_CHARS = 120


# Column names that hold personal identifiers, normalised (see ``normalise_name``).
PERSONAL_NAMES = (
    "citizen_id",
    "cccd",
    "cmnd",
    "so_dinh_danh",
    "phone",
    "so_dien_thoai",
    "full_name",
    "ho_ten",
    "address",
    "dia_chi",
    "birth_date",
    "ngay_sinh",
)


def normalise_name(name: str) -> str:
    """``name`` lowercased, without accents (đ -> d), words joined by ``_``:
    ``Họ Tên`` -> ``ho_ten``, ``SoDienThoai`` -> ``so_dien_thoai``, ``CCCD`` -> ``cccd``."""
    text = unicodedata.normalize("NFD", name.replace("đ", "d").replace("Đ", "D"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


_PERSONAL_PATTERNS = tuple(
    dict.fromkeys(f"_{w}_" for word in PERSONAL_NAMES for w in (word, word.replace("_", "")))
)


def looks_personal(name: str) -> bool:
    """Whether a column name contains one of ``PERSONAL_NAMES`` as whole words, with or
    without the ``_`` between them (``ho_ten_nguoi_nop``, ``hoten``, ``NgaySinh``)."""
    padded = f"_{normalise_name(name)}_"
    return any(pattern in padded for pattern in _PERSONAL_PATTERNS)


class Masker:
    """Masks values of PII fields (names compared by ``normalise_name``); with ``guess``,
    also of columns whose names look like personal identifiers (``looks_personal``)."""

    def __init__(
        self,
        pii: Iterable[str] = (),
        token: Callable[[Any], str] | None = None,
        *,
        guess: bool = False,
    ) -> None:
        self.pii = {normalise_name(p) for p in pii}
        self._token = token
        self.guess = guess
        self._known: dict[str, bool] = {}  # per column name: asked for every value listed

    def is_pii(self, column: str) -> bool:
        known = self._known.get(column)
        if known is None:
            known = normalise_name(column) in self.pii or (self.guess and looks_personal(column))
            self._known[column] = known
        return known

    def value(self, column: str, text: str | None) -> str | None:
        if text is None:
            return None
        if self.is_pii(column):
            return MASK
        return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."

    def key(self, column: str, text: str | None) -> str | None:
        if text is None or not self.is_pii(column):
            return text
        return self._token(text) if self._token is not None else MASK


@dataclass
class RowDiff:
    """One key that differs: ``missing`` (only in the source), ``extra`` (only in the target)
    or ``different`` (in both, some columns differ)."""

    status: str
    key: dict[str, str | None]
    columns: list[str] = field(default_factory=list)
    values: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key}
        if self.status == "different":
            data["columns"] = self.columns
            data["values"] = self.values
        return data


@dataclass
class SideInfo:
    label: str
    dialect: str
    table: str
    url: str
    rows: int = 0
    connector: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "dialect": self.dialect,
            "table": self.table,
            "url": self.url,
            "rows": self.rows,
        }

    @property
    def name(self) -> str:
        who = self.connector or f"{self.dialect}"
        return f"{who}:{self.table}"


@dataclass
class Stats:
    mode: str = ""
    hash: str = ""
    nfc_in_db: bool = False
    levels: int = 0
    segments: int = 0
    segments_differing: int = 0
    segment_rows: int = 0
    hash_rows_fetched: int = 0
    full_rows_fetched: int = 0
    queries: int = 0
    seconds: float = 0.0
    recheck_delay: float = 0.0
    candidates: int = 0
    stored_hash: list[str] = field(default_factory=list)  # sides that read _lgsp_rowhash

    @property
    def rows_fetched(self) -> int:
        return self.hash_rows_fetched + self.full_rows_fetched

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["rows_fetched"] = self.rows_fetched
        data["seconds"] = round(self.seconds, 3)
        return data


@dataclass
class Report:
    source: SideInfo
    target: SideInfo
    key: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    ignored: dict[str, list[str]] = field(default_factory=dict)
    schema: list[SchemaIssue] = field(default_factory=list)
    missing: list[RowDiff] = field(default_factory=list)
    extra: list[RowDiff] = field(default_factory=list)
    different: list[RowDiff] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"missing": 0, "extra": 0, "different": 0}
    )
    transient: int = 0
    stats: Stats = field(default_factory=Stats)
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    finished_at: dt.datetime | None = None
    repair: dict[str, Any] | None = None
    report_id: int | None = None
    warnings: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    # Unmasked keys for a repair: never serialised.
    _repair_keys: dict[str, list[Any]] = field(default_factory=dict, repr=False)

    @property
    def schema_errors(self) -> list[SchemaIssue]:
        return [i for i in self.schema if i.severity == "error"]

    @property
    def differences(self) -> int:
        return self.counts["missing"] + self.counts["extra"] + self.counts["different"]

    @property
    def agree(self) -> bool:
        return not self.schema_errors and self.differences == 0

    @property
    def summary(self) -> str:
        head = "AGREE" if self.agree else "DIFFER"
        parts = [
            f"{head}: {self.source.name} ({self.source.rows} rows) vs "
            f"{self.target.name} ({self.target.rows} rows)"
        ]
        figures = (
            f"{self.counts['missing']} missing, {self.counts['extra']} extra, "
            f"{self.counts['different']} different"
        )
        if self.schema_errors:
            figures = f"{len(self.schema_errors)} schema difference(s); " + figures
        if self.transient:
            figures += f" ({self.transient} changed during the check, not counted)"
        parts.append(figures)
        parts.append(f"{self.stats.seconds:.2f}s, {self.stats.rows_fetched} rows fetched")
        return ": ".join(parts[:2]) + "; " + parts[2]

    def to_dict(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "summary": self.summary,
            "source": self.source.to_dict(),
            "target": self.target.to_dict(),
            "key": self.key,
            "columns": self.columns,
            "ignored_columns": self.ignored,
            "schema": [i.to_dict() for i in self.schema],
            "counts": dict(self.counts),
            "missing": [d.to_dict() for d in self.missing],
            "extra": [d.to_dict() for d in self.extra],
            "different": [d.to_dict() for d in self.different],
            "transient": self.transient,
            "stats": self.stats.to_dict(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "repair": self.repair,
            "report_id": self.report_id,
            "warnings": self.warnings,
            "masked_columns": self.masked,
        }

    def summary_dict(self) -> dict[str, Any]:
        """The figures without the row lists (for task logs and XComs)."""
        return {
            "agree": self.agree,
            "summary": self.summary,
            "counts": dict(self.counts),
            "schema_errors": len(self.schema_errors),
            "transient": self.transient,
            "source_rows": self.source.rows,
            "target_rows": self.target.rows,
            "rows_fetched": self.stats.rows_fetched,
            "seconds": round(self.stats.seconds, 3),
            "repair": self.repair,
            "report_id": self.report_id,
        }


def masked_key(
    masker: Masker, names: list[str], kinds: list[str], values: tuple[Any, ...]
) -> dict[str, str | None]:
    return {n: masker.key(n, canon(v, k)) for n, k, v in zip(names, kinds, values, strict=True)}
