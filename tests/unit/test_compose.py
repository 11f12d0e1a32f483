"""The production stack files: docker-compose.yml, Dockerfile, .env.example, deploy/.

No Docker engine is needed: the compose file is checked against the Compose specification
(the validator `make lint` runs) and against the settings model of the bus.
"""

from __future__ import annotations

import os
import re
import subprocess
import types
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from bus.config import PROJECT_ROOT, Settings

ROOT = PROJECT_ROOT
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
VALIDATOR = ROOT / "scripts" / "validate_compose.sh"
DOCS = ROOT / "docs" / "production.md"

#: LGSP_* variables read outside the settings model, with the module that reads them.
READ_OUTSIDE_MODEL = {
    "LGSP_CONFIG": ROOT / "bus" / "config.py",
    "LGSP_SIGNING_KEY": ROOT / "bus" / "archive" / "signing.py",
}

STATEFUL = ("kafka-1", "kafka-2", "kafka-3", "postgres", "redis")
AIRFLOW_COMMANDS = {
    "airflow-api-server": ["api-server"],
    "airflow-scheduler": ["scheduler"],
    "airflow-dag-processor": ["dag-processor"],
    "airflow-triggerer": ["triggerer"],
    "airflow-worker": ["celery", "worker"],
}

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}")


# --- helpers ---------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-style ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``; ``$$`` stays ``$``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name)
        unset = value is None or (op is not None and op.startswith(":") and value == "")
        if op and op.endswith("?") and unset:
            raise KeyError(f"{name}: {arg}")
        if op and op.endswith("-") and unset:
            return interpolate(arg, env)
        return value or ""

    return _VAR.sub(one, text.replace("$$", "\0")).replace("\0", "$")


def _resolved(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, dict):
        return {k: _resolved(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v, env) for v in value]
    return value


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def _is_mapping(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_mapping(arg) for arg in typing.get_args(annotation))
    return origin is dict or annotation is dict


def settings_field_for(variable: str) -> str | None:
    """The dotted settings field an ``LGSP_*`` variable sets, or None if it sets nothing."""
    if not variable.startswith("LGSP_"):
        return None
    parts = variable[len("LGSP_") :].lower().split("__")
    model: type[BaseModel] = Settings
    path: list[str] = []
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return None
        path.append(part)
        rest = parts[index + 1 :]
        if not rest:
            return ".".join(path)
        nested = _model_of(field.annotation)
        if nested is not None:
            model = nested
            continue
        if _is_mapping(field.annotation) and len(rest) == 1:
            return ".".join([*path, rest[0]])
        return None
    return None


def _lgsp_names(text: str) -> set[str]:
    return set(re.findall(r"\bLGSP_[A-Z0-9_]*[A-Z0-9]\b", text))


# --- the validator ---------------------------------------------------------------------------


def test_compose_file_validates_against_the_compose_specification() -> None:
    proc = subprocess.run(
        ["bash", str(VALIDATOR)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok" in proc.stdout


def test_validator_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(
        "services:\n  bus:\n    image: lgsp-bus:0.1.0\n    healthcheck:\n      interval: 5\n"
        "volumes_typo:\n  data:\n",
        encoding="utf-8",
    )
    proc = subprocess.run(
        ["bash", str(VALIDATOR), str(broken)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "interval" in proc.stdout + proc.stderr


# --- settings names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "field"),
    [
        ("LGSP_KAFKA_BOOTSTRAP", "kafka_bootstrap"),
        ("LGSP_KAFKA__SASL_PASSWORD", "kafka.sasl_password"),
        ("LGSP_TOPICS__MIN_INSYNC_REPLICAS", "topics.min_insync_replicas"),
        ("LGSP_TOPICS__PER_DATASET_PARTITIONS", "topics.per_dataset_partitions"),
        ("LGSP_DATABASE_URL", "database_url"),
        ("LGSP_KAFKA__SASL_PASSWD", None),
        ("LGSP_KAFKA_SASL_PASSWORD", None),
        ("LGSP_HOME__X", None),
        ("LGSP_DB_PASSWORD", None),
    ],
)
def test_settings_field_lookup(variable: str, field: str | None) -> None:
    assert settings_field_for(variable) == field


def test_every_lgsp_variable_of_the_stack_is_a_setting() -> None:
    sources = {
        COMPOSE: COMPOSE.read_text(encoding="utf-8"),
        ENV_EXAMPLE: ENV_EXAMPLE.read_text(encoding="utf-8"),
        DOCKERFILE: DOCKERFILE.read_text(encoding="utf-8"),
    }
    if DOCS.is_file():
        sources[DOCS] = DOCS.read_text(encoding="utf-8")
    for name, reader in READ_OUTSIDE_MODEL.items():
        assert name in reader.read_text(encoding="utf-8"), f"{name} is no longer read"
    unknown = {
        f"{path.name}: {name}"
        for path, text in sources.items()
        for name in _lgsp_names(text)
        if name not in READ_OUTSIDE_MODEL and settings_field_for(name) is None
    }
    assert not unknown, f"not settings of bus.config.Settings: {sorted(unknown)}"
    set_in_compose = {name for svc in _compose()["services"].values() for name in _environment(svc)}
    assert {"LGSP_KAFKA_BOOTSTRAP", "LGSP_DATABASE_URL", "LGSP_KAFKA__SASL_PASSWORD"} <= (
        set_in_compose
    )


def test_the_stack_environment_makes_valid_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the bus containers get (with .env.example's values) passes the settings model."""
    env = _env_example()
    services = _compose()["services"]
    for name in ("lgsp-archiver", "airflow-worker"):
        container_env = _resolved(_environment(services[name]), env)
        for key in [k for k in os.environ if k.startswith("LGSP_")]:
            monkeypatch.delenv(key)
        for key, value in container_env.items():
            if key.startswith("LGSP_"):
                monkeypatch.setenv(key, value)
        monkeypatch.setenv("LGSP_CONFIG", str(ROOT / "deploy" / "lgsp.toml"))
        monkeypatch.chdir(tmp_path)
        settings = Settings()
        assert settings.kafka_bootstrap == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert settings.kafka.security_protocol == "SASL_PLAINTEXT"
        assert settings.kafka.sasl_mechanism == "SCRAM-SHA-512"
        assert settings.kafka.sasl_password is not None
        assert settings.topics.replication_factor == 3
        assert settings.topics.min_insync_replicas == 2
        assert settings.topics.per_dataset_retention_ms.get("dancu.resident") == -1
        assert settings.control_database_url.startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in settings.control_database_url
        assert settings.kafka.sasl_password.get_secret_value() not in str(settings.masked())


def test_env_example_fills_every_required_variable() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    required = {m.group(1) for m in _VAR.finditer(text) if (m.group(2) or "").endswith("?")}
    env = _env_example()
    missing = sorted(name for name in required if not env.get(name))
    assert not missing, f".env.example lacks {missing}"
    _resolved(_compose(), env)  # raises KeyError if anything required is still unset


# --- images, health, volumes, restarts -------------------------------------------------------


def _image_ref_ok(ref: str) -> bool:
    name, _, tag = ref.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def test_every_image_is_pinned() -> None:
    env = _env_example()
    for name, svc in _compose()["services"].items():
        assert "image" in svc, f"{name}: no image"
        image = interpolate(svc["image"], env)
        assert _image_ref_ok(image), f"{name}: image {image} is not pinned"
        if "build" in svc:
            assert svc["build"]["context"] == "."
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", dockerfile, flags=re.MULTILINE))
    stages = re.findall(r"^FROM (\S+) AS (\w+)$", dockerfile, flags=re.MULTILINE)
    assert {stage for _, stage in stages} == {"bus", "airflow"}
    for ref, _ in stages:
        ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], ref)
        assert _image_ref_ok(ref), f"Dockerfile: {ref} is not pinned"
    assert any(ref.startswith("apache/airflow:3.") for ref in args.values())
    assert any(ref.startswith("python:3.11") for ref in args.values())


def test_stateful_services_have_healthchecks_volumes_and_restart() -> None:
    services = _compose()["services"]
    named = set(_compose()["volumes"])
    for name in STATEFUL:
        svc = services[name]
        assert svc["healthcheck"]["test"], f"{name}: no healthcheck"
        assert svc["restart"] == "unless-stopped", name
        sources = {str(v).split(":", 1)[0] for v in svc["volumes"]}
        assert sources & named, f"{name}: no named volume"
    for name, svc in services.items():
        if "profiles" in svc:
            continue
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), name
        one_shot = svc.get("restart") == "on-failure"
        if not one_shot:
            check = svc.get("healthcheck", {})
            assert check.get("test") and not check.get("disable"), f"{name}: no healthcheck"


def test_three_kraft_brokers_with_a_scram_listener_and_safe_defaults() -> None:
    services = _compose()["services"]
    env = _env_example()
    ids, voters = set(), set()
    for name in ("kafka-1", "kafka-2", "kafka-3"):
        svc = services[name]
        assert svc["image"].startswith("apache/kafka:")
        kenv = _resolved(_environment(svc), env)
        ids.add(kenv["KAFKA_NODE_ID"])
        voters.add(kenv["KAFKA_CONTROLLER_QUORUM_VOTERS"])
        assert "controller" in kenv["KAFKA_PROCESS_ROLES"]
        protocols = dict(
            p.split(":") for p in kenv["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
        )
        assert protocols["CLIENT"] == "SASL_PLAINTEXT"
        assert "SCRAM-SHA-512" in kenv["KAFKA_SASL_ENABLED_MECHANISMS"]
        assert kenv["KAFKA_INTER_BROKER_LISTENER_NAME"] in protocols
        assert f"CLIENT://{name}:9092" in kenv["KAFKA_ADVERTISED_LISTENERS"]
        assert kenv["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert kenv["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert kenv["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
        assert kenv["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
        assert kenv["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert "java.security.auth.login.config" in kenv["KAFKA_OPTS"]
        published = [str(p) for p in svc.get("ports", [])]
        assert all(p.endswith(":9094") for p in published), f"{name}: only EXTERNAL is published"
    assert ids == {"1", "2", "3"}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    jaas = (ROOT / "deploy" / "kafka" / "kafka_server_jaas.conf").read_text(encoding="utf-8")
    assert "ScramLoginModule" in jaas
    init = services["kafka-init"]
    assert init["depends_on"]["kafka-1"]["condition"] == "service_healthy"
    script = (ROOT / "deploy" / "kafka" / "create-scram-users.sh").read_text(encoding="utf-8")
    assert "SCRAM-SHA-512=[iterations=" in script


def test_airflow_3_with_celery_workers_and_the_bus_services() -> None:
    services = _compose()["services"]
    for name, command in AIRFLOW_COMMANDS.items():
        svc = services[name]
        assert svc["command"] == command
        assert svc["image"].startswith("lgsp-airflow:")
        aenv = _resolved(_environment(svc), _env_example())
        assert aenv["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert "redis" in aenv["AIRFLOW__CELERY__BROKER_URL"]
        assert "/airflow" in aenv["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert svc["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["redis"]["image"].startswith("redis:")
    assert services["lgsp-archiver"]["command"][:3] == ["archive", "run", "--follow"]
    assert services["lgsp-router"]["command"] == [
        "route",
        "run",
        "all",
        "--level",
        "all",
        "--follow",
    ]
    for name in ("lgsp-archiver", "lgsp-router"):
        deps = services[name]["depends_on"]
        assert deps["lgsp-migrate"]["condition"] == "service_completed_successfully"
        assert deps["kafka-init"]["condition"] == "service_completed_successfully"


def test_postgres_gets_two_databases_from_the_init_script() -> None:
    svc = _compose()["services"]["postgres"]
    assert svc["image"].startswith("postgres:")
    mounts = [str(v) for v in svc["volumes"]]
    assert any(
        m.startswith("./deploy/postgres/init-databases.sh:/docker-entrypoint-initdb.d/")
        for m in mounts
    )
    penv = _environment(svc)
    assert {"CONTROL_DB_NAME", "AIRFLOW_DB_NAME", "CONTROL_DB_PASSWORD"} <= set(penv)


def test_secrets_stay_out_of_the_compose_file_and_the_images() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    for line in text.splitlines():
        if re.search(r"(PASSWORD|SECRET|FERNET|PII_KEY)\w*:\s*\S", line):
            assert "${" in line, f"literal secret in docker-compose.yml: {line.strip()}"
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".env" in ignored and ".git" in ignored
    env = _env_example()
    for key, value in env.items():
        if re.search(r"PASSWORD|SECRET|FERNET|PII_KEY", key):
            assert value.startswith("change-me"), f".env.example: {key} must be a placeholder"


# --- deploy/ scripts -------------------------------------------------------------------------


def test_make_env_fills_every_secret(tmp_path: Path) -> None:
    target = tmp_path / "env"
    script = ROOT / "deploy" / "make-env.sh"
    proc = subprocess.run(["bash", str(script), str(target)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    made = {}
    for line in target.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            made[key] = value
    assert set(made) == set(_env_example())
    assert not [k for k, v in made.items() if "change-me" in v]
    assert len(made["KAFKA_CLUSTER_ID"]) == 22
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    again = subprocess.run(["bash", str(script), str(target)], capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr


def test_bus_service_commands_are_real_lgsp_commands() -> None:
    """Each lgsp service runs a command the CLI has, with options it accepts."""
    from click.testing import CliRunner

    from bus.cli.main import cli

    services = _compose()["services"]
    for name in ("lgsp-migrate", "lgsp-archiver", "lgsp-router"):
        command = [c for c in services[name]["command"] if not c.startswith("${")]
        args = [c for c in command if not c.startswith("$")]
        # drop option values that are interpolated at run time
        result = CliRunner().invoke(cli, [*args[:2], "--help"])
        assert result.exit_code == 0, (name, result.output)
        for option in (a for a in args if a.startswith("--")):
            assert option in result.output, (name, option)
