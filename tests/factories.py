"""Helpers that build wire events for tests (the cosmicpython `random_refs` habit)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from domain.calendar import VIETNAM_TZ

POLICE = "lsn-police-investigation"
POLICE_2 = "lsn-police-commune-1"
PROCURACY = "lsn-procuracy"
COURT = "lsn-court"
CENTRE = "lsn-centre"
OTHER_CENTRE = "vlg-centre"
DOJ = "lsn-doj"
DETENTION = "lsn-detention"
VLG_POLICE = "vlg-police-investigation"

T0 = datetime(2026, 3, 3, 9, 0, tzinfo=VIETNAM_TZ)  # a Tuesday


def random_case_ref(province: str = "LSN") -> str:
    """A fresh case id under the province's numbering (case ids are bound to the opener's
    province: CASE_ID_OTHER_PROVINCE)."""
    return f"{province}-T-{uuid.uuid4().hex[:10]}"


def new_person_id() -> str:
    return str(uuid.uuid4())


class CaseScript:
    """Builds the wire events of one case step by step, with increasing occurred_at."""

    def __init__(
        self,
        case_id: str | None = None,
        start: datetime = T0,
        holder: str = POLICE,
        person_id: str | None = None,
    ) -> None:
        # the test agencies' ids start with their province ("vlg-police" opens VLG-… cases)
        self.case_id = case_id or random_case_ref(holder.split("-")[0].upper())
        self.at = start
        self.holder = holder
        self.person_id = person_id or new_person_id()
        self.count = 0

    def event(
        self,
        wire_type: str,
        agency: str | None = None,
        after: timedelta = timedelta(hours=1),
        data: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        self.count += 1
        if self.count > 1:
            self.at += after
        wire = {
            "event_id": f"{self.case_id}-{self.count:03d}",
            "case_id": self.case_id,
            "type": wire_type,
            "agency_id": agency or self.holder,
            "occurred_at": self.at.isoformat(),
            "data": data or {},
        }
        wire.update(extra)
        return wire

    def notification(
        self, role: str = "ARRESTED", category: str = "POOR_HOUSEHOLD", **data: Any
    ) -> dict[str, Any]:
        return self.event(
            "NOTIFICATION_ISSUED",
            data={
                "person_id": self.person_id,
                "proceedings_kind": "criminal",
                "procedural_role": role,
                "stage": "INVESTIGATION",
                "eligible_category": category,
                "form": "MAU_03",
                **data,
            },
        )

    def contact(
        self,
        role: str = "ARRESTED",
        category: str | None = "POOR_HOUSEHOLD",
        agency: str | None = None,
        after: timedelta = timedelta(hours=1),
        **data: Any,
    ) -> dict[str, Any]:
        """A procedural contact (arrest, holding, charge, trial, victim, litigant)."""
        body = {
            "person_id": self.person_id,
            "proceedings_kind": "criminal",
            "procedural_role": role,
            "stage": "INVESTIGATION",
            **data,
        }
        if category is not None:
            body["eligible_category"] = category
        return self.event("PROCEDURAL_CONTACT", agency=agency, after=after, data=body)

    def not_eligible(
        self,
        reason: str = "NO_CATEGORY",
        agency: str | None = None,
        after: timedelta = timedelta(hours=1),
    ) -> dict[str, Any]:
        return self.event(
            "NOT_ELIGIBLE_DETERMINED",
            agency=agency,
            after=after,
            data={"reason": reason, "article": "Luật TGPL 2017 Điều 7"},
        )

    def request(self, **kw: Any) -> dict[str, Any]:
        return self.event("AID_REQUESTED", **kw)

    def transfer(self, centre: str = CENTRE, **kw: Any) -> dict[str, Any]:
        return self.event("REQUEST_TRANSFERRED", data={"centre_id": centre}, **kw)

    def accept(self, centre: str = CENTRE, **kw: Any) -> dict[str, Any]:
        return self.event("REQUEST_ACCEPTED", agency=centre, data={"immediate": False}, **kw)

    def assign(self, centre: str = CENTRE, provider: str = "tgv-001", **kw: Any) -> dict[str, Any]:
        return self.event(
            "AID_ASSIGNED",
            agency=centre,
            data={
                "provider_id": provider,
                "provider_type": "LEGAL_AID_OFFICER",
                "aid_form": "DEFENCE",
            },
            **kw,
        )

    def register(self, agency: str | None = None, **kw: Any) -> dict[str, Any]:
        docs = (self.at + timedelta(minutes=30)).isoformat()
        return self.event(
            "COUNSEL_REGISTERED", agency=agency, data={"documents_complete_at": docs}, **kw
        )

    def close(self, centre: str = CENTRE, **kw: Any) -> dict[str, Any]:
        return self.event(
            "CASE_CLOSED",
            agency=centre,
            data={"close_reason": "COMPLETED", "outcome": "SUCCESSFUL"},
            **kw,
        )

    def full_history(self) -> list[dict[str, Any]]:
        return [
            self.notification(),
            self.request(),
            self.transfer(),
            self.accept(),
            self.assign(),
            self.register(),
            self.close(),
        ]


def lawful_history(case: CaseScript, template: int, gaps: list[int]) -> list[dict[str, Any]]:
    """A lawful case history of one of four shapes (`template` 0–3: plain; refused, asked
    again, accepted; moved to the procuracy, which registers; provider changed) with the given
    gaps (minutes, at least 12) between its facts: what the arrival-order properties shuffle."""
    steps = iter(gaps)

    def gap() -> timedelta:
        return timedelta(minutes=next(steps))

    out = [case.notification(), case.request(after=gap()), case.transfer(after=gap())]
    if template == 1:  # refused, asked again, accepted
        out += [
            case.event(
                "REQUEST_REFUSED",
                agency=CENTRE,
                after=gap(),
                data={"reason": "NOT_ELIGIBLE", "written": True},
            ),
            case.request(after=gap()),
            case.transfer(after=gap()),
        ]
    out += [case.accept(after=gap()), case.assign(after=gap())]
    if template == 2:  # moved to the procuracy, which registers
        out += [
            case.event(
                "CASE_TRANSFERRED",
                after=gap(),
                data={"to_agency_id": PROCURACY, "to_stage": "INDICTMENT"},
            )
        ]
        out += [case.register(agency=PROCURACY, after=gap())]
    else:
        out += [case.register(after=gap())]
    if template == 3:  # provider changed, registered again
        out += [
            case.event(
                "PROVIDER_CHANGED",
                agency=CENTRE,
                after=gap(),
                data={
                    "provider_id": "ls-009",
                    "provider_type": "CONTRACTED_LAWYER",
                    "requested_at": case.at.isoformat(),
                    "grounds": "PERSON_REQUEST",
                },
            ),
            case.register(after=gap()),
        ]
    out += [case.close(after=gap())]
    return out
