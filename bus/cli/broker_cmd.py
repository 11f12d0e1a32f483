"""``lgsp broker start|stop|status|restore`` and ``lgsp config show``."""

from __future__ import annotations

import click

from bus import broker, broker_restore
from bus.cli._common import echo_json, settings
from bus.errors import BrokerUnavailableError, FatalError


@click.group("broker")
def broker_group() -> None:
    """Start, stop or check the Kafka broker."""


@broker_group.command("start")
def start() -> None:
    """Start the embedded broker on a free loopback port (nothing if LGSP_KAFKA_BOOTSTRAP)."""
    s = settings()
    if s.kafka_bootstrap:
        st = broker.status(s)
        click.echo(f"external broker {st.bootstrap}: nothing to start")
        if not st.answering:
            raise BrokerUnavailableError(f"broker {st.bootstrap} does not answer")
        return
    st = broker.start_embedded(s)
    click.echo(f"embedded broker {st.detail} at {st.bootstrap} (pid {st.pid})")


@broker_group.command("stop")
def stop() -> None:
    """Stop the embedded broker (its topics are lost: it keeps data in memory)."""
    s = settings()
    if s.kafka_bootstrap:
        click.echo("external broker: nothing to stop")
        return
    click.echo("stopped" if broker.stop_embedded(s) else "no embedded broker was running")


@broker_group.command("status")
def status_cmd() -> None:
    """Which broker, where, and whether it answers."""
    st = broker.status(settings())
    if st.kind == "none":
        raise BrokerUnavailableError(
            "no broker: run 'lgsp broker start' or set LGSP_KAFKA_BOOTSTRAP"
        )
    pid = f" (pid {st.pid})" if st.pid else ""
    state = "answers" if st.answering else f"does not answer {st.detail}".rstrip()
    click.echo(f"{st.kind} broker at {st.bootstrap}{pid}: {state}")
    if not st.answering:
        raise SystemExit(3)


@broker_group.command("restore")
@click.option("--dry-run", is_flag=True, help="Report what would be done; change nothing.")
def restore_cmd(dry_run: bool) -> None:
    """Re-publish the archived events into a broker that lost its topics, move source
    positions and consumer groups back to match, and record the broker's new identity."""
    report = broker_restore.restore(settings(), dry_run=dry_run)
    would = "would restore" if dry_run else "restored"
    click.echo(
        f"{would} {report.events} event(s) in {len(report.lost)} partition(s) of "
        f"{len(report.topics)} topic(s); {len(report.positions)} source position(s) moved "
        f"back; {len(report.groups)} consumer group(s) reset"
        + ("" if dry_run else f"; broker cluster id {report.cluster_id} recorded")
    )
    for plan in report.lost:
        count = plan.archived - plan.send_from if dry_run else plan.sent
        lined = "" if plan.lined_up else ", offsets shifted"
        click.echo(f"  {plan.topic}[{plan.partition}]: {count} event(s){lined}")
    for line in report.positions:
        click.echo(f"  position {line}")
    for group, count in sorted(report.groups.items()):
        click.echo(f"  group {group}: {count} partition(s)")
    for line in report.unrestorable:
        click.echo(f"  lost for good: {line}")
    if report.positions and not dry_run:
        click.echo("next: run the source connectors again, then the sinks")
    if report.unrestorable:
        raise FatalError(
            "broker restore: events that neither the archive nor a rerun brings back are lost "
            f"({len(report.unrestorable)} line(s) 'lost for good' above); publish them again "
            "as each line says, and keep the archive current ('lgsp archive run --follow')"
        )


@click.group("config")
def config_group() -> None:
    """Show the effective configuration."""


@config_group.command("show")
def show() -> None:
    """Print the effective settings (lgsp.toml + LGSP_* env), secrets masked."""
    echo_json(settings().masked())
