"""``kafka-acls.sh`` commands that enforce the catalogue and the grants on Apache Kafka.

One principal per agency (``User:<agency>``). A publisher may Write (and Describe) only its
dataset's unit topics (after a reform's cut-over, of both hierarchies: the new units' sources
publish there) and their DLQ topics; a grant holder may Read and Describe the granted
dataset's unit topics (after a reform's cut-over, of both hierarchies) and Read its consumer
group ``lgsp.grant.<agency>.<dataset>``. A grant written for some units reads only the topics
whose every event those units cover (:meth:`bus.units.coverage.UnitScope.whole`: an old ward
split by a street has no topic of its own part; its records reach the agency by delivery).
Grants that are revoked or expired get the matching ``--remove`` commands, so that replaying
the output brings a cluster in line with the catalogue.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from bus.catalog.datasets import era_topics, list_datasets
from bus.catalog.grants import list_grants, unit_scope
from bus.catalog.masking import consumer_group
from bus.config import Settings

DEFAULT_BOOTSTRAP = "${KAFKA_BOOTSTRAP}"


@dataclass(frozen=True)
class AclRule:
    """One ACL binding: allow ``principal`` the ``operations`` on a resource."""

    principal: str
    operations: tuple[str, ...]
    resource: str  # topic | group
    name: str
    pattern: str = "literal"
    remove: bool = False
    comment: str = ""


def acl_rules(settings: Settings, *, operator: str | None = None) -> list[AclRule]:
    """The rules the catalogue implies, publishers first, then grants by id."""
    rules: list[AclRule] = []
    datasets = {d.name: d for d in list_datasets(settings)}
    by_era = {name: era_topics(settings, d) for name, d in datasets.items()}
    for name, info in datasets.items():
        principal = f"User:{info.publisher}"
        for topic in (t for era_list in by_era[name].values() for t in era_list):
            for target in (topic, f"{topic}.dlq"):
                rules.append(
                    AclRule(
                        principal,
                        ("Write", "Describe"),
                        "topic",
                        target,
                        comment=f"publisher of {name}",
                    )
                )
    for grant in list_grants(settings):
        status = grant.status()
        principal = f"User:{grant.agency}"
        note = f"grant {grant.id} ({status}): {grant.dataset}"
        remove = status != "live"
        scope = unit_scope(settings, grant)
        readable = [
            topic
            for era, era_list in by_era.get(grant.dataset, {}).items()
            for topic in era_list
            if scope is None or scope.whole(era, _unit_of(era, topic))
        ]
        for topic in readable:
            rules.append(
                AclRule(
                    principal, ("Read", "Describe"), "topic", topic, remove=remove, comment=note
                )
            )
        rules.append(
            AclRule(
                principal,
                ("Read",),
                "group",
                consumer_group(grant.agency, grant.dataset),
                remove=remove,
                comment=note,
            )
        )
    granted = {(r.principal, r.resource, r.name) for r in rules if not r.remove}
    rules = [r for r in rules if not (r.remove and (r.principal, r.resource, r.name) in granted)]
    if operator:
        who = f"User:{operator}"
        note = "bus operator (routes, archive, DLQ)"
        rules.append(AclRule(who, ("All",), "topic", "lgsp.", "prefixed", comment=note))
        rules.append(AclRule(who, ("All",), "group", "lgsp", "prefixed", comment=note))
    return rules


def _unit_of(era: str, topic: str) -> str:
    from bus.units import load_hierarchy, parse_topic

    return parse_topic(load_hierarchy(era), topic)[0].code


def render_acl_commands(
    rules: list[AclRule],
    *,
    bootstrap: str = DEFAULT_BOOTSTRAP,
    command_config: str | None = None,
    tool: str = "kafka-acls.sh",
) -> list[str]:
    """Shell lines, one per rule, each preceded by a comment line naming why."""
    base = [tool, "--bootstrap-server"]
    boot = bootstrap if bootstrap == DEFAULT_BOOTSTRAP else shlex.quote(bootstrap)
    extra = f" --command-config {shlex.quote(command_config)}" if command_config else ""
    lines: list[str] = []
    last_comment = None
    for rule in rules:
        if rule.comment != last_comment:
            lines.append(f"# {rule.comment}")
            last_comment = rule.comment
        parts = [
            "--remove --force" if rule.remove else "--add",
            f"--allow-principal {shlex.quote(rule.principal)}",
            *(f"--operation {op}" for op in rule.operations),
            f"--{rule.resource} {shlex.quote(rule.name)}",
            f"--resource-pattern-type {rule.pattern}",
        ]
        lines.append(" ".join([*base[:1], base[1], boot]) + extra + " " + " ".join(parts))
    return lines
