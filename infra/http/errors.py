"""Errors at the HTTP edge: one table maps error classes to statuses, one handler renders them.

Every rejection is JSON `{"code", "field", "message" (Vietnamese), "message_en", "request_id"}`.
Errors that are not the domain's (FastAPI's request validation, routing, the database being
down, a bug) are first translated into a `DomainError` so the shape never varies.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.catalogue import EVENT_TYPES
from domain.errors import (
    ConflictError,
    DomainError,
    InvalidEventError,
    NotAuthorisedError,
    NotFoundError,
    RuleViolationError,
    UnexpectedItemError,
)
from services.access import NotAuthenticatedError

log = logging.getLogger("referrals.http")


class BodyTooLargeError(DomainError):
    """Raised when a request body exceeds `settings.max_body_bytes` (refused unread)."""

    http_status = 413


class BadRequestError(DomainError):
    """Raised when a request is ambiguous before any route reads it (a repeated header)."""

    http_status = 400


class RouteNotFoundError(DomainError):
    """Raised when no route matches the path."""

    http_status = 404


class MethodNotAllowedError(DomainError):
    """Raised when the path exists but not for this method."""

    http_status = 405


class StoreUnavailableError(DomainError):
    """Raised when the event store or our own tables cannot be reached."""

    http_status = 503


class InternalError(DomainError):
    """Raised for a bug: logged with its traceback, answered without details."""

    http_status = 500


STATUS_BY_ERROR: dict[type[DomainError], int] = {
    BadRequestError: 400,
    NotAuthenticatedError: 401,
    NotAuthorisedError: 403,
    NotFoundError: 404,
    RouteNotFoundError: 404,
    MethodNotAllowedError: 405,
    ConflictError: 409,
    BodyTooLargeError: 413,
    InvalidEventError: 422,
    RuleViolationError: 422,
    DomainError: 422,
    InternalError: 500,
    UnexpectedItemError: 500,
    StoreUnavailableError: 503,
}


def status_for(error: DomainError) -> int:
    """The HTTP status of an error: the table entry of its nearest class."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 500  # pragma: no cover - DomainError is in the table


def _store_errors() -> tuple[type[BaseException], ...]:
    import psycopg
    from eventsourcing.persistence import InterfaceError, OperationalError
    from psycopg_pool import PoolTimeout

    return (OperationalError, InterfaceError, psycopg.OperationalError, PoolTimeout)


def as_domain_error(exc: BaseException) -> DomainError:
    """Any exception as the DomainError that describes it to the client."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, RequestValidationError):
        return validation_error(exc.errors())
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return RouteNotFoundError("ROUTE_NOT_FOUND", None, value="")
        if exc.status_code == 405:
            return MethodNotAllowedError("METHOD_NOT_ALLOWED", None, value="", method="")
        if exc.status_code == 400:  # a body FastAPI could not decode (e.g. not UTF-8)
            return InvalidEventError(
                "FIELD_INVALID",
                "$",
                rule_vi="nội dung không phải JSON UTF-8 hợp lệ",
                rule_en="the body is not valid UTF-8 JSON",
            )
        return InternalError("INTERNAL_ERROR")
    if isinstance(exc, _store_errors()):
        return StoreUnavailableError("STORE_UNAVAILABLE")
    return InternalError("INTERNAL_ERROR")


def error_body(error: DomainError, request_id: str) -> dict[str, Any]:
    return {**error.as_dict(), "request_id": request_id}


def error_response(error: DomainError, request_id: str) -> JSONResponse:
    """The JSON response of an error; 401 also says how to authenticate."""
    status = status_for(error)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(error, request_id), status_code=status, headers=headers)


def request_id_of(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """The one handler every error class is registered with."""
    error = as_domain_error(exc)
    if isinstance(error, RouteNotFoundError | MethodNotAllowedError):
        path = request.url.path[:200]
        error = type(error)(error.code, None, value=path, method=request.method)
    status = status_for(error)
    if status >= 500:
        log.error("request failed: %s", error.code, exc_info=exc)
    response = error_response(error, request_id_of(request))
    if status == 405:  # RFC 9110 §15.5.6: a 405 names the methods the resource supports
        response.headers["Allow"] = allowed_methods(request, exc)
    return response


def _flat_routes(routes: Any, depth: int = 0) -> Any:
    """The app's routes, also those behind included routers (FastAPI keeps an included router
    as one entry that resolves its routes lazily)."""
    for route in routes:
        candidates = getattr(route, "effective_candidates", None)
        if not callable(candidates) or depth > 8:
            yield route
            continue
        for candidate in candidates():
            if callable(getattr(candidate, "effective_candidates", None)):
                yield from _flat_routes([candidate], depth + 1)
            else:
                yield (
                    getattr(candidate, "starlette_route", None)
                    or getattr(candidate, "original_route", None)
                )


def allowed_methods(request: Request, exc: Exception) -> str:
    """The methods of every route matching the request's path."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in _flat_routes(getattr(request.app, "routes", ())):
        route_methods = getattr(route, "methods", None)
        if not route_methods:
            continue
        match, _ = route.matches({**request.scope, "method": next(iter(route_methods))})
        if match == Match.FULL:
            methods |= set(route_methods)
    if not methods and isinstance(exc, StarletteHTTPException) and exc.headers:
        return exc.headers.get("Allow", "")
    return ", ".join(sorted(methods))


# --------------------------------------------------------------------- request validation
_RULES: dict[str, tuple[str, str]] = {
    "string_type": ("phải là chuỗi ký tự", "must be a string"),
    "string_too_short": ("không được rỗng hoặc quá ngắn", "must not be empty or too short"),
    "string_too_long": ("dài tối đa {max_length} ký tự", "at most {max_length} characters"),
    "string_pattern_mismatch": (
        "không đúng định dạng (mẫu {pattern})",
        "does not match the pattern {pattern}",
    ),
    "bool_type": ("phải là true hoặc false", "must be true or false"),
    "int_type": ("phải là số nguyên", "must be an integer"),
    "int_parsing": ("phải là số nguyên", "must be an integer"),
    "int_from_float": ("phải là số nguyên", "must be an integer"),
    "greater_than_equal": ("phải lớn hơn hoặc bằng {ge}", "must be at least {ge}"),
    "less_than": ("phải nhỏ hơn {lt}", "must be less than {lt}"),
    "literal_error": ("phải là một trong {expected}", "must be one of {expected}"),
    "model_type": ("phải là một đối tượng JSON", "must be a JSON object"),
    "model_attributes_type": ("phải là một đối tượng JSON", "must be a JSON object"),
    "dict_type": ("phải là một đối tượng JSON", "must be a JSON object"),
    "list_type": ("phải là một mảng JSON", "must be a JSON array"),
    "too_long": ("tối đa {max_length} phần tử", "at most {max_length} items"),
    "too_short": ("ít nhất {min_length} phần tử", "at least {min_length} items"),
    "json_invalid": ("JSON không hợp lệ ({error})", "invalid JSON ({error})"),
}
_SOURCES = ("body", "query", "path", "header", "cookie")


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as the wire's field path, e.g. 'data.person_id'."""
    parts = list(loc)
    if parts and parts[0] in _SOURCES:
        source = parts.pop(0)
        if source == "body" and parts and isinstance(parts[0], int):
            parts = []  # json_invalid: the position, not a field
    parts = [p for p in parts if not (isinstance(p, str) and p in EVENT_TYPES)]
    return ".".join(str(p) for p in parts) or "$"


def validation_error(errors: Any) -> InvalidEventError:
    """The first pydantic/FastAPI validation error as the domain's InvalidEventError."""
    first = dict(errors[0]) if errors else {"type": "value_error", "loc": (), "msg": ""}
    kind = first.get("type", "")
    loc = tuple(first.get("loc", ()))
    ctx = first.get("ctx") or {}
    path = field_path(loc)
    if kind == "missing":
        return InvalidEventError("FIELD_REQUIRED", path)
    if kind == "domain_rule":  # infra.http.schemas._refuse: the domain's code, on this path
        params = {k: v for k, v in ctx.items() if k != "code"}
        return InvalidEventError(str(ctx.get("code", "FIELD_INVALID")), path, **params)
    if kind == "union_tag_not_found":
        return InvalidEventError("FIELD_REQUIRED", _join(path, "type"))
    if kind == "union_tag_invalid":
        return InvalidEventError(
            "EVENT_TYPE_UNKNOWN", _join(path, "type"), value=str(ctx.get("tag", ""))[:64]
        )
    if kind == "extra_forbidden":
        tag = next((p for p in loc if isinstance(p, str) and p in EVENT_TYPES), "wire")
        return InvalidEventError("FIELD_UNKNOWN", path, event_type=tag)
    template = _RULES.get(kind)
    if template is None:
        message = str(first.get("msg", ""))
        return InvalidEventError(
            "FIELD_INVALID",
            path,
            rule_vi="giá trị không hợp lệ",
            rule_en=message[:1].lower() + message[1:],
        )
    if kind in ("literal_error", "enum") and "expected" in ctx:
        # pydantic's "'A', 'B' or 'C'" is English: list the values alone, in both languages
        values = ", ".join(_quoted_values(str(ctx["expected"])))[:300]
        return InvalidEventError(
            "FIELD_INVALID",
            path,
            rule_vi=f"phải là một trong: {values}",
            rule_en=f"must be one of: {values}",
        )
    params = {k: _short(v) for k, v in ctx.items()}
    try:
        rule_vi, rule_en = template[0].format(**params), template[1].format(**params)
    except (KeyError, IndexError):
        rule_vi, rule_en = template[0], template[1]
    return InvalidEventError("FIELD_INVALID", path, rule_vi=rule_vi, rule_en=rule_en)


def _join(path: str, name: str) -> str:
    return name if path == "$" else f"{path}.{name}"


def _quoted_values(expected: str) -> list[str]:
    """["A", "B", "C"] from pydantic's "'A', 'B' or 'C'" (the text itself if unquoted)."""
    import re

    values = re.findall(r"'([^']*)'", expected)
    return values or [expected]


def _short(value: Any) -> str:
    return str(value)[:120]
