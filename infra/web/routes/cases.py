"""Case search (the case index, within the principal's provinces) and the case page: its
timeline, a replay of the case as the ledger knew it at a chosen instant, its legal time limits
and the integrity of its audit chain. Never the person's clear identity."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from domain.catalogue import AMENDMENT_TYPES, EVENT_TYPES
from domain.errors import NotAuthorisedError, NotFoundError
from domain.referral import STATUS_NAMES_VI
from infra.web import format as fmt
from infra.web.deps import (
    PREFIX,
    ContainerDep,
    SessionDep,
    WebError,
    lang_of,
    redirect,
    renderer,
)
from infra.web.i18n import STATUS_NAMES_EN, translator
from infra.web.integrity import case_integrity
from services.access import case_scope, may_read_case, may_search_cases

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 50
Text = Annotated[str | None, Query()]


def status_name(status: str | None, lang: str) -> str:
    if not status:
        return "—"
    if lang == "en":
        return STATUS_NAMES_EN.get(status, status)
    return STATUS_NAMES_VI.get(status, status)


def scope_agencies(
    container: Any,
    provinces: frozenset[str],
    kinds: tuple[str, ...] = (
        "police",
        "procuracy",
        "court",
        "detention_facility",
        "legal_aid_centre",
    ),
) -> list[Any]:
    """Agencies of the provinces, by province then kind (the order of the reports)."""
    agencies = [
        a
        for a in container.reference.agencies.values()
        if a.province in provinces and a.kind in kinds
    ]
    return sorted(agencies, key=lambda a: (a.province or "", kinds.index(a.kind), a.agency_id))


def _clip(value: str | None, length: int = 100) -> str | None:
    value = (value or "").strip()[:length]
    return value or None


@router.get("/")
@router.get("")
def home() -> Response:
    return redirect(f"{PREFIX}/cases")


@router.get("/cases")
def search_page(
    request: Request,
    session: SessionDep,
    container: ContainerDep,
    q: Text = None,
    province: Text = None,
    agency_id: Text = None,
    category: Text = None,
    status: Text = None,
    date_from: Annotated[str | None, Query(alias="from")] = None,
    date_to: Annotated[str | None, Query(alias="to")] = None,
    page: Text = None,
) -> Response:
    """Cases matching the filters, newest activity first, within the principal's provinces."""
    principal = session.principal
    may_search_cases(principal)
    index = container.projections.case_index
    q, province, agency_id = _clip(q), _clip(province), _clip(agency_id)
    category, status = _clip(category), _clip(status)
    start, end = fmt.parse_day(date_from), fmt.parse_day(date_to)
    number = int(page) if page and page.isdigit() and 0 < int(page) < 100_000 else 1
    if q:
        rows = []
        for candidate in dict.fromkeys((q, q.upper())):
            row = index.get(candidate)
            if (
                row is not None
                and row["province"] in principal.provinces
                and all(r["case_id"] != row["case_id"] for r in rows)
            ):
                rows.append(row)
        total = len(rows)
    else:
        rows, total = index.search(
            agency_id=agency_id,
            province=province,
            provinces=sorted(principal.provinces),
            status=status,
            category=category,
            occurred_from=fmt.day_start(start) if start else None,
            occurred_to=fmt.day_after(end) if end else None,
            limit=PAGE_SIZE,
            offset=(number - 1) * PAGE_SIZE,
        )
    lang = lang_of(request)
    pages = max(1, -(-total // PAGE_SIZE))
    return renderer(request).page(
        request,
        "cases.html",
        session,
        filters={
            "q": q or "",
            "province": province or "",
            "agency_id": agency_id or "",
            "category": category or "",
            "status": status or "",
            "from": start or "",
            "to": end or "",
        },
        rows=rows,
        total=total,
        page=number,
        pages=pages,
        provinces=sorted(principal.provinces),
        agencies=scope_agencies(container, principal.provinces),
        categories=list(container.reference.categories.values()),
        statuses=[(code, status_name(code, lang)) for code in STATUS_NAMES_VI],
        status_name=lambda s: status_name(s, lang),
    )


@router.get("/cases/{case_id:path}")
def case_page(
    request: Request,
    case_id: str,
    session: SessionDep,
    container: ContainerDep,
    at: Text = None,
    v: Text = None,
    clock: Text = None,
) -> Response:
    """The case, its timeline, time limits and integrity — now, or as the ledger knew it at
    `at` (Vietnam time) or after its `v`-th recorded event, or (`clock=occurred`) as it
    happened by `at`: every fact known now that occurred by then (ADR 0008)."""
    referrals = container.referrals
    reference = container.reference
    if len(case_id) > 128:
        raise WebError(404, "not_found")
    try:
        history = referrals.case_history(case_id)
    except NotFoundError:
        raise WebError(404, "not_found") from None
    scope = case_scope(case_id, history, reference)
    try:
        may_read_case(session.principal, scope)
    except NotAuthorisedError:
        raise WebError(403, "forbidden") from None
    now = referrals.clock()
    step: int | None = None
    replay_at = None
    by_occurrence = clock == "occurred"
    if v is not None and v.strip().isdigit():
        by_occurrence = False  # the slider steps through the recorded events
        step = min(int(v), len(history))
        replay_at = (
            history[step - 1].timestamp
            if step > 0
            else history[0].timestamp - timedelta(microseconds=1)
        )
    elif at:
        replay_at = fmt.parse_local(at)
        if replay_at is not None and fmt.names_a_whole_minute(at):
            replay_at += timedelta(seconds=59, microseconds=999_999)
    if replay_at is not None and replay_at >= now:
        replay_at = None
    when = replay_at or now
    if replay_at is not None and by_occurrence:
        referral, known = referrals.case_as_happened(case_id, replay_at)
    elif replay_at is not None:
        referral, known = referrals.case_as_of(case_id, replay_at)
    else:
        referral, known = referrals.get_case(case_id), history
    if step is None:
        step = len(known) if not by_occurrence else len(history)
    clock_used = "occurred" if by_occurrence and replay_at is not None else "recorded"
    rules = {rule.rule_id: rule for rule in container.rules}
    limits = []
    if known:
        for verdict in referrals.time_limits(case_id, when, clock=clock_used):
            rule = rules.get(verdict.rule_id)
            limits.append(
                {
                    "rule_id": verdict.rule_id,
                    "title": (rule.title_vi if rule else verdict.rule_id),
                    "basis": verdict.legal_basis,
                    "verified": bool(rule and rule.verified),
                    "status": verdict.status,
                    "outstanding": verdict.outstanding,
                    "trigger_at": verdict.trigger_at,
                    "deadline": verdict.deadline,
                    "met_at": verdict.met_at,
                    "responsible": verdict.responsible_agency_id,
                }
            )
    lang = lang_of(request)
    amended, amends = _amendments(known, reference, lang)
    events = [
        {
            "version": e.originator_version,
            "type": e.WIRE_TYPE,
            "agency_id": e.agency_id,
            "official": e.data.get("official"),
            "occurred_at": e.occurred_at,
            "recorded_at": e.timestamp,
            "data": fmt.describe_data(e.WIRE_TYPE, e.data, reference, lang),
            "identity": bool(e.identity_ciphertext),
            "basis": _basis(e.WIRE_TYPE),
            "held": _held(referral, e.event_id, lang),
            "amended_by": amended.get(int(e.originator_version), []),
            "amends": amends.get(int(e.originator_version)),
        }
        for e in known
    ]
    view = None
    if referral is not None:
        view = {
            "status": referral.status,
            "status_name": status_name(referral.status, lang),
            "holder": referral.holder_agency_id,
            "centre": referral.centre_id,
            "provider_id": referral.provider_id,
            "provider_type": fmt.code_name(reference, "provider_types", referral.provider_type),
            "aid_form": fmt.enum_name(referral.aid_form, lang),
            "opened_at": referral.opened_at,
            "last_occurred_at": referral.last_occurred_at,
            "closed_at": referral.closed_at,
            "person": dict(referral.person),
            "kind": fmt.enum_name(referral.person.get("proceedings_kind"), lang) or "—",
        }
    return renderer(request).page(
        request,
        "case.html",
        session,
        case_id=case_id,
        province=scope.province,
        province_name=(
            reference.provinces[scope.province].name_vi
            if scope.province in reference.provinces
            else scope.province
        ),
        view=view,
        events=events,
        total_events=len(history),
        step=step,
        replay_at=replay_at,
        when=when,
        now=now,
        clock=clock_used,
        at_value=fmt.local_input(replay_at or now),
        limits=limits,
        integrity=(
            case_integrity(container, case_id, known, as_of=replay_at)
            if replay_at is not None and clock_used == "recorded"
            else case_integrity(container, case_id, history)
        ),
        steps=[
            {
                "v": e.originator_version,
                "title": fmt.event_title(e.WIRE_TYPE, lang),
                "recorded_at": e.timestamp,
            }
            for e in history
        ],
    )


def _amendments(
    known: list[Any], reference: Any, lang: str
) -> tuple[dict[int, list[dict[str, Any]]], dict[int, dict[str, Any]]]:
    """The corrections and withdrawals among the shown events (ADR 0008 addendum): by target
    version, who amended it, when, why and which fields changed (recorded → corrected); and
    by amendment version, the event it amends. A replay as known at T shows only those known."""
    by_version = {int(e.originator_version): e for e in known}
    amended: dict[int, list[dict[str, Any]]] = {}
    amends: dict[int, dict[str, Any]] = {}
    occurred = translator(lang)("event_occurred")
    for event in known:
        if event.WIRE_TYPE not in AMENDMENT_TYPES:
            continue
        data = event.data
        target_version = data.get("target_version")
        target = by_version.get(target_version) if isinstance(target_version, int) else None
        withdrawn = event.WIRE_TYPE == "EVENT_WITHDRAWN"
        entry = {
            "kind": "withdrawn" if withdrawn else "corrected",
            "version": int(event.originator_version),
            "event_id": event.event_id,
            "agency_id": event.agency_id,
            "recorded_at": event.timestamp,
            "reason_code": data.get("reason_code"),
            "reason_name": fmt.code_name(reference, "correction_reasons", data.get("reason_code")),
            "reason": data.get("reason"),
            "changes": (
                fmt.describe_changes(target, data.get("changes") or {}, reference, lang, occurred)
                if target is not None and not withdrawn
                else []
            ),
        }
        if isinstance(target_version, int):
            amended.setdefault(target_version, []).append(entry)
        amends[int(event.originator_version)] = {
            "kind": entry["kind"],
            "version": target_version,
            "event_id": data.get("target_event_id"),
            "title": fmt.event_title(target.WIRE_TYPE, lang) if target is not None else None,
            "changes": entry["changes"],
        }
    return amended, amends


def _held(referral: Any, event_id: str, lang: str) -> dict[str, Any] | None:
    """What a held fact awaits (the event types, by their title), or None when in effect."""
    entry = referral.standing(event_id) if referral is not None else None
    if entry is None:
        return None
    return {
        "reason": entry.get("reason"),
        "awaiting": [fmt.event_title(t, lang) for t in entry.get("awaiting") or ()],
        "message": entry.get("message_en" if lang == "en" else "message"),
    }


def _basis(wire_type: str) -> str:
    spec = EVENT_TYPES.get(wire_type)
    return spec.legal_basis if spec else ""
