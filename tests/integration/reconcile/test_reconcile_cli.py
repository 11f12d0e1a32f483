"""``lgsp reconcile``: exit codes, JSON, history, bad input, connectors with --repair."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus import sync
from bus.cli.main import cli
from bus.config import get_settings
from tests.integration.reconcile.conftest import Db, dossier
from tests.integration.reconcile.support import publish_ward_dataset
from tests.integration.reconcile.test_reconcile_connectors import _connector

pytestmark = pytest.mark.integration


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _tables(dbs: Callable[[str], Db], unique: str) -> tuple[Db, str, Db, str]:
    src, tgt = dbs("postgresql"), dbs("mysql")
    s_name = src.create(f"rc_src_{unique}")
    t_name = tgt.create(f"rc_tgt_{unique}")
    rows = [dossier(i) for i in range(1, 51)]
    src.insert(s_name, rows)
    tgt.insert(t_name, rows)
    return src, s_name, tgt, t_name


def test_urls_agree_then_differ(
    cli_env: dict[str, str], dbs: Callable[[str], Db], unique: str
) -> None:
    src, s_name, tgt, t_name = _tables(dbs, unique)
    code, out, _ = _run("reconcile", "urls", src.url, s_name, tgt.url, t_name, "--key", "id")
    assert code == 0, out
    assert out.strip().splitlines()[-1].startswith("AGREE: postgresql:")

    tgt.delete(t_name, {"id": 4})
    tgt.update(t_name, {"id": 5}, cccd="079000000001")
    code, out, _ = _run(
        "reconcile", "urls", src.url, s_name, tgt.url, t_name,
        "--pii", "cccd", "--recheck-delay", "0",
    )  # fmt: skip
    assert code == 1
    assert "missing in the target (1):\n  id=4" in out
    assert "id=5  [cccd: '***' -> '***']" in out
    assert "079000000001" not in out
    assert out.strip().splitlines()[-1].startswith("DIFFER: ")

    code, out, _ = _run(
        "reconcile", "urls", src.url, s_name, tgt.url, t_name, "--json", "--recheck-delay", "0"
    )
    data = json.loads(out)
    assert code == 1 and data["counts"] == {"missing": 1, "extra": 0, "different": 1}
    assert data["different"][0]["columns"] == ["cccd"]

    code, out, _ = _run("reconcile", "history")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:5] == ["ID", "STARTED", "SOURCE", "TARGET", "RESULT"]
    assert [line.split()[5] for line in lines[1:]] == ["differ", "differ", "agree"]
    code, out, _ = _run("reconcile", "show", lines[1].split()[0], "--json")
    assert code == 0 and json.loads(out)["counts"]["missing"] == 1


def test_bad_input(cli_env: dict[str, str], dbs: Callable[[str], Db], unique: str) -> None:
    src, s_name, tgt, t_name = _tables(dbs, unique)
    code, _, err = _run("reconcile", "urls", src.url, f"nope_{unique}", tgt.url, t_name)
    assert code == 2 and f"error: source table 'nope_{unique}' does not exist" in err
    code, _, err = _run("reconcile", "urls", src.url, s_name, tgt.url, t_name, "--key", "nope")
    assert code == 2 and "--key: source table" in err and "has no column 'nope'" in err
    code, _, err = _run("reconcile", "urls", "sqlite:////nonexistent/x.db", "t", tgt.url)
    assert code == 2 and "does not exist" in err
    code, _, err = _run("reconcile", "urls", "not a url", "t", tgt.url)
    assert code == 2 and "not a SQLAlchemy URL" in err
    code, _, err = _run("reconcile", f"nope-{unique}", "t", "--against", "x")
    assert code == 2 and f"connector 'nope-{unique}' is not registered" in err
    code, _, err = _run("reconcile", "show", "999999")
    assert code == 2 and "no reconciliation report 999999" in err
    code, _, err = _run("reconcile", "a", "b", "--against", "c", "--target-where", "novalue")
    assert code == 2 and "--target-where: expected COLUMN=VALUE" in err


def test_connector_repair_through_the_cli(
    cli_env: dict[str, str], dbs: Callable[[str], Db], unique: str
) -> None:
    from bus.connector_service.registration import register

    settings = get_settings()
    src, tgt = dbs("mysql"), dbs("postgresql")
    s_name = src.create(f"rc_src_{unique}")
    t_name = f"rc_sink_{unique}"
    tgt.made.append(t_name)
    src.insert(s_name, [dossier(i) for i in range(1, 31)])
    dataset = f"tthc.rc_{unique}"
    source, sink = f"rc-src-{unique}", f"rc-sink-{unique}"
    register(settings, _connector(source, "source", src.url, s_name, dataset))
    register(settings, _connector(sink, "sink", tgt.url, t_name, dataset))
    sync.run(settings, source)
    sync.run(settings, sink)
    tgt.delete(t_name, {"id": 3})
    code, out, _ = _run(
        "reconcile", source, s_name, "--against", sink, "--repair", "--recheck-delay", "0"
    )
    assert code == 1, out
    assert "repair: 1 event(s) published on lgsp.79.760.26734." in out
    assert f"run 'lgsp connector run {sink}'" in out
    sync.run(settings, sink)
    code, out, _ = _run("reconcile", source, s_name, "--against", sink, "--json")
    assert code == 0, out
    assert json.loads(out)["agree"] is True
    code, out, _ = _run("reconcile", "history", sink, "--json")
    assert [e["agree"] for e in json.loads(out)] == [True, False]


def _catalogue_with_pii(unique: str, tmp_path: Path, pii: list[str]) -> None:
    """A catalogued dataset whose PII fields are ``pii`` (any dataset counts for urls)."""
    record = {
        "type": "record",
        "name": f"HoSo{unique}",
        "namespace": "vn.hcm.test",
        "fields": [{"name": "id", "type": "long"}]
        + [{"name": p, "type": ["null", "string"], "default": None} for p in pii],
    }
    publish_ward_dataset(get_settings(), tmp_path, unique, record, pii)


def test_urls_mask_personal_columns_unless_show_values(
    cli_env: dict[str, str], dbs: Callable[[str], Db], unique: str, tmp_path: Path
) -> None:
    """Without a dataset, columns named like personal data (ho_ten, cccd) and like any
    catalogued dataset's PII field (ghi_chu here) are masked, in the output and the store."""
    _catalogue_with_pii(unique, tmp_path, ["ghi_chu"])
    src, s_name, tgt, t_name = _tables(dbs, unique)
    tgt.update(
        t_name, {"id": 5}, cccd="079000000001", ho_ten="Tên Khác", ghi_chu="Bí mật", ma_ho_so="HS-x"
    )
    tgt.delete(t_name, {"id": 6})
    base = ["reconcile", "urls", src.url, s_name, tgt.url, t_name, "--recheck-delay", "0"]
    secrets = ("079000000001", "Tên Khác", "Bí mật", dossier(5)["ho_ten"], dossier(5)["cccd"])

    code, out, _ = _run(*base)
    assert code == 1, out
    assert "cccd: '***' -> '***'" in out and "ho_ten: '***' -> '***'" in out
    assert "ghi_chu: NULL -> '***'" in out  # id 5 has no note at the source
    assert "ma_ho_so: 'HS-26734-000005' -> 'HS-x'" in out
    assert "values masked: cccd, ghi_chu, ho_ten" in out
    assert not [s for s in secrets if s in out]
    report_id = out.split("lgsp reconcile show ")[1].split(")")[0]
    code, stored, _ = _run("reconcile", "show", report_id, "--json")
    assert code == 0 and json.loads(stored)["masked_columns"] == ["cccd", "ghi_chu", "ho_ten"]
    assert not [s for s in secrets if s in stored]

    # a personal-data key column: its values become keyed tokens, the same in every report
    code, out, _ = _run(*base, "--key", "cccd", "--json", "--no-store")
    data = json.loads(out)
    assert code == 1 and data["report_id"] is None
    assert {d["key"]["cccd"][:4] for d in data["missing"] + data["extra"]} == {"tok_"}
    assert not [s for s in secrets if s in out]

    code, out, _ = _run(*base, "--show-values", "--pii", "cccd")
    assert code == 1
    assert "cccd: '***' -> '***'" in out
    assert f"ho_ten: '{dossier(5)['ho_ten']}' -> 'Tên Khác'" in out
    assert "ghi_chu: NULL -> 'Bí mật'" in out
