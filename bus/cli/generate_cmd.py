"""``lgsp generate``: seeded synthetic records of a dataset, as JSON lines, CSV or a table."""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import TextIO

import click

from bus.cli._common import settings
from bus.envelope import load_record_schema
from bus.errors import ConfigurationError
from bus.generate import (
    DATASETS,
    DEFAULT_END,
    DEFAULT_START,
    dataset_spec,
    generate,
    load_records,
    write_csv,
    write_jsonl,
)


def _units(values: tuple[str, ...]) -> list[str]:
    codes = [code.strip() for value in values for code in value.split(",") if code.strip()]
    if not codes:
        raise ConfigurationError("--unit: expected at least one unit code")
    return codes


@click.command("generate")
@click.argument("dataset", type=click.Choice(sorted(DATASETS)))
@click.option("--rows", "rows", type=click.IntRange(min=0), required=True, help="How many.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same rows.")
@click.option(
    "--unit",
    "units",
    multiple=True,
    required=True,
    help="Ward code (repeat or comma-separate); a district or city code means all its wards.",
)
@click.option(
    "--start",
    type=click.DateTime(["%Y-%m-%d"]),
    default=DEFAULT_START.isoformat(),
    show_default=True,
    help="First day of the time window.",
)
@click.option(
    "--end",
    type=click.DateTime(["%Y-%m-%d"]),
    default=DEFAULT_END.isoformat(),
    show_default=True,
    help="Last day of the window; the data is a snapshot at its end.",
)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="File (default -).")
@click.option(
    "--online-procedures",
    type=int,
    default=None,
    help="tthc.dossier: how many procedures the wards accept online (default all).",
)
@click.option("--url", default=None, help="Write into this SQLAlchemy database URL instead.")
@click.option("--table", default=None, help="With --url: the table to create (schema.table ok).")
@click.option(
    "--if-exists",
    type=click.Choice(["fail", "replace", "append"]),
    default="fail",
    show_default=True,
    help="With --url: what to do when the table exists.",
)
def generate_cmd(
    dataset: str,
    rows: int,
    seed: int,
    units: tuple[str, ...],
    start: dt.datetime,
    end: dt.datetime,
    fmt: str,
    out: Path | None,
    online_procedures: int | None,
    url: str | None,
    table: str | None,
    if_exists: str,
) -> None:
    """Generate ROWS records of DATASET that validate against its Avro schema.

    Names, citizen IDs (CCCD 079...), addresses and dossier timelines look like Ho Chi Minh
    City's; the same --seed gives the same records.
    """
    if (url is None) != (table is None):
        raise ConfigurationError("--url and --table: give both to write into a database")
    spec = dataset_spec(dataset)
    records = generate(
        dataset,
        rows,
        seed,
        _units(units),
        start.date(),
        end.date(),
        hierarchy=settings().hierarchy,
        online_procedures=online_procedures,
    )
    began = time.perf_counter()
    if url is not None and table is not None:
        import sqlalchemy as sa

        try:
            engine = sa.create_engine(url)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise ConfigurationError(f"--url: not a usable SQLAlchemy URL ({exc})") from exc
        try:
            count = load_records(
                engine,
                table,
                load_record_schema(spec.schema_path),
                records,
                if_exists=if_exists,  # type: ignore[arg-type]
            )
        finally:
            engine.dispose()
        where = f"table {table}"
    else:
        handle: TextIO
        if out is None or str(out) == "-":
            handle, close = sys.stdout, False
        else:
            try:
                handle, close = out.open("w", encoding="utf-8", newline=""), True
            except OSError as exc:
                raise ConfigurationError(f"--out: cannot write {out} ({exc.strerror})") from exc
        try:
            if fmt == "csv":
                columns = [f["name"] for f in load_record_schema(spec.schema_path)["fields"]]
                count = write_csv(records, handle, columns)
            else:
                count = write_jsonl(records, handle)
        finally:
            if close:
                handle.close()
        where = str(out) if close else ""
    if where:
        seconds = time.perf_counter() - began
        click.echo(f"generated {count} {dataset} rows into {where} in {seconds:.1f} s", err=True)
