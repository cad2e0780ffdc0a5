"""The inspectors' and council's web pages (server-rendered, Vietnamese first).

    install(app, container)              adds the pages under /web to the API's FastAPI app
    ensure_demo_accounts(container)      the embedded demo's inspector and council accounts

Pages: /web/sign-in, /web/cases (search), /web/cases/{case_id} (timeline, replay, time
limits, integrity), /web/dashboard (+ /web/dashboard/cases, the cases behind a number),
/web/reports (+ /web/reports/download), /web/inspection. See docs/web.md.
"""

from __future__ import annotations

import secrets
from typing import Any

DEMO_ACCOUNTS = (
    ("thanhtra", "inspector", "Thanh tra (demo)", ("LSN", "VLG")),
    ("hoidong", "council", "Hội đồng phối hợp liên ngành tỉnh Lạng Sơn (demo)", ("LSN",)),
)


def install(app: Any, container: Any) -> None:
    """Adds the pages, their static files and their error handling to `app` (idempotent)."""
    if getattr(app.state, "web_installed", False):
        return
    from fastapi.staticfiles import StaticFiles

    from infra.web import errors
    from infra.web.accounts import account_store
    from infra.web.deps import PREFIX, STATIC, Renderer
    from infra.web.routes import auth, cases, reference, stats

    app.state.web_accounts = account_store(container)
    app.state.web_renderer = Renderer(container)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(STATIC)), name="web-static")
    for router in (auth.router, cases.router, stats.router, reference.router, errors.fallback):
        app.include_router(router)
    errors.register_handlers(app)
    if not any(getattr(route, "path", None) == "/favicon.ico" for route in app.router.routes):
        from fastapi.responses import FileResponse

        @app.get("/favicon.ico", include_in_schema=False)
        def favicon() -> FileResponse:
            """Browsers ask for it at the root of every site (the pages also link it)."""
            return FileResponse(
                STATIC / "favicon.ico",
                media_type="image/x-icon",
                headers={"Cache-Control": "public, max-age=86400"},
            )

    if not any(getattr(route, "path", None) == "/" for route in app.router.routes):
        from fastapi.responses import RedirectResponse

        @app.get("/", include_in_schema=False)
        def root() -> RedirectResponse:
            return RedirectResponse(f"{PREFIX}/cases", status_code=307)

    app.state.web_installed = True


def ensure_demo_accounts(container: Any) -> list[tuple[str, str]]:
    """Creates (or resets the password of) the demo inspector (LSN, VLG) and council (LSN)
    accounts; returns [(username, password)] to print. The passwords are kept in the data
    directory, so they stay the same across restarts. Refused in production."""
    if container.settings.environment == "production":
        return []
    from infra import demo_credentials
    from infra.web.accounts import account_store

    store = account_store(container)
    kept = demo_credentials.load(container.settings)["accounts"]  # same across restarts
    out = []
    for username, role, name, provinces in DEMO_ACCOUNTS:
        password = kept.get(username) or secrets.token_urlsafe(12)
        if store.account(username) is None:
            store.create_account(
                username, password, role, name, provinces=provinces, reference=container.reference
            )
        else:
            store.set_password(username, password)
        out.append((username, password))
    demo_credentials.save(container.settings, "accounts", dict(out))
    return out
