"""The command line under hostile input and plumbing: nothing is sent before every line is
checked, errors say where (line, byte) without values, exit codes follow README (2 = fix the
input), and a reader that goes away (``| head``) ends the command quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.config import Settings, get_settings, reset_settings
from bus.connector_service.registration import register
from bus.errors import ExitCode
from bus.kafka.ends import end_offsets
from tests.helpers import run_cli as run
from tests.integration.connectors.helpers import config

RECORD = {
    "type": "record",
    "name": "Note",
    "namespace": "faults",
    "fields": [{"name": "note_id", "type": "string"}, {"name": "text", "type": "string"}],
}


def lgsp(env: dict[str, str], *args: str, **popen: object) -> subprocess.CompletedProcess:
    """``lgsp ARGS`` as a process of its own (real stdin, stdout and stderr)."""
    return subprocess.run(
        [sys.executable, "-c", "from bus.cli.main import main; main()", *args],
        env={**os.environ, **env},
        **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen},  # type: ignore[arg-type]
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def topic(cli_env: dict[str, str], unique: str, tmp_path: Path) -> str:
    name = f"lgsp.79.760.26734.faults.n{unique}"
    path = tmp_path / "faults.Note.avsc"
    path.write_text(json.dumps(RECORD), encoding="utf-8")
    code, _, err = run("schema", "register", f"{name}-value", str(path))
    assert code == 0, err
    return name


def sent(topic: str) -> int:
    reset_settings()
    return sum(end_offsets(get_settings(), [topic]).values())


def line(note_id: str, text: str) -> bytes:
    return (json.dumps({"note_id": note_id, "text": text}) + "\n").encode()


@pytest.mark.integration
def test_an_oversize_line_is_refused_before_anything_is_sent(topic: str, tmp_path: Path) -> None:
    """Line 3 (after a blank line) is larger than the broker takes: nothing is sent, and the
    error names the line as numbered in the file and the limit."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(line("N-1", "small") + b"\n" + line("N-2", "x" * 1_200_000))
    code, out, err = run("publish", topic, "--file", str(path))
    assert code == ExitCode.INPUT, err
    assert err.startswith("error: line 3: ") and "1048576" in err and "max_request_size" in err
    assert len(err.strip().splitlines()) == 1 and "published" not in out
    assert sent(topic) == 0


@pytest.mark.integration
def test_invalid_utf8_in_a_jsonl_file_names_line_and_byte(topic: str, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(line("N-1", "Hà Nội") + b'{"note_id": "N-2", "text": "H\xe0 N\xe9i"}\n')
    code, _, err = run("publish", topic, "--file", str(path))
    assert code == ExitCode.INPUT, err
    assert err.startswith("error: line 2: not valid UTF-8 (byte 30 of the line"), err
    assert sent(topic) == 0


@pytest.mark.integration
def test_a_line_that_does_not_match_the_schema_exits_2(topic: str, tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(line("N-1", "ok") + b'{"note_id": "N-2", "text": 7}\n')
    code, _, err = run("publish", topic, "--file", str(path))
    assert code == ExitCode.INPUT == 2, err
    assert err.startswith("error: line 2: ") and "text" in err
    assert sent(topic) == 0


@pytest.mark.integration
def test_invalid_utf8_in_a_yaml_file_names_line_and_byte(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b'name: c\ntype: sqlite\nagency: "Ph\xf0\xb0 T\xe2n"\n')
    for command in (["connector", "add"], ["dataset", "publish"]):
        code, _, err = run(*command, str(path))
        assert code == ExitCode.INPUT, (command, err)
        assert err.strip() == (
            "error: input is not valid UTF-8: line 3, byte 12 of the line (offset 32): "
            "invalid continuation byte"
        ), command


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """``lgsp units list | head -1``: the pipe's reader is gone before the output is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = lgsp(
            {"LGSP_HOME": str(tmp_path)}, "units", "list", "--level", "ward", stdout=write_end
        )
    finally:
        os.close(write_end)
    assert proc.returncode == ExitCode.BROKEN_PIPE == 141
    assert proc.stderr == ""


@pytest.mark.integration
def test_a_stopped_table_is_said_once(
    cli_env: dict[str, str], settings: Settings, tmp_path: Path, unique: str
) -> None:
    """A source table renamed after registration stops; the run says so in one line (the
    summary's STATUS column aside), exit 4, and the reason is not wrapped in a second
    "stopped"."""
    url = f"sqlite:///{tmp_path}/src.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE ma (id INTEGER PRIMARY KEY, ver INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO ma VALUES (1, 1)"))
    register(
        settings,
        config(
            "sqlite", "source", url, [{"table": "ma", "cursor": "ver", "dataset": f"kho.s{unique}"}]
        ),
    )
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE ma RENAME TO ma_old"))
    engine.dispose()
    proc = lgsp(cli_env, "connector", "run", "test-connector")
    assert proc.returncode == ExitCode.STOPPED, proc.stderr
    assert proc.stderr.count("stopped") == 1, proc.stderr
    assert proc.stderr.strip() == (
        "error: connector test-connector: 1 table(s) stopped: ma: table 'ma' does not exist"
    )


def test_airflow_test_of_an_unknown_dag_lists_the_known_ones(
    monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setenv("LGSP_HOME", str(home))
    reset_settings()
    try:
        code, out, err = run("airflow", "test", "NO_SUCH_DAG")
    finally:
        reset_settings()
    assert code == ExitCode.INPUT, err
    assert err.strip() == (
        "error: DAG 'NO_SUCH_DAG' is not one of the project's; known: lgsp_archive"
    )
    assert "Traceback" not in out + err
