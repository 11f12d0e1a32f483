"""bus.context: one process context per Settings, built once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bus import context as context_module
from bus.config import Settings, reset_settings
from bus.context import Context, configured_hierarchy
from bus.units import load_hierarchy
from bus.units.timeline import Cutover, record_cutover


def test_the_context_holds_what_the_settings_build(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    ctx = Context.load(settings)
    assert ctx.settings is settings
    assert ctx.hierarchy is load_hierarchy(settings.hierarchy)
    assert ctx.registry.settings is settings
    assert ctx.connectors.settings is settings
    assert ctx.connectors.list() == []  # a usable store on the control database


def test_after_a_cutover_the_hierarchy_in_force_moves_the_configured_one_stays(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path)
    assert Context.build(settings).hierarchy is Context.build(settings).configured_hierarchy
    record_cutover(settings, Cutover("hcmc-2024", "hcmc-2025", dt.date(2025, 7, 1)))
    ctx = Context.build(settings)
    assert ctx.hierarchy is load_hierarchy("hcmc-2025")
    assert ctx.configured_hierarchy is load_hierarchy("hcmc-2024")
    assert configured_hierarchy(settings) is ctx.configured_hierarchy


def test_the_same_settings_get_the_same_context_others_their_own(tmp_path: Path) -> None:
    first = Settings(home=tmp_path / "a")
    second = Settings(home=tmp_path / "b")
    ctx = Context.load(first)
    assert Context.load(first) is ctx
    assert Context.of(first) is ctx
    assert Context.of(ctx) is ctx
    other = Context.load(second)
    assert other is not ctx and other.settings is second
    assert other.registry is not ctx.registry
    assert Context.build(first) is not ctx  # build() never shares


def test_only_the_last_few_contexts_are_kept(tmp_path: Path) -> None:
    first = Settings(home=tmp_path / "0")
    ctx = Context.load(first)
    for i in range(context_module._KEEP):
        Context.load(Settings(home=tmp_path / f"{i + 1}"))
    again = Context.load(first)
    assert again is not ctx and again.settings is first


def test_without_settings_it_is_the_process_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LGSP_HOME", str(tmp_path))
    reset_settings()
    try:
        ctx = Context.load()
        assert ctx.settings.home == tmp_path
        assert Context.load() is ctx
    finally:
        reset_settings()


def test_a_context_is_frozen(tmp_path: Path) -> None:
    ctx = Context.load(Settings(home=tmp_path))
    with pytest.raises(AttributeError):
        ctx.settings = Settings(home=tmp_path / "x")  # type: ignore[misc]


def test_a_long_lived_context_sees_a_cutover_recorded_after_it_was_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API server builds its context once: a cut-over recorded later (by another process)
    moves its hierarchy in force at the next check, not only after a restart."""
    settings = Settings(home=tmp_path)
    ctx = Context.load(settings)
    assert ctx.hierarchy.name == "hcmc-2024"
    record_cutover(settings, Cutover("hcmc-2024", "hcmc-2025", dt.date(2025, 7, 1)))
    assert ctx.current() is ctx  # checked less than RECHECK_S ago: not asked again
    monkeypatch.setattr(context_module, "RECHECK_S", 0.0)
    moved = ctx.current()
    assert moved.hierarchy is load_hierarchy("hcmc-2025")
    assert moved.registry is ctx.registry and moved.connectors is ctx.connectors
    assert Context.load(settings).hierarchy is load_hierarchy("hcmc-2025")
    assert moved.configured_hierarchy is load_hierarchy("hcmc-2024")
