"""The read-only and thin endpoints the console calls: ``/me``, ``/overview``, ``/dlq``,
``/reports/on-time``, connector files as YAML, and ``/console/`` itself."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.dlq import mask_numbers
from tests.integration.api.conftest import Server, free_port
from tests.integration.api.test_connectors_api import source

pytestmark = pytest.mark.integration


def test_me_and_the_console_files(server: Server) -> None:
    assert server.call("GET", "/me").status_code == 401
    key = server.key("publisher", "vp-ubnd-tp")
    me = server.call("GET", "/me", key).json()
    assert me["agency"] == "vp-ubnd-tp" and me["role"] == "publisher" and me["live"] is True
    assert key not in str(me) and key.split("_", 2)[2] not in str(me)  # the secret may hold "_"
    page = server.call("GET", "/console/")
    assert page.status_code == 200 and '<script type="module" src="js/app.js">' in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert server.call("GET", "/console", allow_redirects=False).status_code in (307, 308)
    assert server.call("GET", "/console/js/pages/overview.js").status_code == 200
    assert server.call("GET", "/console/../pyproject.toml").status_code == 404


def test_overview_tree_and_a_stuck_source(server: Server, unique: str) -> None:
    from bus.catalog.datasets import publish_dataset
    from bus.demo.city import EXAMPLES
    from bus.runs import record_run
    from bus.sync import SyncReport, TableReport

    assert server.call("GET", "/overview").status_code == 401
    consumer = server.key("consumer", "so-noi-vu")
    empty = server.call("GET", "/overview", consumer)
    assert empty.status_code == 200 and empty.json()["datasets"] == []

    publish_dataset(server.settings, EXAMPLES / "datasets" / "tthc.dossier.yaml")
    topic = "lgsp.79.760.26734.tthc.dossier"
    ConnectorStore(server.settings).add(
        name=f"ward-{unique}",
        type="sqlite",
        role="source",
        agency="so-tttt",
        unit="26734",
        config={},
        topics={"ho_so": topic},
    )
    record_run(server.settings, kind="sync", name=f"ward-{unique}", status="failed")
    # a sink whose read of one topic ended short ("behind"): its run is partial
    behind = "lgsp.79.760.26737.tthc.dossier"
    ConnectorStore(server.settings).add(
        name=f"copy-{unique}",
        type="sqlite",
        role="sink",
        agency="so-tttt",
        unit="26737",
        config={},
        topics={"ho_so": behind, "ho_so_b": "lgsp.79.760.26740.tthc.dossier"},
    )
    unread = "3 record(s) of x were not read (no answer from the broker for them), 079123456789"
    whole = TableReport("ho_so_b", "lgsp.79.760.26740.tthc.dossier")  # read to its end
    report = SyncReport(
        f"copy-{unique}",
        "sink",
        0,
        [TableReport("ho_so", behind, status="behind", error=unread), whole],
    )
    record_run(
        server.settings,
        kind="sync",
        name=f"copy-{unique}",
        status="partial",
        detail=report.to_dict(),
    )
    data = server.call("GET", "/overview", consumer).json()
    (dataset,) = data["datasets"]
    assert dataset["name"] == "tthc.dossier" and dataset["levels"] == ["city", "district", "ward"]
    nodes = {n["unit"]: n for n in dataset["nodes"]}
    assert [n["unit"] for n in dataset["nodes"]][:2] == ["79", "760"]
    assert len(nodes) == 12 and nodes["26734"]["parent"] == "760" and nodes["760"]["parent"] == "79"
    assert nodes["26734"]["topic"] == topic and nodes["26734"]["connectors"] == [f"ward-{unique}"]
    assert nodes["26734"]["last_run"]["status"] == "failed"
    assert nodes["26734"]["stuck"] == [
        {
            "code": "failed",
            "message": f"last run ward-{unique} failed",
            "run": f"ward-{unique}",
            "status": "failed",
        }
    ]
    assert nodes["26737"]["last_run"]["status"] == "partial"
    assert nodes["26737"]["stuck"] == [
        {
            "code": "partial",
            "message": f"last run copy-{unique} ended partial: ho_so behind: "
            + unread.replace("079123456789", "**********89"),
            "run": f"copy-{unique}",
            "status": "partial",
            "tables": "ho_so (behind)",
        }
    ]
    assert nodes["26740"]["last_run"]["status"] == "partial"  # its table was read whole
    assert [u for u, n in nodes.items() if n["stuck"]] == ["26734", "26737"]
    assert nodes["79"]["dlq"] == 0 and nodes["79"]["records"] == 0


def test_overview_counts_dead_letters_without_asking_the_broker(
    serve: Callable[..., Server], settings: Settings
) -> None:
    """A DLQ's count is the end the bus recorded when the broker acknowledged the dead letter:
    a server whose broker address answers nothing still shows it (it asked the broker on every
    request before, ~0.5-0.8 s each, and showed "unknown" without one)."""
    from bus import broker_guard
    from bus.catalog.datasets import publish_dataset
    from bus.demo.city import EXAMPLES
    from bus.dlq import send_dead_letter
    from bus.errors import DataError
    from bus.kafka import clients

    publish_dataset(settings, EXAMPLES / "datasets" / "tthc.dossier.yaml")
    topic = "lgsp.79.760.26734.tthc.dossier"
    producer = clients.producer(settings)  # parked on the real broker, as a consumer parks it
    try:
        future = send_dead_letter(
            producer, topic=topic, key=b"k", value=b"not avro", exc=DataError("bad"), group="g"
        )
        broker_guard.acknowledge(
            settings, producer, [future], broker_guard.dlq_origin("g"), "a dead letter"
        )
    finally:
        producer.close(timeout=5)
    server = serve(LGSP_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}")  # nothing listens there
    data = server.call("GET", "/overview", server.key("consumer", "so-noi-vu")).json()
    nodes = {n["unit"]: n for n in data["datasets"][0]["nodes"]}
    assert nodes["26734"]["dlq"] == 1 and nodes["26737"]["dlq"] == 0 and nodes["79"]["dlq"] == 0


def test_connector_file_as_yaml(server: Server, tmp_path: Path, unique: str) -> None:
    import yaml

    op = server.key("operator")
    data = source(tmp_path, unique)
    text = yaml.safe_dump(data)
    yaml_type = {"Content-Type": "application/yaml"}
    ok = server.call("POST", "/connectors/validate", op, data=text, headers=yaml_type).json()
    assert ok["error_count"] == 0 and ok["plan"]["stored"] is False
    bad = server.call(
        "POST", "/connectors/validate", op, data="name: [x\n", headers=yaml_type
    ).json()
    assert bad["errors"] == [{"field": "file", "message": "not valid YAML at line 2"}]
    listed = server.call(
        "POST", "/connectors/validate", op, data="- a\n- b\n", headers=yaml_type
    ).json()
    assert listed["errors"][0]["field"] == "file"
    wrong = server.call(
        "POST", "/connectors", op, data=text, headers={"Content-Type": "text/plain"}
    )
    assert wrong.status_code == 415 and "Content-Type" in wrong.json()["message"]
    assert ConnectorStore(server.settings).list() == []
    made = server.call("POST", "/connectors", op, data=text.encode(), headers=yaml_type)
    assert made.status_code == 201, made.text
    assert [c.name for c in ConnectorStore(server.settings).list()] == [data["name"]]


def test_dead_letters_and_report_refusals(server: Server) -> None:
    op, consumer = server.key("operator"), server.key("consumer", "so-noi-vu")
    assert server.call("GET", "/dlq").status_code == 401
    assert server.call("GET", "/dlq", consumer).status_code == 403
    assert server.call("POST", "/dlq/lgsp.79.tthc.dossier/replay", consumer).status_code == 403
    bad_topic = server.call("GET", "/dlq/bad topic;drop", op)
    assert bad_topic.status_code == 422 and bad_topic.json()["errors"][0]["field"] == ("path.topic")
    assert server.call("GET", "/dlq", op).status_code == 200
    month = server.call("GET", "/reports/on-time?month=2026-13", consumer)
    assert month.status_code == 422 and "month: expected YYYY-MM" in month.json()["message"]
    level = server.call("GET", "/reports/on-time?month=2026-10&level=street", consumer)
    assert level.status_code == 422 and "level:" in level.json()["message"]
    fmt = server.call("GET", "/reports/on-time?month=2026-10&format=pdf", consumer)
    assert fmt.status_code == 422


def test_mask_numbers_keeps_the_last_two_digits() -> None:
    assert mask_numbers("got 079123456789 at offset 12") == "got **********89 at offset 12"
    assert mask_numbers("id X079123456789 and 0901234567") == "id X079123456789 and ********67"


def test_unlock_releases_only_the_holder_seen(server: Server, tmp_path: Path, unique: str) -> None:
    op, auditor = server.key("operator"), server.key("auditor", "thanh-tra")
    data = source(tmp_path, unique)
    name = data["name"]
    assert server.call("POST", "/connectors", op, json=data).status_code == 201
    store = ConnectorStore(server.settings)
    held = store.acquire_lock(name, "host-a:1:crashed", ttl_s=600)
    status = server.call("GET", f"/connectors/{name}/status", op).json()
    assert status["connector"]["worker_id"] == held.owner
    assert server.call("DELETE", f"/connectors/{name}/lock", op).status_code == 422  # no owner
    path = f"/connectors/{name}/lock?owner={held.owner}"
    assert server.call("DELETE", path, auditor).status_code == 403
    other = server.call("DELETE", f"/connectors/{name}/lock?owner=host-b:2:other", op)
    assert other.status_code == 409 and "another run" in other.json()["message"]
    assert store.lock(name) is not None
    gone = server.call("DELETE", path, op)
    assert gone.json() == {"name": name, "released": held.owner} and store.lock(name) is None
    assert server.call("DELETE", path, op).json() == {"name": name, "released": None}
    assert server.call("DELETE", "/connectors/no-such/lock?owner=x", op).status_code == 404
