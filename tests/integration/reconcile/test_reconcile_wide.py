"""A wide table (more parts than one SQL concatenation group) hashes alike on every dialect."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bus.reconcile import Endpoint, Options, reconcile
from tests.integration.reconcile.conftest import Db

pytestmark = pytest.mark.integration

COLUMNS = 60  # 1 key + 60 columns + separators: 121 parts, more than one group of 90
ROWS = 40


def _create(db: Db, name: str) -> str:
    cols = ", ".join(f"c{i:02d} {'BIGINT' if i % 2 else 'VARCHAR(20)'}" for i in range(COLUMNS))
    db.execute(f"CREATE TABLE {name} (id BIGINT PRIMARY KEY, {cols})")
    db.made.append(name)
    rows = []
    for r in range(1, ROWS + 1):
        row: dict[str, object] = {"id": r}
        for i in range(COLUMNS):
            if (r + i) % 7 == 0:
                row[f"c{i:02d}"] = None
            elif i % 2:
                row[f"c{i:02d}"] = r * 1000 + i
            else:
                row[f"c{i:02d}"] = "" if (r + i) % 5 == 0 else f"Hồ sơ {r}-{i}"
        rows.append(row)
    db.insert(name, rows)
    return name


@pytest.mark.parametrize(
    ("a", "b"), [("postgresql", "sqlite"), ("postgresql", "mysql"), ("mysql", "sqlite")]
)
def test_wide_table_hashes_alike(dbs: Callable[[str], Db], unique: str, a: str, b: str) -> None:
    src, tgt = dbs(a), dbs(b)
    s_name = _create(src, f"rc_wide_s_{unique}")
    t_name = _create(tgt, f"rc_wide_t_{unique}")
    opts = Options(recheck_delay=0.0, hash="portable")
    same = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), opts)
    assert same.differences == 0
    assert same.stats.rows_fetched == 0  # every segment checksum agreed in SQL
    tgt.update(t_name, {"id": 3}, c01=None)
    tgt.update(t_name, {"id": 9}, c58="")
    changed = reconcile(Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), opts)
    assert {int(d.key["id"]): d.columns for d in changed.different} == {
        3: ["c01"],
        9: ["c58"],
    }
