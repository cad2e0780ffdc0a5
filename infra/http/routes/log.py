"""The transparency log over HTTP: signed checkpoints, witness cosignatures, proofs, case bundles.

Public (no token): the log's public key, checkpoints, consistency proofs, and posting a
cosignature (accepted only when it verifies under a configured witness key). Token-scoped:
inclusion proofs and case bundles, for inspectors and councils of the case's province, the
agencies that touched the case, and administrators.

Include `router` in the app BEFORE the cases router: `/v1/cases/{case_id:path}` would otherwise
swallow `/v1/cases/{case_id}/bundle`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import PlainTextResponse

from domain.catalogue import INSTANT_PATTERN, parse_instant
from domain.errors import InvalidEventError
from infra.http.deps import ContainerDep, CurrentPrincipal
from infra.http.routes import error_responses
from infra.transparency.service import transparency_log
from services.access import Principal, case_scope, may_read_case

router = APIRouter(tags=["transparency"])

_NOTE = {
    "content": {"text/plain": {"schema": {"type": "string"}}},
    "description": "Ghi chú đã ký (C2SP signed note)",
}
_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"


def _may_read(container: Any, principal: Principal, case_id: str) -> None:
    """Administrators, and whoever may read the case (services.access.may_read_case)."""
    history = container.referrals.case_history(case_id)  # 404 for an unknown case
    if principal.role == "admin":
        return
    may_read_case(principal, case_scope(case_id, history, container.referrals.reference))


@router.get(
    "/v1/log/public-key",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {}}, "description": "Khoá công khai"}},
    summary="Khoá công khai của sổ (Ed25519, dạng khoá kiểm chứng C2SP)",
)
def log_public_key(container: ContainerDep) -> PlainTextResponse:
    """The log's verifier key text, "<origin>+<key id>+<base64 key>"."""
    return PlainTextResponse(transparency_log(container).public_key + "\n")


@router.get(
    "/v1/log/checkpoint",
    responses={200: _NOTE, **error_responses(503)},
    summary="Điểm kiểm (checkpoint) mới nhất đã ký, kèm chữ ký đồng xác nhận",
)
def latest_checkpoint(container: ContainerDep) -> PlainTextResponse:
    """The latest signed checkpoint (c2sp.org/tlog-checkpoint) with witness cosignatures."""
    return PlainTextResponse(transparency_log(container).latest_checkpoint().cosigned_note)


@router.get(
    "/v1/log/checkpoints/{size}",
    responses={200: _NOTE, **error_responses(404, 503)},
    summary="Điểm kiểm đã ký ở một kích thước cây",
)
def checkpoint_at(container: ContainerDep, size: Annotated[int, Path(ge=0)]) -> PlainTextResponse:
    """The signed checkpoint of one tree size, with its cosignatures."""
    return PlainTextResponse(transparency_log(container).checkpoint(size).cosigned_note)


@router.post(
    "/v1/log/checkpoints/{size}/cosignatures",
    status_code=201,
    responses={
        201: _NOTE,
        **error_responses(
            404,
            422,
            503,
            rules="the line must be a cosignature/v1 line that verifies "
            "under a configured witness key",
        ),
    },
    summary="Nhân chứng gửi chữ ký đồng xác nhận (cosignature/v1)",
)
def post_cosignature(
    container: ContainerDep,
    size: Annotated[int, Path(ge=0)],
    line: Annotated[str, Body(media_type="text/plain", min_length=1, max_length=1000)],
) -> PlainTextResponse:
    """Stores a witness's cosignature line once it verifies under a configured witness key;
    answers the checkpoint with every cosignature it now has."""
    stored = transparency_log(container).add_cosignature(size, line)
    return PlainTextResponse(stored.cosigned_note, status_code=201)


@router.get(
    "/v1/log/proofs/inclusion",
    responses=error_responses(
        401,
        403,
        404,
        422,
        503,
        rules="exactly one of `version` and `event_id` (neither or both: "
        "FIELD_REQUIRED version); `size` no smaller than the event's leaf",
    ),
    summary="Bằng chứng một sự kiện nằm trong sổ (RFC 9162 inclusion proof)",
)
def inclusion_proof(
    container: ContainerDep,
    principal: CurrentPrincipal,
    case_id: Annotated[str, Query(pattern=_ID)],
    version: Annotated[
        int | None,
        Query(
            ge=1,
            description=(
                "phiên bản của sự kiện trong vụ việc; cần đúng một trong `version` và `event_id` "
                "(thiếu cả hai hoặc có cả hai → 422)"
            ),
        ),
    ] = None,
    event_id: Annotated[
        str | None,
        Query(pattern=_ID, description=("mã sự kiện; cần đúng một trong `version` và `event_id`")),
    ] = None,
    size: Annotated[int | None, Query(ge=1)] = None,
) -> dict[str, Any]:
    """The leaf index and audit path of one case event (by `version` or `event_id`) against a
    signed checkpoint (default: the latest that covers it), with that checkpoint. Check a
    receipt with it: `referrals verify-receipt RECEIPT --proof ANSWER --log-key KEY`."""
    if (version is None) == (event_id is None):
        raise InvalidEventError("FIELD_REQUIRED", "version")
    _may_read(container, principal, case_id)
    return transparency_log(container).inclusion(case_id, version, size, event_id=event_id)


@router.get(
    "/v1/log/proofs/consistency",
    responses=error_responses(404, 422, 503),
    summary="Bằng chứng sổ chỉ được ghi thêm (RFC 9162 consistency proof)",
)
def consistency_proof(
    container: ContainerDep,
    old: Annotated[int, Query(ge=0)],
    new: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """The proof that the tree of size `new` (default: the latest checkpoint) extends `old`."""
    return transparency_log(container).consistency(old, new)


@router.get(
    "/v1/cases/{case_id:path}/bundle",
    responses=error_responses(401, 403, 404, 503),
    summary="Gói chứng cứ của vụ việc để kiểm chứng ngoại tuyến",
)
def case_bundle(
    container: ContainerDep,
    principal: CurrentPrincipal,
    response: Response,
    case_id: Annotated[str, Path(pattern=_ID)],
    since: Annotated[list[int] | None, Query(description="kích thước điểm kiểm bạn đã tin")] = None,
    at: Annotated[
        str | None,
        Query(
            min_length=10,
            max_length=40,
            json_schema_extra={"format": "date-time", "pattern": INSTANT_PATTERN},
            description="thời điểm đánh giá thời hạn, RFC 3339 có múi giờ "
            "(2026-01-05T09:30:00+07:00)",
        ),
    ] = None,
) -> dict[str, Any]:
    """The case's leaves with inclusion proofs against the latest checkpoint (and its
    cosignatures), consistency proofs from earlier checkpoints, and its time-limit figures.
    Verify it offline: `referrals verify-bundle FILE --log-key KEY`."""
    when = parse_instant(at, "at") if at is not None else None  # as every route reads `at`
    _may_read(container, principal, case_id)
    log = transparency_log(container)
    bundle = log.case_bundle(case_id, at=when, since=since or ())
    # events recorded that the audit trail had not applied (a worker holding it past the
    # API's wait): the bundle is the view as it is, against its older checkpoint (issue 19)
    response.headers["X-Audit-Trail-Lag"] = str(log.lag())
    return bundle
