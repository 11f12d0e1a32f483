"""The commands end to end: archive run/status/export-key/log, audit verify, replay; bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from bus.archive.models import ArchiveEntry
from bus.config import Settings, reset_settings
from bus.db import open_engine
from bus.publish import Publisher
from tests.helpers import register_topic
from tests.helpers import run_cli as run
from tests.integration.archive._scenario import CHANGES, Source

pytestmark = pytest.mark.integration


@pytest.fixture
def dataset(cli_env: dict, unique: str) -> str:
    settings = Settings(
        home=Path(cli_env["LGSP_HOME"]), kafka_bootstrap=cli_env["LGSP_KAFKA_BOOTSTRAP"]
    )
    name = f"c{unique}.dossier"
    topic = f"lgsp.79.760.26734.{name}"
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        pub.publish(topic, Source(CHANGES).events)
    return name


def test_archive_verify_and_replay_commands(dataset: str, tmp_path: Path) -> None:
    code, out, err = run("archive", "run", "--topics", f"lgsp.*.{dataset}")
    assert code == 0, err
    assert f"archived {len(CHANGES)} new event(s) from 1 topic(s)" in out
    assert "checkpoint 1 signed" in out
    assert "generated a new Ed25519 key" in err and "export-key" in err

    code, out, _ = run("archive", "run", "--topics", f"lgsp.*.{dataset}")
    assert code == 0 and "archived 0 new event(s)" in out

    code, out, _ = run("archive", "status", "--dataset", dataset)
    assert code == 0 and f"lgsp.79.760.26734.{dataset}" in out and "latest 1" in out

    key_file = tmp_path / "archive.pub"
    code, out, _ = run("archive", "export-key", "--out", str(key_file))
    assert code == 0 and key_file.read_text().startswith("-----BEGIN PUBLIC KEY-----")

    code, out, _ = run("audit", "verify", "--public-key", str(key_file))
    assert code == 0 and "OK: the archive is intact" in out
    code, out, _ = run("audit", "verify", "--dataset", dataset, "--json")
    assert code == 0 and json.loads(out)["entries"] == len(CHANGES)
    code, _, err = run("audit", "verify", "--dataset", "khong.co")
    assert code == 2 and "nothing of 'khong.co' is archived" in err

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    args = ["replay", dataset, "--as-of", "2026-03-01T09:00:00+07:00", "--into", url]
    code, out, err = run(*args, "--purpose", "kiểm toán quý 1")
    assert code == 0, err
    assert "content hash: " in out and "verified chain heads relied on:" in out
    assert "signed to position" in out and "keys: " in out

    code, out, err = run(*args, "--purpose", "again")
    assert code == 2 and "already exists" in err and "--replace" in err
    code, out, err = run(*args, "--purpose", "again", "--replace")
    assert code == 0, err

    code, out, err = run(
        "replay",
        dataset,
        "--from",
        "2026-03-01T08:10:00+07:00",
        "--to",
        "2026-03-01T08:50:00+07:00",
        "--format",
        "jsonl",
        "--purpose",
        "đối soát",
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == len([c for c in CHANGES if 10 <= c.minute < 50])
    assert "events in range" in err

    code, out, _ = run("archive", "log", "--dataset", dataset)
    assert code == 0 and "đối soát" in out and "kiểm toán quý 1" in out


def test_bad_input(dataset: str, tmp_path: Path) -> None:
    run("archive", "run", "--topics", f"lgsp.*.{dataset}")
    url = f"sqlite:///{tmp_path / 'audit.db'}"

    code, _, err = run(
        "replay", dataset, "--as-of", "2026-03-01T00:00:00", "--into", url, "--purpose", "x"
    )
    assert code == 2 and "--as-of" in err and "2026-03-01T00:00:00+07:00" in err

    code, out, err = run(
        "replay", dataset, "--as-of", "2020-01-01T00:00:00Z", "--into", url, "--purpose", "x"
    )
    assert code == 0, err
    assert "no event at or before 2020-01-01T00:00:00+00:00" in out and "keys: 0" in out

    code, _, err = run(
        "replay",
        "khong.ton_tai",
        "--as-of",
        "2026-03-01T00:00:00Z",
        "--into",
        url,
        "--purpose",
        "x",
    )
    assert code == 2 and "no archive entries and no topic" in err

    code, _, err = run("replay", dataset, "--as-of", "2026-03-01T00:00:00Z", "--into", url)
    assert code == 2 and "--purpose" in err
    code, _, err = run("replay", dataset, "--purpose", "x")
    assert code == 2 and "--as-of" in err and "--from" in err
    code, _, err = run("replay", dataset, "--as-of", "2026-03-01T00:00:00Z", "--purpose", "x")
    assert code == 2 and "--into" in err
    code, _, err = run(
        "replay",
        dataset,
        "--from",
        "2026-03-02T00:00:00Z",
        "--to",
        "2026-03-01T00:00:00Z",
        "--purpose",
        "x",
    )
    assert code == 2 and "--to" in err
    code, _, err = run(
        "replay", dataset, "--as-of", "2026-03-01T00:00:00Z", "--into", "nonsense", "--purpose", "x"
    )
    assert code == 2 and "--into" in err


def test_wrong_key_and_tampering_fail_verify(
    dataset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run("archive", "run", "--topics", f"lgsp.*.{dataset}")
    other = Ed25519PrivateKey.generate()
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "other.pem").write_bytes(pem)

    code, out, err = run("audit", "verify", "--public-key", str(tmp_path / "other.pem"))
    assert code == 4 and "wrong signing key" in out and "NOT intact" in err

    monkeypatch.setenv("LGSP_SIGNING_KEY", pem.decode())
    reset_settings()
    code, out, _ = run("audit", "verify")
    assert code == 4 and "wrong signing key" in out
    monkeypatch.delenv("LGSP_SIGNING_KEY")
    reset_settings()
    assert run("audit", "verify")[0] == 0

    from bus.config import get_settings

    entries = ArchiveEntry.__table__
    with open_engine(get_settings()).begin() as conn:
        conn.execute(update(entries).where(entries.c.seq == 2).values(op="d"))
    code, out, _ = run("audit", "verify", "--dataset", dataset)
    assert code == 4 and "position 2: broken link: content altered" in out

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    code, _, err = run(
        "replay", dataset, "--as-of", "2026-03-01T09:00:00Z", "--into", url, "--purpose", "x"
    )
    assert code == 4 and "failed verification" in err and "nothing was replayed" in err


def test_replay_verifies_against_an_offsite_copy_of_the_checkpoints(
    dataset: str, tmp_path: Path
) -> None:
    from bus.archive.checkpoint import export_path
    from bus.archive.models import ArchiveCheckpoint
    from bus.config import get_settings

    assert run("archive", "run", "--topics", f"lgsp.*.{dataset}")[0] == 0
    shipped = tmp_path / "offsite.jsonl"
    assert run("archive", "export-checkpoints", str(shipped))[0] == 0
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    args = ["replay", dataset, "--as-of", "2026-03-01T09:00:00+07:00", "--into", url]
    code, out, err = run(*args, "--purpose", "x", "--checkpoints", str(shipped))
    assert code == 0, err
    assert f"verified against 1 exported checkpoint(s) in {shipped}" in out
    missing = tmp_path / "nothing.jsonl"
    code, _, err = run(*args, "--purpose", "x", "--replace", "--checkpoints", str(missing))
    assert code == 2 and f"--checkpoints: cannot read {missing}" in err

    # a forger deletes the checkpoint and the archiver's local export: the host cannot tell
    settings = get_settings()
    with open_engine(settings).begin() as conn:
        conn.execute(ArchiveCheckpoint.__table__.delete())
    export_path(settings).unlink()
    code, out, err = run(*args, "--purpose", "x", "--replace")
    assert code == 0, err
    assert "local export" in out and "is missing" in out  # the warning, as a note
    code, _, err = run(*args, "--purpose", "x", "--replace", "--checkpoints", str(shipped))
    assert code == 4 and "failed verification" in err
    assert "checkpoint 1: is in the exported file but not in the database (removed)" in err
