"""The once-only lookup: a record's current state for an agency under its live grant.

``GET /v1/datasets/{name}/records/{key}`` and ``POST /v1/datasets/{name}/records:lookup``
(up to ``lookup.max_keys`` keys) read the dataset's current-state store (``bus.lookup``), never
the topic. Consumer role only. The ``X-Purpose`` header must be the purpose of the agency's
live grant (``bus.catalog.grants.live_grant``, the rule deliveries use): otherwise 403, and
the refusal is in the access log. Records are shown as the grant allows
(``bus.catalog.masking.mask_record``: granted fields only, PII as tokens unless granted), and
every answer writes one access-log entry (action ``lookup``) naming no key, committed before
the answer is sent (``AccessLogWriter``: concurrent requests share a commit).

A grant written for some units answers only for records those units cover at the record's
time (its unit field and the change time of the event that wrote it, :mod:`bus.units.coverage`):
one record outside them is refused (403, in the access log); in a batch it is answered
``found: false, outside: true`` and counted in the entry's ``outside``.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from bus.api.auth import allow, caller, context, header_text, log_refusal, principal
from bus.api.errors import ApiError
from bus.api.request_log import mask_path
from bus.catalog.access_log import AccessLogWriter
from bus.catalog.api_keys import KeyInfo
from bus.catalog.errors import AccessDeniedError
from bus.catalog.grants import live_grant, unit_scope
from bus.catalog.masking import GrantView, mask_record
from bus.context import Context
from bus.envelope import to_jsonable
from bus.lookup.reader import Found, Readers
from bus.units.coverage import UnitScope, record_unit, vn_day

router = APIRouter(prefix="/v1/datasets", tags=["lookup"])
consumer = allow("lookup", "consumer")
ACTION = "lookup"

Key = StrictStr | dict[str, StrictStr | StrictInt]


class LookupBody(BaseModel):
    """A batch lookup: the keys (text for a one-field key, an object of the key fields
    otherwise), answered in the same order."""

    model_config = ConfigDict(extra="forbid")

    keys: list[Key] = Field(min_length=1)


_made = threading.Lock()  # the app's readers and access-log writer are made once


def readers(request: Request) -> Readers:
    state = request.app.state
    with _made:
        if getattr(state, "lookup_readers", None) is None:
            state.lookup_readers = Readers(state.ctx)
    return state.lookup_readers  # type: ignore[no-any-return]


def _consumer(request: Request) -> tuple[Context, KeyInfo]:
    """The context and the caller's key (401, 429, or 403 logged outside the consumer role):
    the checks of ``allow`` called in the route itself, so that a lookup's blocking work runs
    in one worker thread instead of one per dependency."""
    ctx = context(request)
    return ctx, consumer(request, caller(request, ctx), ctx)


def access_writer(request: Request) -> AccessLogWriter:
    state = request.app.state
    with _made:
        if getattr(state, "access_writer", None) is None:
            state.access_writer = AccessLogWriter(state.ctx.settings)
    return state.access_writer  # type: ignore[no-any-return]


def purpose_of(request: Request) -> str:
    """The ``X-Purpose`` header as text: UTF-8 sent raw or percent-encoded (a header is
    Latin-1 on the wire, and a Vietnamese purpose is not); bytes that are not UTF-8 become
    U+FFFD, a purpose no grant has."""
    return header_text(request.headers.get("x-purpose"), errors="replace")


def _refused(
    ctx: Context, request: Request, key: KeyInfo, dataset: str, purpose: str, why: str
) -> ApiError:
    log_refusal(ctx, request, key, dataset, why, purpose)
    return ApiError(403, why)


def _grant(ctx: Context, request: Request, key: KeyInfo, dataset: str) -> tuple[GrantView, str]:
    """The caller's live grant for ``dataset`` under the purpose it states, or a logged 403."""
    purpose = purpose_of(request)
    if not purpose:
        raise _refused(
            ctx,
            request,
            key,
            dataset,
            "",
            "X-Purpose: required, the purpose of your agency's grant for this dataset "
            "(percent-encoded UTF-8 when it has non-ASCII characters)",
        )
    try:
        grant = live_grant(ctx.settings, agency=key.agency, dataset=dataset, purpose=purpose)
    except AccessDeniedError as exc:
        raise _refused(ctx, request, key, dataset, purpose, str(exc)) from None
    return grant, purpose


def _within(scope: UnitScope | None, found: Found) -> bool:
    """Whether the grant's units cover ``found`` at its time (always, for a grant on every
    unit); a record that names no unit or has no time is outside a grant for some units."""
    if scope is None:
        return True
    code = record_unit(found.record)
    if code is None or found.ts_ms is None:
        return False
    return scope.covers(code, vn_day(found.ts_ms), found.record)


def _outside_why(grant: GrantView) -> str:
    return (
        f"grant {grant.id} is for units {', '.join(grant.units)} of {grant.unit_hierarchy} "
        "(and what they became or came from, by each record's time): this record is outside "
        "them"
    )


def _shown(found: Found, grant: GrantView) -> dict[str, Any]:
    return {"record": to_jsonable(mask_record(found.record, grant)), "ts_ms": found.ts_ms}


def _logged(
    request: Request,
    key: KeyInfo,
    grant: GrantView,
    purpose: str,
    asked: int,
    found: int,
    outside: int | None = None,
) -> None:
    """One access-log entry, committed before the answer goes (a group commit)."""
    access_writer(request).write(
        principal=principal(key),
        agency=key.agency,
        dataset=grant.dataset,
        purpose=purpose,
        records=found,
        action=ACTION,
        grant_id=grant.id,
        detail={
            "method": request.method,
            "path": mask_path(request.url.path),
            "keys": asked,
            "found": found,
            "fields": list(grant.fields),
            "pii": "clear" if grant.allow_pii else "tokenised",
            **(
                {"units": list(grant.units), "unit_hierarchy": grant.unit_hierarchy}
                if grant.units
                else {}
            ),
            **({"outside": outside} if outside is not None else {}),
        },
    )


@router.get("/{name}/records/{key:path}")
def get_record(name: str, key: str, request: Request) -> JSONResponse:
    """The current state of one record (404 when there is none: never written, or deleted)."""
    ctx, who = _consumer(request)
    grant, purpose = _grant(ctx, request, who, name)
    found = readers(request).get(grant.dataset).get(key)
    if found is not None and not _within(unit_scope(ctx.settings, grant), found):
        raise _refused(ctx, request, who, grant.dataset, purpose, _outside_why(grant))
    _logged(request, who, grant, purpose, 1, 0 if found is None else 1)
    if found is None:
        raise ApiError(404, f"dataset {grant.dataset} has no current record with this key")
    return JSONResponse({"dataset": grant.dataset, "grant": grant.id, **_shown(found, grant)})


@router.post("/{name}/records:lookup")
def lookup_records(
    name: str,
    body: LookupBody,
    request: Request,
    ctx: Context = Depends(context),
    who: KeyInfo = Depends(consumer),
) -> dict[str, Any]:
    """The current state of each key, in the order asked (``found: false`` for none); the
    key is checked before the body (401/403 before 422)."""
    limit = ctx.settings.lookup.max_keys
    if len(body.keys) > limit:
        raise ApiError(
            422,
            f"keys: at most {limit} keys per lookup, got {len(body.keys)}",
            errors=[{"field": "keys", "message": f"at most {limit} keys per lookup"}],
        )
    grant, purpose = _grant(ctx, request, who, name)
    found = readers(request).get(grant.dataset).get_many(body.keys)
    scope = unit_scope(ctx.settings, grant)
    outside = {i for i, f in enumerate(found) if f is not None and not _within(scope, f)}
    hits = sum(1 for i, f in enumerate(found) if f is not None and i not in outside)
    _logged(request, who, grant, purpose, len(body.keys), hits, len(outside) if scope else None)
    return {
        "dataset": grant.dataset,
        "grant": grant.id,
        "found": hits,
        "results": [
            {"index": i, "found": False, "outside": True}
            if i in outside
            else {"index": i, "found": False}
            if f is None
            else {"index": i, "found": True, **_shown(f, grant)}
            for i, f in enumerate(found)
        ],
    }
