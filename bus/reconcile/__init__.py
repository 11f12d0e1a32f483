"""Reconciliation: prove that a table and its copy agree, find every difference, repair.

- ``reconcile(source, target, options) -> Report``: two ``Endpoint`` s (URL + table), no
  settings needed (``bus.reconcile.core``).
- ``run_reconcile(settings, connector, table, against, repair=False) -> Report``: by connector
  names, with PII names from the catalogue, the report stored in the control database and,
  with ``repair``, repair events published on the connector's topic (``bus.reconcile.service``).
- ``pairs_for_manifest(settings)``: the (source, table, sink) pairs a reconciliation DAG runs.
- ``history(settings, connector)``: stored reports, newest first.
"""

from bus.reconcile.core import Endpoint, Options, reconcile
from bus.reconcile.report import Report
from bus.reconcile.service import pairs_for_manifest, run_reconcile, run_urls
from bus.reconcile.store import history

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
