"""The FastAPI application: built from a container, nothing at import time."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from domain.errors import DomainError
from infra.bootstrap import Container


def create_app(container: Container) -> FastAPI:
    """The HTTP service over one container."""
    app = FastAPI(title="Sổ theo dõi trợ giúp pháp lý trong tố tụng", version="0.1.0")
    app.state.container = container

    @app.exception_handler(DomainError)
    def domain_error(_: Request, error: DomainError) -> JSONResponse:
        return JSONResponse(error.as_dict(), status_code=error.http_status)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/cases/{case_id}")
    def read_case(case_id: str) -> dict:
        return container.referrals.get_case(case_id).snapshot_view()

    return app
