"""One error shape for every failure: `{"message", "code", "issues"?}` (api.md)."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("tofu_tui.server")


class Issue(BaseModel):
    message: str


class ErrorBody(BaseModel):
    message: str
    code: str
    issues: list[Issue] | None = None


class APIError(Exception):
    def __init__(self, status: int, code: str, message: str, issues: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.issues = issues


def not_found(what: str, ident: str) -> APIError:
    return APIError(404, "not_found", f"No {what} with id {ident!r}.")


def forbidden(message: str = "This key may not access that resource.") -> APIError:
    return APIError(403, "forbidden", message)


def error_response(status: int, code: str, message: str, issues: list[str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message, "code": code}
    if issues:
        body["issues"] = [{"message": m} for m in issues]
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_request: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.issues)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return error_response(exc.status_code, _STATUS_CODES.get(exc.status_code, "error"), detail)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(
                400, "invalid_json", "The request body is not valid JSON: send a JSON object."
            )
        issues = [f"{_loc(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors]
        return error_response(
            422, "validation_error", "The request is invalid: " + "; ".join(issues[:5]), issues
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, "internal_error", "The server failed; see its log.")


# Declared on every route so the OpenAPI document lists the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": name.replace("_", " ")}
    for code, name in [
        (400, "bad_request"),
        (401, "unauthorized"),
        (403, "forbidden"),
        (404, "not_found"),
        (422, "validation_error"),
    ]
}
