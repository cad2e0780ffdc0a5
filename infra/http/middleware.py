"""ASGI middleware of the API: request ids and structured logs, the body-size limit, and
the refusal of ambiguous requests (a repeated Authorization header, a JSON key twice).

Plain ASGI classes (not BaseHTTPMiddleware): they cost little per request, which matters for
the single-event post rate.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from domain.errors import DomainError
from infra.http.errors import (
    BadRequestError,
    BodyTooLargeError,
    as_domain_error,
    error_body,
    status_for,
)
from services.wire import loads_strict

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:@/+=-]{1,128}$")
log = logging.getLogger("referrals.http")


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class RequestContextMiddleware:
    """Gives every request an id (client's `X-Request-ID` if sane, else generated), echoes it,
    logs one JSON line per request, and answers an unexpected error in the error shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = b""
        for name, value in scope.get("headers", ()):
            if name == REQUEST_ID_HEADER:
                request_id = value
                break
        if not _REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex.encode()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id.decode()
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - the one place a bug becomes a 500 answer
            error = as_domain_error(exc)
            log.error("unhandled error", exc_info=exc, extra={"request_id": state["request_id"]})
            if status == 0:
                status = status_for(error)
                await _send_json(
                    send,
                    status,
                    error_body(error, state["request_id"]),
                    [(REQUEST_ID_HEADER, request_id)],
                )
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "request_id": state["request_id"],
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        "principal_id": state.get("principal_id"),
                    },
                )


class BodyLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413 before anything parses them: by the declared
    Content-Length first, then by counting the bytes actually streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes:
                    await self._refuse(scope, send)
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        await self.app(
            scope,
            _replay([{"type": "http.request", "body": body, "more_body": False}], receive),
            send,
        )

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = BodyTooLargeError("BODY_TOO_LARGE", "$", limit=self.max_bytes)
        request_id = scope.get("state", {}).get("request_id", "-")
        await _send_json(send, 413, error_body(error, request_id), [(b"connection", b"close")])


class StrictRequestMiddleware:
    """Refuses what would otherwise be read one way silently: a repeated `Authorization`
    header (400 HEADER_REPEATED; the first would win) and a JSON body naming a key twice in an
    object (422 JSON_DUPLICATE_KEY; the last would win), on every route that takes JSON.

    Sits inside BodyLimitMiddleware, which hands it the whole (bounded) body at once. A body
    that is not JSON at all is left to the route, which answers it as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorizations = 0
        content_type = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorizations += 1
            elif name == b"content-type":
                content_type = value
        if authorizations > 1:
            await self._refuse(scope, send, BadRequestError("HEADER_REPEATED", "Authorization"))
            return
        if scope.get("method") not in ("POST", "PUT", "PATCH") or not _is_json(content_type):
            await self.app(scope, receive, send)
            return
        message = await receive()
        body = message.get("body", b"") if message["type"] == "http.request" else b""
        if body and not message.get("more_body", False):
            try:
                loads_strict(body)
            except DomainError as error:
                await self._refuse(scope, send, error)
                return
            except (ValueError, RecursionError):  # not JSON: the route says so
                pass
        await self.app(scope, _replay([message], receive), send)

    async def _refuse(self, scope: Scope, send: Send, error: DomainError) -> None:
        request_id = scope.get("state", {}).get("request_id", "-")
        await _send_json(send, status_for(error), error_body(error, request_id))


def _is_json(content_type: bytes | None) -> bool:
    """Whether FastAPI reads the body as JSON: no content type, or application/json, *+json."""
    if not content_type:
        return True
    main = content_type.split(b";", 1)[0].strip().lower()
    return main == b"application/json" or (
        main.startswith(b"application/") and main.endswith(b"+json")
    )


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: time, level, logger, message and the structured extras."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
        "message",
        "asctime",
        "color_message",
    }

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


JsonFormatter.converter = time.gmtime  # type: ignore[assignment]


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """`logging.config.dictConfig` for the server: JSON lines on stderr (uvicorn's too)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": "WARNING"},
        "loggers": {
            "referrals": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
