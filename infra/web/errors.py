"""How the pages answer a missing session (a redirect to the sign-in form) and a refusal or
unknown page (an HTML error page, never the API's JSON)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from infra.web.deps import PREFIX, SESSION_COOKIE, SignInRequired, WebError, redirect, renderer


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    expired = "&expired=1" if request.cookies.get(SESSION_COOKIE) else ""
    response = redirect(f"{PREFIX}/sign-in?next={quote(target, safe='')}{expired}")
    if expired:
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


def _web_error(request: Request, exc: Exception) -> Response:
    from infra.web.deps import get_store

    status, key = (exc.status, exc.key) if isinstance(exc, WebError) else (500, "error_title")
    session = get_store(request).session(request.cookies.get(SESSION_COOKIE))
    return renderer(request).page(
        request, "error.html", session, status_code=status, message_key=key
    )


def register_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.add_exception_handler(WebError, _web_error)


fallback = APIRouter(prefix=PREFIX, include_in_schema=False)


@fallback.get("/{rest:path}")
def unknown_page(rest: str) -> Response:
    """Any other address under the pages: an HTML "not found" (included last)."""
    raise WebError(404, "not_found")
