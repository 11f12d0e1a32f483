"""``lgsp dataset|agency|grant|access-log|subscribe``: the catalogue, grants and deliveries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from bus.catalog import (
    add_agency,
    add_grant,
    dated_topic_lines,
    dated_topics,
    get_dataset,
    list_agencies,
    list_datasets,
    list_grants,
    publish_dataset,
    query_access,
    revoke_grant,
    search_datasets,
)
from bus.catalog.acls import DEFAULT_BOOTSTRAP, acl_rules, render_acl_commands
from bus.catalog.api_keys import ROLES, create_key, list_keys, revoke_key
from bus.catalog.errors import AccessDeniedError
from bus.catalog.grants import get_grant, grant_coverage
from bus.cli._common import context, echo_json, echo_table, settings
from bus.serde.jsoncodec import dumps

# ---- datasets -----------------------------------------------------------------------------


@click.group("dataset")
def dataset_group() -> None:
    """The dataset catalogue: one authoritative publisher per dataset."""


@dataset_group.command("publish")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Refuse when a field collects an owned attribute.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dataset_publish(file: Path, strict: bool, as_json: bool) -> None:
    """Declare or update a dataset from FILE.yaml and register its topics' schemas."""
    result = publish_dataset(context(), file, strict=strict)
    if as_json:
        echo_json(
            {
                "dataset": result.dataset,
                "status": result.status,
                "publisher": result.publisher,
                "agency_added": result.agency_added,
                "subjects": [
                    {"subject": s, "version": v, "schema_id": i} for s, v, i in result.subjects
                ],
                "findings": [f.to_dict() for f in result.findings],
            }
        )
        return
    click.echo(f"{result.status} {result.dataset} (publisher {result.publisher})")
    if result.agency_added:
        click.echo(f"agency {result.publisher} added to the catalogue")
    for subject, version, schema_id in result.subjects:
        click.echo(f"  {subject} version {version} (schema id {schema_id})")
    for finding in result.findings:
        click.echo(f"warning: {finding.message}", err=True)


@dataset_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dataset_list(as_json: bool) -> None:
    """List the catalogue's datasets."""
    items = list_datasets(settings())
    if as_json:
        echo_json([d.to_dict() for d in items])
        return
    echo_table(
        ["NAME", "PUBLISHER", "UNITS", "FIELDS", "PII", "FREQUENCY", "DESCRIPTION"],
        [
            (
                d.name,
                d.publisher,
                len(d.units),
                len(d.fields),
                ",".join(d.pii),
                d.frequency,
                d.description_en,
            )
            for d in items
        ],
    )


@dataset_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dataset_show(name: str, as_json: bool) -> None:
    """Show a dataset: publisher, fields (PII, key), topics, live grants, findings."""
    s = settings()
    info = get_dataset(s, name)
    eras = dated_topics(s, info)
    topics = [t["topic"] for era in eras for t in era["topics"]]
    grants = list_grants(s, dataset=name, live_only=True)
    if as_json:
        echo_json(
            info.to_dict()
            | {
                "topics": topics,
                "topics_by_era": eras,
                "live_grants": [g.to_dict() for g in grants],
            }
        )
        return
    rows: list[tuple[str, Any]] = [
        ("name", info.name),
        ("publisher", info.publisher),
        ("description (vi)", info.description_vi),
        ("description (en)", info.description_en),
        ("legal basis", info.legal_basis),
        ("frequency", info.frequency),
        ("schema", info.schema_file),
        ("version", info.version),
        ("updated", info.updated_at.isoformat(timespec="seconds")),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")
    click.echo("\nfields:")
    docs = info.field_docs()
    echo_table(
        ["FIELD", "PII", "KEY", "DOC"],
        [
            (f, "yes" if f in info.pii else "", "yes" if f in info.key_fields else "", docs[f])
            for f in info.fields
        ],
    )
    click.echo("\ntopics (per hierarchy, with the days each unit was in force):")
    for line in dated_topic_lines(eras):
        click.echo(f"  {line}")
    click.echo(f"\nlive grants: {len(grants)}")
    for g in grants:
        click.echo(f"  grant {g.id}: {g.agency} until {g.expires.isoformat()} ({g.purpose})")
    for finding in info.findings:
        click.echo(f"warning: {finding.get('message', '')}")


@dataset_group.command("search")
@click.argument("word")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def dataset_search(word: str, as_json: bool) -> None:
    """Find datasets by name, description, legal basis, field name or field doc."""
    hits = search_datasets(settings(), word)
    if as_json:
        echo_json([h.__dict__ for h in hits])
        return
    if not hits:
        click.echo(f"no dataset matches {word!r}")
        return
    echo_table(
        ["DATASET", "PUBLISHER", "MATCHES"],
        [(h.dataset, h.publisher, "; ".join(h.matches)) for h in hits],
    )


# ---- agencies -----------------------------------------------------------------------------


@click.group("agency")
def agency_group() -> None:
    """The agency register (publishers and grant holders)."""


@agency_group.command("add")
@click.argument("name")
@click.option("--display", required=True, help="The agency's full name.")
def agency_add(name: str, display: str) -> None:
    """Add an agency, or change its display name."""
    info, created = add_agency(settings(), name, display)
    click.echo(f"{'added' if created else 'updated'} agency {info.name}: {info.display}")


@agency_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def agency_list(as_json: bool) -> None:
    """List the agencies of the catalogue."""
    items = list_agencies(settings())
    if as_json:
        echo_json([a.__dict__ for a in items])
        return
    echo_table(["NAME", "DISPLAY"], [(a.name, a.display) for a in items])


@agency_group.group("key")
def agency_key_group() -> None:
    """API keys of an agency for the HTTP API (lgsp serve)."""


@agency_key_group.command("create")
@click.argument("agency")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the key may do.")
@click.option(
    "--days", type=click.IntRange(min=1), default=None, help="Lifetime [default: api.key_days]."
)
def agency_key_create(agency: str, role: str, days: int | None) -> None:
    """Create a key for AGENCY; the key is printed once and only its digest is stored."""
    info, key = create_key(settings(), agency, role, days=days)
    click.echo(key)
    click.echo(
        f"key {info.id}: {info.agency} {info.role}, expires {info.expires_at:%Y-%m-%d} "
        "(shown once: store it now)",
        err=True,
    )


@agency_key_group.command("list")
@click.argument("agency", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def agency_key_list(agency: str | None, as_json: bool) -> None:
    """Keys (ids, roles, expiry; never the keys themselves), of AGENCY or of every agency."""
    items = list_keys(settings(), agency)
    if as_json:
        echo_json([k.to_dict() for k in items])
        return
    echo_table(
        ["ID", "AGENCY", "ROLE", "CREATED", "EXPIRES", "STATE"],
        [
            (
                k.id,
                k.agency,
                k.role,
                f"{k.created_at:%Y-%m-%d}",
                f"{k.expires_at:%Y-%m-%d}",
                "live" if k.live else ("revoked" if k.revoked_at else "expired"),
            )
            for k in items
        ],
    )


@agency_key_group.command("revoke")
@click.argument("agency")
@click.argument("key_id")
def agency_key_revoke(agency: str, key_id: str) -> None:
    """Revoke AGENCY's key KEY_ID: its next request is refused (401)."""
    info = revoke_key(settings(), agency, key_id)
    click.echo(f"revoked key {info.id} of {info.agency}")


# ---- grants -------------------------------------------------------------------------------


@click.group("grant")
def grant_group() -> None:
    """Grants: which agency may receive which fields of a dataset, why, until when."""


@grant_group.command("add")
@click.option("--dataset", required=True, help="The dataset (domain.name).")
@click.option("--to", "agency", required=True, help="The receiving agency.")
@click.option("--purpose", required=True, help="The purpose of the processing.")
@click.option("--legal-basis", required=True, help="The law or decree that allows it.")
@click.option("--fields", required=True, help="Comma-separated fields the agency may receive.")
@click.option("--pii", "allow_pii", is_flag=True, help="Deliver PII fields in clear (no token).")
@click.option("--expires", required=True, help="Last day of the grant, YYYY-MM-DD.")
@click.option(
    "--unit",
    "units",
    multiple=True,
    help="Only this unit's events (repeatable; followed across reforms by each event's time).",
)
@click.option(
    "--hierarchy", default=None, help="The hierarchy of --unit codes (default: in force today)."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def grant_add(
    dataset: str,
    agency: str,
    purpose: str,
    legal_basis: str,
    fields: str,
    allow_pii: bool,
    expires: str,
    units: tuple[str, ...],
    hierarchy: str | None,
    as_json: bool,
) -> None:
    """Grant an agency some fields of a dataset (of some units with --unit)."""
    s = settings()
    grant = add_grant(
        s,
        dataset=dataset,
        agency=agency,
        purpose=purpose,
        legal_basis=legal_basis,
        fields=fields,
        allow_pii=allow_pii,
        expires=expires,
        units=list(units) or None,
        hierarchy=hierarchy,
    )
    if as_json:
        echo_json(grant.to_dict() | {"coverage": grant_coverage(s, grant)})
        return
    pii = "PII in clear" if grant.allow_pii else "PII as tokens"
    click.echo(
        f"grant {grant.id}: {grant.agency} may receive {grant.dataset} "
        f"[{', '.join(grant.fields)}] ({pii}) until {grant.expires.isoformat()}"
    )
    for line in coverage_lines(grant_coverage(s, grant)):
        click.echo(f"  {line}")


@grant_group.command("list")
@click.option("--agency", default=None, help="Only this agency's grants.")
@click.option("--dataset", default=None, help="Only grants on this dataset.")
@click.option("--live", "live_only", is_flag=True, help="Only live grants.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def grant_list(agency: str | None, dataset: str | None, live_only: bool, as_json: bool) -> None:
    """List grants with their status (live, revoked, expired) and, for a grant written for
    some units, which units it covers in each hierarchy (era)."""
    s = settings()
    items = list_grants(s, agency=agency, dataset=dataset, live_only=live_only)
    coverage = {g.id: grant_coverage(s, g) for g in items}
    if as_json:
        echo_json([g.to_dict() | {"coverage": coverage[g.id]} for g in items])
        return
    echo_table(
        ["ID", "DATASET", "AGENCY", "STATUS", "EXPIRES", "PII", "FIELDS", "UNITS", "PURPOSE"],
        [
            (
                g.id,
                g.dataset,
                g.agency,
                g.status(),
                g.expires.isoformat(),
                "clear" if g.allow_pii else "token",
                ",".join(g.fields),
                "; ".join(coverage_lines(coverage[g.id])) or "all",
                g.purpose,
            )
            for g in items
        ],
    )


def coverage_lines(coverage: list[dict[str, Any]] | None) -> list[str]:
    """One line per hierarchy: ``hcmc-2025 from 2025-07-01: 26737 Phường Tân Định``."""
    lines = []
    for era in coverage or []:
        when = (
            f" from {era['from']}"
            if era["from"] and not era["to"]
            else f" to {era['to']}"
            if era["to"] and not era["from"]
            else f" {era['from']} to {era['to']}"
            if era["from"]
            else ""
        )
        lines.append(f"{era['hierarchy']}{when}: {', '.join(era['units']) or 'none'}")
    return lines


@grant_group.command("revoke")
@click.argument("grant_id", type=int)
def grant_revoke(grant_id: int) -> None:
    """Revoke a grant: the agency's next delivery run is refused."""
    grant, changed = revoke_grant(settings(), grant_id)
    if changed:
        click.echo(f"revoked grant {grant.id} ({grant.agency}, {grant.dataset})")
    else:
        click.echo(f"grant {grant.id} was already revoked")


@grant_group.command("acls")
@click.option(
    "--bootstrap-server",
    default=DEFAULT_BOOTSTRAP,
    show_default=True,
    help="The Kafka cluster the commands talk to.",
)
@click.option("--command-config", default=None, help="Admin client properties file.")
@click.option("--operator", default=None, help="Principal of the bus itself (all lgsp. topics).")
def grant_acls(bootstrap_server: str, command_config: str | None, operator: str | None) -> None:
    """Print the kafka-acls.sh commands that enforce the catalogue and grants on Kafka."""
    rules = acl_rules(settings(), operator=operator)
    for line in render_acl_commands(
        rules, bootstrap=bootstrap_server, command_config=command_config
    ):
        click.echo(line)


# ---- access log and delivery --------------------------------------------------------------


@click.command("access-log")
@click.option("--agency", default=None, help="Only this agency.")
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option(
    "--since",
    default=None,
    help="From this date or ISO date-time; without a zone it is Viet Nam time (UTC+7).",
)
@click.option("--action", default=None, help="Only deliver, refused, replay, ...")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def access_log_cmd(
    agency: str | None, dataset: str | None, since: str | None, action: str | None, as_json: bool
) -> None:
    """Who read which dataset, for which purpose, how many records, and when."""
    entries = query_access(settings(), agency=agency, dataset=dataset, since=since, action=action)
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    echo_table(
        ["AT", "PRINCIPAL", "AGENCY", "DATASET", "ACTION", "RECORDS", "GRANT", "PURPOSE"],
        [
            (
                e.at.isoformat(timespec="seconds"),
                e.principal,
                e.agency,
                e.dataset,
                e.action,
                e.records,
                e.grant_id if e.grant_id is not None else "",
                e.purpose,
            )
            for e in entries
        ],
    )


@click.command("subscribe")
@click.argument("dataset")
@click.option("--agency", default=None, help="The agency receiving the data.")
@click.option("--grant", "grant_id", type=int, default=None, help="Deliver under this grant id.")
@click.option("--purpose", default=None, help="The purpose; must be the grant's purpose.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None, help="JSONL file.")
@click.option("--max", "max_records", type=int, default=None, help="Stop after N records.")
@click.option("--from-beginning", is_flag=True, help="Deliver again from the oldest record.")
@click.option("--unit", "units", multiple=True, help="Only this publishing unit (repeatable).")
def subscribe_cmd(
    dataset: str,
    agency: str | None,
    grant_id: int | None,
    purpose: str | None,
    out: Path | None,
    max_records: int | None,
    from_beginning: bool,
    units: tuple[str, ...],
) -> None:
    """Deliver DATASET's new events to an agency under its live grant (one bounded run).

    Fields outside the grant are dropped, PII fields become tokens unless the grant allows
    PII; events go to --out (appended) or standard output; the run is access-logged.
    """
    from bus.catalog.delivery import JsonlSink, deliver  # the Kafka client: only here

    if grant_id is None and not agency:
        raise click.UsageError("give --agency (or --grant ID)")
    s = settings()
    if grant_id is not None and agency and get_grant(s, grant_id).agency != agency:
        raise AccessDeniedError(f"grant {grant_id} does not belong to agency {agency}")
    target: int | str = grant_id if grant_id is not None else str(agency)
    options: dict[str, Any] = {
        "purpose": purpose,
        "max_records": max_records,
        "from_beginning": from_beginning,
        "units": list(units) or None,
    }
    if out is not None:
        with JsonlSink(out) as sink:
            report = deliver(s, target, dataset, sink, **options)
    else:

        def to_stdout(events: list[dict[str, Any]]) -> None:
            for event in events:
                click.echo(dumps(event))

        report = deliver(s, target, dataset, to_stdout, **options)
    where = f" to {out}" if out is not None else ""
    click.echo(
        f"delivered {report.delivered} events of {report.dataset} to {report.agency}{where} "
        f"under grant {report.grant_id} (access log entry {report.access_id})",
        err=True,
    )
    if report.skipped:
        click.echo(f"warning: {report.skipped} undecodable records skipped", err=True)
