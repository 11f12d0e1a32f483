"""The bus-core part of the demo: publish typed dossiers to a ward topic, read them back,
park a corrupt record in the DLQ."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from kafka import KafkaProducer

from bus import kafka_clients
from bus.config import Settings
from bus.consume import Consumer, Message
from bus.dlq_ops import list_dead_letters
from bus.envelope import envelope_schema, load_record_schema, make_event
from bus.publish import Publisher
from bus.registry import Registry, subject_for
from bus.units import load_hierarchy, topic_name

VN = dt.timezone(dt.timedelta(hours=7))


def sample_dossiers(n: int, unit: str) -> list[dict]:
    base = dt.datetime(2026, 10, 1, 8, 0, tzinfo=VN)
    out = []
    for i in range(n):
        received = base + dt.timedelta(hours=3 * i)
        out.append(
            {
                "dossier_id": f"{unit}-2026-{i:05d}",
                "procedure_code": "1.001612",
                "procedure_name": "Đăng ký khai sinh",
                "field": "civil_status",
                "receiving_unit": unit,
                "channel": "online" if i % 2 else "offline",
                "received_at": received,
                "due_at": received + dt.timedelta(days=3),
                "resolved_at": received + dt.timedelta(days=1) if i % 4 else None,
                "status": "resolved" if i % 4 else "processing",
                "status_history": [],
                "applicant_citizen_id": f"0792030{i:05d}",
                "applicant_name": "Nguyễn Thị Ánh",
                "updated_at": received,
            }
        )
    return out


def run_core_demo(settings: Settings, say: Callable[[str], None], rows: int = 20) -> dict:
    """Publish ``rows`` dossiers of Tân Định ward, consume them, park one bad record."""
    hierarchy = load_hierarchy(settings.hierarchy)
    topic = topic_name(hierarchy, "26734", "tthc.dossier")
    record = load_record_schema(settings.schemas_dir / "tthc.Dossier.avsc")
    registered = Registry(settings).register(
        subject_for(topic), envelope_schema(record, settings.schemas_dir)
    )
    say(f"schema {subject_for(topic)} version {registered.version} (id {registered.id})")
    source = {"agency": "ubnd-phuong-tan-dinh", "unit": "26734", "system": "hoso-demo"}
    events = []
    for row in sample_dossiers(rows, "26734"):
        ts = int(row["updated_at"].timestamp() * 1000)
        events.append(
            make_event(
                op="c", key={"dossier_id": row["dossier_id"]}, source=source, ts_ms=ts, after=row
            )
        )
    with Publisher(settings) as pub:
        report = pub.publish(topic, events)
    say(f"published {report.sent} dossier events to {topic}")
    raw = KafkaProducer(**kafka_clients.client_options(settings))
    raw.send(topic, key=b'{"dossier_id":"broken"}', value=b"\x00\x00\x00\x00\x63garbage").get(10)
    raw.close()
    seen: list[Message] = []
    with Consumer(settings, "lgsp.demo.reader") as consumer:
        result = consumer.run_bounded([topic], seen.extend)
    dead = list_dead_letters(settings, topic)
    say(f"consumed {len(seen)} events back; {len(dead)} record(s) parked in {topic}.dlq")
    return {
        "topic": topic,
        "published": report.sent,
        "consumed": len(seen),
        "dlq": len(dead),
        "lag": result.lag,
    }
