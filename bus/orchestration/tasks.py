"""What the DAG tasks run: the same functions as the CLI, with Airflow's retry semantics.

A ``RetriableError`` (broker or database down) is raised as is, so Airflow retries the task;
any other bus error fails the task at once (``AirflowFailException``): retrying a bad config
or a tampered archive changes nothing. Every task is idempotent: sources continue from their
committed positions, routes from their groups' committed offsets, sinks upsert by version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bus.errors import LgspError, RetriableError

if TYPE_CHECKING:
    from bus.context import Context
    from bus.orchestration.specs import Step

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


def context() -> Context:
    """The task process's context (imported here: DAG parsing never loads it)."""
    from bus.context import Context

    return Context.load(get_settings())


# ---- the work of each task, without Airflow (the demo's in-process pipeline runs these) ----


def _check_broker(ctx: Context) -> dict[str, Any]:
    """Fail fast (and retry) when the broker does not answer."""
    from bus import broker
    from bus.errors import BrokerUnavailableError

    address = broker.bootstrap(ctx.settings)
    if not broker.port_answers(address, timeout=ctx.settings.kafka.api_timeout_ms / 1000):
        raise BrokerUnavailableError(f"broker {address} does not answer")
    return {"broker": address}


def _sync(ctx: Context, connector: str) -> dict[str, Any]:
    from bus import sync as sync_module

    report = sync_module.run(ctx, connector)
    report.raise_if_stopped()
    return report.to_dict()


def _rollup(ctx: Context, dataset: str, level: str) -> dict[str, Any]:
    from bus.routes import plan_routes, run_routes

    return run_routes(ctx, dataset, level, plan_routes(ctx, dataset, level)).to_dict()


def _reconcile(
    ctx: Context, source: str, table: str, sink: str, repair: bool = False
) -> dict[str, Any]:
    from bus.reconcile import run_reconcile

    return run_reconcile(ctx.settings, source, table, sink, repair=repair).summary_dict()


def _archive(ctx: Context) -> dict[str, Any]:
    from bus.archive.archiver import Archiver

    report = Archiver(ctx).run_once()
    return {
        "topics": len(report.topics),
        "read": report.read,
        "appended": report.appended,
        "skipped": report.skipped,
        "dlq": report.dlq,
    }


WORK: dict[str, Callable[..., dict[str, Any]]] = {
    "check_broker": _check_broker,
    "sync": _sync,
    "rollup": _rollup,
    "reconcile": _reconcile,
    "archive": _archive,
}


def run_step(ctx: Context, step: Step) -> dict[str, Any]:
    """The work of one pipeline step (``specs.pipeline_stages``) in this process."""
    return WORK[step.task](ctx, *step.args)


# ---- the Airflow tasks --------------------------------------------------------------------


def check_broker() -> dict[str, Any]:
    """Fail fast (and retry) when the broker does not answer."""
    return _guard(lambda: _check_broker(context()))


def sync(connector: str) -> dict[str, Any]:
    return _guard(lambda: _sync(context(), connector))


def rollup(dataset: str, level: str) -> dict[str, Any]:
    return _guard(lambda: _rollup(context(), dataset, level))


def reconcile(source: str, table: str, sink: str, repair: bool = False) -> dict[str, Any]:
    """Compare a source table with a sink's copy; with ``repair``, publish what makes the copy
    right (missing rows, hard deletes), which the sink's next run applies."""
    return _guard(lambda: _reconcile(context(), source, table, sink, repair))


def archive() -> dict[str, Any]:
    return _guard(lambda: _archive(context()))
