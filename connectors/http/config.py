"""Configuration of the HTTP connector (a JSON API polled as a source, or posted to as a sink)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from connectors.config import ConnectorConfig, Mode, Strict, TableConfig, secret_reference
from connectors.errors import FieldError
from connectors.secrets import (
    MASK,
    header_problem,
    http_url_problem,
    is_secret_header,
    is_secret_param,
    mask_url,
    param_problem,
)


def _refuse_secrets(
    value: dict[str, str], problem: Callable[[str, str], str | None]
) -> dict[str, str]:
    """``value`` as it is, or every literal secret among its entries refused at once."""
    problems = [p for p in (problem(n, t) for n, t in value.items()) if p]
    if problems:
        raise ValueError("; ".join(problems))
    return value


class HttpConnection(Strict):
    """The API's base URL, headers, bearer token (a reference), timeouts and retries. A password
    or secret-looking query value in the URL, and a header whose name suggests a secret
    (``Authorization``, ``*token*``, ``*key*``, ``Cookie``...) must be references."""

    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    token: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=10)
    backoff_s: float = Field(0.5, ge=0, le=60)
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "${")):
            raise ValueError("expected an http:// or https:// URL")
        problem = http_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        return secret_reference(value, is_url=False)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        return _refuse_secrets(value, header_problem)


class HttpTable(TableConfig):
    """An endpoint (``path`` under the URL) and how to page through it."""

    path: str = ""
    schema_file: Path | None = Field(None, alias="schema")
    key: list[str] | None = Field(None, min_length=1)
    mode: Mode | None = None
    cursor: str | None = None
    cursor_param: str | None = None
    deleted_flag: str | None = None
    records_path: str | None = None
    next_path: str | None = None
    next_param: str | None = None
    offset_param: str | None = None
    page_size: int = Field(100, ge=1, le=10_000)
    page_size_param: str | None = "limit"
    params: dict[str, str] = Field(default_factory=dict)
    method: Literal["POST", "PUT"] = "POST"
    batch: bool = True

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, populate_by_name=True)

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, str]) -> dict[str, str]:
        return _refuse_secrets(value, param_problem)


class HttpConnectorConfig(ConnectorConfig):
    connection: HttpConnection
    tables: list[HttpTable] = Field(min_length=1)  # type: ignore[assignment]

    def masked(self) -> dict[str, Any]:
        """The shown form: the URL's password and secret query values, secret-looking headers
        and request parameters masked (even references: they name where secrets live)."""
        data = super().masked()
        connection = data.get("connection", {})
        if isinstance(connection.get("url"), str):
            connection["url"] = mask_url(connection["url"])
        headers = connection.get("headers") or {}
        for name in headers:
            if is_secret_header(name):
                headers[name] = MASK
        for table in data.get("tables", []):
            params = table.get("params") or {}
            for name in params:
                if is_secret_param(name):
                    params[name] = MASK
        return data

    def problems(self) -> list[FieldError]:
        out = super().problems()
        for i, t in enumerate(self.tables):
            where = f"tables[{i}]"
            if self.role == "source":
                if t.schema_file is None:
                    out.append(
                        FieldError(
                            f"{where}.schema", "required for a source (the record schema .avsc)"
                        )
                    )
                if t.mode == "incremental" and not t.cursor:
                    out.append(FieldError(f"{where}.cursor", "required when mode is incremental"))
                if t.next_path and t.offset_param:
                    out.append(
                        FieldError(f"{where}.offset_param", "use either next_path or offset_param")
                    )
            elif t.cursor or t.mode or t.deleted_flag:
                out.append(
                    FieldError(f"{where}", "mode, cursor and deleted_flag are only for sources")
                )
        return out
