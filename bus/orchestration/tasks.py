"""What the DAG tasks run: the same functions as the CLI, with Airflow's retry semantics.

A ``RetriableError`` (broker or database down) is raised as is, so Airflow retries the task;
any other bus error fails the task at once (``AirflowFailException``): retrying a bad config
or a tampered archive changes nothing. Every task is idempotent: sources continue from their
committed positions, routes from their groups' committed offsets, sinks upsert by version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bus.errors import LgspError, RetriableError

log = logging.getLogger("lgsp.tasks")


def get_settings() -> Any:
    """The settings of the task process (imported here: DAG parsing never loads them)."""
    from bus.config import get_settings as _get

    return _get()


def _guard(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    from bus.config import reset_settings

    reset_settings()  # the task process's environment is the truth
    try:
        result = work()
    except RetriableError as exc:
        log.warning("retriable: %s", exc)
        raise
    except LgspError as exc:
        from airflow.sdk.exceptions import AirflowFailException

        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from None
    log.info("result: %s", result)
    return result


def check_broker() -> dict[str, Any]:
    """Fail fast (and retry) when the broker does not answer."""

    def work() -> dict[str, Any]:
        from bus import broker
        from bus.errors import BrokerUnavailableError

        settings = get_settings()
        address = broker.bootstrap(settings)
        if not broker.port_answers(address, timeout=settings.kafka.api_timeout_ms / 1000):
            raise BrokerUnavailableError(f"broker {address} does not answer")
        return {"broker": address}

    return _guard(work)


def sync(connector: str) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        from bus import sync as sync_module

        report = sync_module.run(get_settings(), connector)
        report.raise_if_stopped()
        return report.to_dict()

    return _guard(work)


def rollup(dataset: str, level: str) -> dict[str, Any]:
    def work() -> dict[str, Any]:
        from bus.routes import plan_routes, run_routes

        settings = get_settings()
        routes = plan_routes(settings, dataset, level)
        return run_routes(settings, dataset, level, routes).to_dict()

    return _guard(work)


def reconcile(source: str, table: str, sink: str, repair: bool = False) -> dict[str, Any]:
    """Compare a source table with a sink's copy; with ``repair``, publish what makes the copy
    right (missing rows, hard deletes), which the sink's next run applies."""

    def work() -> dict[str, Any]:
        from bus.reconcile import run_reconcile

        report = run_reconcile(get_settings(), source, table, sink, repair=repair)
        return report.summary_dict()

    return _guard(work)


def archive() -> dict[str, Any]:
    def work() -> dict[str, Any]:
        from bus.archive.archiver import Archiver

        report = Archiver(get_settings()).run_once()
        return {
            "topics": len(report.topics),
            "read": report.read,
            "appended": report.appended,
            "skipped": report.skipped,
            "dlq": report.dlq,
        }

    return _guard(work)
