"""One JSON error shape for every failure: {"error": code, "message": ..., "details": ...}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from aico.errors import AicoError

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 412: "precondition_failed",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
    429: "too_many_requests",
}


def error_response(
    status: int, code: str, message: str, details: Any = None, **extra: Any
) -> JSONResponse:
    body = {"error": code, "message": message, "details": details, **extra}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def _field_name(loc: tuple[Any, ...]) -> str:
    # Drop the "body"/"query" prefix: the caller cares about the field.
    parts = [str(p) for p in loc[1:]] if loc and loc[0] in ("body", "query", "path") else list(map(str, loc))
    return ".".join(parts) or str(loc[0] if loc else "body")


async def _on_aico_error(_: Request, exc: AicoError) -> JSONResponse:
    headers = {**exc.headers(), **({"WWW-Authenticate": "Bearer"} if exc.status == 401 else {})}
    return JSONResponse(exc.to_body(), status_code=exc.status, headers=headers or None)


async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    for err in errors:
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            reason = ctx.get("error", "malformed JSON")
            pos = err["loc"][1] if len(err["loc"]) > 1 else None
            return error_response(400, "malformed_json",
                                  f"request body is not valid JSON: {reason}"
                                  + (f" at position {pos}" if pos is not None else ""))
    details = [{"field": _field_name(tuple(e["loc"])), "message": e["msg"]} for e in errors]
    fields = ", ".join(d["field"] for d in details)
    return error_response(422, "validation_error", f"invalid request: {fields}", details)


async def _on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message)


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    # Log the type only: exception text may carry request data we must not echo or log.
    logger.error("unhandled error: %s", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AicoError, _on_aico_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)
