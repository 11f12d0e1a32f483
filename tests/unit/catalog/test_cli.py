"""The catalogue commands through the CLI (control database only)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_cli as run
from tests.unit.catalog.support import FAR_FUTURE, write_dataset


def test_catalogue_commands(offline_cli_env: dict, tmp_path: Path) -> None:
    path = write_dataset(tmp_path, "dancu.citizen")
    code, out, _ = run("dataset", "publish", str(path))
    assert code == 0 and "created dancu.citizen (publisher cong-an-tp)" in out
    assert "lgsp.79.dancu.citizen-value version 1" in out
    code, out, _ = run("dataset", "publish", str(path), "--json")
    assert json.loads(out)["status"] == "unchanged"

    other = write_dataset(tmp_path, "dancu.citizen", publisher="ubnd-q1")
    code, _, err = run("dataset", "publish", str(other))
    assert code == 2 and "already published by cong-an-tp" in err

    code, out, _ = run("dataset", "list")
    assert code == 0 and "dancu.citizen" in out and "citizen_id,full_name,birth_date" in out
    code, out, _ = run("dataset", "show", "dancu.citizen")
    assert "lgsp.79.dancu.citizen" in out and "live grants: 0" in out
    code, out, _ = run("dataset", "search", "cccd")
    assert "field citizen_id" in out
    code, _, err = run("dataset", "show", "dancu.nope")
    assert code == 2 and "not in the catalogue" in err

    code, _, err = run(
        "grant", "add", "--dataset", "dancu.citizen", "--to", "ubnd-q1", "--purpose", "p",
        "--legal-basis", "l", "--fields", "unit", "--expires", FAR_FUTURE,
    )  # fmt: skip
    assert code == 2 and "agency 'ubnd-q1' is not in the catalogue" in err
    assert run("agency", "add", "ubnd-q1", "--display", "UBND Quận 1")[0] == 0
    assert "UBND Quận 1" in run("agency", "list")[1]
    code, out, _ = run(
        "grant", "add", "--dataset", "dancu.citizen", "--to", "ubnd-q1", "--purpose",
        "xác minh cư trú", "--legal-basis", "Luật Cư trú 2020", "--fields", "citizen_id,unit",
        "--expires", FAR_FUTURE, "--json",
    )  # fmt: skip
    assert code == 0
    grant = json.loads(out)
    assert grant["status"] == "live" and grant["fields"] == ["citizen_id", "unit"]
    code, out, _ = run("grant", "list")
    assert "ubnd-q1" in out and "live" in out and "token" in out
    code, out, _ = run("grant", "acls")
    assert "--group lgsp.grant.ubnd-q1.dancu.citizen" in out
    code, out, _ = run("grant", "revoke", str(grant["id"]))
    assert code == 0 and f"revoked grant {grant['id']}" in out
    code, out, _ = run("grant", "list", "--live")
    assert "ubnd-q1" not in out
    code, out, _ = run("access-log", "--json")
    assert code == 0 and json.loads(out) == []
