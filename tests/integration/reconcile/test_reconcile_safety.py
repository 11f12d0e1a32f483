"""What reconciliation must never do: quote row values in errors, break on odd identifiers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bus.errors import FatalError
from bus.reconcile.core import Endpoint, Options, reconcile
from tests.integration.reconcile.conftest import Db, dossier

pytestmark = pytest.mark.integration


def test_query_errors_name_the_code_not_the_value(dbs: Callable[[str], Db], unique: str) -> None:
    """PostgreSQL's message quotes the bad value; the error names the class and SQLSTATE."""
    db = dbs("postgresql")
    name = db.create(f"rc_err_{unique}")
    db.insert(name, [dossier(i) for i in range(1, 4)])
    source = Endpoint(db.url, name, where={"id": "Nguyễn Văn A"})
    with pytest.raises(FatalError) as caught:
        reconcile(source, Endpoint(db.url, name), Options(recheck=False))
    text = str(caught.value)
    assert "Nguyễn" not in text
    assert f"source table {name}:" in text
    assert "(key bounds; InvalidTextRepresentation, SQLSTATE 22P02)" in text


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("sqlite", "sqlite2"),
        ("postgresql", "postgresql"),
        ("sqlite", "postgresql"),
        ("mysql", "postgresql"),
    ],
)
@pytest.mark.parametrize("key_type", ["int", "text"])
def test_hostile_identifiers_are_quoted(
    dbs: Callable[[str], Db], unique: str, a: str, b: str, key_type: str
) -> None:
    """A table and columns named with quotes, semicolons and Vietnamese letters."""
    table = f'ho "so"; x {unique}'
    key, text, unit = 'mã "hồ sơ"; --', "tên;cột", 'đơn "vị"'
    made: list[tuple[Db, str]] = []

    def create(db: Db, name: str) -> str:
        q = db.engine.dialect.identifier_preparer.quote
        key_sql = "BIGINT" if key_type == "int" else "VARCHAR(20)"
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE {q(name)} ({q(key)} {key_sql} PRIMARY KEY, {q(text)} TEXT, "
                f"{q(unit)} VARCHAR(10))"
                + (" CHARACTER SET utf8mb4" if db.dialect == "mysql" else "")
            )
        made.append((db, name))
        return name

    def rows(n: int) -> list[dict[str, object]]:
        return [
            {key: i if key_type == "int" else f"k'{i}\"", text: f"Hồ sơ {i}; DROP", unit: "26734"}
            for i in range(1, n + 1)
        ]

    src, tgt = dbs(a), dbs(b)
    s_name = create(src, table)
    t_name = create(tgt, table + " copy" if src is tgt else table)
    try:
        for db, name in ((src, s_name), (tgt, t_name)):
            db.insert(name, rows(60))
            db.insert(
                name, [{key: 1000 if key_type == "int" else "k'1000\"", text: "x", unit: "1"}]
            )
        k = (lambda i: i) if key_type == "int" else (lambda i: f"k'{i}\"")
        tgt.delete(t_name, {key: k(3)})
        tgt.update(t_name, {key: k(4)}, **{text: "khác"})
        opts = Options(recheck=False, leaf_rows=2, segment_rows=4, hash="portable")
        report = reconcile(
            Endpoint(src.url, s_name, where={unit: "26734"}),
            Endpoint(tgt.url, t_name, where={unit: "26734"}),
            opts,
        )
        assert report.counts == {"missing": 1, "extra": 0, "different": 1}, report.to_dict()
        assert report.source.rows == 60 and report.target.rows == 59
        assert report.different[0].columns == [text]
        assert report.missing[0].key == {key: str(k(3))}
        if src.dialect == tgt.dialect == "postgresql":
            native = reconcile(
                Endpoint(src.url, s_name), Endpoint(tgt.url, t_name), Options(recheck=False)
            )
            assert native.stats.hash == "native-record"
            assert native.counts == {"missing": 1, "extra": 0, "different": 1}
    finally:
        for db, name in made:
            q = db.engine.dialect.identifier_preparer.quote
            with db.engine.begin() as conn:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(name)}")
