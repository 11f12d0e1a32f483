"""Key files made on first use: processes starting at the same moment agree on one key."""

from __future__ import annotations

import multiprocessing as mp
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from bus.archive.signing import load_signing_key
from bus.catalog.masking import key_file, load_pii_key
from bus.config import Settings
from bus.state import write_once

WORKERS = 6
ROUNDS = 8


def _pii_key(home: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    try:
        out.put(("ok", load_pii_key(Settings(home=Path(home), pii_key=None)).decode()))
    except Exception as exc:  # reported to the test, which fails on it
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def _signing_key(home: str, barrier: Any, out: Any) -> None:
    barrier.wait()
    try:
        key = load_signing_key(Settings(home=Path(home), signing_key_file=None), create=True)
        assert key is not None
        out.put(("ok", f"{key.key_id} {key.generated}"))
    except Exception as exc:
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def _race(target: Any, home: Path) -> list[tuple[str, str]]:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(str(home), barrier, out)) for _ in range(WORKERS)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return results


@pytest.fixture(autouse=True)
def _no_configured_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LGSP_PII_KEY", "LGSP_SIGNING_KEY", "LGSP_SIGNING_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_concurrent_first_uses_share_one_pii_key(tmp_path: Path) -> None:
    for n in range(ROUNDS):
        home = tmp_path / f"h{n}"
        home.mkdir()
        results = _race(_pii_key, home)
        assert [r for r in results if r[0] == "error"] == []
        assert len({value for _, value in results}) == 1
        path = key_file(Settings(home=home))
        assert path.read_text() == results[0][1]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert [p.name for p in home.iterdir()] == [path.name]  # no temporary file left


def test_concurrent_archivers_share_one_signing_key(tmp_path: Path) -> None:
    for n in range(ROUNDS):
        home = tmp_path / f"h{n}"
        home.mkdir()
        results = _race(_signing_key, home)
        assert [r for r in results if r[0] == "error"] == []
        key_ids = {value.split()[0] for _, value in results}
        generated = [value for _, value in results if value.endswith(" True")]
        assert len(key_ids) == 1 and len(generated) == 1
        assert len(list(home.iterdir())) == 1


def test_write_once_keeps_the_first_file(tmp_path: Path) -> None:
    path = tmp_path / "k"
    assert write_once(path, b"first") is True
    assert write_once(path, b"second") is False
    assert path.read_bytes() == b"first"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]
