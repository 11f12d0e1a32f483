"""Connector files: every error at once, secrets as references, types by entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bus.errors import ConfigurationError, LgspError, NotFoundError
from bus.units import load_hierarchy
from connectors import plugins
from connectors.base import Connector
from connectors.config import read_file
from connectors.errors import (
    ConnectorConfigError,
    FieldError,
    SecretReferenceError,
    UnknownConnectorTypeError,
)
from connectors.secrets import literal_secret_problem, mask, resolve

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "connectors"


def source(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "tan-dinh-dossiers",
        "type": "postgresql",
        "role": "source",
        "agency": "ubnd-phuong-tan-dinh",
        "unit": "26734",
        "connection": {"url": "postgresql+psycopg://app:${TANDINH_DB_PASSWORD}@db:5432/hoso"},
        "schedule": "*/5 * * * *",
        "tables": [
            {
                "table": "ho_so",
                "dataset": "tthc.dossier",
                "mode": "incremental",
                "cursor": "updated_at",
                "deleted_flag": "da_xoa",
            }
        ],
    }
    data.update(overrides)
    return data


def errors_of(data: dict[str, Any], **kwargs: Any) -> list[str]:
    with pytest.raises(ConnectorConfigError) as caught:
        plugins.validate(data, **kwargs)
    return caught.value.errors


def test_the_design_example_is_valid() -> None:
    config = plugins.validate(source(), hierarchy=load_hierarchy("hcmc-2024"))
    assert config.topics(load_hierarchy("hcmc-2024")) == {"ho_so": "lgsp.79.760.26734.tthc.dossier"}


def test_every_error_is_reported_at_once_naming_its_field() -> None:
    bad = source(
        name="Tan Dinh!",
        role="publisher",
        unit="phuong",
        schedule="every five minutes",
        tables=[
            {"table": "ho_so", "dataset": "Dossier", "mode": "sometimes", "curser": "x"},
            {"table": "", "dataset": "tthc.ok"},
        ],
    )
    errors = errors_of(bad)
    fields = [e.split(":")[0] for e in errors]
    for expected in (
        "name",
        "role",
        "unit",
        "schedule",
        "tables[0].dataset",
        "tables[0].mode",
        "tables[0].curser",
        "tables[1].table",
    ):
        assert expected in fields, (expected, errors)


def test_every_error_carries_its_field_and_message() -> None:
    """The pairs are built where a problem is found (validation, cross-field, hierarchy,
    unknown type), never parsed back from text."""
    hierarchy = load_hierarchy("hcmc-2024")
    tables = [{"table": "a", "dataset": "tthc.one", "mode": "incremental"}]
    errors = errors_of(source(type="nosuch", unit="99999", tables=tables), hierarchy=hierarchy)
    assert all(isinstance(e, FieldError) for e in errors)
    pairs = {(e.field, e.message.split(";")[0]) for e in errors}
    assert ("type", "unknown connector type 'nosuch'") in pairs, pairs
    errors = errors_of(source(unit="99999", tables=tables), hierarchy=hierarchy)
    assert [e.field for e in errors] == ["tables[0].cursor", "unit"]
    errors = errors_of(source(tables=tables))
    assert [(e.field, e.message) for e in errors] == [
        ("tables[0].cursor", "required when mode is incremental")
    ]
    assert errors[0] == "tables[0].cursor: required when mode is incremental"  # as text
    nested = FieldError("key", "no such column").within("tables[2]", "ho_so")
    assert (nested.field, nested.message) == ("tables[2].key", "(ho_so) no such column")


def test_field_errors_survive_pickling_and_a_plugins_plain_text_names_no_field() -> None:
    import pickle

    error = ConnectorConfigError([FieldError("role", "bad"), "legacy text"], name="c")
    again = pickle.loads(pickle.dumps(error))
    assert [(e.field, e.message) for e in again.errors] == [("role", "bad"), ("", "legacy text")]
    assert str(again) == str(error) == "connector 'c': 2 invalid fields: role: bad; legacy text"


def test_cross_field_problems_are_reported_together() -> None:
    tables = [
        {"table": "a", "dataset": "tthc.one", "mode": "incremental"},
        {"table": "a", "dataset": "tthc.one"},
    ]
    errors = errors_of(source(tables=tables))
    assert any(e.startswith("tables[0].cursor: required") for e in errors)
    assert any(e.startswith("tables[1].table") and "twice" in e for e in errors)
    assert any(e.startswith("tables[1].dataset") for e in errors)


def test_sink_only_and_source_only_keys() -> None:
    sink = source(role="sink")
    errors = errors_of(sink)
    assert any(e.startswith("tables[0].cursor: only for sources") for e in errors)
    errors = errors_of(source(tables=[{"table": "t", "dataset": "a.b", "on_delete": "mark"}]))
    assert errors == ["tables[0].on_delete: only for sinks"]


def test_unit_and_dataset_checked_against_the_hierarchy() -> None:
    hierarchy = load_hierarchy("hcmc-2024")
    errors = errors_of(source(unit="99999"), hierarchy=hierarchy)
    assert len(errors) == 1 and errors[0].startswith("unit:") and "99999" in errors[0]


def test_unknown_type_lists_the_known_ones_beside_other_errors() -> None:
    with pytest.raises(ConnectorConfigError) as caught:
        plugins.validate(source(type="oracle", agency=""))
    text = str(caught.value)
    assert "unknown connector type 'oracle'" in text
    for known in ("http", "mariadb", "mysql", "postgresql", "sqlite"):
        assert known in text
    assert any(e.startswith("agency") for e in caught.value.errors)


def test_connector_class_lookup() -> None:
    assert set(plugins.known_types()) >= {"postgresql", "mysql", "mariadb", "sqlite", "http"}
    for name in plugins.known_types():
        cls = plugins.connector_class(name)
        assert issubclass(cls, Connector)
        assert cls.can_source
    assert plugins.connector_class("mariadb") is plugins.connector_class("mysql")
    with pytest.raises(UnknownConnectorTypeError) as caught:
        plugins.connector_class("oracle")
    assert isinstance(caught.value, NotFoundError)
    assert caught.value.known == plugins.known_types()


def test_literal_passwords_are_refused_and_never_echoed() -> None:
    errors = errors_of(source(connection={"url": "postgresql://app:S3cret!@db/hoso"}))
    assert errors[0].startswith("connection.url: ")
    assert "S3cret" not in " ".join(errors)
    assert literal_secret_problem("postgresql://app@db/x", is_url=True) is None
    assert literal_secret_problem("postgresql://app:${PW}@db/x", is_url=True) is None
    assert literal_secret_problem("file:/run/secrets/url", is_url=True) is None
    assert literal_secret_problem("abc", is_url=False) is not None


def test_secret_references_resolve_at_use(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LGSP_TEST_PW", "pa ss")
    assert resolve("postgresql://app:${LGSP_TEST_PW}@db/x", "f") == "postgresql://app:pa ss@db/x"
    secret = tmp_path / "url"
    secret.write_text("sqlite:///x.db\n", encoding="utf-8")
    assert resolve(f"file:{secret}", "f") == "sqlite:///x.db"
    monkeypatch.delenv("LGSP_TEST_PW")
    with pytest.raises(SecretReferenceError, match="connection.url: environment variable"):
        resolve("postgresql://app:${LGSP_TEST_PW}@db/x", "connection.url")
    with pytest.raises(SecretReferenceError, match="cannot be read"):
        resolve(f"file:{tmp_path / 'missing'}", "connection.url")


def test_stored_form_keeps_references_and_shown_form_masks() -> None:
    config = plugins.validate(source())
    stored = config.stored()
    assert stored["connection"]["url"] == (
        "postgresql+psycopg://app:${TANDINH_DB_PASSWORD}@db:5432/hoso"
    )
    assert config.masked()["connection"]["url"] == "postgresql+psycopg://app:***@db:5432/hoso"
    assert "TANDINH" not in repr(config)  # SecretStr hides it
    assert mask("https://x.example/api", is_url=True) == "https://x.example/api"
    assert mask("${TOKEN}", is_url=False) == "***"
    # the stored form validates again to the same config
    assert plugins.validate(stored) == config


def test_errors_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        plugins.validate(source(name=""))
    assert issubclass(ConnectorConfigError, LgspError)


def test_bad_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match="not valid YAML at line"):
        read_file(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConnectorConfigError, match="expected a mapping"):
        read_file(listing)
    with pytest.raises(ConnectorConfigError, match="cannot read"):
        read_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_files_are_valid(path: Path) -> None:
    data = plugins.normalize(read_file(path), path.parent)
    config = plugins.validate(data, hierarchy=load_hierarchy("hcmc-2024"))
    assert config.name == data["name"]
    assert config.topics(load_hierarchy("hcmc-2024"))


def test_examples_cover_each_kind() -> None:
    kinds = {(read_file(p)["type"], read_file(p)["role"]) for p in EXAMPLES.glob("*.yaml")}
    assert {("postgresql", "source"), ("mariadb", "source"), ("sqlite", "source")} <= kinds
    assert {("postgresql", "sink"), ("http", "source"), ("http", "sink")} <= kinds


def test_sqlite_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    data = {"type": "sqlite", "connection": {"url": "sqlite:///data/x.db"}}
    out = plugins.normalize(data, tmp_path)
    assert out["connection"]["url"] == f"sqlite:///{tmp_path / 'data' / 'x.db'}"
    absolute = {"type": "sqlite", "connection": {"url": "sqlite:////abs/x.db"}}
    assert plugins.normalize(absolute, tmp_path) == absolute


def test_error_classes_by_recovery_and_picklable() -> None:
    import pickle

    from bus.errors import DatabaseUnavailableError, FatalError, RetriableError, SkippableError
    from connectors import errors as e

    assert issubclass(e.ConnectorConfigError, ConfigurationError)
    assert issubclass(e.TableNotFoundError, NotFoundError)
    assert issubclass(e.AuthenticationError, ConfigurationError)
    assert issubclass(e.ConnectorUnavailableError, DatabaseUnavailableError)
    assert issubclass(e.EndpointUnavailableError, RetriableError)
    assert issubclass(e.RowRejectedError, SkippableError)
    assert issubclass(e.TableStoppedError, FatalError)
    samples = [
        e.ConnectorConfigError(["a: b"], name="x", causes=[e.TableNotFoundError("t")]),
        e.UnknownConnectorTypeError("oracle", ["sqlite"]),
        e.HttpClientError("url: 400", 400),
        e.TableStoppedError("t", "why"),
    ]
    for error in samples:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:S3cret/x@db/hoso",
        "postgresql://app:S3cret#x@db/hoso",
        "postgresql://app:S3cret?x@db/hoso",
        "postgresql://app:S3cret@x@db/hoso",
        "postgresql://app@db/hoso?sslmode=require&password=S3cret",
        "postgresql://app@db/hoso?sslpassword=S3cret",
        "mysql+pymysql://app@db/hoso?passwd=S3cret",
        "postgresql://app@db:${PORT}/hoso?token=S3cret",
    ],
)
def test_literal_secrets_anywhere_in_a_database_url_are_refused(url: str) -> None:
    errors = errors_of(source(connection={"url": url}))
    assert len(errors) == 1 and errors[0].startswith("connection.url: ")
    assert "S3cret" not in errors[0]


def test_database_url_references_are_accepted_and_masked() -> None:
    url = "postgresql://app:${PW}@db:${PORT}/hoso?sslmode=require&password=${PW2}"
    config = plugins.validate(source(connection={"url": url}))
    assert config.stored()["connection"]["url"] == url
    shown = config.masked()["connection"]["url"]
    assert shown == "postgresql://app:***@db:${PORT}/hoso?sslmode=require&password=***"
    # a stored form written before the checks got stricter is still masked whole
    assert mask("postgresql://u:p/q#r?s@db/x", is_url=True) == "postgresql://u:***@db/x"
    assert mask("postgresql://u:p@q@db/x", is_url=True) == "postgresql://u:***@db/x"
    assert mask("postgresql://db/x?token=abc&a=1", is_url=True) == "postgresql://db/x?token=***&a=1"


def http(connection: dict[str, Any], **table: Any) -> dict[str, Any]:
    return {
        "name": "api",
        "type": "http",
        "role": "source",
        "agency": "ubnd-phuong-ben-nghe",
        "unit": "26740",
        "connection": connection,
        "tables": [{"table": "r", "dataset": "phananh.report", "schema": "r.avsc", **table}],
    }


@pytest.mark.parametrize(
    ("connection", "table", "field"),
    [
        ({"url": "https://app:S3cret@api.example/v1"}, {}, "connection.url"),
        ({"url": "https://app:S3/cret@api.example/v1"}, {}, "connection.url"),
        ({"url": "https://api.example/v1?api_key=S3cret"}, {}, "connection.url"),
        ({"url": "${BASE}/v1?access_token=S3cret"}, {}, "connection.url"),
        ({"url": "https://x.example", "headers": {"X-Auth-Token": "S3cret"}}, {}, "headers"),
        ({"url": "https://x.example", "headers": {"Private-Key": "S3cret"}}, {}, "headers"),
        ({"url": "https://x.example", "headers": {"Authorization": "Basic S3cret"}}, {}, "headers"),
        ({"url": "https://x.example", "headers": {"Proxy-Authorization": "S3cret"}}, {}, "headers"),
        ({"url": "https://x.example"}, {"params": {"apikey": "S3cret"}}, "params"),
        ({"url": "https://x.example"}, {"params": {"signature": "S3cret"}}, "params"),
    ],
)
def test_literal_secrets_of_an_http_connector_are_refused(
    connection: dict[str, Any], table: dict[str, Any], field: str
) -> None:
    errors = errors_of(http(connection, **table))
    assert len(errors) == 1 and field in errors[0].split(":")[0], errors
    assert "S3cret" not in errors[0]


def test_http_references_are_accepted_and_masked() -> None:
    config = plugins.validate(
        http(
            {
                "url": "https://app:${API_PW}@api.example/v1?token=${API_TOKEN}&lang=vi",
                "headers": {
                    "Authorization": "Bearer ${API_TOKEN}",
                    "X-Api-Key": "file:/run/secrets/key",
                    "Accept-Language": "vi",
                },
            },
            params={"api_key": "${API_KEY}", "status": "open"},
        )
    )
    shown = config.masked()
    assert shown["connection"]["url"] == "https://app:***@api.example/v1?token=***&lang=vi"
    assert shown["connection"]["headers"] == {
        "Authorization": "***",
        "X-Api-Key": "***",
        "Accept-Language": "vi",
    }
    assert shown["tables"][0]["params"] == {"api_key": "***", "status": "open"}
    assert "${" in str(config.stored())  # the stored form keeps the references


def test_a_unit_code_written_as_a_number() -> None:
    from bus.units.hierarchy import Hierarchy, Unit

    hcmc = load_hierarchy("hcmc-2024")
    config = plugins.validate(source(unit=26734), hierarchy=hcmc)
    assert config.unit == "26734"  # the one code of that value
    errors = errors_of(source(unit=26734))  # no hierarchy to look it up in
    assert errors[0].startswith("unit: a unit code is text: quote it in YAML")
    hanoi = Hierarchy(
        "hanoi",
        ["city", "district", "ward"],
        [
            Unit("01", "Hà Nội", "city", None),
            Unit("001", "Ba Đình", "district", "01"),
            Unit("00004", "Trúc Bạch", "ward", "001"),
        ],
    )
    # 4 stands for one code only: the leading zeros come back
    assert plugins.validate(source(unit=4), hierarchy=hanoi).unit == "00004"
    # 1 matches both "01" and "001": refused, the quoted code is needed
    errors = errors_of(source(unit=1), hierarchy=hanoi)
    assert errors[0].startswith("unit: a unit code is text")
    assert plugins.validate(source(unit="01"), hierarchy=hanoi).unit == "01"


def test_mode_log_is_for_postgresql_and_mysql_sources_without_a_cursor() -> None:
    logged = [{"table": "ho_so", "dataset": "tthc.dossier", "mode": "log"}]
    assert plugins.validate(source(tables=logged)).tables[0].effective_mode == "log"
    mysql = source(type="mysql", connection={"url": "mysql+pymysql://root@db/hoso"}, tables=logged)
    assert plugins.validate(mysql).tables[0].effective_mode == "log"
    errors = errors_of(
        source(type="sqlite", connection={"url": "sqlite:////tmp/hoso.db"}, tables=logged)
    )
    assert any(
        e.startswith("tables[0].mode: 'log' is available for postgresql and mysql connectors")
        for e in errors
    ), errors
    with_cursor = [{**logged[0], "cursor": "updated_at"}]
    assert errors_of(source(tables=with_cursor)) == [
        "tables[0].cursor: not used with mode log (the log orders changes)"
    ]
    # each names its field (the API answers {field, message}), like the checks beside them
    [error] = errors_of(source(tables=with_cursor))
    assert (error.field, error.message) == (
        "tables[0].cursor",
        "not used with mode log (the log orders changes)",
    )
    elsewhere = errors_of(
        source(type="sqlite", connection={"url": "sqlite:///hoso.db"}, tables=logged)
    )
    assert [e.field for e in elsewhere] == ["tables[0].mode"], elsewhere
