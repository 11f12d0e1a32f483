"""Long runs: one loop for every followed run (connectors, the archiver, routes).

``follow(step, policy)`` calls ``step`` again and again until the ``Follow`` policy ends it: a
stop request (a signal, a row count), or ``idle_exit_s`` seconds without a row. A step that
found nothing is followed by a pause of ``poll_s``; a step that raises one of ``retry`` (a
broker or database away) is tried again after a backoff that doubles up to ``backoff_max_s``.

Signals (``stop_signals()``): the first SIGINT/SIGTERM asks the run to stop after the batch in
hand; the second aborts it (``KeyboardInterrupt``). Work that must not be cut short (the
archiver's signed checkpoint: a database row and a file written together) runs inside
``uninterrupted()``: a second signal meanwhile is held back and raised when the block ends.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from bus.errors import safe_message

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_TICK_S = 0.1  # how often a pause looks at the stop request


@dataclass
class Follow:
    """When a followed run ends: ``should_stop()`` says so (a signal, a row count), or
    ``idle_exit_s`` seconds passed without a row; ``poll_s`` is the pause after a step that
    found nothing (a caught-up source reads again after it)."""

    should_stop: Callable[[], bool] = lambda: False
    idle_exit_s: float | None = None
    poll_s: float = 5.0
    _last_row: float = field(default_factory=time.monotonic)

    def saw_rows(self) -> None:
        self._last_row = time.monotonic()

    def done(self) -> bool:
        if self.should_stop():
            return True
        idle = time.monotonic() - self._last_row
        return self.idle_exit_s is not None and idle > self.idle_exit_s

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the run is done meanwhile."""
        deadline = time.monotonic() + seconds
        while not self.done() and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(_TICK_S, left))


def follow(
    step: Callable[[], bool | None],
    policy: Follow,
    *,
    retry: tuple[type[Exception], ...] = (),
    backoff_max_s: float = 30.0,
    what: str = "run",
) -> None:
    """Run ``step`` (at least once) until ``policy`` ends it, or until ``step`` returns None
    (nothing left to follow). ``step`` returns whether it found rows: True goes on at once,
    False pauses ``policy.poll_s`` first. An exception in ``retry`` is logged and the step
    tried again after ``poll_s`` times 2, 4, 8 ... (at most ``backoff_max_s``); any other ends
    the run."""
    failures = 0
    while True:  # the first step runs whatever the policy says: a followed run reads once
        try:
            found = step()
        except retry as exc:
            failures += 1
            wait = min(backoff_max_s, policy.poll_s * 2**failures)
            log.warning("%s failed (%s); retrying in %.0f s", what, safe_message(exc), wait)
            policy.pause(wait)
        else:
            failures = 0
            if found is None:
                return
            if found:
                policy.saw_rows()
            else:
                policy.pause(policy.poll_s)
        if policy.done():
            return


# ---- signals --------------------------------------------------------------------------------

_held = 0  # depth of uninterrupted() blocks (signal handlers run in the main thread only)
_abort_held = False


@contextmanager
def uninterrupted() -> Iterator[None]:
    """A block that a second signal does not cut short: the abort waits for its end."""
    global _held, _abort_held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
    if _held == 0 and _abort_held:
        _abort_held = False
        raise KeyboardInterrupt


@contextmanager
def stop_signals() -> Iterator[Callable[[], bool]]:
    """While in the block, SIGINT/SIGTERM stop the run: the callable given turns True at the
    first, the second raises ``KeyboardInterrupt`` (held back inside ``uninterrupted()``).
    The previous handlers come back at the end. Outside the main thread no handler can be
    installed and the callable stays False (the caller's own ``should_stop`` governs)."""
    global _abort_held
    asked = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        global _abort_held
        if not asked.is_set():
            asked.set()
        elif _held:
            _abort_held = True
        else:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield asked.is_set
        return
    previous = {sig: signal.signal(sig, on_signal) for sig in SIGNALS}
    try:
        yield asked.is_set
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _abort_held = False
