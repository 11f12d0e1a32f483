"""The Confluent Schema Registry REST subset, on the bus's own registry (same ids, same
compatibility checker and subject rule as ``lgsp schema``): what Kafka tools and
confluent-kafka clients call.

Reads are open to every role; writes (register, config, delete) need the operator role.
Errors are the registry's own (``bus.registry.errors``), answered by the app's one error
handler with Confluent's codes: 40401 subject, 40402 version, 40403 schema not found, 42201
invalid schema, 42202 invalid version, 42203 invalid compatibility level, 42206 subject in use,
42208 invalid subject, 409 incompatible, 40405/40407 a permanent delete of what is not
soft-deleted.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bus.api.auth import allow, caller, context
from bus.catalog.api_keys import KeyInfo
from bus.context import Context
from bus.errors import SchemaError
from bus.registry import RegisteredSchema
from bus.registry.compat import check_compatibility, check_mode
from bus.registry.errors import InvalidCompatibilityError, InvalidVersionError, SubjectNotFoundError
from bus.registry.store import check_subject
from bus.registry.usage import delete_subject

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryJSON(JSONResponse):
    media_type = MEDIA_TYPE


def _registry_media(request: Request) -> None:
    request.scope["lgsp_media_type"] = MEDIA_TYPE


router = APIRouter(
    tags=["schema registry"],
    default_response_class=RegistryJSON,
    dependencies=[Depends(_registry_media), Depends(caller)],
)
write = allow("registry", "operator")


class SchemaBody(BaseModel):
    """A schema as Confluent clients post it; only Avro without references is accepted."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: str = Field(alias="schema", min_length=2)
    schemaType: str | None = None
    references: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    ruleSet: dict[str, Any] | None = None

    def parsed(self) -> dict[str, Any]:
        if (self.schemaType or "AVRO").upper() != "AVRO":
            raise SchemaError(f"schemaType: only AVRO is served, got {self.schemaType}")
        if self.references:
            raise SchemaError("references: schema references are not supported")
        try:
            schema = json.loads(self.schema_)
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema: not JSON ({exc.msg})") from exc
        if not isinstance(schema, dict):
            raise SchemaError("schema: expected an Avro record schema object")
        return schema


class ConfigBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    compatibility: str


def _number(version: str) -> int | None:
    """A version of the path: a number from 1, or None for ``latest`` (also ``-1``)."""
    if version in ("latest", "-1"):
        return None
    if not version.isdigit() or int(version) < 1:
        raise InvalidVersionError(
            f"version: expected 'latest' or a number from 1, got {version[:40]!r}"
        )
    return int(version)


def _versions(ctx: Context, subject: str) -> list[RegisteredSchema]:
    versions = ctx.registry.versions(subject)
    if not versions:
        raise SubjectNotFoundError(f"Subject '{subject}' not found.")
    return versions


def _version(ctx: Context, subject: str, version: str) -> RegisteredSchema:
    number = _number(version)
    return ctx.registry.get(subject, number)


def _full(item: RegisteredSchema) -> dict[str, Any]:
    return {
        "subject": item.subject,
        "version": item.version,
        "id": item.id,
        "schema": json.dumps(item.schema, ensure_ascii=False),
    }


@router.get("/subjects")
def subjects(ctx: Context = Depends(context)) -> list[str]:
    return [name for name, _, latest in ctx.registry.subjects() if latest > 0]


@router.get("/subjects/{subject}/versions")
def versions(subject: str, ctx: Context = Depends(context)) -> list[int]:
    return [v.version for v in _versions(ctx, subject)]


@router.get("/subjects/{subject}/versions/{version}")
def version(subject: str, version: str, ctx: Context = Depends(context)) -> dict[str, Any]:
    return _full(_version(ctx, subject, version))


@router.get("/subjects/{subject}/versions/{version}/schema")
def version_schema(subject: str, version: str, ctx: Context = Depends(context)) -> Any:
    return _version(ctx, subject, version).schema


@router.post("/subjects/{subject}/versions")
def register(
    subject: str, body: SchemaBody, ctx: Context = Depends(context), _: KeyInfo = Depends(write)
) -> dict[str, Any]:
    """Register a new version (or return the version already holding this schema); refused
    exactly as ``lgsp schema register`` refuses."""
    check_subject(subject)
    return _full(ctx.registry.register(subject, body.parsed()))


@router.post("/subjects/{subject}")
def lookup(subject: str, body: SchemaBody, ctx: Context = Depends(context)) -> dict[str, Any]:
    """The version of ``subject`` that holds the posted schema."""
    _versions(ctx, subject)
    return _full(ctx.registry.find(subject, body.parsed()))


@router.get("/schemas/ids/{schema_id}")
def schema_by_id(schema_id: int, ctx: Context = Depends(context)) -> dict[str, Any]:
    return {"schema": json.dumps(ctx.registry.schema_by_id(schema_id), ensure_ascii=False)}


@router.get("/schemas/ids/{schema_id}/schema")
def schema_by_id_raw(schema_id: int, ctx: Context = Depends(context)) -> Any:
    return ctx.registry.schema_by_id(schema_id)


@router.get("/schemas/ids/{schema_id}/versions")
def schema_uses(schema_id: int, ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    return [{"subject": s, "version": v} for s, v in ctx.registry.uses_of(schema_id)]


@router.post("/compatibility/subjects/{subject}/versions/{version}")
def compatibility(
    subject: str,
    version: str,
    body: SchemaBody,
    verbose: bool = Query(False),
    ctx: Context = Depends(context),
) -> dict[str, Any]:
    """Would the posted schema be accepted? ``latest`` decides as ``lgsp schema check`` does
    (the subject's mode over its history); a numbered version is checked against that one."""
    schema = body.parsed()
    target = _version(ctx, subject, version)
    if _number(version) is None:
        problems = ctx.registry.check(subject, schema)
    else:
        mode = ctx.registry.compatibility(subject).removesuffix("_TRANSITIVE")
        problems = check_compatibility(schema, [(target.version, target.schema)], mode)
    answer: dict[str, Any] = {"is_compatible": not problems}
    if verbose:
        answer["messages"] = problems
    return answer


@router.get("/config")
def global_config(ctx: Context = Depends(context)) -> dict[str, str]:
    return {"compatibilityLevel": ctx.settings.default_compatibility}


@router.put("/config")
def set_global_config(
    body: ConfigBody, ctx: Context = Depends(context), _: KeyInfo = Depends(write)
) -> dict[str, str]:
    """The default compatibility is the setting ``default_compatibility``: PUT may restate
    it, not change it (change the setting and restart)."""
    mode = check_mode(body.compatibility)
    if mode != ctx.settings.default_compatibility:
        raise InvalidCompatibilityError(
            "compatibility: the default is the setting default_compatibility "
            f"({ctx.settings.default_compatibility}); PUT /config/SUBJECT sets a subject's"
        )
    return {"compatibility": mode}


@router.get("/config/{subject}")
def subject_config(subject: str, ctx: Context = Depends(context)) -> dict[str, str]:
    return {"compatibilityLevel": ctx.registry.compatibility(subject)}


@router.put("/config/{subject}")
def set_subject_config(
    subject: str,
    body: ConfigBody,
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> dict[str, str]:
    mode = check_mode(body.compatibility)
    ctx.registry.set_compatibility(subject, mode)
    return {"compatibility": mode}


_force = Query(
    False, description="Delete a subject that a connector, dataset or route uses (else 42206)."
)


@router.delete("/subjects/{subject}")
def delete_subject_versions(
    subject: str,
    permanent: bool = Query(False),
    force: bool = _force,
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> list[int]:
    """Soft-delete every version (hidden, ids still resolve); ``permanent=true`` then removes
    them. A subject in use is refused (422, 42206) unless ``force=true``."""
    return delete_subject(ctx.registry, subject, permanent=permanent, force=force)


@router.delete("/subjects/{subject}/versions/{version}")
def delete_version(
    subject: str,
    version: str,
    permanent: bool = Query(False),
    force: bool = _force,
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> int:
    number = _number(version)
    if number is None:
        number = _versions(ctx, subject)[-1].version
    return delete_subject(ctx.registry, subject, number, permanent=permanent, force=force)[0]
