"""Recorded reference versions (issue 14; docs/adr/0009): what is in force (today or on a
day), every version with its source, one document's content, the verdicts a publication moved,
and publishing a new version (admin role only)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from domain.errors import NotAuthorisedError, NotFoundError
from infra.http.deps import ContainerDep, CurrentPrincipal
from infra.http.routes import error_responses
from infra.http.schemas import _DAY, Day
from services.access import Principal

router = APIRouter(tags=["reference"])
_READ = error_responses(401, 404, 422, 503)


class ReferencePublishIn(BaseModel):
    """Một phiên bản mới của văn bản tham chiếu."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(
        min_length=2,
        max_length=64,
        description="Văn bản: `holidays/2026`, `agencies`, `time_limits`…",
    )
    content: dict[str, Any] = Field(description="Nội dung (cùng cấu trúc với tệp đã phát hành)")
    source: str = Field(
        min_length=1, max_length=2000, description="Căn cứ pháp lý: văn bản công bố thay đổi"
    )
    effective_from: date | None = None
    effective_to: date | None = None


def _state(container: Any) -> Any:
    state = container.reference_state
    state.maybe_refresh()
    return state


@router.get(
    "/v1/reference/versions",
    responses=_READ,
    summary="Dữ liệu tham chiếu có hiệu lực (hôm nay hoặc vào một ngày)",
)
def reference_in_force(
    principal: CurrentPrincipal,
    container: ContainerDep,
    as_of: Annotated[
        Day, Query(description="Ngày xét YYYY-MM-DD (mặc định: hôm nay)", json_schema_extra=_DAY)
    ] = None,
) -> dict[str, Any]:
    """One version per document, the one in force on `as_of`: ref, version, SHA-256,
    effective dates, legal source, who published it and its signed note."""
    state = _state(container)
    day = as_of or state._today()
    return {
        "as_of": day.isoformat(),
        "documents": [r.as_dict(content=False) for r in state.refs.current(day)],
    }


@router.get("/v1/reference/versions/history", responses=_READ, summary="Mọi phiên bản đã công bố")
def reference_history(
    principal: CurrentPrincipal,
    container: ContainerDep,
    ref: Annotated[str | None, Query(max_length=64, description="Chỉ văn bản này")] = None,
) -> dict[str, Any]:
    """Every published version in order, with its source and effective dates."""
    refs = _state(container).refs
    names = [ref] if ref else refs.refs()
    return {"versions": [r.as_dict(content=False) for n in names for r in refs.history(n)]}


@router.get(
    "/v1/reference/versions/moved",
    responses=error_responses(401, 403, 422, 503),
    summary="Các kết luận thời hạn thay đổi do một lần công bố",
)
def reference_moved(
    principal: CurrentPrincipal,
    container: ContainerDep,
    province: Annotated[str | None, Query(max_length=8)] = None,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
) -> dict[str, Any]:
    """Per report period: each verdict a publication moved, before and after, and why."""
    if principal.role not in ("admin", "inspector", "council"):
        raise NotAuthorisedError(
            "NOT_AUTHORISED",
            None,
            rule_vi="chỉ quản trị, thanh tra và Hội đồng xem",
            rule_en="only admin, inspector and council roles may read it",
        )
    if principal.role != "admin" and province not in principal.provinces:
        raise NotAuthorisedError(
            "NOT_AUTHORISED",
            "province",
            rule_vi="chỉ tỉnh được phân quyền",
            rule_en="only the principal's provinces",
        )
    rows = container.projections.compliance.moved(province, year)
    for row in rows:
        for name in ("deadline_before", "deadline_after", "moved_at"):
            row[name] = row[name].isoformat() if row[name] is not None else None
    return {"moved": rows}


@router.get(
    "/v1/reference/versions/{ref:path}",
    responses=_READ,
    summary="Một văn bản tham chiếu (nội dung)",
)
def reference_document(
    ref: str,
    principal: CurrentPrincipal,
    container: ContainerDep,
    version: Annotated[
        int | None, Query(ge=1, description="Phiên bản (mặc định: có hiệu lực)")
    ] = None,
    as_of: Annotated[Day, Query(json_schema_extra=_DAY)] = None,
) -> dict[str, Any]:
    """The document's content with its hash and signed note."""
    state = _state(container)
    record = (
        state.refs.version(ref, version)
        if version is not None
        else state.refs.in_force(ref, as_of or state._today())
    )
    if record is None:
        raise NotFoundError(
            "VALUE_NOT_IN_REFERENCE", "ref", value=ref, reference="reference versions"
        )
    return record.as_dict()


def _admin(principal: CurrentPrincipal) -> Principal:
    """The caller, if an administrator: checked before the body is read, so that another
    principal learns nothing of what a publication must contain (scope first, issue 12)."""
    if principal.role != "admin":
        raise NotAuthorisedError(
            "NOT_AUTHORISED",
            None,
            rule_vi="chỉ quản trị viên được công bố dữ liệu tham chiếu",
            rule_en="only the admin role may publish reference data",
        )
    return principal


@router.post(
    "/v1/reference/publish",
    responses=error_responses(401, 403, 409, 422, 503),
    summary="Công bố phiên bản mới (chỉ quản trị)",
)
def reference_publish(
    principal: Annotated[Principal, Depends(_admin)],
    body: Annotated[ReferencePublishIn, Body()],
    container: ContainerDep,
) -> dict[str, Any]:
    """Validates, signs and records the version, then re-judges the verdicts it can touch;
    answers the version and every verdict that moved. Admin role only."""
    result = container.reference_state.publish(
        body.ref,
        body.content,
        effective_from=body.effective_from,
        effective_to=body.effective_to,
        source=body.source,
        published_by=principal.principal_id,
    )
    return result.as_dict()
