"""``lgsp publish``, ``lgsp tail``, ``lgsp topic list`` and ``lgsp dlq list|replay``."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from kafka import KafkaProducer
from kafka.record.default_records import DefaultRecordBatchBuilder

from bus import broker_guard
from bus.cli._common import context, echo_table, settings
from bus.config import Settings
from bus.consume import Consumer, Message
from bus.dlq_ops import list_dead_letters, replay_dead_letters
from bus.envelope import canonical_key, record_schema_of
from bus.errors import ConfigurationError, DataError, ExitCode
from bus.kafka import clients
from bus.kafka.ends import end_offsets
from bus.kafka.topics import describe_topic_configs
from bus.publish import Publisher
from bus.serde.jsoncodec import JsonToAvro, dumps

log = logging.getLogger("lgsp.cli")


def _unit_of(topic: str) -> str:
    parts = topic.split(".")
    return parts[-3] if len(parts) >= 4 else ""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line of a UTF-8 file (``-``: stdin); a line that is not
    UTF-8 stops with its number and the byte offset of the first bad byte."""
    try:
        handle = sys.stdin.buffer if str(path) == "-" else path.open("rb")
    except OSError as exc:
        raise ConfigurationError(f"--file: cannot read {path} ({exc.strerror})") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"line {number}: not valid UTF-8 (byte {exc.start + 1} of the line: "
                    f"{exc.reason})"
                ) from None


def read_events(
    path: Path, topic: str, envelope: dict[str, Any], key_fields: list[str], agency: str
) -> list[tuple[int, dict[str, Any]]]:
    """Every line as ``(line number, Avro-ready envelope)``; the first bad line stops with its
    number."""
    to_avro = JsonToAvro(envelope)
    record_schema = record_schema_of(envelope)
    fields = [f["name"] for f in record_schema["fields"]]
    keys = key_fields or fields[:1]
    unknown = [k for k in keys if k not in fields]
    if unknown:
        raise ConfigurationError(f"--key: {unknown[0]!r} is not a field of the record")
    now_ms = int(time.time() * 1000)
    events = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(data, dict):
            raise DataError(f"line {number}: expected a JSON object")
        if "op" not in data or ("after" not in data and "before" not in data):
            record = data
            missing = [k for k in keys if k not in record]
            if missing:
                raise DataError(f"line {number}: {missing[0]}: expected a value (key field)")
            data = {
                "event_id": str(uuid.uuid4()),
                "op": "c",
                "ts_ms": now_ms,
                "source": {"agency": agency, "unit": _unit_of(topic), "system": "lgsp-cli"},
                "key": canonical_key({k: record[k] for k in keys}),
                "before": None,
                "after": record,
            }
        else:
            data.setdefault("event_id", str(uuid.uuid4()))
            data.setdefault("ts_ms", now_ms)
        try:
            events.append((number, to_avro(data)))
        except DataError as exc:
            raise DataError(f"line {number}: {exc}") from None
    return events


def max_record_bytes(settings: Settings, topic: str) -> tuple[int, str]:
    """The largest record ``topic`` takes, and what sets it: the producer's
    ``max_request_size``, or the topic's ``max.message.bytes`` when the broker reports a
    smaller one (Kafka's default for both is about 1 MiB)."""
    limit = int(KafkaProducer.DEFAULT_CONFIG["max_request_size"])
    what = "the producer's max_request_size"
    broker = describe_topic_configs(settings, topic).get("max.message.bytes", "")
    if broker.isdigit() and int(broker) < limit:
        limit, what = int(broker), "the topic's max.message.bytes on the broker"
    return limit, what


def encode_records(
    publisher: Publisher, topic: str, events: list[tuple[int, dict[str, Any]]]
) -> list[tuple[bytes, bytes]]:
    """Every event encoded as it will be sent (once); ``DataError`` naming the first line that
    does not match the topic's schema or whose record is larger than the broker takes."""
    limit, what = max_record_bytes(publisher.settings, topic)
    encoded: list[tuple[bytes, bytes]] = []
    for number, event in events:
        try:
            key, value = publisher.encode(topic, event)
        except DataError as exc:
            raise DataError(f"line {number}: {exc}") from None
        size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
        if size > limit:
            raise DataError(
                f"line {number}: the record is {size} bytes once encoded; at most {limit} "
                f"bytes fit ({what})"
            )
        encoded.append((key, value))
    return encoded


@click.command("publish")
@click.argument("topic")
@click.option("--file", "file", required=True, type=click.Path(path_type=Path), help="JSONL or -")
@click.option("--key", "key", default="", help="Key fields of bare records (default: first).")
@click.option(
    "--agency", default="lgsp-cli", show_default=True, help="source.agency of bare records"
)
def publish(topic: str, file: Path, key: str, agency: str) -> None:
    """Publish JSON lines (envelopes, or bare records wrapped as op c) to TOPIC.

    Every line is checked first (UTF-8, JSON, the topic's schema, the broker's record size
    limit): one bad line and nothing is sent.
    """
    ctx = context()
    with Publisher(ctx.settings, ctx.registry, origin=broker_guard.CLI) as pub:
        schema = pub.schema_for(topic)
        events = read_events(file, topic, schema.schema, [k for k in key.split(",") if k], agency)
        pub.ensure_topic(topic)
        report = pub.publish_encoded(topic, encode_records(pub, topic, events))
    click.echo(f"published {report.sent} events to {topic} (schema id {schema.id})")


@click.command("tail")
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record.")
@click.option("--max", "max_records", type=int, default=None, help="Stop after N records.")
@click.option("--idle", type=float, default=None, help="Stop after S seconds without records.")
def tail(topic: str, from_beginning: bool, max_records: int | None, idle: float | None) -> None:
    """Print TOPIC's records as decoded JSON lines (undecodable ones are reported on stderr)."""
    ctx = context()

    def report_bad(exc: Exception, record: Any, logger: logging.Logger) -> bool:
        click.echo(f"{record.topic}[{record.partition}]@{record.offset}: {exc}", err=True)
        return True

    def emit(message: Message) -> None:
        click.echo(dumps(message.value))

    with Consumer(ctx.settings, None, registry=ctx.registry, on_error=report_bad) as consumer:
        consumer.tail(
            [topic], emit, from_beginning=from_beginning, max_records=max_records, idle_s=idle
        )


@click.group("topic")
def topic_group() -> None:
    """Topics on the broker."""


@topic_group.command("list")
def topic_list() -> None:
    """Topics with their partitions and end offsets."""
    s = settings()
    client = clients.admin(s)
    try:
        names = sorted(t for t in client.list_topics() if not t.startswith("__"))
    finally:
        client.close()
    ends = end_offsets(s, names)
    rows = []
    for name in names:
        parts = sorted(p for (t, p) in ends if t == name)
        total = sum(ends[(name, p)] for p in parts)
        rows.append((name, len(parts), total, " ".join(f"{p}:{ends[(name, p)]}" for p in parts)))
    echo_table(["TOPIC", "PARTITIONS", "RECORDS", "END OFFSETS"], rows)


@click.group("dlq")
def dlq_group() -> None:
    """Dead letters: records parked because they could not be decoded or did not match."""


@dlq_group.command("list")
@click.argument("topic")
@click.option("--limit", type=int, default=1000, show_default=True)
def dlq_list(topic: str, limit: int) -> None:
    """Entries of TOPIC.dlq: origin, reason, attempts."""
    rows = [
        (
            f"{d.partition}@{d.offset}",
            f"{d.origin_topic}[{d.origin_partition}]@{d.origin_offset}",
            d.stage,
            d.error_class,
            d.error,
            d.attempts,
            dt.datetime.fromtimestamp(d.ts_ms / 1000, dt.UTC).isoformat(timespec="seconds"),
        )
        for d in list_dead_letters(settings(), topic, limit)
    ]
    echo_table(["DLQ", "ORIGIN", "STAGE", "ERROR CLASS", "REASON", "ATTEMPTS", "PARKED"], rows)


@dlq_group.command("replay")
@click.argument("topic")
def dlq_replay(topic: str) -> None:
    """Re-drive TOPIC.dlq after a fix: entries that now decode go back to TOPIC."""
    report = replay_dead_letters(context(), topic)
    click.echo(f"replayed {report.replayed}, still failing {report.still_failing} (parked again)")
    if report.still_failing:
        raise SystemExit(ExitCode.FAILED)
