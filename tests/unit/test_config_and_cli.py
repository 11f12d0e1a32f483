"""Settings masking and the CLI's handling of unexpected errors."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings, mask_url


@pytest.mark.parametrize(
    ("url", "hidden"),
    [
        ("postgresql+psycopg://lgsp:s3cr/t#pw@db:5432/lgsp", "s3cr"),
        ("postgresql+psycopg://lgsp:p@ss@db:5432/lgsp", "p@ss"),
        ("mysql+pymysql://root@db/x?password=s3cret&charset=utf8mb4", "s3cret"),
        ("https://api.example/v1?token=abc123&page=2", "abc123"),
    ],
)
def test_mask_url_hides_passwords(url: str, hidden: str) -> None:
    masked = mask_url(url)
    assert hidden not in masked and "***" in masked


def test_settings_show_masks_the_control_database(tmp_path) -> None:
    settings = Settings(home=tmp_path, database_url="postgresql://u:topsecret@h/db")
    assert "topsecret" not in str(settings.masked())


def test_unexpected_errors_are_one_line_without_their_text() -> None:
    @click.command("explode-test")
    def explode() -> None:
        raise ValueError("079203001234 is not a valid key")

    cli.add_command(explode)
    try:
        result = CliRunner().invoke(cli, ["explode-test"])
        assert result.exit_code == 1
        assert result.stderr.strip() == (
            "error: unexpected ValueError; rerun with --debug for details"
        )
        assert "079203001234" not in result.output + result.stderr
    finally:
        cli.commands.pop("explode-test")


def test_a_followed_run_says_at_once_that_a_table_stopped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bus.cli.connector_cmd import _Progress
    from bus.sync import TableReport

    stopped = TableReport("ho_so", "lgsp.79.tthc.dossier", status="stopped", error="no INSERT")
    followed, bounded = _Progress(follow=True), _Progress(follow=False)
    followed(stopped)
    followed(stopped)  # once
    bounded(stopped)  # the bounded run's end says it
    err = capsys.readouterr().err
    assert err.count("warning: table ho_so stopped: no INSERT") == 1


def test_a_config_file_that_is_not_toml_is_named_with_its_line(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A syntax error in lgsp.toml is a configuration error (exit 2) naming the file, the
    line and the column, not an unexpected one."""
    from bus.config import reset_settings

    bad = tmp_path / "lgsp.toml"
    bad.write_text('[kafka]\nbootstrap = "127.0.0.1:9092"\nclient = confluent\n', encoding="utf-8")
    monkeypatch.setenv("LGSP_CONFIG", str(bad))
    monkeypatch.setenv("LGSP_HOME", str(tmp_path / "home"))
    reset_settings()
    try:
        result = CliRunner().invoke(cli, ["connector", "list"])
    finally:
        reset_settings()
    assert result.exit_code == 2, result.output
    assert f"invalid configuration: {bad}: not valid TOML" in result.stderr
    assert "line 3" in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["connector", "run", "x", "--idle-exit", "3"],
        ["connector", "run", "x", "--poll", "1"],
        ["lookup", "sync", "kho.x", "--idle-exit", "3"],
    ],
)
def test_follow_only_options_without_follow_are_usage_errors(argv: list[str]) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 2
    assert f"{argv[3]}: only with --follow" in result.stderr
