"""``lgsp report sla``: on-time dossiers per ward, district or city, from the city-level data."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from bus.cli._common import echo_table, settings
from bus.errors import ConfigurationError
from bus.report.render import (
    TABLE_HEADERS,
    TREND_HEADERS,
    header_line,
    not_regrouped_lines,
    skipped_line,
    table_rows,
    total_line,
    trend_header,
    trend_rows,
    write_chart,
    write_csv,
    write_trend_chart,
    write_trend_csv,
)
from bus.report.service import (
    ReportRead,
    SlaReport,
    TrendReport,
    parse_as_of,
    sla_report,
    sla_trend,
)
from bus.report.workdays import default_calendar
from bus.units import available_hierarchies


def _as_of(value: str | None, month: str) -> dt.datetime:
    return parse_as_of(value, month, default_calendar().tz, option="--as-of")


@click.group("report")
def report_group() -> None:
    """Reports computed from the data the units publish."""


@report_group.command("sla")
@click.option(
    "--level", required=True, help="Reporting level: ward, district or city (per hierarchy)."
)
@click.option("--month", required=True, help="The month, YYYY-MM.")
@click.option("--unit", default=None, help="Only this unit and the units below it.")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Score as of this time (ISO 8601; default the month's end, or now if earlier).",
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout instead of a table.")
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also draw a bar chart of the on-time rate per unit (PNG).",
)
@click.option(
    "--source",
    type=click.Choice(["topic", "url"]),
    default=None,
    help="Read the city topic (default) or a SQL table (--url, --table).",
)
@click.option("--topic", default=None, help="The topic to read (default lgsp.<city>.tthc.dossier).")
@click.option("--url", default=None, help="SQLAlchemy URL of a database holding dossier records.")
@click.option("--table", default=None, help="With --url: the table of dossier records.")
@click.option(
    "--hierarchy",
    type=click.Choice(available_hierarchies()),
    default=None,
    help="Administrative model (default: the configured one).",
)
@click.option(
    "--as-hierarchy",
    "as_hierarchy",
    type=click.Choice(available_hierarchies()),
    default=None,
    help="Regroup the figures into this hierarchy's units, whatever era each dossier was "
    "received in (e.g. June 2025 into hcmc-2025's wards); units that cannot be regrouped "
    "are listed with the reason.",
)
@click.option(
    "--trend",
    type=click.IntRange(min=1, max=240),
    default=None,
    metavar="N",
    help="The N months ending with --month, per unit and month (table, --csv, --chart).",
)
@click.option("--by-field/--no-by-field", default=True, show_default=True)
@click.option(
    "--all-units/--units-with-data",
    "all_units",
    default=None,
    help="List every unit of the level, zeros included (default: when directly under the scope).",
)
def sla_cmd(
    level: str,
    month: str,
    unit: str | None,
    as_of: str | None,
    as_csv: bool,
    chart: Path | None,
    source: str | None,
    topic: str | None,
    url: str | None,
    table: str | None,
    hierarchy: str | None,
    as_hierarchy: str | None,
    trend: int | None,
    by_field: bool,
    all_units: bool | None,
) -> None:
    """Received, resolved early / on time / late, open, overdue and on-time rate per unit
    and field for one month, in working days, supplement-request pauses excluded
    (Decision 766/QĐ-TTg)."""
    if source == "url" and (url is None or table is None):
        raise ConfigurationError("--source url: give --url and --table")
    if source == "topic" and (url is not None or table is not None):
        raise ConfigurationError("--source topic: --url and --table do not apply")
    read: ReportRead = {
        "level": level,
        "month": month,
        "as_of": _as_of(as_of, month),
        "unit": unit,
        "topic": topic,
        "url": url,
        "table": table,
        "hierarchy": hierarchy,
        "as_hierarchy": as_hierarchy,
    }
    if trend is not None:
        _show(sla_trend(settings(), months=trend, all_units=bool(all_units), **read), as_csv, chart)
    else:
        report = sla_report(settings(), all_units=all_units, **read)
        _show(report, as_csv, chart, by_field=by_field)


def _show(
    report: SlaReport | TrendReport, as_csv: bool, chart: Path | None, *, by_field: bool = True
) -> None:
    """A month's report or a trend: the table (or CSV on stdout), what was skipped, the chart."""
    for line in not_regrouped_lines(report):
        click.echo(line, err=True)
    skipped = skipped_line(report)
    if as_csv and isinstance(report, TrendReport):
        write_trend_csv(report, sys.stdout)
    elif as_csv and isinstance(report, SlaReport):
        write_csv(report, sys.stdout, by_field=by_field)
    elif isinstance(report, TrendReport):
        click.echo(trend_header(report))
        echo_table(TREND_HEADERS, trend_rows(report))
    else:
        click.echo(header_line(report))
        echo_table(TABLE_HEADERS, table_rows(report, by_field=by_field))
        click.echo(total_line(report))
    if skipped:
        click.echo(skipped, err=as_csv)
    if chart is not None:
        if isinstance(report, TrendReport):
            write_trend_chart(report, chart)
        else:
            write_chart(report, chart)
        click.echo(f"chart written to {chart}", err=True)
