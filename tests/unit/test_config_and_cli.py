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
