"""The catalogue and grants over HTTP: datasets (list, show, search, publish), grants (add,
list, revoke) and the access log.

Every rule is the catalogue's own (``bus.catalog``): the validation of a dataset file and of a
grant is what ``lgsp dataset publish`` and ``lgsp grant add`` run, and its field errors come
back as 422 ``{"errors": [{"field", "message"}]}``. Roles: any key reads the catalogue; a
``publisher`` key publishes its own agency's datasets and grants or revokes access to them;
the access log shows an ``auditor`` every entry and any other key its own agency's.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from bus.api.auth import allow, caller, context, principal, refuse
from bus.api.errors import ApiError, from_bus_error
from bus.catalog import (
    add_grant,
    check_attribute_ownership,
    dated_topics,
    get_dataset,
    list_datasets,
    list_grants,
    query_access,
    revoke_grant,
    search_datasets,
)
from bus.catalog.api_keys import KeyInfo
from bus.catalog.datasets import DatasetInfo, canonical_attribute, parse_dataset, publish_spec
from bus.catalog.errors import InvalidFieldsError
from bus.catalog.grants import get_grant, grant_coverage
from bus.context import Context
from bus.errors import ConfigurationError, LgspError, NotFoundError
from connectors.errors import FieldError

NUL_ESCAPE = re.compile(rb"\\u0000", re.IGNORECASE)


async def no_nul(request: Request) -> None:
    """422 for a NUL character in the path, the query or a JSON body: no database keeps one
    in text (PostgreSQL refuses it), so it is refused before any database is asked."""
    where = None
    if "\x00" in request.scope.get("path", ""):
        where = "path"
    elif any("\x00" in k or "\x00" in v for k, v in request.query_params.multi_items()):
        where = "query"
    elif NUL_ESCAPE.search(await request.body()):
        where = "body"
    if where is not None:
        raise field_error(422, where, "contains a NUL character (\\u0000)")


router = APIRouter(prefix="/v1", tags=["catalogue"], dependencies=[Depends(no_nul)])
publisher = allow("catalogue", "publisher")

# the CLI's option names in add_grant's messages, as the fields of the API's body
GRANT_FIELDS = {
    "--dataset": "dataset",
    "--to": "agency",
    "--purpose": "purpose",
    "--legal-basis": "legal_basis",
    "--fields": "fields",
    "--expires": "expires",
    "--unit": "units",
    "--hierarchy": "hierarchy",
}


def renamed(exc: LgspError, names: dict[str, str]) -> ApiError:
    """The API error of a bus error with its fields named as in the request (``names``: the
    command line's option, e.g. ``--to``, to the request's field): the pairs of an
    ``InvalidFieldsError``, or else the one option of ``names`` the message starts with."""
    err = from_bus_error(exc)
    text = str(exc)
    if isinstance(exc, InvalidFieldsError):
        pairs = list(exc.errors)
    else:
        pairs = [
            FieldError(option, text.removeprefix(f"{option}: "))
            for option in names
            if text.startswith(f"{option}:")
        ][:1]
    if pairs:
        err.errors = [{"field": names.get(p.field, p.field), "message": p.message} for p in pairs]
    for old, new in names.items():
        err.message = err.message.replace(f"{old}:", f"{new}:")
    return err


def field_error(status: int, field: str, message: str) -> ApiError:
    return ApiError(status, f"{field}: {message}", errors=[{"field": field, "message": message}])


# ---- datasets -----------------------------------------------------------------------------


def _sees_grants(key: KeyInfo, info: DatasetInfo) -> bool:
    return key.role == "auditor" or (key.role == "publisher" and key.agency == info.publisher)


@router.get("/datasets")
def datasets(ctx: Context = Depends(context), _: KeyInfo = Depends(caller)) -> list[dict[str, Any]]:
    """Every dataset of the catalogue (as ``lgsp dataset list --json``)."""
    return [d.to_dict() for d in list_datasets(ctx.settings)]


@router.get("/datasets/search")
def search(
    q: str = Query(..., min_length=1, max_length=200, description="a word or a field name"),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(caller),
) -> dict[str, Any]:
    """Datasets whose name, description, legal basis, fields or field docs match ``q`` (as
    ``lgsp dataset search``), and which dataset owns the attribute ``q`` names, if any."""
    try:
        hits = search_datasets(ctx.settings, q)
    except ConfigurationError as exc:
        raise field_error(422, "q", str(exc).removeprefix("search: ")) from exc
    found = check_attribute_ownership(ctx.settings, "", [q.strip()])
    owner = (
        {
            "attribute": canonical_attribute(q.strip()),
            "dataset": found[0].owner_dataset,
            "publisher": found[0].owner_agency,
            "field": found[0].owner_field,
        }
        if found
        else None
    )
    return {"q": q, "owner": owner, "hits": [h.__dict__ for h in hits]}


@router.get("/datasets/{name}")
def show(
    name: str, ctx: Context = Depends(context), key: KeyInfo = Depends(caller)
) -> dict[str, Any]:
    """One dataset: fields (PII, key, doc), topics (``topics_by_era``: per hierarchy the bus
    has topics in, with dates); its live grants to its publisher and to auditors (as ``lgsp
    dataset show --json``)."""
    info = get_dataset(ctx.settings, name)
    docs = info.field_docs()
    out = info.to_dict() | {
        "fields": [
            {"name": f, "pii": f in info.pii, "key": f in info.key_fields, "doc": docs[f]}
            for f in info.fields
        ],
    }
    eras = dated_topics(ctx.settings, info)
    out["topics"] = [t["topic"] for era in eras for t in era["topics"]]
    out["topics_by_era"] = eras
    if _sees_grants(key, info):
        live = list_grants(ctx.settings, dataset=name, live_only=True)
        out["live_grants"] = [g.to_dict() for g in live]
    return out


def _schema_in_schemas_dir(ctx: Context, value: Any) -> None:
    """Over HTTP a dataset's schema is a file of ``schemas_dir`` (no server path read)."""
    if not isinstance(value, str):
        return  # parse_dataset names what is expected
    path = Path(value.strip())
    base = ctx.settings.schemas_dir.resolve()
    found = (base / path).resolve()
    if path.is_absolute() or ".." in path.parts or not found.is_relative_to(base):
        raise field_error(422, "schema", "expected a schema file of schemas_dir, e.g. x.Y.avsc")
    if not found.is_file() and not (base / path.name).is_file():
        raise field_error(422, "schema", f"file {value!r} not found in schemas_dir")


@router.post("/datasets")
def publish(
    request: Request,
    response: Response,
    data: dict[str, Any] = Body(
        ...,
        description="The dataset file (the YAML of 'lgsp dataset publish') as a JSON object; "
        "'schema' names a file of schemas_dir.",
    ),
    strict: bool = Query(False, description="refuse when a field collects an owned attribute"),
    ctx: Context = Depends(context),
    key: KeyInfo = Depends(publisher),
) -> dict[str, Any]:
    """Declare or update a dataset of the key's own agency (as ``lgsp dataset publish``):
    201 created, 200 updated or unchanged; 403 for another agency's dataset."""
    claimed, name = data.get("publisher"), data.get("name")
    area = name if isinstance(name, str) and 0 < len(name) <= 100 else "catalogue"
    if isinstance(claimed, str) and claimed != key.agency:
        raise refuse(ctx, request, key, area, f"publisher {claimed}: a key publishes its own")
    owner = None
    if isinstance(name, str):
        try:
            owner = get_dataset(ctx.settings, name).publisher
        except NotFoundError:
            owner = None
    if owner is not None and owner != key.agency:
        raise refuse(ctx, request, key, area, f"dataset {name} is published by {owner}")
    _schema_in_schemas_dir(ctx, data.get("schema"))
    spec = parse_dataset(ctx, data, base=ctx.settings.schemas_dir, where="dataset")
    result = publish_spec(ctx, spec, strict=strict)
    response.status_code = 201 if result.status == "created" else 200
    return {
        "dataset": result.dataset,
        "status": result.status,
        "publisher": result.publisher,
        "agency_added": result.agency_added,
        "subjects": [{"subject": s, "version": v, "schema_id": i} for s, v, i in result.subjects],
        "findings": [f.to_dict() for f in result.findings],
    }


# ---- grants -------------------------------------------------------------------------------


class GrantBody(BaseModel):
    """A grant, as ``lgsp grant add`` takes it."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(max_length=100)
    agency: str = Field(max_length=100, description="the receiving agency")
    purpose: str
    legal_basis: str
    fields: list[str] | str = Field(description="field names (a list or comma-separated)")
    allow_pii: bool = False
    expires: str = Field(description="last day of the grant, YYYY-MM-DD")
    units: list[str] | None = Field(
        None,
        description="only these units' events, followed across reforms by each event's time",
    )
    hierarchy: str | None = Field(
        None, max_length=64, description="the hierarchy of 'units' (default: in force today)"
    )


def _own_dataset(ctx: Context, request: Request, key: KeyInfo, name: str, what: str) -> None:
    """403 (logged) unless ``key``'s agency publishes dataset ``name`` (404 if none)."""
    info = get_dataset(ctx.settings, name, "dataset")
    if info.publisher != key.agency:
        raise refuse(
            ctx,
            request,
            key,
            name,
            f"{what}: dataset {name} is published by {info.publisher}, not {key.agency}",
        )


@router.post("/grants", status_code=201)
def grant_add(
    request: Request,
    body: GrantBody,
    ctx: Context = Depends(context),
    key: KeyInfo = Depends(publisher),
) -> dict[str, Any]:
    """Grant an agency some fields of a dataset the key's agency publishes."""
    try:
        _own_dataset(ctx, request, key, body.dataset, "grant")
    except NotFoundError as exc:  # 404 naming the field, as the grant's other problems
        raise renamed(exc, {"dataset": "dataset"}) from exc
    try:
        grant = add_grant(
            ctx.settings,
            dataset=body.dataset,
            agency=body.agency,
            purpose=body.purpose,
            legal_basis=body.legal_basis,
            fields=body.fields,
            allow_pii=body.allow_pii,
            expires=body.expires,
            principal=principal(key),
            units=body.units,
            hierarchy=body.hierarchy,
        )
    except InvalidFieldsError as exc:
        raise renamed(exc, GRANT_FIELDS) from exc
    return grant.to_dict() | {"coverage": grant_coverage(ctx.settings, grant)}


@router.get("/grants")
def grants(
    dataset: str | None = Query(None, max_length=100),
    agency: str | None = Query(None, max_length=100),
    live: bool = Query(False, description="only live grants"),
    ctx: Context = Depends(context),
    key: KeyInfo = Depends(allow("grants", "publisher", "consumer", "auditor")),
) -> list[dict[str, Any]]:
    """Grants with their status: an auditor sees all, a publisher those on its datasets, a
    consumer its agency's own; ``coverage``: for a grant written for some units, the units it
    covers in each hierarchy (era), else null."""
    found = list_grants(ctx.settings, agency=agency, dataset=dataset, live_only=live)
    if key.role == "publisher":
        mine = {d.name for d in list_datasets(ctx.settings) if d.publisher == key.agency}
        found = [g for g in found if g.dataset in mine]
    elif key.role == "consumer":
        found = [g for g in found if g.agency == key.agency]
    return [g.to_dict() | {"coverage": grant_coverage(ctx.settings, g)} for g in found]


@router.delete("/grants/{grant_id}")
def grant_revoke(
    request: Request,
    grant_id: int,
    ctx: Context = Depends(context),
    key: KeyInfo = Depends(publisher),
) -> dict[str, Any]:
    """Revoke a grant on a dataset of the key's agency; revoking twice changes nothing."""
    grant = get_grant(ctx.settings, grant_id)
    _own_dataset(ctx, request, key, grant.dataset, "revoke")
    revoked, changed = revoke_grant(ctx.settings, grant_id, principal(key))
    return revoked.to_dict() | {"changed": changed}


# ---- the access log -----------------------------------------------------------------------


@router.get("/access-log")
def access_log(
    request: Request,
    agency: str | None = Query(None, max_length=100),
    dataset: str | None = Query(None, max_length=255),
    since: str | None = Query(None, description="from this date or ISO time (VN time if bare)"),
    until: str | None = Query(None, description="before this date or ISO time"),
    action: str | None = Query(None, max_length=32),
    limit: int = Query(1000, ge=1, le=10000, description="the newest N entries"),
    ctx: Context = Depends(context),
    key: KeyInfo = Depends(caller),
) -> list[dict[str, Any]]:
    """Who read which dataset, for which purpose, when: an auditor sees every entry, another
    key its own agency's (asking for another agency's is refused and logged)."""
    if key.role != "auditor":
        if agency is not None and agency != key.agency:
            raise refuse(ctx, request, key, "access-log", "access log: an agency sees its own")
        agency = key.agency
    try:
        entries = query_access(
            ctx.settings,
            agency=agency,
            dataset=dataset,
            since=since,
            until=until,
            action=action,
            limit=limit,
        )
    except ConfigurationError as exc:
        raise renamed(exc, {"--since": "since", "--until": "until"}) from exc
    return [e.to_dict() for e in entries]
