"""``lgsp reconcile OLD_SOURCE TABLE --against NEW_SINK --through-mapping``: after the 2025
reform an old ward's table (Tân Định 26734, SQLite) is compared with the new ward's copy
(Phường Tân Định 26737) that the re-keyed records reached, through the real broker and sink."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bus import sync
from bus.cli.main import cli
from bus.config import Settings
from bus.connector_service.registration import register
from bus.context import Context
from bus.errors import ConfigurationError
from bus.reconcile.service import run_reconcile
from bus.routes.reform import run_reform
from tests.integration.routes.test_reform import EFFECTIVE
from tests.integration.routes.test_routes import dataset

pytestmark = pytest.mark.integration


def _connector(name: str, role: str, unit: str, url: str, table: str, ds: str) -> dict:
    entry: dict = {"table": table, "dataset": ds, "key": ["item_id"]}
    if role == "source":
        entry["mode"] = "snapshot"
    return {
        "name": name,
        "type": "sqlite",
        "role": role,
        "agency": "ubnd-phuong-tan-dinh",
        "unit": unit,
        "connection": {"url": url},
        "tables": [entry],
    }


@pytest.fixture
def reformed(settings: Settings, tmp_path: Path, unique: str) -> dict[str, str]:
    """Ward 26734's table synced, re-keyed into 26737, and 26737's sink run."""
    name = f"t.rm{unique}"
    dataset(settings, tmp_path, name, ["26734"])
    old_url = f"sqlite:///{tmp_path / 'tan_dinh_old.db'}"
    engine = sa.create_engine(old_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE items (item_id TEXT PRIMARY KEY, unit TEXT, title TEXT)")
        )
        conn.execute(
            sa.text("INSERT INTO items VALUES (:i, '26734', :t)"),
            [{"i": f"HS-{i:03d}", "t": f"Hồ sơ {i}"} for i in range(12)],
        )
    engine.dispose()
    source, sink = f"old-td-{unique}", f"new-td-{unique}"
    register(settings, _connector(source, "source", "26734", old_url, "items", name))
    sync.run(settings, source)
    run_reform(Context.build(settings), [name], EFFECTIVE)
    new_url = f"sqlite:///{tmp_path / 'tan_dinh_new.db'}"
    register(settings, _connector(sink, "sink", "26737", new_url, "copy", name))
    sync.run(Context.build(settings), sink)
    return {"name": name, "source": source, "sink": sink, "old": old_url, "new": new_url}


def test_the_old_table_agrees_with_the_new_wards_copy(
    settings: Settings, reformed: dict[str, str]
) -> None:
    report = run_reconcile(
        settings, reformed["source"], "items", reformed["sink"], through_mapping=True
    )
    assert report.agree, report.to_dict()
    assert report.source.rows == report.target.rows == 12
    assert any("26734 (hcmc-2024) -> 26737 (hcmc-2025, merge)" in w for w in report.warnings)
    # without the flag the old source is refused, naming its successor
    with pytest.raises(ConfigurationError, match=r"successor is 26737"):
        run_reconcile(settings, reformed["source"], "items", reformed["sink"])


def test_differences_through_the_mapping_are_found(
    settings: Settings, reformed: dict[str, str], tmp_path: Path, unique: str, cli_env: dict
) -> None:
    old = sa.create_engine(reformed["old"])
    with old.begin() as conn:  # a change the reform never carried over
        conn.execute(sa.text("UPDATE items SET title = 'sửa' WHERE item_id = 'HS-001'"))
    old.dispose()
    new = sa.create_engine(reformed["new"])
    with new.begin() as conn:  # a row re-keyed to the wrong ward
        conn.execute(sa.text("UPDATE copy SET unit = '26740' WHERE item_id = 'HS-002'"))
    new.dispose()
    result = CliRunner().invoke(
        cli,
        ["reconcile", reformed["source"], "items", "--against", reformed["sink"],
         "--through-mapping", "--no-recheck", "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    import json

    shown = json.loads(result.stdout)
    assert shown["counts"]["different"] == 1 and shown["counts"]["missing"] == 1
    assert [d["key"] for d in shown["missing"]] == [{"item_id": "HS-002"}]

    # a sink of a unit the old ward did not go to is refused with the reason
    other_url = f"sqlite:///{tmp_path / 'ben_thanh.db'}"
    register(
        settings, _connector(f"bt-{unique}", "sink", "26743", other_url, "c", reformed["name"])
    )
    bad = CliRunner().invoke(
        cli,
        ["reconcile", reformed["source"], "items", "--against", f"bt-{unique}",
         "--through-mapping"],
    )  # fmt: skip
    assert bad.exit_code == 2
    assert (
        "went to 26737 (Phường Tân Định)" in bad.output and "26743 does not receive" in bad.output
    )


def test_through_mapping_refusals(settings: Settings, reformed: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="--repair: not with --through-mapping"):
        run_reconcile(
            settings, reformed["source"], "items", reformed["sink"], True, through_mapping=True
        )
    # a new ward's own source against the new ward's sink: the same hierarchy
    new_url = reformed["new"]
    engine = sa.create_engine(new_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE own (item_id TEXT PRIMARY KEY, unit TEXT, title TEXT)"))
    engine.dispose()
    register(
        settings,
        _connector("own-td", "source", "26737", new_url, "own", reformed["name"]),
    )
    with pytest.raises(ConfigurationError, match="in the same hierarchy: reconcile without"):
        run_reconcile(settings, "own-td", "own", reformed["sink"], through_mapping=True)
