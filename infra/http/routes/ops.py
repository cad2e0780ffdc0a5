"""Liveness and readiness of the service (no authentication: they reveal nothing)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infra.http.deps import ContainerDep
from infra.http.errors import StoreUnavailableError, error_body, request_id_of
from infra.http.routes import error_responses
from infra.http.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])
log = logging.getLogger("referrals.http")


@router.get("/health", response_model=HealthOut, summary="Tiến trình còn sống")
async def health() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut(status="ok")


@router.get("/ready", response_model=ReadyOut, responses=error_responses(503),
            summary="Sẵn sàng phục vụ (kho sự kiện truy cập được)")
def ready(request: Request, container: ContainerDep) -> ReadyOut | JSONResponse:
    """Readiness: the event store answers a cheap query; 503 when it does not."""
    try:
        container.referrals.recorder.max_notification_id()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        log.warning("event store not ready: %s", exc)
        error = StoreUnavailableError("STORE_UNAVAILABLE")
        return JSONResponse(error_body(error, request_id_of(request)), status_code=503)
    return ReadyOut(status="ready", store=container.settings.store)
