"""Configuration of the HTTP connector (a JSON API polled as a source, or posted to as a sink)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator

from connectors.config import ConnectorConfig, Mode, Strict, TableConfig, secret_reference


class HttpConnection(Strict):
    """The API's base URL, headers, bearer token (a reference), timeouts and retries."""

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
        return value.rstrip("/")

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        return secret_reference(value, is_url=False)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name.lower() in ("authorization", "x-api-key", "cookie") and "${" not in text:
                raise ValueError(f"header {name}: a literal secret; write it as ${{ENV_VAR}}")
        return value


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

    @property
    def effective_mode(self) -> str:
        return self.mode or ("incremental" if self.cursor else "snapshot")


class HttpConnectorConfig(ConnectorConfig):
    connection: HttpConnection
    tables: list[HttpTable] = Field(min_length=1)  # type: ignore[assignment]

    def problems(self) -> list[str]:
        out = super().problems()
        for i, t in enumerate(self.tables):
            where = f"tables[{i}]"
            if self.role == "source":
                if t.schema_file is None:
                    out.append(f"{where}.schema: required for a source (the record schema .avsc)")
                if t.mode == "incremental" and not t.cursor:
                    out.append(f"{where}.cursor: required when mode is incremental")
                if t.next_path and t.offset_param:
                    out.append(f"{where}.offset_param: use either next_path or offset_param")
            elif t.cursor or t.mode or t.deleted_flag:
                out.append(f"{where}: mode, cursor and deleted_flag are only for sources")
        return out
