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
