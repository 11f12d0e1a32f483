"""bus.longrun: the one loop of followed runs (signals, idle exit, backoff), on real signals."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import pytest

from bus.errors import BrokerUnavailableError, FatalError
from bus.longrun import Follow, follow, stop_signals, uninterrupted


def _signal_me(times: int = 1) -> None:
    """SIGINT to this process from another thread; its handler then runs in the main thread."""

    def send() -> None:
        for _ in range(times):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)

    sender = threading.Thread(target=send)
    sender.start()
    sender.join()
    time.sleep(0.05)  # the main thread's next bytecodes run the handler(s)


def test_first_signal_stops_after_the_step_in_hand() -> None:
    steps: list[str] = []

    def step() -> bool:
        steps.append("begun")
        if len(steps) == 2:
            _signal_me()
            steps.append("finished after the signal")
        return True  # found rows: without the signal it would go on at once

    before = signal.getsignal(signal.SIGINT)
    with stop_signals() as stop:
        follow(step, Follow(should_stop=stop, poll_s=0.01))
        assert stop()
    assert steps == ["begun", "begun", "finished after the signal"]
    assert signal.getsignal(signal.SIGINT) is before


def test_second_signal_aborts_the_step_in_hand() -> None:
    steps: list[str] = []

    def step() -> bool:
        steps.append("begun")
        _signal_me(times=2)
        steps.append("finished")  # never reached: the second signal raised in the step
        return True

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stop_signals() as stop:
        follow(step, Follow(should_stop=stop))
    assert steps == ["begun"]
    assert signal.getsignal(signal.SIGINT) is before


def test_second_signal_waits_for_an_uninterrupted_block_to_end() -> None:
    written: list[str] = []

    def step() -> bool:
        with uninterrupted():
            _signal_me(times=2)
            written.append("checkpoint row")
            time.sleep(0.05)
            written.append("checkpoint file")
        written.append("after the block")  # the held-back abort is raised before this
        return True

    with pytest.raises(KeyboardInterrupt), stop_signals() as stop:
        follow(step, Follow(should_stop=stop))
    assert written == ["checkpoint row", "checkpoint file"]
    with uninterrupted():  # nothing left held back for the next block
        pass


def test_outside_the_main_thread_no_handler_is_installed() -> None:
    seen: list[object] = []

    def in_thread() -> None:
        with stop_signals() as stop:
            seen.append(stop())

    before = signal.getsignal(signal.SIGINT)
    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    assert seen == [False]
    assert signal.getsignal(signal.SIGINT) is before


def test_idle_exit_ends_a_run_that_finds_nothing_and_rows_keep_it_going() -> None:
    start = time.monotonic()
    calls = 0

    def step() -> bool:
        nonlocal calls
        calls += 1
        return time.monotonic() - start < 0.4  # rows for 0.4 s, then none

    follow(step, Follow(idle_exit_s=0.3, poll_s=0.05))
    took = time.monotonic() - start
    assert 0.7 <= took < 3.0  # 0.4 s of rows, then 0.3 s idle
    assert calls > 5


def test_the_first_step_runs_even_when_the_policy_is_already_done() -> None:
    calls: list[int] = []
    follow(lambda: calls.append(1) or False, Follow(should_stop=lambda: True))
    assert calls == [1]


def test_a_step_with_nothing_left_ends_the_run() -> None:
    calls: list[int] = []
    follow(lambda: calls.append(1) and None, Follow(poll_s=60))
    assert calls == [1]


def test_retriable_errors_back_off_doubling_up_to_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    at: list[float] = []

    def step() -> bool | None:
        at.append(time.monotonic())
        if len(at) <= 3:
            raise BrokerUnavailableError("broker away")
        return None

    with caplog.at_level(logging.WARNING, logger="bus.longrun"):
        follow(step, Follow(poll_s=0.05), retry=(BrokerUnavailableError,), backoff_max_s=0.15)
    gaps = [b - a for a, b in zip(at, at[1:], strict=False)]
    assert len(gaps) == 3
    assert gaps[0] >= 0.1 and gaps[1] >= 0.15 and gaps[2] >= 0.15  # 0.05*2, then capped
    assert gaps[2] < 0.5
    assert "run failed (broker away); retrying in" in caplog.text


def test_an_error_not_listed_for_retry_ends_the_run() -> None:
    def step() -> bool:
        raise FatalError("bad config")

    with pytest.raises(FatalError):
        follow(step, Follow(poll_s=0.01), retry=(BrokerUnavailableError,))


def test_a_stop_request_cuts_a_backoff_short() -> None:
    asked = threading.Event()

    def step() -> bool:
        asked.set()
        raise BrokerUnavailableError("away")

    start = time.monotonic()
    follow(step, Follow(should_stop=asked.is_set, poll_s=30), retry=(BrokerUnavailableError,))
    assert time.monotonic() - start < 1.0
