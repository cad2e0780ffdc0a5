"""Who may do what: the access policy of the ledger's edges, as pure functions.

A `Principal` is the party a bearer token stands for. Four roles:

- agency: a procedural agency, Centre or oversight body posting its own events. It posts only
  events whose `agency_id` is its own, and reads only the cases it touched (recorded an event
  of, holds, or is the Centre addressed). It sees a case's clear identity only while the law
  gives it a role on the case that needs it: the agency holding the case (it conducts the
  proceedings: CPC 2015 Art. 71–76), and the legal aid Centre the request was transferred to
  once it is (it accepts and assigns: Legal Aid Law 2017 Art. 29–31). Recording an identity
  block grants nothing (`may_see_identity`; docs/api.md "Who sees clear identity").
- inspector: reads every case of its provinces and may see the clear identity there; posts
  nothing. A case's province is the province of the agency that opened it.
- council: reads its province's cases, pseudonymous only (never clear identity), and the
  statistics; posts nothing.
- admin: manages tokens and agencies and reads the personal-data access log; reads no case.

Every clear-identity read is logged by the caller (who, when, which person, why); a refused
read is not a read and is not logged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from domain.catalogue import AMENDMENT_TYPES
from domain.errors import DomainError, NotAuthorisedError
from domain.reference import ReferenceData
from domain.referral import amended_facts

ROLES = ("agency", "inspector", "council", "admin")
ROLE_NAMES_VI = {
    "agency": "cơ quan",
    "inspector": "thanh tra, kiểm tra",
    "council": "Hội đồng phối hợp liên ngành",
    "admin": "quản trị",
}


class NotAuthenticatedError(DomainError):
    """Raised when a request carries no valid bearer token (missing, unknown, expired, revoked)."""

    http_status = 401


@dataclass(frozen=True)
class Principal:
    """The party one bearer token stands for."""

    principal_id: str
    role: str
    display_name: str
    agency_id: str | None = None
    provinces: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        check_principal(self.role, self.agency_id, self.provinces)


def check_principal(role: str, agency_id: str | None, provinces: Iterable[str]) -> None:
    """Raises ValueError unless the role's binding is complete (a programming/CLI error)."""
    provinces = frozenset(provinces)
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role == "agency" and not agency_id:
        raise ValueError("an agency principal needs its agency_id")
    if role in ("inspector", "council") and not provinces:
        raise ValueError(f"a {role} principal needs at least one province")
    if role == "council" and len(provinces) != 1:
        raise ValueError("a council principal belongs to exactly one province")


@dataclass(frozen=True)
class CaseScope:
    """The facts about one case that access decisions need."""

    case_id: str
    province: str | None
    touched_by: frozenset[str]  # agencies that recorded an event, hold it or are its Centre
    identity_by: frozenset[str]  # agencies that recorded identifying data on it (grants nothing)
    holder: str | None = None  # the agency holding the case now
    centre: str | None = None  # the legal aid Centre the request was transferred to, if any
    former_holders: frozenset[str] = frozenset()  # held it earlier (opened or received it)


def case_scope(case_id: str, history: Iterable[Any], reference: ReferenceData) -> CaseScope:
    """The access facts of a case from its recorded events (in order). A held event (ADR
    0008) gives its poster no part in the case until it takes effect; a withdrawn one gives
    none any more (nor does the withdrawal itself: its poster recorded the target)."""
    history = list(history)
    left_out = _held_event_ids(history)
    if left_out:
        history = [e for e in history if e.event_id not in left_out]
    touched: set[str] = set()
    identity: set[str] = set()
    holders: list[str] = []
    centre: str | None = None
    opener: str | None = None
    for event in history:
        if opener is None:
            opener = event.agency_id
            holders.append(opener)
        touched.add(event.agency_id)
        data: Mapping[str, Any] = event.data
        if isinstance(data.get("to_agency_id"), str):  # CASE_TRANSFERRED to another agency
            holders.append(data["to_agency_id"])
        if isinstance(data.get("centre_id"), str):  # REQUEST_TRANSFERRED, APPOINTMENT_REQUESTED
            centre = data["centre_id"]
        for name in ("centre_id", "to_agency_id"):
            if isinstance(data.get(name), str):
                touched.add(data[name])
        if getattr(event, "identity_ciphertext", None):
            identity.add(event.agency_id)
    agency = reference.agencies.get(opener) if opener else None
    holder = holders[-1] if holders else None
    return CaseScope(
        case_id,
        agency.province if agency else None,
        frozenset(touched),
        frozenset(identity),
        holder,
        centre,
        frozenset(h for h in holders if h != holder),
    )


def _held_event_ids(history: Sequence[Any]) -> set[str]:
    """The client ids of the events of a case's stored events that give no part in it: the
    held ones, the withdrawn ones and the amendments (none if they cannot be folded, e.g.
    plain records)."""
    referral = None
    try:
        for event in history:
            referral = event.mutate(referral)
    except AttributeError:
        return set()
    out = set(getattr(referral, "held", None) or ())
    facts = getattr(referral, "facts", None)
    if facts and any(f["type"] in AMENDMENT_TYPES for f in facts):
        standing = {f["event_id"] for f in amended_facts(facts)}
        out.update(f["event_id"] for f in facts if f["event_id"] not in standing)
    return out


def _refuse(rule_vi: str, rule_en: str, field_name: str | None = None) -> NotAuthorisedError:
    return NotAuthorisedError("NOT_AUTHORISED", field_name, rule_vi=rule_vi, rule_en=rule_en)


def may_post(principal: Principal, agency_id: str) -> None:
    """Only an agency posts, and only as itself ("agency A never writes as B")."""
    if principal.role != "agency":
        raise _refuse(
            f"vai trò {ROLE_NAMES_VI[principal.role]} không được ghi sự kiện",
            f"the {principal.role} role cannot record events",
        )
    if agency_id != principal.agency_id:
        raise _refuse(
            f"mã truy cập của cơ quan «{principal.agency_id}» không được ghi sự kiện "
            f"thay cho cơ quan «{agency_id}»",
            f"a token of agency '{principal.agency_id}' cannot record events as '{agency_id}'",
            "agency_id",
        )


def may_read_case(principal: Principal, scope: CaseScope) -> None:
    """Agencies read the cases they touched; inspectors and councils their provinces' cases."""
    if principal.role == "agency" and principal.agency_id in scope.touched_by:
        return
    if principal.role in ("inspector", "council") and scope.province in principal.provinces:
        return
    raise _refuse(
        f"không được xem vụ việc «{scope.case_id}»",
        f"case '{scope.case_id}' is outside this token's scope",
        "case_id",
    )


def may_search_cases(principal: Principal) -> None:
    """Agencies, inspectors and councils search cases (each within its scope); admins do not."""
    if principal.role == "admin":
        raise _refuse("vai trò quản trị không xem vụ việc", "the admin role does not read cases")


def may_see_identity(principal: Principal, scope: CaseScope, former_holders: bool = False) -> None:
    """Clear identity follows the law's roles on the case, never "recorded an identity block":
    the agency holding the case now, the Centre the request was transferred to (once it is),
    an inspector of the case's province; with `former_holders` (setting
    `identity_former_holders`) also the agencies that held it before a transfer."""
    if principal.role == "agency" and principal.agency_id is not None:
        if principal.agency_id in (scope.holder, scope.centre):
            return
        if former_holders and principal.agency_id in scope.former_holders:
            return
    if principal.role == "inspector" and scope.province in principal.provinces:
        return
    raise _refuse(
        f"không được xem thông tin định danh của người trong vụ việc «{scope.case_id}»",
        f"the clear identity of case '{scope.case_id}' is outside this token's scope",
        "case_id",
    )


def may_read_access_log(principal: Principal) -> None:
    """Inspectors (for their provinces) and administrators read the personal-data access log."""
    if principal.role not in ("inspector", "admin"):
        raise _refuse(
            "chỉ thanh tra và quản trị được xem nhật ký truy cập dữ liệu cá nhân",
            "only inspectors and administrators read the access log",
        )


def access_log_visible(principal: Principal, case_province: str | None) -> bool:
    """Whether one access-log entry (about a case of `case_province`) is shown to the principal."""
    if principal.role == "admin":
        return True
    return principal.role == "inspector" and case_province in principal.provinces
