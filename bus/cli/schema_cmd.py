"""``lgsp schema register|list|show|check|compat|delete``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bus.cli._common import confirm, context, echo_table, settings
from bus.envelope import envelope_schema, load_record_schema
from bus.errors import IncompatibleSchemaError
from bus.registry.usage import delete_subject


def _load(file: Path, raw: bool) -> dict:
    """The schema to register: a record file wrapped in the envelope unless ``--raw``."""
    record = load_record_schema(file)
    if raw or record.get("name", "").endswith("Envelope"):
        return record
    return envelope_schema(record, settings().schemas_dir)


@click.group("schema")
def schema_group() -> None:
    """Schema registry: subjects <topic>-value, versions, compatibility."""


_raw = click.option(
    "--raw",
    is_flag=True,
    help="Register the file as is (default: wrap the record in the envelope).",
)


@schema_group.command("register")
@click.argument("subject")
@click.argument("file", type=click.Path(path_type=Path))
@_raw
def register(subject: str, file: Path, raw: bool) -> None:
    """Register FILE (.avsc) as the next version of SUBJECT if compatible."""
    reg = context().registry
    result = reg.register(subject, _load(file, raw))
    click.echo(f"{subject}: version {result.version}, id {result.id}")


@schema_group.command("check")
@click.argument("subject")
@click.argument("file", type=click.Path(path_type=Path))
@_raw
def check(subject: str, file: Path, raw: bool) -> None:
    """Check FILE against SUBJECT's history without registering it (exit 0 when compatible)."""
    reg = context().registry
    problems = reg.check(subject, _load(file, raw))
    if problems:
        raise IncompatibleSchemaError(f"{subject}: incompatible: " + " | ".join(problems))
    click.echo(f"{subject}: compatible")


@schema_group.command("list")
def list_cmd() -> None:
    """Subjects with their compatibility mode and latest version."""
    echo_table(["SUBJECT", "COMPATIBILITY", "LATEST"], context().registry.subjects())


@schema_group.command("show")
@click.argument("subject")
@click.option("--version", "version", type=int, default=None, help="A version (default latest).")
def show(subject: str, version: int | None) -> None:
    """Print a version's id and schema."""
    item = context().registry.get(subject, version)
    click.echo(f"subject {item.subject} version {item.version} id {item.id}")
    click.echo(json.dumps(item.schema, indent=2, ensure_ascii=False))


@schema_group.command("compat")
@click.argument("subject")
@click.argument("mode", required=False)
def compat(subject: str, mode: str | None) -> None:
    """Show or set SUBJECT's compatibility mode (NONE, BACKWARD, FORWARD, FULL, *_TRANSITIVE)."""
    reg = context().registry
    if mode:
        reg.set_compatibility(subject, mode)
    click.echo(f"{subject}: {reg.compatibility(subject)}")


@schema_group.command("delete")
@click.argument("subject")
@click.option(
    "--version", "version", type=click.IntRange(min=1), default=None, help="Only this version."
)
@click.option(
    "--permanent", is_flag=True, help="Remove versions already soft-deleted (ids still resolve)."
)
@click.option(
    "--force", is_flag=True, help="Delete even when a connector, dataset or route uses it."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(subject: str, version: int | None, permanent: bool, force: bool, yes: bool) -> None:
    """Soft-delete SUBJECT's versions (or one): hidden from reads and compatibility checks,
    their schema ids still resolve. A subject in use is refused unless --force."""
    reg = context().registry
    what = f"{subject}" + (f" version {version}" if version else "")
    confirm(f"{'permanently ' if permanent else ''}delete {what}?", yes=yes)
    deleted = delete_subject(reg, subject, version, permanent=permanent, force=force)
    kind = "permanently deleted" if permanent else "soft-deleted"
    click.echo(f"{subject}: {kind} version(s) {', '.join(map(str, deleted))}")
