"""The personal-data access log: who read whose clear identity, when and why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from infra.http.deps import ContainerDep, CurrentPrincipal
from infra.http.routes import error_responses
from infra.http.schemas import AccessLogEntryOut, AccessLogOut
from services.access import may_read_access_log

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
router = APIRouter(prefix="/v1/access-log", tags=["access-log"])


@router.get(
    "",
    response_model=AccessLogOut,
    responses=error_responses(401, 403, 422, 503),
    summary="Nhật ký truy cập dữ liệu cá nhân",
)
def read_access_log(
    principal: CurrentPrincipal,
    container: ContainerDep,
    person_id: Annotated[
        str | None,
        Query(
            pattern=UUID_PATTERN,
            json_schema_extra={"format": "uuid"},
            description="Chỉ các lần xem dữ liệu của người này (person_id)",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Số dòng tối đa")] = 200,
) -> AccessLogOut:
    """Newest first. Administrators see every entry; inspectors the entries about cases of
    their provinces."""
    may_read_access_log(principal)
    if person_id is not None:
        person_id = person_id.lower()  # stored as the canonical UUID text
    # inspectors: only reads of their provinces' cases, filtered before the limit applies
    provinces = None if principal.role == "admin" else principal.provinces
    entries = container.vault.store.access_log(person_id, limit, provinces=provinces)
    visible = [
        AccessLogEntryOut(
            at=entry.at,
            principal_id=entry.principal_id,
            principal_role=entry.principal_role,
            agency_id=entry.agency_id,
            person_id=entry.person_id,
            case_id=entry.case_id,
            purpose=entry.purpose,
        )
        for entry in entries
    ]
    return AccessLogOut(entries=visible)
