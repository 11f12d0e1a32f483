"""Errors as JSON: ``{"error_code": N, "message": "..."}``, the shape of Confluent Schema
Registry and Kafka Connect; field problems add ``"errors": [{"field", "message"}]``."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from bus.catalog.errors import InvalidFieldsError
from bus.errors import LgspError
from connectors.errors import ConnectorConfigError, FieldError


class ApiError(Exception):
    """An HTTP answer other than success: status, error code, message, headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: int | None = None,
        headers: dict[str, str] | None = None,
        errors: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code if code is not None else status
        self.headers = headers or {}
        self.errors = errors


def field_errors(errors: list[FieldError]) -> list[dict[str, str]]:
    """A connector file's (or a dataset file's, a grant's) problems as ``{"field", "message"}``:
    the pairs they carry."""
    return [{"field": e.field, "message": e.message} for e in errors]


def response(err: ApiError, media_type: str = "application/json") -> JSONResponse:
    body: dict[str, Any] = {"error_code": err.code, "message": err.message}
    if err.errors is not None:
        body["errors"] = err.errors
    return JSONResponse(body, status_code=err.status, headers=err.headers, media_type=media_type)


def from_bus_error(exc: LgspError) -> ApiError:
    """A bus error as an answer: its class's ``http_status`` and ``error_code`` (the one
    mapping; ``ExitCode`` is the command line's). A 500 says no more than that."""
    status = exc.http_status
    if status == 500:
        return ApiError(status, "internal error")
    fielded = isinstance(exc, ConnectorConfigError | InvalidFieldsError)
    errors = field_errors(exc.errors) if fielded else None
    return ApiError(status, str(exc), code=exc.error_code, errors=errors)


async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return response(exc, _media_type(request))


async def on_bus_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LgspError)
    return response(from_bus_error(exc), _media_type(request))


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "field": ".".join(str(p) for p in e["loc"] if p != "body") or "body",
            "message": e["msg"],
        }
        for e in exc.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return response(
        ApiError(422, f"invalid request: {summary}", errors=errors), _media_type(request)
    )


def _media_type(request: Request) -> str:
    return str(request.scope.get("lgsp_media_type", "application/json"))
