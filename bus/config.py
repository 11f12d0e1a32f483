"""The bus's settings: one pydantic-settings model read from ``lgsp.toml`` and ``LGSP_*``.

Precedence (highest first): keyword arguments, environment variables (``LGSP_KAFKA_BOOTSTRAP``,
nested with ``__`` as in ``LGSP_KAFKA__SASL_PASSWORD``), the TOML file (``LGSP_CONFIG`` or
``./lgsp.toml``), defaults. Secrets are ``SecretStr`` and never printed unmasked.
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bus.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

Hierarchy = Literal["hcmc-2024", "hcmc-2025"]
CompatibilityMode = Literal[  # bus.registry.compat.MODES is derived from this
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
]


class KafkaSettings(BaseModel):
    """Client settings used by every producer, consumer and admin call."""

    client_id: str = "lgsp-bus"
    request_timeout_ms: int = Field(15000, ge=1000)
    api_timeout_ms: int = Field(10000, ge=500)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    linger_ms: int = Field(5, ge=0)
    batch_size: int = Field(262144, ge=1024)

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile")
    @classmethod
    def _file_exists(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"file does not exist: {value}")
        return value


class TopicSettings(BaseModel):
    """How the bus creates topics (on Apache Kafka; the embedded broker ignores most)."""

    partitions: int = Field(3, ge=1)
    replication_factor: int = Field(1, ge=1)
    min_insync_replicas: int | None = Field(None, ge=1)
    retention_ms: int | None = None
    per_dataset_partitions: dict[str, int] = Field(default_factory=dict)
    per_dataset_retention_ms: dict[str, int] = Field(default_factory=dict)


class ApiSettings(BaseModel):
    """``lgsp serve``: the HTTP API."""

    host: str = "127.0.0.1"
    port: int = Field(8088, ge=1, le=65535)
    rate_per_minute: int = Field(600, ge=1, description="requests per minute per API key")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="larger request bodies get 413")
    key_days: int = Field(365, ge=1, description="default lifetime of an API key, in days")


class LookupSettings(BaseModel):
    """The once-only lookup: where each dataset's current-state store lives and how often its
    sink connector (``lookup-<dataset>``) runs."""

    url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the current-state stores; default the control database "
        "(a password as ${ENV}, as in a connector file)",
    )
    schedule: str | None = Field(
        "*/5 * * * *", description="cron of the store's Airflow DAG (None: no schedule)"
    )
    max_keys: int = Field(1000, ge=1, le=100_000, description="keys per batch lookup")


class Settings(BaseSettings):
    """Effective configuration of the bus."""

    model_config = SettingsConfigDict(
        env_prefix="LGSP_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(Path(".lgsp"), description="state folder (broker address, control DB)")
    kafka_bootstrap: str | None = Field(
        None, description="an external Kafka cluster; when unset the embedded broker is used"
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    lookup: LookupSettings = Field(default_factory=LookupSettings)
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL of the control database; default SQLite in home"
    )
    hierarchy: Hierarchy = Field(
        "hcmc-2024", description="administrative model: hcmc-2024 (3 levels) or hcmc-2025 (2)"
    )
    default_compatibility: CompatibilityMode = "BACKWARD"
    schemas_dir: Path = PROJECT_ROOT / "schemas"
    dags_dir: Path = PROJECT_ROOT / "dags"
    pii_key: SecretStr | None = Field(
        None, description="key of the deterministic PII tokens; default a file in home"
    )
    signing_key_file: Path | None = Field(
        None, description="Ed25519 private key (PEM) that signs archive checkpoints"
    )
    signing_command: str | None = Field(
        None,
        description="command that signs a checkpoint kept off this host (KMS, HSM, signing "
        "host): reads the message on stdin, prints the Ed25519 signature (base64, hex or raw)",
    )
    signing_public_key_file: Path | None = Field(
        None, description="public key (PEM) of signing_command's key; required with it"
    )
    checkpoint_export_file: Path | None = Field(
        None,
        description="append-only JSON-lines copy of every signed checkpoint; default "
        "archive-checkpoints.jsonl in home (ship it off the archive's host)",
    )
    principal: str = Field("lgsp-operator", description="who is acting, for the access log")
    batch_size: int = Field(500, ge=1, description="records per produce/consume batch")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_form(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for part in value.split(","):
            if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", part.strip()):
                raise ValueError(f"expected host:port[,host:port...], got {part.strip()!r}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("LGSP_CONFIG", "lgsp.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        sources.append(file_secret_settings)
        return tuple(sources)

    @property
    def control_database_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return _sqlite_url(os.getcwd(), self.home)

    def masked(self) -> dict[str, Any]:
        """The effective values with every secret (and URL password) masked."""
        data = self.model_dump(mode="json")
        data["database_url"] = mask_url(self.control_database_url)
        return data


@lru_cache(maxsize=64)
def _sqlite_url(cwd: str, home: Path) -> str:
    """The default control database's URL: resolving the path costs a system call per
    folder, and every control-database access asks for the URL (a lookup, four times)."""
    return f"sqlite:///{(Path(cwd) / home / 'control.db').resolve()}"


_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|passwd|pwd|token|secret|api_key)=)[^&]*")


def mask_url(url: str) -> str:
    """Hide the password of a URL such as ``postgresql://user:pw@host/db`` (also one that
    contains ``@`` or ``/``) and secret-looking query values."""
    masked = re.sub(r"(://[^:/@]+:).*@", r"\1***@", url, count=1)
    return _SECRET_QUERY.sub(r"\1***", masked)


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """Every problem of a pydantic error on one line each, naming the field, never the value."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{prefix}{loc}: {err['msg']}")
    return "; ".join(lines)


@lru_cache(maxsize=1)
def _cached() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigurationError("invalid configuration: " + format_validation_error(exc)) from exc
    except tomllib.TOMLDecodeError as exc:  # the file's syntax: its name, line and column
        path = os.environ.get("LGSP_CONFIG", "lgsp.toml")
        raise ConfigurationError(f"invalid configuration: {path}: not valid TOML: {exc}") from exc


def get_settings() -> Settings:
    """The process-wide settings (read once; ``reset_settings()`` after changing env)."""
    return _cached()


def reset_settings() -> None:
    _cached.cache_clear()
