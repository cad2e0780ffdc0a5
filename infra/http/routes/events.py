"""Posting events: one at a time, or a batch judged item by item."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Response
from pydantic import BaseModel, TypeAdapter, ValidationError

from domain.errors import DomainError, utf8_safe
from domain.referral import Recorded
from infra.http.deps import ContainerDep, CurrentPrincipal, ReferralsDep
from infra.http.errors import validation_error
from infra.http.routes import error_responses
from infra.http.schemas import (
    BatchIn,
    BatchItemOut,
    BatchOut,
    ItemError,
    RecordedOut,
    WireEventIn,
    awaiting_out,
    wire_dict,
)
from infra.transparency.service import receipt_for, receipts_for
from services.access import may_post

router = APIRouter(prefix="/v1/events", tags=["events"])
_EVENT = TypeAdapter(WireEventIn)
_DOMAIN_RULES = (
    "the case's lifecycle (which event may follow which), who may record it (the token's "
    "agency, the agency kinds the law names), codes in force on the event's date, "
    "`occurred_at` within the legal range (not before the law, not after the recording time), "
    "the fields an opening event needs; `expected_version` written as an integer (`1`, not "
    "`1.0`, which JSON Schema also calls an integer)"
)
_LOCATION = {"Location": {"description": "Địa chỉ của vụ việc", "schema": {"type": "string"}}}


def case_location(case_id: str) -> str:
    """The URL path of a case."""
    return "/v1/cases/" + quote(case_id, safe="")


def _status(recorded: Recorded) -> str:
    if recorded.duplicate:
        return "duplicate"
    return "held" if recorded.held else "recorded"


def _recorded_out(recorded: Recorded, receipt: str | None) -> RecordedOut:
    return RecordedOut(
        case_id=recorded.case_id,
        event_id=recorded.event_id,
        status=_status(recorded),
        awaiting=awaiting_out(recorded.awaiting),
        version=None if recorded.scope_only else recorded.version,
        recorded_at=recorded.recorded_at,
        duplicate=recorded.duplicate,
        position=recorded.position,
        receipt=receipt,
    )


@router.post(
    "",
    status_code=201,
    response_model=RecordedOut,
    summary="Ghi một sự kiện",
    responses={
        201: {"description": "Đã ghi mới, có hiệu lực (status recorded)", "headers": _LOCATION},
        202: {
            "model": RecordedOut,
            "headers": _LOCATION,
            "description": "Đã ghi, đang chờ (status held): sự kiện đứng trước nó theo thời "
            "điểm xảy ra chưa đến (awaiting nêu sự kiện đang chờ); tự có hiệu lực khi sự "
            "kiện đó đến (ADR 0008)",
        },
        200: {
            "model": RecordedOut,
            "headers": _LOCATION,
            "description": "Sự kiện này đã được ghi trước đó (gửi lại): không ghi trùng",
        },
        **error_responses(401, 403, 409, 413, 422, 503, rules=_DOMAIN_RULES),
    },
)
def post_event(
    event: Annotated[WireEventIn, Body()],  # type: ignore[valid-type]
    principal: CurrentPrincipal,
    referrals: ReferralsDep,
    container: ContainerDep,
) -> Response:
    """Records one event of the wire format. Sending the same `event_id` with the same
    content again answers 200 with the original version (nothing new is recorded). An event
    whose predecessor (in occurred order) has not arrived yet is recorded and held: 202,
    `status: "held"`, `awaiting` names what it waits for (ADR 0008)."""
    may_post(principal, event.agency_id)
    recorded = container.group_recorder.record(wire_dict(event))
    receipt = receipt_for(container, recorded)
    # Answered directly (the body is built from RecordedOut): the hot path of the API skips
    # FastAPI's second validation of the response, which would cost a thread-pool hop.
    return Response(
        _recorded_out(recorded, receipt).model_dump_json().encode(),
        status_code=200 if recorded.duplicate else 202 if recorded.held else 201,
        media_type="application/json",
        headers={"Location": case_location(recorded.case_id)},
    )


def _rejected(index: int, raw: Any, error: DomainError) -> BatchItemOut:
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    return BatchItemOut(
        index=index,
        status="rejected",
        event_id=utf8_safe(event_id[:128]) if isinstance(event_id, str) else None,
        case_id=None,
        error=ItemError(**error.as_dict()),
    )


@router.post(
    "/batch",
    response_model=BatchOut,
    summary="Ghi một lô sự kiện (tối đa 1.000)",
    responses={
        200: {
            "description": (
                "Kết quả từng sự kiện: recorded | held | duplicate | rejected. Lô được nhận thì trả 200 kể "
                "cả khi mọi sự kiện đều bị từ chối (mỗi sự kiện có lỗi riêng trong `items`, "
                "`rejected` đếm chúng); 422 chỉ khi bản thân lô sai (thiếu `events`, không phải "
                "mảng, quá 1.000). A batch answers 200 even when every item is rejected, by design: "
                "each item is judged on its own and carries its own error."
            )
        },
        **error_responses(401, 403, 413, 422, 503),
    },
)
def post_batch(
    batch: BatchIn, principal: CurrentPrincipal, referrals: ReferralsDep, container: ContainerDep
) -> Response:
    """Judges every event on its own: a rejected item (with code, field and messages) does not
    stop the others. Items of the same case are applied in the given order."""
    if principal.role != "agency":
        may_post(principal, "")  # raises: only agencies post
    items: list[BatchItemOut | None] = [None] * len(batch.events)
    accepted: list[int] = []
    wires: list[dict[str, Any]] = []
    for index, raw in enumerate(batch.events):
        try:
            event: BaseModel = _EVENT.validate_python(raw)
            may_post(principal, event.agency_id)  # type: ignore[attr-defined]
        except ValidationError as error:
            items[index] = _rejected(index, raw, validation_error(error.errors()))
        except DomainError as error:
            items[index] = _rejected(index, raw, error)
        else:
            accepted.append(index)
            wires.append(wire_dict(event))
    results = referrals.record_batch(wires) if wires else []
    receipts = receipts_for(container, results) if results else []
    for index, wire, result, receipt in zip(accepted, wires, results, receipts, strict=True):
        if isinstance(result, Recorded):
            items[index] = BatchItemOut(
                index=index,
                status=_status(result),
                awaiting=awaiting_out(result.awaiting),
                event_id=result.event_id,
                case_id=result.case_id,
                version=None if result.scope_only else result.version,
                recorded_at=result.recorded_at,
                position=result.position,
                receipt=receipt,
            )
        else:
            items[index] = _rejected(index, wire, result.error)
    out = [item for item in items if item is not None]
    answer = BatchOut(
        recorded=sum(1 for i in out if i.status in ("recorded", "held")),
        duplicates=sum(1 for i in out if i.status == "duplicate"),
        rejected=sum(1 for i in out if i.status == "rejected"),
        held=sum(1 for i in out if i.status == "held"),
        items=out,
    )
    # Answered directly, as the single post is: FastAPI would validate the 1,000 items of the
    # response model a second time before serialising them (the same JSON).
    return Response(answer.model_dump_json().encode(), media_type="application/json")
