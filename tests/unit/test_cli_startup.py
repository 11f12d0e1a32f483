"""Start-up pays only for what a command uses: ``lgsp --help`` and ``--version`` import no
command module, and the lazy command table says what the modules say."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

import bus.cli
from bus.cli.main import COMMANDS

HEAVY = ("sqlalchemy", "kafka", "confluent_kafka", "airflow", "fastavro", "alembic", "yaml")

RUN_AND_LIST_MODULES = """
import click, json, sys
from bus.cli.main import cli, main
if sys.argv[1] == "load-all":
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        assert cli.get_command(ctx, name) is not None, name
sys.argv = ["lgsp", *sys.argv[2:]]
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def run_in_fresh_process(*args: str, load_all: bool = False) -> tuple[str, list[str]]:
    """``lgsp ARGS`` in a new interpreter: its stdout and the modules it imported."""
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_MODULES, "load-all" if load_all else "-", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=120,
        check=False,
    )
    result = json.loads(done.stderr.splitlines()[-1])
    assert result["code"] in (0, None), done.stderr
    return done.stdout, result["modules"]


@pytest.mark.parametrize("args", [["--help"], ["--version"]])
def test_help_and_version_import_no_heavy_library(args: list[str]) -> None:
    _, modules = run_in_fresh_process(*args)
    heavy = [m for m in modules if m.split(".")[0] in HEAVY]
    assert heavy == []
    command_modules = [m for m in modules if m.startswith("bus.") and m.endswith("_cmd")]
    assert command_modules == []


def test_lazy_help_lists_what_the_loaded_commands_say() -> None:
    lazy_help, _ = run_in_fresh_process("--help")
    loaded_help, modules = run_in_fresh_process("--help", load_all=True)
    assert "bus.cli.units_cmd" in modules
    assert lazy_help == loaded_help
    assert all(f"  {name} " in lazy_help for name in COMMANDS)


def test_every_top_level_command_is_in_the_table() -> None:
    top_level: dict[str, str] = {}
    for info in pkgutil.iter_modules(bus.cli.__path__):
        if not info.name.endswith("_cmd"):
            continue
        module = importlib.import_module(f"bus.cli.{info.name}")
        found = {a: v for a, v in vars(module).items() if isinstance(v, click.Command)}
        children = {
            id(c) for v in found.values() if isinstance(v, click.Group) for c in v.commands.values()
        }
        for attribute, command in found.items():
            if id(command) not in children:
                top_level[str(command.name)] = f"{info.name}:{attribute}"
    assert top_level == {name: target for name, (target, _) in COMMANDS.items()}


def test_connector_list_loads_neither_the_kafka_client_nor_alembic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connector command imports what it uses: listing reads the control database only,
    and a control database already at the newest migration is not handed to Alembic."""
    monkeypatch.setenv("LGSP_HOME", str(tmp_path))
    monkeypatch.delenv("LGSP_DATABASE_URL", raising=False)
    run_in_fresh_process("connector", "list")  # the first use creates the control database
    out, modules = run_in_fresh_process("connector", "list")
    assert out.startswith("NAME")
    loaded = {m.split(".")[0] for m in modules}
    assert not loaded & {"kafka", "confluent_kafka", "airflow", "alembic"}, loaded
    assert "bus.sync" not in modules
