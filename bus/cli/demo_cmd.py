"""``lgsp demo``: run the bus end to end on the embedded defaults."""

from __future__ import annotations

import time

import click

from bus import broker
from bus.cli._common import settings


@click.command("demo")
@click.option("--rows", type=int, default=20, show_default=True, help="Dossiers per ward.")
def demo(rows: int) -> None:
    """Start the embedded broker if needed, publish, consume, park a bad record, report."""
    from bus.demo.core import run_core_demo

    s = settings()
    started = time.monotonic()

    def say(text: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {text}")

    if not s.kafka_bootstrap:
        st = broker.start_embedded(s)
        say(f"embedded broker {st.detail} at {st.bootstrap}")
    result = run_core_demo(s, say, rows=rows)
    say(
        f"done: {result['published']} published, {result['consumed']} consumed, "
        f"{result['dlq']} in DLQ"
    )


commands = [demo]
