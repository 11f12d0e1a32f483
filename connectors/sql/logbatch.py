"""The batches of a log reader (``connectors.sql.pglog``, ``connectors.sql.mylog``): the changes
read and not yet published (``Pending``), in log order, cut into batches of one table each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from connectors.base import Batch, Invalid, Stream
from connectors.sql.chunked_snapshot import ChunkedSnapshots

# a change read: its table, its event, the Invalid when its row does not fit the dataset's
# schema (else None), and the position after it
Pending = tuple[str, dict[str, Any], Invalid | None, dict[str, Any]]


def flush(
    pending: list[Pending],
    streams: dict[str, Stream],
    chunks: ChunkedSnapshots,
    acked: Callable[[str, dict[str, Any]], None],
) -> Iterator[Batch]:
    """Consecutive events of one table as one batch, in order; the batch's state is the
    position of its last event (with the table's chunked progress). ``acked`` hears each
    batch's table and state once the batch is acknowledged (the caller resumed the read)."""
    i = 0
    while i < len(pending):
        table = pending[i][0]
        events: list[dict[str, Any]] = []
        invalid: list[Invalid] = []
        while i < len(pending) and pending[i][0] == table:
            _, event, bad, _state = pending[i]
            if bad is None:
                events.append(event)
            else:
                invalid.append(bad)
            i += 1
        state = chunks.carry(table, dict(pending[i - 1][3]))
        yield Batch(table, events, state, streams[table].record_schema, invalid)
        acked(table, state)  # the broker acknowledged it: the read resumed
