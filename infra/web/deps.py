"""What every page needs: the container, the account store, the signed-in session (or a
redirect to the sign-in page), the language, CSRF and Origin checks, and HTML rendering with
the pages' security headers."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from infra.bootstrap import Container
from infra.web import format as fmt
from infra.web.accounts import AccountStore, WebSession
from infra.web.i18n import LANGUAGES, translator

PREFIX = "/web"
SESSION_COOKIE = "rl_session"
SIGN_IN_COOKIE = "rl_signin"  # the sign-in form's CSRF token (double submit), before a session
LANG_COOKIE = "rl_lang"
TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


class SignInRequired(Exception):
    """Raised when a page needs a session and the request has none valid (→ sign-in page)."""


class WebError(Exception):
    """Raised to answer a page with an error page: status and the i18n key of the message."""

    def __init__(self, status: int, key: str, detail: str = "") -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.detail = detail


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def get_store(request: Request) -> AccountStore:
    store: AccountStore = request.app.state.web_accounts
    return store


def lang_of(request: Request) -> str:
    """`?lang=` if given, else the remembered choice, else Vietnamese."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    remembered = request.cookies.get(LANG_COOKIE)
    return remembered if remembered in LANGUAGES else "vi"


def current_session(request: Request) -> WebSession:
    """The signed-in session; SignInRequired otherwise. Names the principal in the request log."""
    session = get_store(request).session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired
    request.scope.setdefault("state", {})["principal_id"] = session.principal.principal_id
    return session


def check_origin(request: Request) -> None:
    """Refuses a POST whose Origin (when sent) is not this site (a second CSRF defence)."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        if urlsplit(origin).netloc != request.headers.get("host", ""):
            raise WebError(403, "csrf_refused")
    elif origin == "null":
        raise WebError(403, "csrf_refused")


def check_csrf(expected: str | None, given: str | None) -> None:
    """Refuses a form whose CSRF token is missing or not the expected one."""
    if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise WebError(403, "csrf_refused")


ContainerDep = Annotated[Container, Depends(get_container)]
StoreDep = Annotated[AccountStore, Depends(get_store)]
SessionDep = Annotated[WebSession, Depends(current_session)]
LangDep = Annotated[str, Depends(lang_of)]


def safe_next(target: str | None) -> str:
    """A same-site path under the pages to go to after signing in (never another site)."""
    if (
        not target
        or not target.startswith(PREFIX + "/")
        or target.startswith("//")
        or "\\" in target
        or any(ord(c) < 32 for c in target)
    ):
        return PREFIX + "/cases"
    return target


def secure_cookies(request: Request) -> bool:
    container: Container = request.app.state.container
    return request.url.scheme == "https" or container.settings.environment == "production"


def set_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
    )


def no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def redirect(url: str) -> RedirectResponse:
    return no_store(RedirectResponse(url, status_code=303))  # type: ignore[return-value]


class Renderer:
    """Jinja2 templates of the pages, with the helpers every template uses."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self.env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=select_autoescape(("html",)),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        reference = container.reference
        self.env.filters.update(
            vn_time=fmt.vn_time,
            vn_date=fmt.vn_date,
            date_input=fmt.date_input,
            agency=lambda a: fmt.agency_name(reference, a),
            category=lambda c: fmt.code_name(reference, "categories", c),
            role=lambda c: fmt.code_name(reference, "procedural_roles", c),
            stage=lambda c: fmt.code_name(reference, "stages", c),
            number=lambda n: f"{n:,}".replace(",", "."),
        )
        self.env.globals.update(
            reference=reference,
            PREFIX=PREFIX,
            DATE_PATTERN=fmt.DATE_PATTERN,
            DATETIME_PATTERN=fmt.DATETIME_PATTERN,
            DATE_PLACEHOLDER=fmt.DATE_PLACEHOLDER,
            DATETIME_PLACEHOLDER=fmt.DATETIME_PLACEHOLDER,
            qs=lambda **kw: urlencode({k: v for k, v in kw.items() if v is not None}),
        )

    def page(
        self,
        request: Request,
        template: str,
        session: WebSession | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        lang = lang_of(request)
        t = translator(lang)
        values = dict(
            request=request,
            lang=lang,
            t=t,
            session=session,
            principal=session.principal if session is not None else None,
            path=request.url.path,
            other_lang_url=_with_query(request, lang="en" if lang == "vi" else "vi"),
            query=lambda **changes: _with_query(request, **changes),
            event_title=lambda wire: fmt.event_title(wire, lang),
            period_text=lambda start, end: fmt.period_text(start, end, lang),
        )
        values.update(context)
        html = self.env.get_template(template).render(**values)
        response = HTMLResponse(html, status_code=status_code)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        no_store(response)
        if request.query_params.get("lang") in LANGUAGES:
            set_cookie(response, request, LANG_COOKIE, lang, max_age=365 * 86400)
        return response


def _with_query(request: Request, **changes: Any) -> str:
    """The current page's URL with some query parameters changed (None removes one)."""
    params = {k: v for k, v in request.query_params.multi_items() if k not in changes}
    items = list(params.items()) + [(k, v) for k, v in changes.items() if v is not None]
    query = urlencode(items)
    return request.url.path + (f"?{query}" if query else "")


def renderer(request: Request) -> Renderer:
    found: Renderer = request.app.state.web_renderer
    return found
