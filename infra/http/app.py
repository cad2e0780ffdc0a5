"""The FastAPI application: built from a container, nothing at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.util import find_spec
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import DomainError
from infra.bootstrap import Container
from infra.http.errors import handle_error
from infra.http.middleware import (
    BodyLimitMiddleware,
    RequestContextMiddleware,
    StrictRequestMiddleware,
)
from infra.http.routes import access_log, cases, events, held, ops, reference, reference_versions
from infra.http.routes import log as transparency_http
from infra.http.routes import reports as projections_http
from infra.http.schemas import openapi_with_reference

DESCRIPTION = """
Sổ theo dõi trợ giúp pháp lý trong tố tụng (TTLT 10/2018): các cơ quan tiến hành tố tụng, cơ
sở giam giữ và Trung tâm TGPL ghi sự kiện; thanh tra và Hội đồng phối hợp liên ngành đọc.

Xác thực bằng mã truy cập (`Authorization: Bearer …`). Mọi lỗi có dạng
`{"code", "field", "message", "message_en", "request_id"}`.

Lược đồ nói đúng những gì được nhận (danh mục là enum: `GET /v1/reference`). Quy tắc mà lược
đồ không diễn đạt được (trình tự vụ việc, ai được ghi, hiệu lực của mã, thời điểm trong khoảng
luật định, tham số đi kèm nhau) được kiểm tra ở máy chủ: trả 422 nêu trường. Một lô mà mọi sự
kiện đều bị từ chối vẫn trả 200: kết quả từng sự kiện nằm trong `items` (docs/api.md).

The schema says exactly what is accepted; rules it cannot express (lifecycle, who may act,
validity of a code, instants in the legal range, parameters that go together) are checked by
the server and answered 422 naming the field. A batch whose items are all rejected still
answers 200: each item's result is in `items`.
"""


def _operation_id(route: APIRoute) -> str:
    return route.name


async def _handle(request: Request, exc: Exception) -> JSONResponse:
    return handle_error(request, exc)


DOCS_ASSETS = "/docs-assets"  # Swagger UI's files, from the swagger-ui-bundle package


def _install_offline_docs(app: FastAPI) -> None:
    """`/docs` with Swagger UI served by the app itself: intranets without internet see it."""
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )


def _install_reference_enums(app: FastAPI, container: Container) -> None:
    """`/openapi.json` with the reference lists as enums (built once, on first request)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_with_reference(build(), container.reference)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(container: Container, owns_container: bool = False) -> FastAPI:
    """The HTTP service over one container (closed at shutdown if `owns_container`)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if owns_container:
                container.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Sổ theo dõi trợ giúp pháp lý trong tố tụng",
        version="1.0.0",
        description=DESCRIPTION,
        generate_unique_id_function=_operation_id,
        docs_url=None,  # served below from the package's own Swagger UI files (no CDN)
        redoc_url=None,
    )
    _install_offline_docs(app)
    app.state.container = container
    for error_class in (DomainError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(error_class, _handle)
    # the transparency routes come before the cases router: its `/v1/cases/{case_id:path}`
    # would otherwise swallow `/v1/cases/{case_id}/bundle`
    for router in (
        ops.router,
        events.router,
        held.router,
        transparency_http.router,
        cases.router,
        access_log.router,
        projections_http.router,
        reference.router,
        reference_versions.router,
    ):
        app.include_router(router)
    _install_reference_enums(app, container)
    if find_spec("infra.web") is not None:
        from infra.web import install

        install(app, container)
    app.add_middleware(StrictRequestMiddleware)  # inside the body limit: reads a bounded body
    app.add_middleware(BodyLimitMiddleware, max_bytes=container.settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)  # outermost: ids every request and error
    return app
