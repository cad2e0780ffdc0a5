"""Signing in and out: a double-submit CSRF token guards the sign-in form (there is no session
yet), the session's own token guards every later POST."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from infra.web.accounts import SignInError
from infra.web.deps import (
    PREFIX,
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    StoreDep,
    WebError,
    check_csrf,
    check_origin,
    redirect,
    renderer,
    safe_next,
    set_cookie,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


def _sign_in_page(
    request: Request,
    next_url: str,
    status: int = 200,
    error: str | None = None,
    notice: str | None = None,
) -> Response:
    token = request.cookies.get(SIGN_IN_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(32)
    response = renderer(request).page(
        request,
        "sign_in.html",
        None,
        status_code=status,
        csrf_token=token,
        next_url=next_url,
        error=error,
        notice=notice,
    )
    set_cookie(response, request, SIGN_IN_COOKIE, token, max_age=3600)
    return response


@router.get("/sign-in")
def sign_in_form(
    request: Request,
    store: StoreDep,
    next_url: Annotated[str | None, Query(alias="next", max_length=2000)] = None,
    signed_out: Annotated[int, Query(ge=0, le=1)] = 0,
    expired: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    """The sign-in form (straight on to the pages when already signed in)."""
    if store.session(request.cookies.get(SESSION_COOKIE)) is not None:
        return redirect(safe_next(next_url))
    notice = "signed_out" if signed_out else ("session_expired" if expired else None)
    return _sign_in_page(request, safe_next(next_url), notice=notice)


@router.post("/sign-in")
def sign_in(
    request: Request,
    store: StoreDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=2000)] = "",
) -> Response:
    """Opens a session for a correct username and password; the form again otherwise."""
    target = safe_next(next_url)
    try:
        check_origin(request)
        check_csrf(request.cookies.get(SIGN_IN_COOKIE), csrf_token)
    except WebError:
        return _sign_in_page(request, target, status=403, error="csrf_refused")
    try:
        account = store.authenticate(
            username, password, source=request.client.host if request.client else None
        )
    except SignInError:
        return _sign_in_page(request, target, status=400, error="wrong_password")
    session_id, session = store.open_session(account)
    response = redirect(target)
    set_cookie(
        response,
        request,
        SESSION_COOKIE,
        session_id,
        max_age=int((session.expires_at - session.created_at).total_seconds()),
    )
    response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
    return response


@router.post("/sign-out")
def sign_out(
    request: Request,
    store: StoreDep,
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Ends the session (its CSRF token required) and returns to the sign-in form."""
    session_id = request.cookies.get(SESSION_COOKIE)
    session = store.session(session_id)
    if session is not None:
        check_origin(request)
        check_csrf(session.csrf_token, csrf_token)
        store.close_session(session_id)
    response = redirect(f"{PREFIX}/sign-in?signed_out=1")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response
