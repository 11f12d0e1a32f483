"""The Confluent Schema Registry REST subset, on the bus's own registry (same ids, same
compatibility checker as ``lgsp schema``): what Kafka tools and confluent-kafka clients call.

Reads are open to every role; writes (register, config, delete) need the operator role.
Errors carry Confluent's codes: 40401 subject, 40402 version, 40403 schema not found, 42201
invalid schema, 42202 invalid version, 42203 invalid compatibility level, 409 incompatible,
40405/40407 a permanent delete of what is not soft-deleted.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bus.api.auth import allow, caller, context
from bus.api.errors import ApiError
from bus.catalog.api_keys import KeyInfo
from bus.context import Context
from bus.errors import IncompatibleSchemaError, NotFoundError, SchemaError
from bus.publish import validate_topic
from bus.registry import RegisteredSchema
from bus.registry.compat import MODES, check_compatibility
from bus.registry.store import SchemaDeleteError

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
_SUBJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


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
            raise ApiError(
                422, f"schemaType: only AVRO is served, got {self.schemaType}", code=42201
            )
        if self.references:
            raise ApiError(422, "references: schema references are not supported", code=42201)
        try:
            schema = json.loads(self.schema_)
        except json.JSONDecodeError as exc:
            raise ApiError(422, f"schema: not JSON ({exc.msg})", code=42201) from exc
        if not isinstance(schema, dict):
            raise ApiError(422, "schema: expected an Avro record schema object", code=42201)
        return schema


class ConfigBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    compatibility: str


def _subject(subject: str) -> str:
    if not _SUBJECT.fullmatch(subject):
        raise ApiError(
            404, f"subject: expected letters, digits, '.', '_', '-', got {subject!r}", code=40401
        )
    return subject


def _versions(ctx: Context, subject: str) -> list[RegisteredSchema]:
    versions = ctx.registry.versions(_subject(subject))
    if not versions:
        raise ApiError(404, f"Subject '{subject}' not found.", code=40401)
    return versions


def _version(ctx: Context, subject: str, version: str) -> RegisteredSchema:
    versions = _versions(ctx, subject)
    if version == "latest" or version == "-1":
        return versions[-1]
    if not version.isdigit() or int(version) < 1:
        raise ApiError(
            422, f"version: expected 'latest' or a number from 1, got {version!r}", code=42202
        )
    for item in versions:
        if item.version == int(version):
            return item
    raise ApiError(404, f"Version {version} not found.", code=40402)


def _full(item: RegisteredSchema) -> dict[str, Any]:
    return {
        "subject": item.subject,
        "version": item.version,
        "id": item.id,
        "schema": json.dumps(item.schema, ensure_ascii=False),
    }


def _schema_text(ctx: Context, schema_id: int) -> dict[str, Any]:
    try:
        return ctx.registry.schema_by_id(schema_id)
    except NotFoundError as exc:
        raise ApiError(404, f"Schema {schema_id} not found", code=40403) from exc


def _invalid(exc: SchemaError) -> ApiError:
    return ApiError(422, str(exc), code=42201)


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
    _subject(subject)
    schema = body.parsed()
    if subject.endswith("-value"):
        validate_topic(ctx.settings, subject.removesuffix("-value"))
    try:
        item = ctx.registry.register(subject, schema)
    except IncompatibleSchemaError as exc:
        raise ApiError(409, str(exc), code=409) from exc
    except SchemaError as exc:
        raise _invalid(exc) from exc
    return _full(item)


@router.post("/subjects/{subject}")
def lookup(subject: str, body: SchemaBody, ctx: Context = Depends(context)) -> dict[str, Any]:
    """The version of ``subject`` that holds the posted schema."""
    _versions(ctx, subject)
    try:
        return _full(ctx.registry.find(subject, body.parsed()))
    except SchemaError as exc:
        raise _invalid(exc) from exc
    except NotFoundError as exc:
        raise ApiError(404, "Schema not found", code=40403) from exc


@router.get("/schemas/ids/{schema_id}")
def schema_by_id(schema_id: int, ctx: Context = Depends(context)) -> dict[str, Any]:
    return {"schema": json.dumps(_schema_text(ctx, schema_id), ensure_ascii=False)}


@router.get("/schemas/ids/{schema_id}/schema")
def schema_by_id_raw(schema_id: int, ctx: Context = Depends(context)) -> Any:
    return _schema_text(ctx, schema_id)


@router.get("/schemas/ids/{schema_id}/versions")
def schema_uses(schema_id: int, ctx: Context = Depends(context)) -> list[dict[str, Any]]:
    _schema_text(ctx, schema_id)
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
    try:
        if version in ("latest", "-1"):
            problems = ctx.registry.check(subject, schema)
        else:
            mode = ctx.registry.compatibility(subject).removesuffix("_TRANSITIVE")
            problems = check_compatibility(schema, [(target.version, target.schema)], mode)
    except SchemaError as exc:
        raise _invalid(exc) from exc
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
    mode = _mode(body.compatibility)
    if mode != ctx.settings.default_compatibility:
        raise ApiError(
            422,
            "compatibility: the default is the setting default_compatibility "
            f"({ctx.settings.default_compatibility}); PUT /config/SUBJECT sets a subject's",
            code=42203,
        )
    return {"compatibility": mode}


@router.get("/config/{subject}")
def subject_config(subject: str, ctx: Context = Depends(context)) -> dict[str, str]:
    try:
        return {"compatibilityLevel": ctx.registry.compatibility(_subject(subject))}
    except NotFoundError as exc:
        raise ApiError(404, f"Subject '{subject}' not found.", code=40401) from exc


@router.put("/config/{subject}")
def set_subject_config(
    subject: str,
    body: ConfigBody,
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> dict[str, str]:
    mode = _mode(body.compatibility)
    ctx.registry.set_compatibility(_subject(subject), mode)
    return {"compatibility": mode}


def _mode(value: str) -> str:
    if value.upper() not in MODES:
        raise ApiError(
            422, f"compatibility: expected one of {', '.join(MODES)}, got {value!r}", code=42203
        )
    return value.upper()


@router.delete("/subjects/{subject}")
def delete_subject(
    subject: str,
    permanent: bool = Query(False),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> list[int]:
    """Soft-delete every version (hidden, ids still resolve); ``permanent=true`` then removes
    them."""
    return _delete(ctx, subject, None, permanent)


@router.delete("/subjects/{subject}/versions/{version}")
def delete_version(
    subject: str,
    version: str,
    permanent: bool = Query(False),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> int:
    if version in ("latest", "-1"):
        number = _versions(ctx, subject)[-1].version
    elif version.isdigit() and int(version) >= 1:
        number = int(version)
    else:
        raise ApiError(422, f"version: expected 'latest' or a number, got {version!r}", code=42202)
    return _delete(ctx, subject, number, permanent)[0]


def _delete(ctx: Context, subject: str, version: int | None, permanent: bool) -> list[int]:
    try:
        return ctx.registry.delete(_subject(subject), version, permanent=permanent)
    except SchemaDeleteError as exc:
        raise ApiError(404, str(exc), code=40405 if version is None else 40407) from exc
    except NotFoundError as exc:
        code = 40401 if version is None else 40402
        raise ApiError(404, str(exc), code=code) from exc
