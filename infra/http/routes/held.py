"""Held events (issue 13, ADR 0008): recorded facts awaiting an earlier fact, with their age
and the anomaly flag; an agency sees its own, inspectors and the council their provinces'."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from infra.http.deps import ContainerDep, CurrentPrincipal
from infra.http.errors import StoreUnavailableError
from infra.http.routes import error_responses
from services.held import held_listing, held_scope

router = APIRouter(prefix="/v1/held-events", tags=["events"])


class HeldEventOut(BaseModel):
    """Một sự kiện đã ghi nhưng đang chờ sự kiện đứng trước nó (theo thời điểm xảy ra)."""

    case_id: str
    event_id: str
    version: int | None = Field(
        description="Phiên bản của vụ việc khi ghi sự kiện này; null cho cơ quan xem sự kiện "
        "của mình đang chờ vì chưa có phần trong vụ việc (ADR 0008)"
    )
    event_type: str
    agency_id: str = Field(description="Cơ quan đã gửi sự kiện")
    province: str | None
    occurred_at: datetime = Field(description="Thời điểm xảy ra (đồng hồ của luật)")
    recorded_at: datetime | None = Field(description="Thời điểm sổ ghi nhận")
    reason: str = Field(description="Mã quy tắc chưa đáp ứng, ví dụ ORDER_VIOLATION")
    awaiting: list[str] = Field(description="Các loại sự kiện đang chờ (một trong số đó)")
    age_hours: float | None = Field(description="Đã chờ bao nhiêu giờ (từ khi ghi nhận)")
    anomaly: bool = Field(description="Chờ quá thời hạn cấu hình (mặc định 72 giờ): bất thường")


class HeldEventsOut(BaseModel):
    """Danh sách sự kiện đang chờ, cũ nhất trước."""

    anomaly_after_hours: float
    anomalies: int
    events: list[HeldEventOut]


@router.get(
    "",
    response_model=HeldEventsOut,
    summary="Sự kiện đang chờ (held)",
    responses=error_responses(401, 403, 503),
)
def list_held(
    principal: CurrentPrincipal,
    container: ContainerDep,
    agency_id: Annotated[
        str | None, Query(max_length=64, description="Chỉ sự kiện của cơ quan này")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> HeldEventsOut:
    """Events recorded but not in effect, awaiting an earlier fact (ADR 0008), oldest first,
    each with its age and `anomaly` once held longer than `REFERRALS_HELD_ANOMALY_AFTER_HOURS`
    (72 h by default). An agency lists its own; an inspector or the council its provinces'.
    Served by the case index read model, which may lag the ledger by moments."""
    scope = held_scope(principal, agency_id)
    projections: Any = getattr(container, "projections", None)
    if projections is None or "case_index" not in projections:
        raise StoreUnavailableError("STORE_UNAVAILABLE")
    rows = projections.case_index.held(limit=limit, **scope)
    after = container.settings.held_anomaly_after_hours
    listed = held_listing(rows, container.referrals.clock(), after, principal)
    return HeldEventsOut(
        anomaly_after_hours=after,
        anomalies=sum(1 for r in listed if r["anomaly"]),
        events=[HeldEventOut(**r) for r in listed],
    )
