"""A third-party connector type (examples/plugins/lgsp-csv-folder), written against the
documented interface only, found through its ``lgsp.connectors`` entry point: the conformance
kit passes, and ``lgsp connector add`` + ``run`` carries its rows into a SQLite sink.

The package is installed for the test as a distribution on ``sys.path`` (its module and a
``dist-info`` whose entry points are read from the package's own ``pyproject.toml``), which is
what ``importlib.metadata`` sees of a pip-installed package.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from connectors import plugins
from connectors.testing import DATASET, Harness, SqlHarness, conformance_suite, normalise

PACKAGE = Path(__file__).resolve().parents[3] / "examples" / "plugins" / "lgsp-csv-folder"
COLUMNS = {
    "id": "int",
    "label": "string",
    "amount": "decimal(12,2)",
    "changed_at": "timestamp",
    "deleted": "boolean",
}


def install(target: Path) -> None:
    """The package as pip would leave it: the module and its dist-info with entry points."""
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    shutil.copytree(PACKAGE / "lgsp_csv_folder", target / "lgsp_csv_folder")
    info = target / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, points in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {value}" for name, value in points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(autouse=True)
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    site = tmp_path_factory.mktemp("site")
    install(site)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(site))
        plugins._installed.cache_clear()
        yield
    plugins._installed.cache_clear()


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


class CsvHarness(Harness):
    """The kit's standard table as ``<folder>/<table>.csv``; the sink is SQLite."""

    type_name = "csv-folder"

    def __init__(self, tmp_path: Path, unique: str) -> None:
        self.folder = tmp_path / "csv"
        self.source_table = f"kit_src_{unique}"
        self.sink_table = f"kit_dst_{unique}"
        self.sqlite = SqlHarness("sqlite", f"sqlite:///{tmp_path}/kit.db", unique)
        self.rows: dict[int, dict[str, Any]] = {}

    def _save(self) -> None:
        with (self.folder / f"{self.source_table}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, list(COLUMNS))
            writer.writeheader()
            for row in self.rows.values():
                writer.writerow({k: cell(v) for k, v in row.items()})

    def create_source(self) -> None:
        self.folder.mkdir()
        self._save()

    def insert(self, rows: list[dict[str, Any]]) -> None:
        self.rows.update({r["id"]: dict(r) for r in rows})
        self._save()

    def update(self, row_id: int, values: dict[str, Any]) -> None:
        self.rows[row_id].update(values)
        self._save()

    def source_rows(self) -> dict[int, dict[str, Any]]:
        return {i: {k: normalise(v) for k, v in r.items()} for i, r in self.rows.items()}

    def sink_rows(self) -> dict[int, dict[str, Any]]:
        self.sqlite.sink_table = self.sink_table
        return self.sqlite.sink_rows()

    def source_config(self, **table: Any) -> dict[str, Any]:
        entry = {"table": self.source_table, "dataset": DATASET, "key": ["id"]}
        return {
            "name": "kit-source",
            "type": self.type_name,
            "role": "source",
            "agency": "kit-agency",
            "unit": "26734",
            "batch_size": 3,
            "connection": {"path": str(self.folder)},
            "tables": [{**entry, "columns": COLUMNS, **table}],
        }

    def sink_config(self, **table: Any) -> dict[str, Any]:
        return self.sqlite.sink_config(**table)

    def bad_configs(self) -> list[tuple[dict[str, Any], str]]:
        good = self.source_config(mode="incremental", cursor="changed_at")
        table = good["tables"][0]
        return [
            ({**good, "name": "Bad Name"}, "name"),
            ({**good, "role": "sink"}, "role"),
            ({**good, "tables": [{**table, "cursor": None}]}, "cursor"),
            ({**good, "tables": [{**table, "curser": "changed_at"}]}, "curser"),
            ({**good, "tables": [{**table, "columns": {**COLUMNS, "id": "uuid"}}]}, "columns.id"),
            ({**good, "connection": {}}, "connection.path"),
        ]

    def cleanup(self) -> None:
        self.sqlite.cleanup()


TestCsvFolderConformance = conformance_suite(CsvHarness)


@pytest.mark.integration
def test_add_and_run_into_sqlite(cli_env: dict[str, str], tmp_path: Path, unique: str) -> None:
    from bus.cli.main import cli

    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "fees.csv").write_text(
        "id,payer,amount,paid_at\n"
        "1,Nguyễn Văn An,150000.00,2025-07-01T08:00:00\n"
        "2,Trần Thị Bích,,2025-07-01T08:00:00\n"
        "3,Lê Đức Thọ,99.50,2025-07-02T09:30:00\n",
        encoding="utf-8",
    )
    dataset = f"tthc.fee{unique}"
    source = {
        "name": f"csv-{unique}",
        "type": "csv-folder",
        "role": "source",
        "agency": "ubnd-phuong-tan-dinh",
        "unit": "26734",
        "connection": {"path": str(folder)},
        "tables": [
            {
                "table": "fees",
                "dataset": dataset,
                "key": ["id"],
                "columns": {
                    "id": "int",
                    "payer": "string",
                    "amount": "decimal(12,2)",
                    "paid_at": "timestamp",
                },
                "mode": "incremental",
                "cursor": "paid_at",
            }
        ],
    }
    sink = {
        "name": f"db-{unique}",
        "type": "sqlite",
        "role": "sink",
        "agency": "so-tttt",
        "unit": "26734",
        "connection": {"url": f"sqlite:///{tmp_path}/target.db"},
        "tables": [{"table": "fees", "dataset": dataset}],
    }
    runner = CliRunner()
    for config in (source, sink):
        path = tmp_path / f"{config['name']}.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        result = runner.invoke(cli, ["connector", "add", str(path)])
        assert result.exit_code == 0, result.stderr
        result = runner.invoke(cli, ["connector", "run", config["name"]])
        assert result.exit_code == 0, result.stderr
        assert "rows 3" in result.stdout, result.stdout
    engine = sa.create_engine(f"sqlite:///{tmp_path}/target.db")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, payer, amount FROM fees ORDER BY id")).all()
    engine.dispose()
    assert [(r[0], r[1], None if r[2] is None else decimal.Decimal(str(r[2]))) for r in rows] == [
        (1, "Nguyễn Văn An", decimal.Decimal("150000.00")),
        (2, "Trần Thị Bích", None),
        (3, "Lê Đức Thọ", decimal.Decimal("99.50")),
    ]
