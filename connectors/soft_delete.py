"""The soft-delete rule: when a row's flag column says the row is deleted.

A flag is set unless it is NULL, false, a number equal to 0, or text that is one of
``NOT_SET`` once surrounding spaces are trimmed and letters lowered. Any other value marks the
row deleted: ``'Y'``, ``'1'``, ``'deleted'``, a deletion time. A flag column is there to mark
rows, so a marker no one listed (``'deleted'``, ``'x'``) is a mark; only an explicit "no" leaves
the row live. The source connectors publish such rows as deletes, the report leaves them out,
and reconciliation renders the same rule in SQL (``bus.reconcile.dialects``).
"""

from __future__ import annotations

import numbers
from typing import Any

NOT_SET = ("", "0", "n", "no", "f", "false")


def is_deleted(value: Any) -> bool:
    """A soft-delete flag is set when it is not NULL, false, 0 or one of ``NOT_SET``."""
    if value is None or value is False:
        return False
    if isinstance(value, numbers.Number):  # int, float, Decimal (a NUMERIC flag column)
        return value != 0
    if isinstance(value, str):
        return value.strip(" ").lower() not in NOT_SET
    return True
