"""Liveness and readiness of the service (no authentication: they reveal nothing)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infra.http.deps import ContainerDep
from infra.http.errors import StoreUnavailableError, error_body, request_id_of
from infra.http.routes import error_responses
from infra.http.schemas import HealthOut, ReadyOut

router = APIRouter(tags=["operations"])
log = logging.getLogger("referrals.http")
READY_TIMEOUT_S = 2
"""How long readiness waits for PostgreSQL: a probe must answer, not hang with the store."""


def _store_answers(container: Any) -> None:
    """Raises unless the event store answers a cheap query within READY_TIMEOUT_S.

    On PostgreSQL, one fresh connection with short timeouts: the event store's pool waits up
    to 30 s for a connection and the library retries that 10 times, so asking through it kept
    a probe (and a thread of the pool) hanging for minutes while the database was down.
    """
    settings = container.settings
    if settings.store != "postgres":
        container.referrals.recorder.max_notification_id()
        return
    import psycopg
    from psycopg import sql

    recorder = container.referrals.recorder
    table = sql.Identifier(recorder.datastore.schema, recorder.events_table_name)
    with psycopg.connect(
        settings.pg_service_conninfo(), connect_timeout=READY_TIMEOUT_S, autocommit=True
    ) as conn:
        conn.execute(f"SET statement_timeout = {READY_TIMEOUT_S * 1000}")
        conn.execute(sql.SQL("SELECT max(notification_id) FROM {}").format(table))


@router.get("/health", response_model=HealthOut, summary="Tiến trình còn sống")
async def health() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut(status="ok")


@router.get(
    "/ready",
    response_model=ReadyOut,
    responses=error_responses(503),
    summary="Sẵn sàng phục vụ (kho sự kiện truy cập được)",
)
def ready(request: Request, container: ContainerDep) -> ReadyOut | JSONResponse:
    """Readiness: the event store answers a cheap query; 503 when it does not."""
    try:
        _store_answers(container)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        log.warning("event store not ready: %s", exc)
        error = StoreUnavailableError("STORE_UNAVAILABLE")
        return JSONResponse(error_body(error, request_id_of(request)), status_code=503)
    return ReadyOut(status="ready", store=container.settings.store)
