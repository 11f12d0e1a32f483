"""Reconciliation: prove that a table and its copy agree, find every difference, repair.

- ``reconcile(source, target, options) -> Report``: two ``Endpoint`` s (URL + table), no
  settings needed (``bus.reconcile.core``).
- ``run_reconcile(settings, connector, table, against, repair=False) -> Report``: by connector
  names, with PII names from the catalogue, the report stored in the control database and,
  with ``repair``, repair events published on the connector's topic (``bus.reconcile.service``).
"""

from bus.reconcile.core import Endpoint, Options, reconcile
from bus.reconcile.report import Report

__all__ = ["Endpoint", "Options", "Report", "reconcile"]
