"""Reconciliation: prove that a table and its copy agree, find every difference, repair.

- ``reconcile(source, target, options) -> Report``: two ``Endpoint`` s (URL + table), no
  settings needed (``bus.reconcile.core``).
- ``run_reconcile(settings, connector, table, against, repair=False) -> Report``: by connector
  names, with PII names from the catalogue, the report stored in the control database and,
  with ``repair``, repair events published on the connector's topic (``bus.reconcile.service``).
- ``pairs_for_manifest(settings)``: the (source, table, sink) pairs a reconciliation DAG runs.
- ``history(settings, connector)``: stored reports, newest first.

The names are imported on first use: ``lgsp reconcile urls`` needs only the comparison, not
the control database's ORM that ``service`` and ``store`` bring (a short run's start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bus.reconcile.core import Endpoint, Options, reconcile
    from bus.reconcile.report import Report
    from bus.reconcile.service import pairs_for_manifest, run_reconcile, run_urls
    from bus.reconcile.store import history

_WHERE = {
    "Endpoint": "core",
    "Options": "core",
    "reconcile": "core",
    "Report": "report",
    "pairs_for_manifest": "service",
    "run_reconcile": "service",
    "run_urls": "service",
    "history": "store",
}

__all__ = [
    "Endpoint",
    "Options",
    "Report",
    "history",
    "pairs_for_manifest",
    "reconcile",
    "run_reconcile",
    "run_urls",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
