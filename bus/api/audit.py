"""The auditor API: archive status, ``verify`` as a background job, the history of one key
across the hash chains, and replay to JSON lines (streamed). Auditor role; every call is
written to the access log (principal ``api-key:<id>``, the key's agency).

Reads of records (history, replay) need the purpose in an ``X-Purpose`` header. Their
personal data is tokenised (``bus.catalog.masking``) except the PII fields that a live grant
of the auditor's agency with PII allowed covers (``bus.catalog.grants.auditor_view``).

Replay is ``bus.archive.replay``'s: ``from``/``to`` gives the events of ``lgsp replay
--from/--to`` line for line; ``as_of`` gives the rows ``lgsp replay --as-of --into`` writes
(one JSON line per key, in key order) and their content hash in ``X-LGSP-Content-Hash``, the
hash that command reports when nothing is masked.

Verify jobs run one at a time in this process (at most 10 waiting, more get 503); the newest
100 are kept in memory (a restart forgets them; the access log keeps who started which).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from bus.api.auth import allow, context, header_text, log_call, principal
from bus.api.catalog import field_error, no_nul, renamed
from bus.api.errors import ApiError
from bus.archive.history import KeyHistory, key_from_text, key_history
from bus.archive.replay import content_hash, replay_events, rows_as_of
from bus.archive.signing import parse_public_key
from bus.archive.status import archive_status
from bus.archive.verify import require_archived, verify
from bus.catalog import get_dataset
from bus.catalog.api_keys import KeyInfo
from bus.catalog.grants import auditor_view
from bus.catalog.masking import GrantView, apply_grant, token
from bus.config import Settings
from bus.context import Context
from bus.errors import ConfigurationError, LgspError
from bus.serde.jsoncodec import dumps
from bus.timeutil import parse_cli_time

router = APIRouter(prefix="/v1/audit", tags=["audit"], dependencies=[Depends(no_nul)])
auditor = allow("audit", "auditor")
KEPT_JOBS = 100
MAX_QUEUED = 10  # jobs waiting for the one verify worker; more get 503
POSTED = "(posted checkpoints)"
JSONL = "application/x-ndjson"


def purpose_optional(x_purpose: str | None = Header(None, max_length=2000)) -> str:
    try:
        return header_text(x_purpose)
    except UnicodeDecodeError:
        why = "expected UTF-8 text (raw or percent-encoded)"
        raise field_error(422, "X-Purpose", why) from None


def purpose_required(purpose: str = Depends(purpose_optional)) -> str:
    if not purpose:
        raise field_error(
            422, "X-Purpose", "required: say why the history is read (it goes to the access log)"
        )
    return purpose


def logged(
    ctx: Context,
    key: KeyInfo,
    dataset: str,
    call: str,
    *,
    purpose: str = "",
    records: int = 0,
    **detail: Any,
) -> None:
    log_call(ctx, key, dataset, "read", {"call": call, **detail}, purpose=purpose, records=records)


def acting(ctx: Context, key: KeyInfo) -> Context:
    """The context with the key as the principal (what the replay's access log names)."""
    return replace(ctx, settings=ctx.settings.model_copy(update={"principal": principal(key)}))


Event = dict[str, Any]


def masker(view: GrantView) -> Callable[[Event], Event]:
    """The event as the auditor may see it (unchanged when nothing is hidden)."""
    if not view.pii_fields:
        return lambda event: event
    return lambda event: apply_grant(event, view)


# ---- archive status -----------------------------------------------------------------------


@router.get("/archive")
def status(
    dataset: str | None = Query(None, max_length=100),
    key: KeyInfo = Depends(auditor),
    purpose: str = Depends(purpose_optional),
    ctx: Context = Depends(context),
) -> dict[str, Any]:
    """The archive's chains and heads (of ``dataset``, or all), its latest checkpoint and
    signing key id (as ``lgsp archive status``)."""
    state = archive_status(ctx.settings, dataset)
    logged(ctx, key, dataset or "archive", "archive-status", purpose=purpose)
    return state.to_dict()


# ---- verify jobs --------------------------------------------------------------------------


class VerifyBody(BaseModel):
    """What ``lgsp audit verify`` takes (no server paths: keys are given as PEM text)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, max_length=100)
    public_keys: list[str] = Field(
        default_factory=list, max_length=10, description="public key PEMs (lgsp archive export-key)"
    )
    checkpoints: str | None = Field(
        None,
        description="an off-host copy of the exported checkpoints as text (the JSON lines "
        "'lgsp archive export-checkpoints FILE' keeps); strict needs one",
    )
    allow_unsigned_tail: bool = False
    strict: bool = False


@dataclass
class Job:
    id: str
    request: dict[str, Any]
    started_by: str
    agency: str
    created: str
    status: str = "queued"  # queued | running | done | failed
    finished: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {
                "id": self.id,
                "status": self.status,
                "request": self.request,
                "started_by": self.started_by,
                "agency": self.agency,
                "created": self.created,
                "finished": self.finished,
                "ok": self.result["ok"] if self.result is not None else None,
                "result": self.result,
                "error": self.error,
            }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class VerifyJobs:
    """Verify runs, one at a time, the newest ``KEPT_JOBS`` kept."""

    def __init__(self) -> None:
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lgsp-verify")

    def start(self, settings: Settings, body: VerifyBody, key: KeyInfo) -> Job:
        keys = [
            parse_public_key(pem.encode(), f"public_keys.{i}")
            for i, pem in enumerate(body.public_keys)
        ] or None
        job = Job(
            uuid.uuid4().hex[:16],
            body.model_dump(exclude={"public_keys"}) | {"public_keys": len(body.public_keys)},
            principal(key),
            key.agency,
            _now(),
        )
        with self.lock:
            waiting = sum(1 for j in self.jobs.values() if j.status == "queued")
            if waiting >= MAX_QUEUED:
                raise ApiError(
                    503,
                    f"{waiting} verify jobs are waiting already; try again later",
                    headers={"Retry-After": "30"},
                )
            self.jobs[job.id] = job
            while len(self.jobs) > KEPT_JOBS:
                self.jobs.popitem(last=False)
        self.pool.submit(self._run, settings, job, body, keys)
        return job

    def _run(self, settings: Settings, job: Job, body: VerifyBody, keys: Any) -> None:
        with job.lock:
            job.status = "running"
        copy: Path | None = None
        try:
            if body.checkpoints is not None:  # verify reads a file: a private one, removed after
                with tempfile.NamedTemporaryFile(
                    "w", encoding="utf-8", suffix=".jsonl", delete=False
                ) as fh:
                    fh.write(body.checkpoints)
                copy = Path(fh.name)
            report = verify(
                settings,
                dataset=body.dataset,
                public_keys=keys,
                checkpoints_file=copy,
                allow_unsigned_tail=body.allow_unsigned_tail,
                strict=body.strict,
            )
            require_archived(report, body.dataset, "dataset")
            result, error, state = report.to_dict(), None, "done"
        except LgspError as exc:
            result, error, state = None, str(exc), "failed"
        except Exception as exc:  # the job's answer, not a dead thread
            result, error, state = None, f"internal error ({type(exc).__name__})", "failed"
        finally:
            if copy is not None:
                copy.unlink(missing_ok=True)
        if copy is not None:  # name the posted copy, not the server's temporary file
            text = json.dumps([result, error]).replace(json.dumps(str(copy))[1:-1], POSTED)
            result, error = json.loads(text)
            error = error.replace("--checkpoints", "checkpoints") if error else error
        with job.lock:
            job.status, job.result, job.error, job.finished = state, result, error, _now()

    def get(self, job_id: str) -> Job:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "no such verify job (jobs are kept in memory, the newest 100)")
        return job


_jobs_lock = threading.Lock()


def jobs_of(request: Request) -> VerifyJobs:
    with _jobs_lock:
        jobs = getattr(request.app.state, "verify_jobs", None)
        if jobs is None:
            jobs = request.app.state.verify_jobs = VerifyJobs()
        return jobs


@router.post("/verify", status_code=202)
def verify_start(
    request: Request,
    response: Response,
    body: VerifyBody,
    key: KeyInfo = Depends(auditor),
    purpose: str = Depends(purpose_optional),
    ctx: Context = Depends(context),
) -> dict[str, Any]:
    """Start ``lgsp audit verify`` in the background: 202 with the job; GET it for the
    result."""
    area = body.dataset or "archive"
    try:
        if body.strict and body.allow_unsigned_tail:
            raise field_error(422, "strict", "cannot be combined with allow_unsigned_tail")
        try:
            job = jobs_of(request).start(ctx.settings, body, key)
        except ConfigurationError as exc:
            pems = {f"public_keys.{i}": f"public_keys.{i}" for i in range(len(body.public_keys))}
            raise renamed(exc, pems) from exc
    except ApiError as exc:
        logged(ctx, key, area, "verify", purpose=purpose, outcome=f"error {exc.status}")
        raise
    logged(ctx, key, area, "verify", purpose=purpose, job=job.id, outcome="ok")
    response.headers["Location"] = f"{router.prefix}/verify/{job.id}"
    return job.to_dict()


@router.get("/verify/{job_id}")
def verify_job(
    request: Request,
    job_id: str,
    ctx: Context = Depends(context),
    key: KeyInfo = Depends(auditor),
) -> dict[str, Any]:
    """A verify job: ``queued``, ``running``, ``done`` (with the report; ``ok`` says whether
    the archive is intact) or ``failed`` (the error)."""
    try:
        job = jobs_of(request).get(job_id)
    except ApiError:
        logged(ctx, key, "archive", "verify-result", outcome="error 404")
        raise
    logged(ctx, key, job.request.get("dataset") or "archive", "verify-result", job=job.id)
    return job.to_dict()


# ---- history of one key -------------------------------------------------------------------


def _history_dict(history: KeyHistory, view: GrantView) -> dict[str, Any]:
    mask = masker(view)
    events = []
    for event in history.events:
        events.append(
            {
                "event_id": event.event_id,
                "op": event.op,
                "ts_ms": event.ts_ms,
                "source_unit": event.source_unit,
                "verified": event.verified,
                "positions": [p.__dict__ for p in event.positions],
                "event": mask(event.event),
            }
        )
    shown_key = events[0]["event"].get("key") if events else None
    return {
        "dataset": history.dataset,
        "key": shown_key,
        "verified": history.ok,
        "events": events,
        "chains": [c.__dict__ for c in history.chains],
    }


@router.get("/datasets/{name}/history/{key:path}")
def history(
    name: str,
    key: str,
    who: KeyInfo = Depends(auditor),  # first: 401/403 before any other answer
    purpose: str = Depends(purpose_required),
    ctx: Context = Depends(context),
) -> dict[str, Any]:
    """Every archived event of one key, in event-time order, with its positions in the hash
    chains and whether each chain verifies. The key: its value when the dataset has one key
    field, else the JSON object of its key fields (URL-encoded)."""
    detail: dict[str, Any] = {"outcome": "ok"}
    records = 0
    try:
        info = get_dataset(ctx.settings, name)
        try:
            canonical = key_from_text(info.record_schema, info.key_fields, key)
        except ConfigurationError as exc:
            raise renamed(exc, {"key": "key"}) from exc
        view = auditor_view(ctx.settings, who.agency, name)
        detail["key_token"] = token(canonical, view.token_key)
        found = key_history(ctx.settings, name, canonical)
        records = len(found.events)
        return _history_dict(found, view)
    except (ApiError, LgspError) as exc:
        detail["outcome"] = f"error {exc.http_status if isinstance(exc, LgspError) else exc.status}"
        raise
    finally:  # every call, answered or not, without the key itself
        logged(ctx, who, name[:100], "history", purpose=purpose, records=records, **detail)


# ---- replay -------------------------------------------------------------------------------


def _moment(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_cli_time(value, name)
    except ConfigurationError as exc:
        raise renamed(exc, {name: name}) from exc


@router.get("/datasets/{name}/replay", response_class=StreamingResponse)
def replay(
    name: str,
    as_of: str | None = Query(None, description="the rows as of this time (with a zone)"),
    start: str | None = Query(None, alias="from", description="events from this time"),
    end: str | None = Query(None, alias="to", description="events before this time"),
    unit: str | None = Query(None, max_length=200, description="only within this unit path"),
    key: KeyInfo = Depends(auditor),  # first: 401/403 before any other answer
    purpose: str = Depends(purpose_required),
    ctx: Context = Depends(context),
) -> StreamingResponse:
    """The dataset's history as JSON lines, streamed: ``from``/``to`` the events of that
    range (as ``lgsp replay --from --to`` prints them), or ``as_of`` the rows of the dataset
    as it stood then (as ``lgsp replay --as-of --into`` writes them, with their content hash
    in ``X-LGSP-Content-Hash``). Access-logged as a replay."""
    try:  # a refused call is logged here; a replay run logs itself (action "replay")
        return _replay(name, as_of, start, end, unit, key, purpose, ctx)
    except (ApiError, LgspError) as exc:
        status = exc.http_status if isinstance(exc, LgspError) else exc.status
        logged(ctx, key, name[:100], "replay", purpose=purpose, outcome=f"error {status}")
        raise


def _replay(
    name: str,
    as_of: str | None,
    start: str | None,
    end: str | None,
    unit: str | None,
    key: KeyInfo,
    purpose: str,
    ctx: Context,
) -> StreamingResponse:
    moment, begin, finish = _moment(as_of, "as_of"), _moment(start, "from"), _moment(end, "to")
    if moment is not None and (begin or finish):
        raise field_error(422, "as_of", "cannot be combined with from/to")
    if moment is None and begin is None and finish is None:
        raise field_error(422, "as_of", "give as_of, or from and/or to (times with a zone)")
    view = auditor_view(ctx.settings, key.agency, name)
    mask = masker(view)
    as_key = acting(ctx, key)
    headers: dict[str, str] = {}
    try:
        if moment is not None:
            report, rows = rows_as_of(
                as_key, name, moment, purpose=purpose, unit=unit, agency=key.agency
            )
            shown = []
            for row in rows:
                masked = mask({"key": row["key"], "after": row["record"]})
                shown.append(row | {"key": masked["key"], "record": masked["after"]})
            headers["X-LGSP-Content-Hash"] = content_hash([(r["key"], r["record"]) for r in shown])
            headers["X-LGSP-Keys"] = str(report.keys)
            lines: Iterator[dict[str, Any]] = iter(shown)
        else:
            report, events = replay_events(
                as_key,
                name,
                purpose=purpose,
                start=begin,
                end=finish,
                unit=unit,
                agency=key.agency,
            )
            lines = (mask(event) for event in events)
    except ConfigurationError as exc:
        names = {"--from": "from", "--to": "to", "--as-of": "as_of", "--unit": "unit"}
        raise renamed(exc, names) from exc
    headers["X-LGSP-Selected"] = str(report.selected)
    headers["X-LGSP-Masked"] = ",".join(sorted(view.pii_fields)) or "none"

    def body() -> Iterator[bytes]:
        for line in lines:
            yield (dumps(line) + "\n").encode("utf-8")

    return StreamingResponse(body(), media_type=JSONL, headers=headers)
