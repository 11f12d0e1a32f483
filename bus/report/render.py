"""Showing an on-time report: an aligned table, CSV, and a bar chart of the on-time rate per unit.

The chart needs matplotlib (the ``chart`` extra); it is imported only when a chart is drawn,
with the Agg backend (no display) and DejaVu Sans, which has the Vietnamese glyphs.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from bus.errors import ConfigurationError
from bus.report.service import ALL_FIELDS, SlaReport, TrendReport
from bus.report.sla import COUNTERS

CHART_INSTALL = "pip install 'lgsp-bus[chart]'"
TABLE_HEADERS = (
    "UNIT",
    "NAME",
    "FIELD",
    "RECEIVED",
    "RESOLVED",
    "EARLY",
    "ON TIME",
    "LATE",
    "OPEN",
    "OVERDUE",
    "ON-TIME RATE",
)
CSV_COLUMNS = (
    "month",
    "kind",
    "level",
    "unit",
    "unit_name",
    "field",
    *COUNTERS,
    "on_time_rate",
)
LEVEL_LABELS = {"city": "thành phố", "district": "quận, huyện", "ward": "phường, xã"}


class ChartUnavailableError(ConfigurationError, ImportError):
    """matplotlib is not installed (the ``chart`` extra)."""


def format_rate(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _cells(row: dict[str, Any], third: str) -> list[Any]:
    """One table line: unit, name, ``row[third]`` (field or month), the counters, the rate."""
    return [
        row["unit"],
        row["unit_name"],
        row[third],
        row["received"],
        row["resolved"],
        row["resolved_early"],
        row["resolved_on_time"],
        row["resolved_late"],
        row["open"],
        row["overdue"],
        format_rate(row["on_time_rate"]),
    ]


def _write_rows(out: TextIO, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    """CSV of ``rows`` (the rate with 4 decimals, empty when nothing resolved); the row count."""
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        rate = row["on_time_rate"]
        writer.writerow({**row, "on_time_rate": "" if rate is None else f"{rate:.4f}"})
        count += 1
    return count


def table_rows(report: SlaReport, *, by_field: bool = True) -> list[list[Any]]:
    """Rows for :data:`TABLE_HEADERS`: each unit's total, then its fields (unless not by_field)."""
    return [_cells(row, "field") for row in report.rows if by_field or row["field"] == ALL_FIELDS]


def total_line(report: SlaReport) -> str:
    t = report.total
    return (
        f"total {t['unit']} {t['unit_name']}: received {t['received']}, resolved "
        f"{t['resolved']} (early {t['resolved_early']}, on time {t['resolved_on_time']}, "
        f"late {t['resolved_late']}), open {t['open']}, overdue {t['overdue']}, "
        f"on-time rate {format_rate(t['on_time_rate'])}"
    )


def _provenance(report: SlaReport | TrendReport) -> str:
    """``as of ... (hierarchy[, regrouped from ...]; source; N dossiers read)``."""
    regrouped = f", regrouped from {report.regrouped_from}" if report.regrouped_from else ""
    return (
        f"as of {report.as_of.isoformat(timespec='seconds')} ({report.hierarchy}{regrouped}; "
        f"{report.source}; {report.dossiers} dossiers read)"
    )


def header_line(report: SlaReport) -> str:
    return f"on-time dossiers, {report.level} level, {report.month}, {_provenance(report)}"


def not_regrouped_lines(report: SlaReport | TrendReport) -> list[str]:
    """One line per unit whose dossiers could not be regrouped (``--as-hierarchy``)."""
    return [
        f"not regrouped: {n.unit} {n.name} ({n.hierarchy}), {n.dossiers} dossiers: {n.why}"
        for n in report.not_regrouped
    ]


TREND_HEADERS = tuple("MONTH" if h == "FIELD" else h for h in TABLE_HEADERS)
TREND_CSV_COLUMNS = tuple(c for c in CSV_COLUMNS if c not in ("kind", "field"))


def trend_header(report: TrendReport) -> str:
    return (
        f"on-time dossiers per month, {report.level} level, {report.months[0]} to "
        f"{report.months[-1]}, {_provenance(report)}"
    )


def trend_rows(report: TrendReport) -> list[list[Any]]:
    """Rows for :data:`TREND_HEADERS`: each unit month by month."""
    return [_cells(r, "month") for r in report.rows]


def write_trend_csv(report: TrendReport, out: TextIO) -> int:
    return _write_rows(out, TREND_CSV_COLUMNS, report.rows)


def write_trend_chart(report: TrendReport, path: Path) -> Path:
    """One line per unit: its on-time rate month by month (a gap where nothing resolved);
    PNG at ``path``."""

    def draw(ax: Any) -> None:
        units: dict[str, list[dict[str, Any]]] = {}
        for row in report.rows:
            units.setdefault(row["unit"], []).append(row)
        positions = list(range(len(report.months)))
        for code, rows in units.items():
            values = [
                float("nan") if r["on_time_rate"] is None else r["on_time_rate"] * 100 for r in rows
            ]
            ax.plot(
                positions,
                values,
                marker="o",
                markersize=3,
                linewidth=1.2,
                label=f"{rows[0]['unit_name']} ({code})",
            )
        labels = [f"{m[5:]}/{m[:4]}" for m in report.months]
        ax.set_xticks(positions, labels=labels, rotation=60, fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("% đúng hạn")
        ax.grid(linestyle=":", linewidth=0.6)
        ax.set_title(_title(report.level, f"{labels[0]} - {labels[-1]}"), fontsize=12, loc="left")
        if len(units) <= 20:
            ax.legend(fontsize=7.5, loc="lower left", ncols=2)

    return _save_chart(path, (11, 6), draw)


def skipped_line(report: SlaReport | TrendReport) -> str | None:
    """What the report read but could not count, with why (``None``: nothing skipped)."""
    parts = [
        f"{count} {what}"
        for count, what in (
            (report.unreadable, "undecodable events"),
            (report.invalid, "invalid dossiers"),
            (report.unknown_unit, "dossiers of units outside the hierarchy"),
            (sum(n.dossiers for n in report.not_regrouped), "dossiers not regrouped"),
        )
        if count
    ]
    return "skipped: " + ", ".join(parts) if parts else None


def csv_rows(report: SlaReport, *, by_field: bool = True) -> list[dict[str, Any]]:
    """The CSV's rows: the unit rows, and the scope total when it is not itself a unit row."""
    rows = [
        {**row, "kind": "unit"} for row in report.rows if by_field or row["field"] == ALL_FIELDS
    ]
    if report.scope.level != report.level:
        rows.append({**report.total, "kind": "total"})
    return rows


def write_csv(report: SlaReport, out: TextIO, *, by_field: bool = True) -> int:
    return _write_rows(out, CSV_COLUMNS, csv_rows(report, by_field=by_field))


def _matplotlib() -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ChartUnavailableError(f"--chart needs matplotlib: {CHART_INSTALL}") from exc
    return Figure


def _save_chart(path: Path, size: tuple[float, float], draw: Callable[[Any], None]) -> Path:
    """A PNG at ``path`` of one plot drawn by ``draw(axes)``, in DejaVu Sans (the Vietnamese
    glyphs) without changing matplotlib's global settings."""
    figure_cls = _matplotlib()
    from matplotlib import rcParams

    with_font = {"font.family": "DejaVu Sans"}
    saved = {k: rcParams[k] for k in with_font}
    rcParams.update(with_font)
    try:
        fig = figure_cls(figsize=size, dpi=110, layout="constrained")
        draw(fig.add_subplot())
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    except OSError as exc:
        raise ConfigurationError(f"--chart: cannot write {path} ({exc.strerror})") from exc
    finally:
        rcParams.update(saved)
    return path


def chart_title(report: SlaReport) -> str:
    year, month = report.month.split("-")
    return _title(report.level, f"tháng {int(month)}/{year}")


def _title(level: str, period: str) -> str:
    """A chart's title: the on-time rate by ``level`` (in Vietnamese) over ``period``."""
    return f"Tỷ lệ hồ sơ giải quyết đúng hạn theo {LEVEL_LABELS.get(level, level)}, {period}"


def write_chart(report: SlaReport, path: Path, *, rows: Sequence[dict[str, Any]] = ()) -> Path:
    """A horizontal bar per unit: its on-time rate, with resolved counts; PNG at ``path``."""
    units = list(rows) or report.unit_rows()
    height = max(2.8, 0.42 * len(units) + 1.6)

    def draw(ax: Any) -> None:
        labels = [f"{r['unit_name']} ({r['unit']})" for r in units]
        values = [(r["on_time_rate"] or 0.0) * 100 for r in units]
        colours = [
            "#b0b0b0"
            if r["on_time_rate"] is None
            else "#2e7d32"
            if r["on_time_rate"] >= 0.95
            else "#f9a825"
            if r["on_time_rate"] >= 0.85
            else "#c62828"
            for r in units
        ]
        positions = list(range(len(units)))
        ax.barh(positions, values, color=colours, height=0.65)
        ax.set_yticks(positions, labels=labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 130)
        ax.set_xticks([0, 20, 40, 60, 80, 100], labels=["0%", "20%", "40%", "60%", "80%", "100%"])
        ax.axvline(100, color="#606060", linewidth=0.6)
        ax.grid(axis="x", linestyle=":", linewidth=0.6)
        ax.set_axisbelow(True)
        for pos, row, value in zip(positions, units, values, strict=True):
            if row["on_time_rate"] is None:
                text = "chưa có hồ sơ giải quyết"
            else:
                in_time = row["resolved_early"] + row["resolved_on_time"]
                text = f"{value:.1f}% ({in_time}/{row['resolved']})"
            ax.text(value + 1, pos, text, va="center", fontsize=8.5)
        ax.set_title(chart_title(report), fontsize=12, loc="left")
        total = report.total
        ax.set_xlabel(
            f"{total['unit_name']}: {format_rate(total['on_time_rate'])} đúng hạn, "
            f"tính đến {report.as_of.strftime('%H:%M %d/%m/%Y')}\n"
            "Tính theo ngày làm việc, không tính thời gian chờ bổ sung hồ sơ "
            "(Quyết định 766/QĐ-TTg)",
            fontsize=8.5,
        )

    return _save_chart(path, (9.5, height), draw)
