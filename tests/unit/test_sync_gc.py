"""A sync run collects cycles less often while it runs and restores the process's settings."""

from __future__ import annotations

import gc

import pytest

from bus.sync import _fewer_gc_passes


def test_gc_settings_are_restored_after_a_run_even_a_failed_one() -> None:
    before = gc.get_threshold()
    with _fewer_gc_passes():
        assert gc.get_threshold()[0] > before[0]
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), _fewer_gc_passes():
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
