"""Reading cases: state, history, the case as the ledger knew it at an instant, its legal time
limits, and (logged, for the few allowed) the clear identity of its person."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from domain.catalogue import (
    AMENDMENT_TYPES,
    EVENT_TYPES,
    INSTANT_PATTERN,
    clean_text,
    parse_instant,
)
from domain.reference import ReferenceData
from domain.referral import STATUS_NAMES_VI
from infra.http.deps import ContainerDep, CurrentPrincipal, ReferralsDep
from infra.http.errors import StoreUnavailableError
from infra.http.routes import error_responses
from infra.http.schemas import (
    ID_PATTERN,
    AmendedByOut,
    AsOfOut,
    CaseOut,
    CaseSearchOut,
    CaseSummaryOut,
    EncryptedMarker,
    HistoryEventOut,
    HistoryIntegrityOut,
    HistoryOut,
    IdentityOut,
    TimeLimitOut,
    TimeLimitsOut,
)
from services.access import (
    CaseScope,
    Principal,
    case_scope,
    may_read_case,
    may_search_cases,
    may_see_identity,
)
from services.personal_data import AccessLogEntry
from services.referrals import Referrals

router = APIRouter(prefix="/v1/cases", tags=["cases"])

CaseId = Annotated[str, Path(pattern=ID_PATTERN, description="Mã vụ việc")]
_INSTANT = {"format": "date-time", "pattern": INSTANT_PATTERN}  # parse_instant checks it
_READ_ERRORS = error_responses(401, 403, 404, 422, 503)
# domain.catalogue.clean_text: printable, not only whitespace
_PURPOSE = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"


def _authorised(
    referrals: Referrals,
    principal: Principal,
    case_id: str,
    check: Callable[[Principal, CaseScope], None] = may_read_case,
) -> tuple[list[Any], CaseScope]:
    """The case's history once the principal is allowed to see it (404 unknown, 403 outside)."""
    history = referrals.case_history(case_id)
    scope = case_scope(case_id, history, referrals.reference)
    check(principal, scope)
    return history, scope


def _case_out(view: dict[str, Any], scope: CaseScope) -> CaseOut:
    return CaseOut(**view, province=scope.province)


def history_items(events: list[Any], reference: ReferenceData) -> list[HistoryEventOut]:
    """The recorded events as shown to readers, each corrected or withdrawn one with the
    events that amended it (among `events`: a replay as known at T shows only those known)."""
    amended: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.WIRE_TYPE in AMENDMENT_TYPES:
            target = event.data.get("target_version")
            by = AmendedByOut(
                version=event.originator_version,
                event_id=event.event_id,
                agency_id=event.agency_id,
                recorded_at=event.timestamp,
            )
            entry = amended.setdefault(target, {})
            if event.WIRE_TYPE == "EVENT_WITHDRAWN":
                entry["withdrawn_by"] = by
            else:
                entry.setdefault("corrected_by", []).append(by)
    items = [history_item(e, reference) for e in events]
    for item in items:
        for name, value in amended.get(item.version, {}).items():
            setattr(item, name, value)
    return items


def history_item(event: Any, reference: ReferenceData) -> HistoryEventOut:
    """One recorded event as shown to readers (identity only as a marker)."""
    agency = reference.agencies.get(event.agency_id)
    return HistoryEventOut(
        version=event.originator_version,
        event_id=event.event_id,
        type=event.WIRE_TYPE,
        title_vi=EVENT_TYPES[event.WIRE_TYPE].title_vi,
        agency_id=event.agency_id,
        agency_name_vi=agency.name_vi if agency else None,
        occurred_at=event.occurred_at,
        recorded_at=event.timestamp,
        data=dict(event.data),
        identity=EncryptedMarker() if event.identity_ciphertext else None,
    )


StatusCode = Literal[tuple(STATUS_NAMES_VI)]  # type: ignore[valid-type]


@router.get(
    "",
    response_model=CaseSearchOut,
    responses=error_responses(401, 403, 422, 503),
    summary="Tìm vụ việc (trong phạm vi của mã truy cập)",
)
def search_cases(
    principal: CurrentPrincipal,
    container: ContainerDep,
    agency_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Cơ quan đang thụ lý")
    ] = None,
    province: Annotated[
        str | None, Query(pattern=r"^[A-Z]{2,8}$", description="Tỉnh của cơ quan mở vụ việc")
    ] = None,
    status: Annotated[StatusCode | None, Query(description="Trạng thái vụ việc")] = None,
    category: Annotated[
        str | None,
        Query(
            min_length=1, max_length=64, pattern=r"^[A-Z0-9_]+$", description="Diện người được TGPL"
        ),
    ] = None,
    occurred_from: Annotated[
        str | None,
        Query(
            min_length=10,
            max_length=40,
            json_schema_extra=_INSTANT,
            description="Còn hoạt động từ thời điểm này (sự kiện cuối ≥)",
        ),
    ] = None,
    occurred_to: Annotated[
        str | None,
        Query(
            min_length=10,
            max_length=40,
            json_schema_extra=_INSTANT,
            description="Mở trước thời điểm này",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> CaseSearchOut:
    """Cases matching every given filter, newest activity first, within the token's scope: an
    agency's own cases (touched by it), an inspector's or council's provinces. Served by the
    case index read model, which may lag the ledger by moments."""
    may_search_cases(principal)
    start = parse_instant(occurred_from, "occurred_from") if occurred_from else None
    end = parse_instant(occurred_to, "occurred_to") if occurred_to else None
    projections = getattr(container, "projections", None)
    if projections is None or "case_index" not in projections:
        raise StoreUnavailableError("STORE_UNAVAILABLE")
    rows, total = projections.case_index.search(
        agency_id=agency_id,
        province=province,
        provinces=sorted(principal.provinces) if principal.role != "agency" else None,
        status=status,
        category=category,
        occurred_from=start,
        occurred_to=end,
        touched_by=principal.agency_id if principal.role == "agency" else None,
        limit=limit,
        offset=offset,
    )
    return CaseSearchOut(
        total=total,
        limit=limit,
        offset=offset,
        cases=[
            CaseSummaryOut(**row, status_vi=STATUS_NAMES_VI.get(row["status"], "")) for row in rows
        ],
    )


@router.get(
    "/{case_id:path}/history",
    response_model=HistoryOut,
    responses=_READ_ERRORS,
    summary="Lịch sử vụ việc",
)
def read_history(
    case_id: CaseId,
    principal: CurrentPrincipal,
    referrals: ReferralsDep,
    container: ContainerDep,
    response: Response,
) -> HistoryOut:
    """Every recorded event of the case, in order (identity shown only as encrypted), with
    `integrity`: each stored event rebuilt into its leaf and compared with the audit trail
    (also in the `X-Log-Integrity` header). `broken` means the store was altered: the case
    bundle then answers 409 LOG_INTEGRITY_FAILED. Signed checkpoints are checked by
    `/bundle` and `referrals verify`, not here."""
    history, _ = _authorised(referrals, principal, case_id)
    integrity = _history_integrity(container, case_id, history)
    response.headers["X-Log-Integrity"] = integrity.status
    return HistoryOut(
        case_id=case_id, events=history_items(history, referrals.reference), integrity=integrity
    )


def _history_integrity(container: Any, case_id: str, history: list[Any]) -> HistoryIntegrityOut:
    from domain.errors import LogIntegrityError
    from infra.web.integrity import case_integrity

    found = case_integrity(container, case_id, history, signed=False)
    out = HistoryIntegrityOut(
        status=found.status,
        events_checked=found.chained,  # type: ignore[arg-type]
        broken_version=found.broken_version,
        broken_event_id=found.broken_event_id,
    )
    if found.status == "broken":
        error = LogIntegrityError(
            "case_id",
            f"vụ việc «{case_id}», phiên bản {found.broken_version}: {found.problem_vi}",
            f"case '{case_id}', version {found.broken_version}: {found.problem_en}",
        )
        out.code, out.message, out.message_en = error.code, error.message_vi, error.message_en
    return out


@router.get(
    "/{case_id:path}/as-of",
    response_model=AsOfOut,
    responses=_READ_ERRORS,
    summary="Vụ việc như sổ đã biết (hoặc như đã xảy ra) tại một thời điểm",
)
def read_as_of(
    case_id: CaseId,
    at: Annotated[
        str,
        Query(
            min_length=10,
            max_length=40,
            json_schema_extra=_INSTANT,
            description="Thời điểm ISO 8601 có múi giờ",
        ),
    ],
    principal: CurrentPrincipal,
    referrals: ReferralsDep,
    clock: Annotated[
        Literal["recorded", "occurred"],
        Query(
            description="recorded (mặc định): như sổ đã biết tại `at`; occurred: như đã xảy ra "
            "đến `at`, theo mọi sự kiện sổ biết đến nay (ADR 0008)"
        ),
    ] = "recorded",
) -> AsOfOut:
    """The case's state and events as the ledger knew them at `at` (events recorded at or
    before it; the default, `clock=recorded`), or as it happened by `at` (`clock=occurred`:
    every event known now whose occurred_at is at or before `at`, in occurred order; held
    ones stay held). `case` is null if there is nothing then."""
    as_of = parse_instant(at, "at")
    _, scope = _authorised(referrals, principal, case_id)
    if clock == "occurred":
        referral, events = referrals.case_as_happened(case_id, as_of)
    else:
        referral, events = referrals.case_as_of(case_id, as_of)
    return AsOfOut(
        case_id=case_id,
        as_of=as_of,
        clock=clock,
        case=_case_out(referral.snapshot_view(), scope) if referral is not None else None,
        events=history_items(events, referrals.reference),
    )


@router.get(
    "/{case_id:path}/time-limits",
    response_model=TimeLimitsOut,
    responses=_READ_ERRORS,
    summary="Các thời hạn luật định của vụ việc",
)
def read_time_limits(
    case_id: CaseId,
    principal: CurrentPrincipal,
    container: ContainerDep,
    at: Annotated[
        str | None,
        Query(
            min_length=10,
            max_length=40,
            json_schema_extra=_INSTANT,
            description="Thời điểm xét (mặc định: bây giờ)",
        ),
    ] = None,
) -> TimeLimitsOut:
    """Each legal time limit of the case at `at`: met, missed, running or cancelled, with the
    rule, its Vietnamese title, legal basis, deadline and the agency responsible."""
    referrals = container.referrals
    when = parse_instant(at, "at") if at is not None else referrals.clock()
    _authorised(referrals, principal, case_id)
    verdicts = referrals.time_limits_with_basis(case_id, when)
    rules = {rule.rule_id: rule for rule in container.rules}
    refs = referrals.reference_set
    for label in {
        label for _, basis in verdicts for label in basis if label.startswith("time_limits@")
    }:
        record = refs.by_label(label)  # the table that judged it, an older one included
        if record is not None:
            rules = {**{r.rule_id: r for r in refs.rules_of(record)}, **rules}
    state = container.reference_state
    return TimeLimitsOut(
        case_id=case_id,
        at=when,
        time_limits=[
            TimeLimitOut(
                rule_id=v.rule_id,
                title_vi=rules[v.rule_id].title_vi,
                title_en=rules[v.rule_id].title_en,
                legal_basis=v.legal_basis,
                verified=rules[v.rule_id].verified,
                outstanding=v.outstanding,
                status=v.status,  # type: ignore[arg-type]
                trigger_version=v.trigger_version,
                trigger_at=v.trigger_at,
                deadline=v.deadline,
                target_version=v.target_version,
                met_at=v.met_at,
                responsible_agency_id=v.responsible_agency_id,
                basis=state.describe(basis) if state is not None else [],
            )
            for v, basis in verdicts
        ],
    )


@router.get(
    "/{case_id:path}/identity",
    response_model=IdentityOut,
    responses=_READ_ERRORS,
    summary="Thông tin định danh dạng rõ (ghi nhật ký truy cập)",
)
def read_identity(
    case_id: CaseId,
    purpose: Annotated[
        str,
        Query(
            min_length=3,
            max_length=200,
            pattern=_PURPOSE,
            description="Mục đích xem (bắt buộc, ghi vào nhật ký): có ít "
            "nhất một ký tự không phải khoảng trắng, không có "
            "ký tự điều khiển",
        ),
    ],
    principal: CurrentPrincipal,
    container: ContainerDep,
) -> IdentityOut:
    """The person's clear identity, each field with the agency that recorded it: only for the
    agency holding the case, the Centre the request was transferred to, and inspectors of the
    case's province (docs/api.md). Every read is logged (who, when, which person, why); a
    refused read is not logged."""
    purpose = clean_text(purpose, "purpose")
    referrals = container.referrals
    former = bool(getattr(container.settings, "identity_former_holders", False))
    _, scope = _authorised(
        referrals, principal, case_id, lambda p, s: may_see_identity(p, s, former_holders=former)
    )
    revealed = referrals.reveal_identity(case_id)
    person_id = revealed["person_id"]
    if person_id:
        container.vault.store.log_access(
            AccessLogEntry(
                at=datetime.now(timezone.utc),
                principal_id=principal.principal_id,
                principal_role=principal.role,
                agency_id=principal.agency_id,
                person_id=person_id,
                case_id=case_id,
                purpose=purpose,
                province=scope.province,
            )
        )
    return IdentityOut(
        case_id=case_id,
        person_id=person_id,
        erased=revealed["erased"],
        identity=revealed["identity"],
        authors=revealed.get("authors", {}),
        other_versions=revealed.get("other_versions", []),
    )


@router.get(
    "/{case_id:path}", response_model=CaseOut, responses=_READ_ERRORS, summary="Tình trạng vụ việc"
)
def read_case(case_id: CaseId, principal: CurrentPrincipal, referrals: ReferralsDep) -> CaseOut:
    """The case's current state (pseudonymous: the person only by `person_id`)."""
    _, scope = _authorised(referrals, principal, case_id)
    return _case_out(referrals.get_case(case_id).snapshot_view(), scope)
