"""kafka-acls.sh commands derived from the catalogue and the grants."""

from __future__ import annotations

import shlex
from pathlib import Path

from bus.catalog import add_agency, add_grant, revoke_grant
from bus.catalog.acls import acl_rules, render_acl_commands
from bus.config import Settings
from tests.unit.catalog.support import FAR_FUTURE, HOUSEHOLD_SCHEMA, publish


def parsed(lines: list[str]) -> list[dict[str, object]]:
    """Each command as {action, principal, operations, resource, name, pattern}."""
    out = []
    for line in lines:
        if line.startswith("#"):
            continue
        words = shlex.split(line)
        assert words[0] == "kafka-acls.sh"
        item: dict = {"operations": []}
        it = iter(words[1:])
        for word in it:
            if word in ("--add", "--remove"):
                item["action"] = word[2:]
            elif word == "--allow-principal":
                item["principal"] = next(it)
            elif word == "--operation":
                item["operations"].append(next(it))
            elif word in ("--topic", "--group"):
                item["resource"], item["name"] = word[2:], next(it)
            elif word == "--resource-pattern-type":
                item["pattern"] = next(it)
            elif word in ("--bootstrap-server", "--command-config"):
                item[word] = next(it)
        out.append(item)
    return out


def test_acls_follow_publishers_and_live_grants(offline_settings: Settings, tmp_path: Path) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen", units=["79"])
    publish(
        offline_settings,
        tmp_path,
        "ward.household",
        publisher="ubnd-q1",
        units=["26734", "26737"],
        schema=str(HOUSEHOLD_SCHEMA),
        pii=[],
    )
    add_agency(offline_settings, "so-y-te", "Sở Y tế")
    live = add_grant(
        offline_settings,
        dataset="ward.household",
        agency="so-y-te",
        purpose="tiêm chủng",
        legal_basis="Luật Phòng chống bệnh truyền nhiễm",
        fields="household_id,members",
        expires=FAR_FUTURE,
    )
    old = add_grant(
        offline_settings,
        dataset="dancu.citizen",
        agency="ubnd-q1",
        purpose="cư trú",
        legal_basis="Luật Cư trú",
        fields="unit",
        expires=FAR_FUTURE,
    )
    revoke_grant(offline_settings, old.id)
    lines = render_acl_commands(
        acl_rules(offline_settings), bootstrap="kafka:9093", command_config="admin.properties"
    )
    cmds = parsed(lines)
    assert all(c["--bootstrap-server"] == "kafka:9093" for c in cmds)
    assert all(c["--command-config"] == "admin.properties" for c in cmds)

    def rules(principal: str, action: str = "add") -> set[tuple]:
        return {
            (tuple(c["operations"]), c["resource"], c["name"], c["pattern"])
            for c in cmds
            if c["principal"] == principal and c["action"] == action
        }

    ward_topics = ["lgsp.79.760.26734.ward.household", "lgsp.79.760.26737.ward.household"]
    # the publisher writes only its own unit topics (and their DLQs)
    assert rules("User:ubnd-q1") == {
        (("Write", "Describe"), "topic", t, "literal")
        for base in ward_topics
        for t in (base, f"{base}.dlq")
    }
    assert rules("User:cong-an-tp") == {
        (("Write", "Describe"), "topic", t, "literal")
        for t in ("lgsp.79.dancu.citizen", "lgsp.79.dancu.citizen.dlq")
    }
    # the grantee reads every unit topic of the granted dataset, and its consumer group
    assert rules("User:so-y-te") == {
        *((("Read", "Describe"), "topic", t, "literal") for t in ward_topics),
        (("Read",), "group", "lgsp.grant.so-y-te.ward.household", "literal"),
    }
    assert not any("Write" in c["operations"] for c in cmds if c["principal"] == "User:so-y-te")
    # the revoked grant's ACLs are removed
    assert rules("User:ubnd-q1", "remove") == {
        (("Read", "Describe"), "topic", "lgsp.79.dancu.citizen", "literal"),
        (("Read",), "group", "lgsp.grant.ubnd-q1.dancu.citizen", "literal"),
    }
    assert f"# grant {live.id} (live): ward.household" in lines


def test_operator_and_default_bootstrap(offline_settings: Settings, tmp_path: Path) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen")
    lines = render_acl_commands(acl_rules(offline_settings, operator="lgsp-bus"))
    assert all(
        "--bootstrap-server ${KAFKA_BOOTSTRAP} " in line for line in lines if "kafka" in line
    )
    ops = [c for c in parsed(lines) if c["principal"] == "User:lgsp-bus"]
    assert {(c["resource"], c["name"], c["pattern"]) for c in ops} == {
        ("topic", "lgsp.", "prefixed"),
        ("group", "lgsp", "prefixed"),
    }
