"""The referral case: one person's legal-aid referral within one proceedings matter.

Every wire event is one domain event of this aggregate (explicit, versioned topics; never
renamed). The aggregate decides whether an event may follow the case's history — the order
the law implies (JC 10/2018; Legal Aid Law 2017; CPC 2015) and who may act — and keeps the
client `event_id`s it has recorded so that a retry is recognised, not recorded twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar, cast

from eventsourcing.domain import Aggregate

from domain.calendar import VIETNAM_TZ
from domain.catalogue import AMENDMENT_TYPES, EVENT_TYPES, OPENING_REQUIRED, OPENING_TYPES
from domain.errors import (
    ConflictError,
    DomainError,
    InvalidEventError,
    RuleViolationError,
)
from domain.reference import (
    KIND_NAMES_VI,
    OVERSIGHT_KINDS,
    UNDETERMINED_CATEGORY,
    ReferenceData,
)

# called once an event has passed every rule: -> (identity ciphertext or None, content digest)
Sealer = Callable[[], tuple[str | None, str]]

CASE_NAMESPACE = uuid.UUID("7d3c2f4e-3b1a-5c9e-9a57-2f0e6f1d4b10")
EARLIEST_OCCURRENCE = datetime(2018, 1, 1, tzinfo=VIETNAM_TZ)  # Legal Aid Law 2017 in force


@lru_cache(maxsize=65_536)
def referral_id(case_id: str) -> uuid.UUID:
    """The aggregate id every agency derives from the shared case reference (uuid5)."""
    return uuid.uuid5(CASE_NAMESPACE, case_id)


class Status:
    """Where a case stands in the referral lifecycle (domain.md §3)."""

    CONTACT = "CONTACT"
    OPEN = "OPEN"
    REQUESTED = "REQUESTED"
    AT_CENTRE = "AT_CENTRE"
    ACCEPTED = "ACCEPTED"
    REFUSED = "REFUSED"
    ASSIGNED = "ASSIGNED"
    REGISTERED = "REGISTERED"
    DECLINED = "DECLINED"
    DISCONTINUED = "DISCONTINUED"
    CLOSED = "CLOSED"


STATUS_NAMES_VI = {
    Status.CONTACT: "đã ghi nhận tiếp xúc tố tụng, chưa giải thích, thông báo quyền",
    Status.OPEN: "đã giải thích, thông báo quyền",
    Status.REQUESTED: "đã tiếp nhận yêu cầu",
    Status.AT_CENTRE: "đã chuyển Trung tâm TGPL",
    Status.ACCEPTED: "Trung tâm đã thụ lý",
    Status.REFUSED: "Trung tâm từ chối thụ lý",
    Status.ASSIGNED: "đã cử người thực hiện TGPL",
    Status.REGISTERED: "đã đăng ký bào chữa/bảo vệ",
    Status.DECLINED: "người được TGPL từ chối",
    Status.DISCONTINUED: "không tiếp tục TGPL",
    Status.CLOSED: "đã kết thúc",
}

_ACTIVE = frozenset(STATUS_NAMES_VI) - {Status.CLOSED}
_NEW_REQUEST_ALLOWED = frozenset(
    {Status.CONTACT, Status.OPEN, Status.REFUSED, Status.DECLINED, Status.DISCONTINUED}
)

# wire type -> (statuses in which it may be recorded, status afterwards or None = unchanged)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "PROCEDURAL_CONTACT": (_ACTIVE, None),
    "NOT_ELIGIBLE_DETERMINED": (_ACTIVE, None),
    "NOTIFICATION_ISSUED": (_ACTIVE, None),
    "AID_REQUESTED": (_NEW_REQUEST_ALLOWED, Status.REQUESTED),
    "REQUEST_FORWARDED": (frozenset({Status.REQUESTED}), None),
    "REQUEST_TRANSFERRED": (frozenset({Status.REQUESTED}), Status.AT_CENTRE),
    "APPOINTMENT_REQUESTED": (_NEW_REQUEST_ALLOWED | {Status.REQUESTED}, Status.AT_CENTRE),
    "CASE_TRANSFERRED": (_ACTIVE, None),
    "REQUEST_ACCEPTED": (frozenset({Status.AT_CENTRE}), Status.ACCEPTED),
    "REQUEST_REFUSED": (frozenset({Status.AT_CENTRE}), Status.REFUSED),
    "AID_ASSIGNED": (frozenset({Status.AT_CENTRE, Status.ACCEPTED}), Status.ASSIGNED),
    "COUNSEL_REGISTERED": (frozenset({Status.ASSIGNED, Status.REGISTERED}), Status.REGISTERED),
    "AID_DECLINED": (
        frozenset(
            {
                Status.CONTACT,
                Status.OPEN,
                Status.REQUESTED,
                Status.AT_CENTRE,
                Status.ACCEPTED,
                Status.ASSIGNED,
                Status.REGISTERED,
            }
        ),
        Status.DECLINED,
    ),
    "INTERPRETER_REQUESTED": (
        frozenset({Status.AT_CENTRE, Status.ACCEPTED, Status.ASSIGNED, Status.REGISTERED}),
        None,
    ),
    "PROVIDER_CHANGED": (frozenset({Status.ASSIGNED, Status.REGISTERED}), Status.ASSIGNED),
    "AID_DISCONTINUED": (
        frozenset({Status.ACCEPTED, Status.ASSIGNED, Status.REGISTERED}),
        Status.DISCONTINUED,
    ),
    "CASE_CLOSED": (_ACTIVE, Status.CLOSED),
    "QUALITY_ASSESSED": (frozenset({Status.CLOSED}), None),
}


def next_status(status: str | None, wire_type: str) -> str:
    """The case's status after an event of `wire_type` (None: the case's first event).

    A case opened by a procedural contact stands at CONTACT until the person is told of the
    right (NOTIFICATION_ISSUED, JC 10/2018 Art. 7(1)); every other opening stands at OPEN.
    """
    if status is None:
        status = Status.CONTACT if wire_type == "PROCEDURAL_CONTACT" else Status.OPEN
    elif wire_type == "NOTIFICATION_ISSUED" and status == Status.CONTACT:
        status = Status.OPEN
    after = TRANSITIONS[wire_type][1]
    return after if after is not None else status


_PERSON_ATTRIBUTES = (
    "person_id",
    "proceedings_kind",
    "eligible_category",
    "financial_hardship",
    "procedural_role",
    "stage",
    "age_band",
    "sex",
)


@dataclass(frozen=True)
class Recorded:
    """What recording one event gave: its case version and whether it was new."""

    case_id: str
    event_id: str
    version: int
    duplicate: bool
    recorded_at: datetime | None = None
    position: int | None = None  # the event's notification id in the log (global order)
    # None: in effect; else what the held fact awaits (ADR 0008: 202 status "held")
    awaiting: dict[str, Any] | None = None
    # the stored record as this process wrote it (id, topic, state bytes), when it wrote it:
    # receipts hash it without reading it back; not part of the outcome's value
    stored: Any = field(default=None, compare=False, repr=False)
    # the poster has no part in the case (ADR 0008 addendum: held without the case's state
    # being compared, or a retry of such a fact): its answer carries nothing of the case — no
    # version, a receipt binding no leaf hash (the leaf holds the version)
    scope_only: bool = False

    @property
    def held(self) -> bool:
        return self.awaiting is not None


class Referral(Aggregate):
    """A person's legal-aid referral case (vụ việc TGPL trong tố tụng)."""

    TOPIC = "referral.Referral"
    # class default: snapshots taken before this attribute existed restore without it
    notice_sent_at: datetime | None = None
    provider_since: datetime | None = None  # when the current provider was assigned or changed

    class Event(Aggregate.Event):
        """A recorded referral event; the common wire fields every type carries."""

        case_id: str
        event_id: str
        agency_id: str
        occurred_at: datetime
        data: dict[str, Any]
        content_digest: str
        identity_ciphertext: str | None

        WIRE_TYPE: ClassVar[str] = ""

        def mutate(self, aggregate: Any) -> Any:
            """Applies the event; the first event of a case also creates the case."""
            if aggregate is None:
                aggregate = Referral.__new__(Referral)
                aggregate.__base_init__(
                    originator_id=self.originator_id,
                    originator_version=self.originator_version - 1,
                    timestamp=self.timestamp,
                )
                aggregate._initial_state(self.case_id)
            return super().mutate(aggregate)

        def apply(self, aggregate: Referral) -> None:
            aggregate._apply(self)

    class Created(Event, Aggregate.Created):
        """Not used: a case is created by its first wire event (kept for the library)."""

        TOPIC = "referral.Created.v1"

    class ProceduralContact(Event):
        """Tiếp xúc tố tụng: bắt, tạm giữ, khởi tố bị can, đưa ra xét xử, xác định bị hại,
        đương sự — thời điểm phải giải thích, thông báo quyền (TTLT 10/2018 Điều 7 k1)."""

        TOPIC = "referral.ProceduralContact.v1"
        WIRE_TYPE = "PROCEDURAL_CONTACT"

    class NotEligibleDetermined(Event):
        """Xác định người không thuộc diện được TGPL, có lý do và căn cứ (Luật TGPL Điều 7)."""

        TOPIC = "referral.NotEligibleDetermined.v1"
        WIRE_TYPE = "NOT_ELIGIBLE_DETERMINED"

    class NotificationIssued(Event):
        """Giải thích, thông báo về quyền được TGPL (TTLT 10/2018 Điều 7 k1; BLTTHS Điều 71)."""

        TOPIC = "referral.NotificationIssued.v1"
        WIRE_TYPE = "NOTIFICATION_ISSUED"

    class AidRequested(Event):
        """Tiếp nhận yêu cầu TGPL (BLTTHS Điều 71; Luật TGPL Điều 29)."""

        TOPIC = "referral.AidRequested.v1"
        WIRE_TYPE = "AID_REQUESTED"

    class RequestTransferred(Event):
        """Thông báo, chuyển yêu cầu cho Trung tâm TGPL nhà nước (Luật TGPL Điều 31 k3; Mẫu 03)."""

        TOPIC = "referral.RequestTransferred.v1"
        WIRE_TYPE = "REQUEST_TRANSFERRED"

    class RequestForwarded(Event):
        """Cơ sở giam giữ chuyển yêu cầu TGPL cho cơ quan tiến hành tố tụng (TTLT 10/2018
        Điều 10 k1 điểm a); cơ quan nhận trở thành cơ quan thụ lý vụ việc và chịu thời hạn C1."""

        TOPIC = "referral.RequestForwarded.v1"
        WIRE_TYPE = "REQUEST_FORWARDED"

    class AppointmentRequested(Event):
        """Đề nghị cử người bào chữa trong trường hợp chỉ định (BLTTHS Điều 76)."""

        TOPIC = "referral.AppointmentRequested.v1"
        WIRE_TYPE = "APPOINTMENT_REQUESTED"

    class CaseTransferred(Event):
        """Chuyển vụ việc sang cơ quan hoặc giai đoạn tố tụng khác."""

        TOPIC = "referral.CaseTransferred.v1"
        WIRE_TYPE = "CASE_TRANSFERRED"

    class RequestAccepted(Event):
        """Trung tâm thụ lý (Luật TGPL Điều 30; TT 12/2018 Điều 5–6)."""

        TOPIC = "referral.RequestAccepted.v1"
        WIRE_TYPE = "REQUEST_ACCEPTED"

    class RequestRefused(Event):
        """Trung tâm từ chối thụ lý (Luật TGPL Điều 30 k3)."""

        TOPIC = "referral.RequestRefused.v1"
        WIRE_TYPE = "REQUEST_REFUSED"

    class AidAssigned(Event):
        """Cử người thực hiện TGPL (TTLT 10/2018 Điều 3 k4)."""

        TOPIC = "referral.AidAssigned.v1"
        WIRE_TYPE = "AID_ASSIGNED"

    class CounselRegistered(Event):
        """Đăng ký bào chữa / bảo vệ (TTLT 10/2018 Điều 12; BLTTHS Điều 78)."""

        TOPIC = "referral.CounselRegistered.v1"
        WIRE_TYPE = "COUNSEL_REGISTERED"

    class AidDeclined(Event):
        """Người được TGPL từ chối, có biên bản ba bên (TTLT 29/2025, hiệu lực 31/12/2025)."""

        TOPIC = "referral.AidDeclined.v1"
        WIRE_TYPE = "AID_DECLINED"

    class InterpreterRequested(Event):
        """Trung tâm đề nghị cơ quan tiến hành tố tụng bố trí người phiên dịch (TTLT 29/2025)."""

        TOPIC = "referral.InterpreterRequested.v1"
        WIRE_TYPE = "INTERPRETER_REQUESTED"

    class ProviderChanged(Event):
        """Thay đổi người thực hiện TGPL (Luật TGPL Điều 25)."""

        TOPIC = "referral.ProviderChanged.v1"
        WIRE_TYPE = "PROVIDER_CHANGED"

    class AidDiscontinued(Event):
        """Không tiếp tục thực hiện TGPL (Luật TGPL Điều 37)."""

        TOPIC = "referral.AidDiscontinued.v1"
        WIRE_TYPE = "AID_DISCONTINUED"

    class CaseClosed(Event):
        """Kết thúc vụ việc (TT 12/2018 Điều 10)."""

        TOPIC = "referral.CaseClosed.v1"
        WIRE_TYPE = "CASE_CLOSED"

    class QualityAssessed(Event):
        """Đánh giá chất lượng vụ việc (TT 12/2018 Điều 15; TT 03/2021)."""

        TOPIC = "referral.QualityAssessed.v1"
        WIRE_TYPE = "QUALITY_ASSESSED"

    class EventCorrected(Event):
        """Đính chính một sự kiện đã ghi của vụ việc: sự kiện gốc vẫn ở trong sổ (ADR 0008)."""

        TOPIC = "referral.EventCorrected.v1"
        WIRE_TYPE = "EVENT_CORRECTED"

    class EventWithdrawn(Event):
        """Rút một sự kiện đã ghi (ghi nhầm vụ việc, ghi trùng): sự kiện gốc vẫn ở trong sổ."""

        TOPIC = "referral.EventWithdrawn.v1"
        WIRE_TYPE = "EVENT_WITHDRAWN"

    # ------------------------------------------------------------------------------- state
    def _initial_state(self, case_id: str) -> None:
        self.case_id = case_id
        self.event_ids: dict[str, tuple[int, str]] = {}
        self.has_identity = False
        # every recorded fact, effective or held (ADR 0008); the state below is derived from them
        self.facts: list[dict[str, Any]] | None = []
        self._reset_derived()

    def _reset_derived(self) -> None:
        self.status: str | None = None
        self.holder_agency_id: str | None = None
        self.centre_id: str | None = None
        self.provider_id: str | None = None
        self.provider_type: str | None = None
        self.aid_form: str | None = None
        self.registered_with: str | None = None
        self.quality_assessed = False
        self.last_occurred_at: datetime | None = None
        self.opened_at: datetime | None = None
        self.opened_by: str | None = None
        self.closed_at: datetime | None = None
        self.notice_sent_at: datetime | None = None  # the last notice to the Centre
        self.provider_since: datetime | None = None
        self.person: dict[str, Any] = {}
        # agencies that recorded an event in effect, held the case or are its addressed Centre,
        # in order: who is in the case's scope. A held fact gives its poster no part in the
        # case (nor a read of it) until it takes effect (ADR 0008)
        self.touched: list[str] = []
        # event id -> what a held fact awaits (code of the rule it does not meet yet, types)
        self.held: dict[str, dict[str, Any]] = {}

    def _apply(self, event: Referral.Event) -> None:
        self.event_ids[event.event_id] = (event.originator_version, event.content_digest)
        if event.identity_ciphertext:
            self.has_identity = True
        fact = _fact_of(event)
        if self.facts is None:  # restored from a snapshot taken before ADR 0008: arrival order
            if fact["type"] not in AMENDMENT_TYPES:
                self._effect(fact)
            return
        self.facts.append(fact)
        checked = self.__dict__.pop("_fits_next", None) == (fact["event_id"], fact["version"])
        if fact["type"] in AMENDMENT_TYPES:
            self._derive()  # a correction or withdrawal: the case derived again as a whole
        elif checked or (
            not self.held and self._fits_at_end(fact) and self._lifecycle_error(fact) is None
        ):
            self._effect(fact)  # the common case: the next fact, in time and in order
        else:
            self._derive()

    def _touch(self, agency_id: str, data: Mapping[str, Any]) -> None:
        touched = self.__dict__.get("touched")
        if touched is None:  # a snapshot taken before `touched` existed: what it knew
            touched = self.touched = [
                a for a in (self.opened_by, self.holder_agency_id, self.centre_id) if a
            ]
        for agency in (agency_id, data.get("centre_id"), data.get("to_agency_id")):
            if isinstance(agency, str) and agency not in touched:
                touched.append(agency)

    def _fits_at_end(self, fact: Mapping[str, Any]) -> bool:
        return self.last_occurred_at is None or fact["occurred_at"] >= self.last_occurred_at

    def _derive(self, errors: dict[str, DomainError] | None = None) -> None:
        """The state from every fact ordered by occurred_at (ties: recording order); a fact that
        does not fit where it stands is held, naming what it awaits (ADR 0008)."""
        self._reset_derived()
        for fact in sorted(amended_facts(self.facts or ()), key=_occurred_order):
            error = self._lifecycle_error(fact)
            if error is None:
                self._effect(fact)
            else:
                self.held[fact["event_id"]] = _held_entry(fact, error)
                if errors is not None:
                    errors[fact["event_id"]] = error
        in_scope = self.posters_in_scope()
        for event_id, entry in self.held.items():
            if self.status is not None and entry["agency_id"] not in in_scope:
                # a poster with no part in the case yet learns only that it has none: not
                # where its fact stands against the case's other facts (issue 12 scope first)
                fact = {**entry, "occurred_at": datetime.fromisoformat(entry["occurred_at"])}
                self.held[event_id] = _held_entry(fact, _scope_error(entry))

    def _effect(self, fact: Mapping[str, Any]) -> None:
        """Applies one effective fact to the derived state."""
        wire_type = fact["type"]
        data = fact["data"]
        occurred_at = fact["occurred_at"]
        self.last_occurred_at = occurred_at
        opening = self.status is None
        if opening:
            self.opened_at = occurred_at
            self.opened_by = fact["agency_id"]
            self.holder_agency_id = fact["agency_id"]
        for name in _PERSON_ATTRIBUTES:
            if name in data:
                self.person[name] = data[name]
        if wire_type == "NOT_ELIGIBLE_DETERMINED":  # the category recorded so far did not hold
            self.person.pop("eligible_category", None)
        self._touch(fact["agency_id"], data)
        if wire_type in ("REQUEST_TRANSFERRED", "APPOINTMENT_REQUESTED"):
            self.centre_id = data["centre_id"]
            self.notice_sent_at = occurred_at
        elif wire_type in ("CASE_TRANSFERRED", "REQUEST_FORWARDED"):
            self.holder_agency_id = data.get("to_agency_id", self.holder_agency_id)
            if "to_stage" in data:
                self.person["stage"] = data["to_stage"]
        elif wire_type in ("AID_ASSIGNED", "PROVIDER_CHANGED"):
            self.provider_id = data["provider_id"]
            self.provider_type = data["provider_type"]
            self.aid_form = data.get("aid_form", self.aid_form)
            self.provider_since = occurred_at
        elif wire_type == "COUNSEL_REGISTERED":
            self.registered_with = self.holder_agency_id
        elif wire_type == "CASE_CLOSED":
            self.closed_at = occurred_at
        elif wire_type == "QUALITY_ASSESSED":
            self.quality_assessed = True
        self.status = next_status(None if opening else self.status, wire_type)

    def _lifecycle_error(self, fact: Mapping[str, Any]) -> DomainError | None:
        """The rule a fact does not meet where it stands in the case (None: it fits). Only the
        rules that depend on the case's other facts: the others were judged when it was
        recorded, and need the reference data."""
        wire_type = fact["type"]
        data = fact["data"]
        try:
            if self.status is None:
                if wire_type not in OPENING_TYPES or any(n not in data for n in OPENING_REQUIRED):
                    raise RuleViolationError(
                        "FIRST_EVENT_NOT_OPENING",
                        "type",
                        case_id=self.case_id,
                        allowed=", ".join(OPENING_TYPES),
                    )
            else:
                self._check_holder_or_centre(wire_type, fact["agency_id"])
                self._check_order(wire_type)
            self._check_person_id(data)
            self._check_against_state(wire_type, data)
        except DomainError as error:
            return error
        return None

    # ----------------------------------------------------------------------------- queries
    def province(self, reference: ReferenceData) -> str | None:
        """The case's province: that of the agency that opened it."""
        opener = reference.agencies.get(self.opened_by or "")
        return opener.province if opener is not None else None

    def posters_in_scope(self) -> frozenset[str]:
        """The agencies that touched the case: recorded an event, held it or were addressed
        (a snapshot taken before `touched` existed knows only the opener, holder and Centre)."""
        known = self.__dict__.get("touched") or []
        return frozenset(a for a in (*known, *self._named_posters()) if a)

    def _has_part(self, agency_id: str) -> bool:
        """`agency_id in posters_in_scope()`, without building the set (every post asks)."""
        return agency_id in (self.__dict__.get("touched") or ()) or (
            agency_id in self._named_posters()
        )

    def _named_posters(self) -> tuple[str | None, ...]:
        return (self.opened_by, self.holder_agency_id, self.centre_id)

    def check_poster_in_scope(
        self, agency_id: str, reference: ReferenceData, wire_type: str | None = None
    ) -> None:
        """Scope first: an agency that has no part in the case (never touched it, not an
        oversight body of its province) is refused before anything about the case's state
        (version, status, last occurred_at, event ids, the person) is looked at, with an
        answer that depends only on the poster's kind — it learns "not permitted", nothing
        more. Unknown agencies get AGENCY_UNKNOWN (nothing about the case either)."""
        agency = reference.agencies.get(agency_id)
        if agency is None:
            raise InvalidEventError("AGENCY_UNKNOWN", "agency_id", value=agency_id)
        if self._has_part(agency_id):
            return
        if agency.kind in OVERSIGHT_KINDS:
            if agency.province == self.province(reference):
                return
            raise RuleViolationError("AGENCY_OTHER_PROVINCE", "agency_id", value=agency_id)
        if wire_type in EVENT_TYPES and EVENT_TYPES[wire_type].emitter == "oversight":
            raise RuleViolationError(  # depends on the poster's kind only, as in _check_actor
                "AGENCY_WRONG_KIND",
                "agency_id",
                value=agency_id,
                kind=agency.kind,
                kind_vi=KIND_NAMES_VI.get(agency.kind, agency.kind),
                expected="the council or the Department of Justice",
                expected_vi="Hội đồng phối hợp liên ngành hoặc Sở Tư pháp",
            )
        if agency.is_centre:
            raise RuleViolationError("AGENCY_NOT_ADDRESSED_CENTRE", "agency_id")
        raise RuleViolationError("AGENCY_NOT_HOLDER", "agency_id", agency_id=agency_id)

    def may_hold_for(self, agency_id: str, error: DomainError, reference: ReferenceData) -> bool:
        """Whether a poster refused by `check_poster_in_scope` may still have its fact held
        (ADR 0008): a procedural agency of the case's province (a transfer to it may be late),
        or a Centre of the province (the request sent to it may be late). Depends only on the
        poster and the case's province, never on the case's state."""
        agency = reference.agencies.get(agency_id)
        if agency is None or agency.province is None:
            return False
        province = self.province(reference) or case_id_province(self.case_id, reference)
        if agency.province != province:
            return False
        if error.code == "AGENCY_NOT_HOLDER":
            return agency.is_procedural
        if error.code == "AGENCY_NOT_ADDRESSED_CENTRE":
            return agency.is_centre
        return False

    def recorded_by(self, event_id: str) -> str | None:
        """The agency that recorded a known client event id (None: unknown, or a case restored
        from a snapshot taken before ADR 0008)."""
        for fact in self.facts or ():
            if fact["event_id"] == event_id:
                return str(fact["agency_id"])
        return None

    def recorded_event(self, event_id: str) -> tuple[int, str] | None:
        """(version, content digest) of an already recorded client event id, if any."""
        return self.event_ids.get(event_id)

    def snapshot_view(self) -> dict[str, Any]:
        """The case's state as plain data (pseudonymous: person by id only)."""
        return {
            "case_id": self.case_id,
            "version": self.version,
            "status": self.status,
            "status_vi": STATUS_NAMES_VI.get(self.status or "", ""),
            "holder_agency_id": self.holder_agency_id,
            "centre_id": self.centre_id,
            "provider_id": self.provider_id,
            "provider_type": self.provider_type,
            "aid_form": self.aid_form,
            "quality_assessed": self.quality_assessed,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "last_occurred_at": (
                self.last_occurred_at.isoformat() if self.last_occurred_at else None
            ),
            "person": dict(self.person),
            "held": [dict(h) for h in (self.held or {}).values()],
        }

    def standing(self, event_id: str) -> dict[str, Any] | None:
        """What a recorded fact awaits if it is held (None: it is in effect)."""
        return (self.held or {}).get(event_id)

    # ---------------------------------------------------------------------------- commands
    @classmethod
    def open(
        cls,
        *,
        case_id: str,
        wire_type: str,
        event_id: str,
        agency_id: str,
        occurred_at: datetime,
        data: Mapping[str, Any],
        seal: Sealer,
        reference: ReferenceData,
        now: datetime,
        future_tolerance: timedelta = timedelta(minutes=5),
        earliest: datetime = EARLIEST_OCCURRENCE,
    ) -> Referral:
        """Opens a case with its first arriving event: an opening event (a notification, a
        request or an appointment), or any other event, held until the opening arrives.

        `seal` is called only once every rule has passed: it encrypts the identity block (if
        any) and gives (ciphertext or None, content digest), so a refused event leaves nothing
        behind — not even a person's data key.
        """
        if wire_type in AMENDMENT_TYPES:  # nothing recorded yet: nothing to correct
            raise InvalidEventError(
                "AMENDMENT_TARGET_UNKNOWN",
                "data.target_event_id",
                value=data.get("target_event_id"),
                case_id=case_id,
            )
        shell = cls.__new__(cls)
        shell._initial_state(case_id)
        shell._id = referral_id(case_id)
        shell._version = 0
        if wire_type in OPENING_TYPES:
            _check_opening(
                case_id, wire_type, agency_id, occurred_at, data, reference, fields=False
            )
        shell._check(
            wire_type,
            event_id,
            agency_id,
            occurred_at,
            data,
            reference,
            now,
            future_tolerance,
            earliest,
        )
        identity_ciphertext, content_digest = seal()
        event_class: Any = EVENT_CLASSES[wire_type]  # each adds the recorded fields to the base
        event = event_class(
            originator_id=referral_id(case_id),
            originator_version=cls.INITIAL_VERSION,
            timestamp=event_class.create_timestamp(),
            case_id=case_id,
            event_id=event_id,
            agency_id=agency_id,
            occurred_at=occurred_at,
            data=dict(data),
            content_digest=content_digest,
            identity_ciphertext=identity_ciphertext,
        )
        referral = cast("Referral", event.mutate(None))
        referral.pending_events.append(event)
        return referral

    def record(
        self,
        *,
        wire_type: str,
        event_id: str,
        agency_id: str,
        occurred_at: datetime,
        data: Mapping[str, Any],
        seal: Sealer,
        reference: ReferenceData,
        now: datetime,
        future_tolerance: timedelta = timedelta(minutes=5),
        earliest: datetime = EARLIEST_OCCURRENCE,
        prospective: bool = False,
    ) -> None:
        """Records the next fact of an existing case: in effect if the lifecycle ordered by
        occurred_at allows it, held if it awaits an earlier fact (ADR 0008).

        `prospective`: the poster has no part in the case yet but a late fact could give it
        one (`may_hold_for`); the fact is held without being compared with the case's state,
        so the answer tells the poster nothing of it."""
        if wire_type in AMENDMENT_TYPES:
            data = self._check_amendment(
                wire_type,
                event_id,
                agency_id,
                occurred_at,
                data,
                reference,
                now,
                future_tolerance,
                earliest,
            )
        else:
            if wire_type in OPENING_TYPES and self.status is None:
                _check_opening(
                    self.case_id, wire_type, agency_id, occurred_at, data, reference, fields=False
                )
            self._check(
                wire_type,
                event_id,
                agency_id,
                occurred_at,
                data,
                reference,
                now,
                future_tolerance,
                earliest,
                prospective,
            )
        try:
            identity_ciphertext, content_digest = seal()
            self.trigger_event(
                EVENT_CLASSES[wire_type],
                case_id=self.case_id,
                event_id=event_id,
                agency_id=agency_id,
                occurred_at=occurred_at,
                data=dict(data),
                content_digest=content_digest,
                identity_ciphertext=identity_ciphertext,
            )
        finally:
            self.__dict__.pop("_fits_next", None)  # never left in the state (nor a snapshot)

    def check_not_conflicting(self, event_id: str, content_digest: str) -> Recorded | None:
        """A Recorded(duplicate) for a retry of a known event id; ConflictError if it differs."""
        known = self.recorded_event(event_id)
        if known is None:
            return None
        version, digest = known
        if digest != content_digest:
            raise ConflictError("EVENT_ID_CONFLICT", "event_id", value=event_id)
        return Recorded(
            self.case_id, event_id, version, duplicate=True, awaiting=self.standing(event_id)
        )

    # ------------------------------------------------------------------------------ guards
    def _check(
        self,
        wire_type: str,
        event_id: str,
        agency_id: str,
        occurred_at: datetime,
        data: Mapping[str, Any],
        reference: ReferenceData,
        now: datetime,
        future_tolerance: timedelta,
        earliest: datetime = EARLIEST_OCCURRENCE,
        prospective: bool = False,
    ) -> None:
        """Refuses what no other fact could make lawful; lets through what is in effect or
        held where the fact stands in occurred order (ADR 0008)."""
        self._check_occurred_at(occurred_at, now, future_tolerance, earliest)
        agency = _agency(reference, agency_id, occurred_at)
        _check_actor_kind(wire_type, agency_id, agency)
        if self.status is None and wire_type not in OPENING_TYPES:
            # a first arriving fact that is not an opening is held; it may not squat another
            # province's numbering either (issue 12)
            check_case_id_province(self.case_id, agency.province, reference)
        if EVENT_TYPES[wire_type].emitter == "oversight":
            self._check_oversight(agency_id, agency, reference)
        if prospective:  # judged on its own: held until a late fact gives the poster its part
            self._check_person(data, occurred_at, reference, wire_type, person={})
            self._check_specific(wire_type, occurred_at, data, reference)
            return
        self._check_person(data, occurred_at, reference, wire_type)
        self._check_specific(wire_type, occurred_at, data, reference)
        fact = {
            "version": self.version + 1,
            "type": wire_type,
            "event_id": event_id,
            "agency_id": agency_id,
            "occurred_at": occurred_at,
            "data": dict(data),
        }
        if self.facts is None:  # a case restored from a pre-ADR 0008 snapshot: arrival order
            if self.last_occurred_at is not None and occurred_at < self.last_occurred_at:
                raise RuleViolationError(
                    "OCCURRED_BEFORE_PREVIOUS",
                    "occurred_at",
                    value=occurred_at.isoformat(),
                    previous=self.last_occurred_at.isoformat(),
                )
            error = self._lifecycle_error(fact)
            if error is not None:
                raise error
            return
        if not self.held and self._fits_at_end(fact):
            error = self._lifecycle_error(fact)
            if error is not None and not self._curable(error, wire_type, agency, reference):
                raise error
            if error is None:  # `_apply` of the event about to be triggered need not judge it
                self._fits_next = (event_id, fact["version"])  # again: nothing changes between
            return
        scratch = Referral.__new__(Referral)
        scratch.case_id = self.case_id
        scratch.facts = [*self.facts, fact]
        errors: dict[str, DomainError] = {}
        scratch._derive(errors)
        mine = errors.get(event_id)
        if mine is not None and not self._curable(mine, wire_type, agency, reference):
            raise mine
        for other, error in errors.items():
            if other != event_id and other not in self.held and error.code not in CURABLE:
                later = next(f for f in self.facts if f["event_id"] == other)
                raise RuleViolationError(
                    "OCCURRED_ORDER_CONFLICT",
                    "occurred_at",
                    value=occurred_at.isoformat(),
                    event_type=later["type"],
                    other_at=later["occurred_at"].isoformat(),
                    rule=error.code,
                )

    def _check_amendment(
        self,
        wire_type: str,
        event_id: str,
        agency_id: str,
        occurred_at: datetime,
        data: Mapping[str, Any],
        reference: ReferenceData,
        now: datetime,
        future_tolerance: timedelta,
        earliest: datetime = EARLIEST_OCCURRENCE,
    ) -> dict[str, Any]:
        """A correction or withdrawal (ADR 0008 addendum): of an event of this case that is not
        itself one and not withdrawn, by the agency that recorded it (AMENDMENT_BY), changing
        only what the target carries, and leaving every fact in effect lawful in occurred order
        (facts it sends back to held are accepted, as a late fact's are). Gives the data to
        store: with `target_version` filled in."""
        self._check_occurred_at(occurred_at, now, future_tolerance, earliest)
        agency = _agency(reference, agency_id, occurred_at)
        target_id = data["target_event_id"]
        facts = self.facts or []
        target = next((f for f in facts if f["event_id"] == target_id), None)
        if target is None:
            raise InvalidEventError(
                "AMENDMENT_TARGET_UNKNOWN",
                "data.target_event_id",
                value=target_id,
                case_id=self.case_id,
            )
        given = data.get("target_version")
        if given is not None and given != target["version"]:
            raise InvalidEventError(
                "FIELD_INVALID",
                "data.target_version",
                rule_vi=f"sự kiện {target_id} có số thứ tự {target['version']}",
                rule_en=f"event {target_id} has version {target['version']}",
            )
        if target["type"] in AMENDMENT_TYPES:
            raise RuleViolationError(
                "AMENDMENT_TARGET_INVALID",
                "data.target_event_id",
                value=target_id,
                rule_vi="đó là một đính chính hoặc việc rút; hãy đính chính hoặc rút sự kiện gốc",
                rule_en="it is itself a correction or withdrawal; amend the original event",
            )
        if any(
            f["type"] == "EVENT_WITHDRAWN" and f["data"].get("target_version") == target["version"]
            for f in facts
        ):
            raise RuleViolationError(
                "AMENDMENT_TARGET_INVALID",
                "data.target_event_id",
                value=target_id,
                rule_vi="sự kiện đã bị rút",
                rule_en="it has been withdrawn",
            )
        if agency_id != target["agency_id"] or (
            agency.province is not None and agency.province not in (self.province(reference), None)
        ):
            raise RuleViolationError(
                "AMENDMENT_NOT_PERMITTED",
                "agency_id",
                agency_id=agency_id,
                event_type=target["type"],
                target_version=target["version"],
            )
        reason = reference.codes("correction_reasons")[data["reason_code"]]
        if wire_type not in reason.attributes.get("applies_to", (wire_type,)):
            raise InvalidEventError(
                "FIELD_INVALID",
                "data.reason_code",
                rule_vi=f"lý do {reason.code} không dùng cho {wire_type}",
                rule_en=f"reason {reason.code} does not apply to {wire_type}",
            )
        for name, value in (data.get("changes") or {}).items():
            if name == "occurred_at":
                self._check_occurred_at(
                    datetime.fromisoformat(value), now, future_tolerance, earliest
                )
            elif name.removeprefix("data.") not in target["data"]:
                raise InvalidEventError(
                    "CORRECTION_FIELD_NOT_CARRIED",
                    f"data.changes.{name}",
                    value=name,
                    event_type=target["type"],
                )
        stored = {**data, "target_version": target["version"]}
        scratch = Referral.__new__(Referral)
        scratch.case_id = self.case_id
        scratch.facts = [
            *facts,
            {
                "version": self.version + 1,
                "type": wire_type,
                "event_id": event_id,
                "agency_id": agency_id,
                "occurred_at": occurred_at,
                "data": stored,
            },
        ]
        errors: dict[str, DomainError] = {}
        scratch._derive(errors)
        for other, error in errors.items():
            if other not in self.held and error.code not in CURABLE:
                later = next(f for f in amended_facts(scratch.facts) if f["event_id"] == other)
                raise RuleViolationError(
                    "AMENDMENT_CONFLICT",
                    "data.changes",
                    event_type=later["type"],
                    other_at=later["occurred_at"].isoformat(),
                    rule=error.code,
                )
        return stored

    def _curable(
        self, error: DomainError, wire_type: str, agency: Any, reference: ReferenceData
    ) -> bool:
        """Whether an earlier fact still to arrive could make the event lawful (then it is
        held). A non-holder is held only if it is a procedural agency of the case's province
        (a transfer to it may be late); any other agency is refused, naming no one."""
        if error.code not in CURABLE:
            return False
        if error.code in ("AGENCY_NOT_HOLDER", "AGENCY_NOT_ADDRESSED_CENTRE"):
            province = self.province(reference)
            centre = agency.kind == "legal_aid_centre"
            if error.code == "AGENCY_NOT_ADDRESSED_CENTRE":
                kind_ok = centre  # another centre's request may be late
            else:  # a closure by a centre not addressed yet, or a holder not yet transferred to
                kind_ok = agency.is_procedural or (
                    centre and EVENT_TYPES[wire_type].emitter == "closer"
                )
            return kind_ok and (province is None or agency.province == province)
        return True

    def _check_occurred_at(
        self,
        occurred_at: datetime,
        now: datetime,
        future_tolerance: timedelta,
        earliest: datetime = EARLIEST_OCCURRENCE,
    ) -> None:
        if occurred_at > now + future_tolerance:
            raise InvalidEventError(
                "OCCURRED_IN_FUTURE", "occurred_at", value=occurred_at.isoformat()
            )
        if occurred_at < earliest:
            raise InvalidEventError(
                "OCCURRED_TOO_EARLY",
                "occurred_at",
                value=occurred_at.isoformat(),
                earliest=earliest.date().isoformat(),
            )

    def _check_order(self, wire_type: str) -> None:
        if self.status == Status.CLOSED and wire_type != "QUALITY_ASSESSED":
            raise RuleViolationError("CASE_CLOSED", "type", case_id=self.case_id)
        if wire_type == "QUALITY_ASSESSED" and self.quality_assessed:
            raise RuleViolationError("QUALITY_ALREADY_ASSESSED", "type", case_id=self.case_id)
        allowed, _ = TRANSITIONS[wire_type]
        reregistration = (
            wire_type == "COUNSEL_REGISTERED"
            and self.status == Status.REGISTERED
            and self.registered_with == self.holder_agency_id
        )
        if self.status not in allowed or reregistration:
            raise RuleViolationError(
                "ORDER_VIOLATION",
                "type",
                event_type=wire_type,
                status=self.status,
                status_vi=STATUS_NAMES_VI.get(self.status or "", ""),
                allowed=", ".join(sorted(allowed)),
                allowed_vi=", ".join(STATUS_NAMES_VI[s] for s in sorted(allowed)),
            )

    def _check_holder_or_centre(self, wire_type: str, agency_id: str) -> None:
        emitter = EVENT_TYPES[wire_type].emitter
        if emitter == "closer":
            emitter = "centre" if self.centre_id and agency_id == self.centre_id else "holder"
        if emitter == "holder" and agency_id != self.holder_agency_id:
            raise RuleViolationError("AGENCY_NOT_HOLDER", "agency_id", agency_id=agency_id)
        # no centre addressed yet: the order rule names the problem (the request is not there)
        if emitter == "centre" and self.centre_id is not None and agency_id != self.centre_id:
            raise RuleViolationError("AGENCY_NOT_ADDRESSED_CENTRE", "agency_id")

    def _check_oversight(self, agency_id: str, agency: Any, reference: ReferenceData) -> None:
        kind = agency.kind
        if kind not in OVERSIGHT_KINDS:
            raise RuleViolationError(
                "AGENCY_WRONG_KIND",
                "agency_id",
                value=agency_id,
                kind=kind,
                kind_vi=KIND_NAMES_VI.get(kind, kind),
                expected="the council or the Department of Justice",
                expected_vi="Hội đồng phối hợp liên ngành hoặc Sở Tư pháp",
            )
        province = self.province(reference)
        if province is not None and agency.province != province:
            raise RuleViolationError("AGENCY_OTHER_PROVINCE", "agency_id", value=agency_id)

    def _check_person_id(
        self, data: Mapping[str, Any], person: Mapping[str, Any] | None = None
    ) -> None:
        known = (self.person if person is None else person).get("person_id")
        given = data.get("person_id")
        if known and given and given != known:
            raise RuleViolationError(
                "PERSON_MISMATCH", "data.person_id", value=given, expected=known
            )

    def _check_person(
        self,
        data: Mapping[str, Any],
        occurred_at: datetime,
        reference: ReferenceData,
        wire_type: str = "",
        person: Mapping[str, Any] | None = None,
    ) -> None:
        person = self.person if person is None else person
        self._check_person_id(data, person)
        if "eligible_category" not in data:
            return
        merged = {**person, **data}
        code = data["eligible_category"]
        if code == UNDETERMINED_CATEGORY:
            self._check_undetermined(wire_type, person)
            return
        category = reference.categories[code]
        day = occurred_at.astimezone(VIETNAM_TZ).date()
        if not category.validity.covers(day):
            raise InvalidEventError(
                "CATEGORY_NOT_VALID_ON_DATE",
                "data.eligible_category",
                value=code,
                date=f"{day:%d/%m/%Y}",
                valid=category.validity.describe_vi(),
                valid_en=category.validity.describe_en(),
            )
        if category.requires_financial_hardship and merged.get("financial_hardship") is not True:
            raise InvalidEventError(
                "CATEGORY_REQUIRES_FINANCIAL_HARDSHIP", "data.financial_hardship", value=code
            )
        role = merged.get("procedural_role")
        if category.roles is not None and role not in category.roles:
            raise InvalidEventError(
                "CATEGORY_ROLE_MISMATCH", "data.eligible_category", value=code, role=role
            )
        band = merged.get("age_band")
        if category.age_bands is not None and band is not None and band not in category.age_bands:
            raise InvalidEventError(
                "CATEGORY_AGE_MISMATCH", "data.eligible_category", value=code, age_band=band
            )

    def _check_undetermined(self, wire_type: str, person: Mapping[str, Any] | None = None) -> None:
        """UNDETERMINED says "not known yet": only a procedural contact may say it (the
        category is often unknown at arrest or intake), and never over a known category."""
        if wire_type != "PROCEDURAL_CONTACT":
            raise InvalidEventError(
                "FIELD_INVALID",
                "data.eligible_category",
                rule_vi=f"giá trị {UNDETERMINED_CATEGORY} (chưa xác định diện) chỉ dùng cho sự "
                "kiện PROCEDURAL_CONTACT; bỏ trống trường này nếu chưa biết diện",
                rule_en=f"{UNDETERMINED_CATEGORY} is only accepted on PROCEDURAL_CONTACT; "
                "leave the field out when the category is not known",
            )
        known = (self.person if person is None else person).get("eligible_category")
        if known not in (None, UNDETERMINED_CATEGORY):
            raise InvalidEventError(
                "FIELD_INVALID",
                "data.eligible_category",
                rule_vi=f"vụ việc đã xác định diện {known}; không ghi {UNDETERMINED_CATEGORY} "
                "đè lên diện đã biết (bỏ trống trường này)",
                rule_en=f"the case's category is already known ({known}); "
                f"{UNDETERMINED_CATEGORY} must not overwrite it (leave the field out)",
            )

    def _check_specific(
        self,
        wire_type: str,
        occurred_at: datetime,
        data: Mapping[str, Any],
        reference: ReferenceData,
    ) -> None:
        """The type's own field rules that need no other fact of the case."""
        if wire_type == "PROCEDURAL_CONTACT":
            for name in ("procedural_role", "stage"):  # the role the person enters, and when
                if name not in data:
                    raise InvalidEventError("FIELD_REQUIRED", f"data.{name}")
        elif wire_type == "NOT_ELIGIBLE_DETERMINED":
            if "eligible_category" in data:
                raise InvalidEventError(
                    "FIELD_INVALID",
                    "data.eligible_category",
                    rule_vi="sự kiện xác định không thuộc diện không ghi diện người được TGPL",
                    rule_en="a not-eligible determination carries no eligible category",
                )
        elif wire_type in ("REQUEST_TRANSFERRED", "APPOINTMENT_REQUESTED"):
            _agency(reference, data["centre_id"], occurred_at, field="data.centre_id")
        elif wire_type == "CASE_TRANSFERRED":
            to_agency = data.get("to_agency_id")
            to_stage = data.get("to_stage")
            if to_agency is None and to_stage is None:
                raise InvalidEventError("FIELD_REQUIRED", "data.to_agency_id")
            if to_agency is not None:
                _agency(reference, to_agency, occurred_at, field="data.to_agency_id")
        elif wire_type in ("AID_ASSIGNED", "PROVIDER_CHANGED"):
            provider_type = reference.codes("provider_types")[data["provider_type"]]
            if not provider_type.attributes.get("in_proceedings", False):
                raise InvalidEventError(
                    "PROVIDER_NOT_IN_PROCEEDINGS", "data.provider_type", value=data["provider_type"]
                )
            if wire_type == "PROVIDER_CHANGED":
                _not_after(data["requested_at"], occurred_at, "data.requested_at")
        elif wire_type in ("REQUEST_ACCEPTED", "REQUEST_REFUSED"):
            received = data.get("notice_received_at")
            if received is not None:
                _not_after(received, occurred_at, "data.notice_received_at")
        elif wire_type == "COUNSEL_REGISTERED":
            _not_after(data["documents_complete_at"], occurred_at, "data.documents_complete_at")

    def _check_against_state(self, wire_type: str, data: Mapping[str, Any]) -> None:
        """The type's field rules that compare with the case as its earlier facts left it."""
        if wire_type == "CASE_TRANSFERRED":
            to_agency = data.get("to_agency_id")
            to_stage = data.get("to_stage")
            if (to_agency in (None, self.holder_agency_id)) and (
                to_stage in (None, self.person.get("stage"))
            ):
                raise RuleViolationError("TRANSFER_TO_SELF", "data.to_agency_id")
        elif wire_type == "PROVIDER_CHANGED":
            if data["provider_id"] == self.provider_id:
                raise RuleViolationError(
                    "SAME_PROVIDER", "data.provider_id", value=data["provider_id"]
                )
        elif wire_type in ("REQUEST_ACCEPTED", "REQUEST_REFUSED"):
            received = data.get("notice_received_at")
            if (
                received is not None
                and self.notice_sent_at is not None
                and (datetime.fromisoformat(received) < self.notice_sent_at)
            ):
                raise InvalidEventError(
                    "FIELD_INVALID",
                    "data.notice_received_at",
                    rule_vi="không được sớm hơn thời điểm cơ quan gửi thông báo "
                    f"({self.notice_sent_at.isoformat()})",
                    rule_en="must not be earlier than the agency's notice "
                    f"({self.notice_sent_at.isoformat()})",
                )
        elif wire_type == "COUNSEL_REGISTERED":
            given = data.get("provider_id")
            if given is not None and given != self.provider_id:
                raise RuleViolationError(
                    "PROVIDER_MISMATCH", "data.provider_id", value=given, expected=self.provider_id
                )
            self._check_documents_after_assignment(data["documents_complete_at"])

    def _check_documents_after_assignment(self, documents_complete_at: str) -> None:
        """The registration's documents include the Centre's assignment letter, so they are not
        complete before the assignment (or provider change) the registration answers; an earlier
        instant would start the C4 clock early (BLTTHS 2015 Điều 78 khoản 1; TTLT 10/2018
        Điều 12)."""
        since = self.provider_since
        if since is not None and datetime.fromisoformat(documents_complete_at) < since:
            raise RuleViolationError(
                "DOCUMENTS_BEFORE_ASSIGNMENT",
                "data.documents_complete_at",
                value=documents_complete_at,
                assigned_at=since.isoformat(),
            )


# the rules an earlier fact still to arrive can satisfy: such an event is held, not refused
CURABLE = frozenset(
    {
        "ORDER_VIOLATION",
        "FIRST_EVENT_NOT_OPENING",
        "AGENCY_NOT_HOLDER",
        "AGENCY_NOT_ADDRESSED_CENTRE",
        "PROVIDER_MISMATCH",
        "SAME_PROVIDER",
        "TRANSFER_TO_SELF",
    }
)


def amended_facts(facts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The case's lifecycle facts with its corrections applied and its withdrawn facts left out
    (ADR 0008 addendum), in version order. A corrected fact is a copy carrying the corrected
    `occurred_at` / `data` fields and `corrected_by` (the corrections' versions, in order); the
    recorded fact is never changed. Corrections and withdrawals are not lifecycle facts."""
    lifecycle: dict[int, dict[str, Any]] = {}
    amendments = []
    for fact in facts:
        if fact["type"] in AMENDMENT_TYPES:
            amendments.append(fact)
        else:
            lifecycle[int(fact["version"])] = fact  # type: ignore[assignment]
    if not amendments:
        return list(lifecycle.values())
    for amendment in sorted(amendments, key=lambda f: int(f["version"])):
        target = amendment["data"].get("target_version")
        if target not in lifecycle:
            continue
        if amendment["type"] == "EVENT_WITHDRAWN":
            del lifecycle[target]
            continue
        fact = dict(lifecycle[target])
        data = dict(fact["data"])
        for name, value in amendment["data"].get("changes", {}).items():
            if name == "occurred_at":
                fact["occurred_at"] = (
                    value if isinstance(value, datetime) else datetime.fromisoformat(value)
                )
            else:
                data[name.removeprefix("data.")] = value
        fact["data"] = data
        fact["corrected_by"] = [*fact.get("corrected_by", ()), int(amendment["version"])]
        lifecycle[target] = fact
    return sorted(lifecycle.values(), key=lambda f: int(f["version"]))


def _occurred_order(fact: Mapping[str, Any]) -> tuple[datetime, int]:
    return fact["occurred_at"], fact["version"]


def _fact_of(event: Any) -> dict[str, Any]:
    """The fields of a recorded event the derivation folds (plain data: snapshots keep it)."""
    return {
        "version": int(event.originator_version),
        "type": event.WIRE_TYPE,
        "event_id": event.event_id,
        "agency_id": event.agency_id,
        "occurred_at": event.occurred_at,
        "data": dict(event.data),
        "recorded_at": getattr(event, "timestamp", None),
    }


def _awaited_types(error: DomainError, wire_type: str) -> list[str]:
    """The event types whose arrival (dated before the held fact) could let it take effect."""
    if error.code == "FIRST_EVENT_NOT_OPENING":
        return list(OPENING_TYPES)
    if error.code == "ORDER_VIOLATION":
        allowed = TRANSITIONS[wire_type][0]
        return sorted(
            t for t, (_, after) in TRANSITIONS.items() if after in allowed and t != wire_type
        )
    if error.code == "AGENCY_NOT_HOLDER":
        return ["CASE_TRANSFERRED", "REQUEST_FORWARDED"]
    if error.code == "AGENCY_NOT_ADDRESSED_CENTRE":
        return ["REQUEST_TRANSFERRED", "APPOINTMENT_REQUESTED"]
    if error.code in ("PROVIDER_MISMATCH", "SAME_PROVIDER"):
        return ["AID_ASSIGNED", "PROVIDER_CHANGED"]
    if error.code == "TRANSFER_TO_SELF":
        return ["CASE_TRANSFERRED"]
    return []


def _scope_error(entry: Mapping[str, Any]) -> DomainError:
    if EVENT_TYPES[entry["type"]].emitter == "centre":
        return RuleViolationError("AGENCY_NOT_ADDRESSED_CENTRE", "agency_id")
    return RuleViolationError("AGENCY_NOT_HOLDER", "agency_id", agency_id=entry["agency_id"])


def _held_entry(fact: Mapping[str, Any], error: DomainError) -> dict[str, Any]:
    return {
        "event_id": fact["event_id"],
        "version": fact["version"],
        "type": fact["type"],
        "agency_id": fact["agency_id"],
        "occurred_at": fact["occurred_at"].isoformat(),
        "reason": error.code,
        "awaiting": _awaited_types(error, fact["type"]),
        "message": error.message_vi,
        "message_en": error.message_en,
        "recorded_at": fact.get("recorded_at"),  # the recording clock: how long it waits
    }


def _check_opening(
    case_id: str,
    wire_type: str,
    agency_id: str,
    occurred_at: datetime,
    data: Mapping[str, Any],
    reference: ReferenceData,
    fields: bool = True,
) -> None:
    """A case opens with a notification, a request or an appointment, by a procedural agency,
    naming the person, the proceedings, the role and the stage (`fields`: check those; without,
    an event that lacks them is held until an opening event arrives, ADR 0008)."""
    if wire_type not in OPENING_TYPES:
        raise RuleViolationError(
            "FIRST_EVENT_NOT_OPENING", "type", case_id=case_id, allowed=", ".join(OPENING_TYPES)
        )
    for name in OPENING_REQUIRED if fields else ():
        if name not in data:
            raise InvalidEventError("FIELD_REQUIRED", f"data.{name}")
    agency = _agency(reference, agency_id, occurred_at)
    if not agency.is_procedural:
        raise RuleViolationError(
            "AGENCY_WRONG_KIND",
            "agency_id",
            value=agency_id,
            kind=agency.kind,
            kind_vi=KIND_NAMES_VI[agency.kind],
            expected="a procedural agency",
            expected_vi="cơ quan tiến hành tố tụng hoặc cơ sở giam giữ",
        )
    check_case_id_province(case_id, agency.province, reference)


# Rules added after events were first recorded, with the instant they took effect: the offline
# verifier reports an event recorded before then that breaks one as a note, not as a failure
# (nothing already recorded is changed; A19, A24 in docs/assumptions.md).
RULES_IN_FORCE_FROM: dict[str, datetime] = {
    "AGENCY_KIND_NOT_PERMITTED": datetime(2026, 12, 1, tzinfo=VIETNAM_TZ),  # issue 20
    "DOCUMENTS_BEFORE_ASSIGNMENT": datetime(2026, 12, 1, tzinfo=VIETNAM_TZ),  # issue 13
    "CASE_ID_OTHER_PROVINCE": datetime(2026, 12, 1, tzinfo=VIETNAM_TZ),  # issue 12
    "REFERENCE_FORMAT_INVALID": datetime(2026, 12, 1, tzinfo=VIETNAM_TZ),  # issue 12
}


@dataclass(frozen=True)
class Refusal:
    """A recorded event the ledger's rules would not have accepted, and the error they give."""

    version: int
    event_id: str
    wire_type: str
    recorded_at: datetime
    error: Any  # DomainError
    in_force: bool = True  # False: the rule took effect after the event was recorded


def derive_case(case_id: str, events: Iterable[Any]) -> Referral | None:
    """The case derived from any subset of its stored events (not necessarily consecutive
    versions, e.g. those that occurred by an instant): the state their facts make in occurred
    order, held ones named (ADR 0008). None when there is none."""
    events = sorted(events, key=lambda e: int(e.originator_version))
    if not events:
        return None
    state = Referral.__new__(Referral)
    state._initial_state(case_id)
    state._id = referral_id(case_id)
    state._version = int(events[-1].originator_version)
    for event in events:
        state.event_ids[event.event_id] = (int(event.originator_version), event.content_digest)
        if event.identity_ciphertext:
            state.has_identity = True
    state.facts = [_fact_of(e) for e in events]
    state._derive()
    return state


def effective_facts(events: Iterable[Any], case_id: str = "") -> list[Any]:
    """The events of a case that are in effect once all of them are known, in occurred order
    (ties: version): what state, time limits and figures judge (ADR 0008). `events` are stored
    events or any objects with WIRE_TYPE, originator_version, agency_id, occurred_at and data
    carrying the fields the lifecycle reads."""
    events = list(events)
    state = Referral.__new__(Referral)
    state.case_id = case_id
    state.facts = [
        {
            "version": int(e.originator_version),
            "type": e.WIRE_TYPE,
            "event_id": str(e.originator_version),
            "agency_id": e.agency_id,
            "occurred_at": e.occurred_at,
            "data": dict(e.data),
        }
        for e in events
    ]
    state._derive()
    held = {int(h["version"]) for h in state.held.values()}
    if not any(e.WIRE_TYPE in AMENDMENT_TYPES for e in events):
        return sorted(
            (e for e in events if int(e.originator_version) not in held),
            key=lambda e: (e.occurred_at, int(e.originator_version)),
        )
    by_version = {int(e.originator_version): e for e in events}
    out: list[Any] = []
    for fact in amended_facts(state.facts or ()):
        version = int(fact["version"])
        if version in held:
            continue
        event = by_version[version]
        out.append(CorrectedFact(event, fact) if "corrected_by" in fact else event)
    return sorted(out, key=lambda e: (e.occurred_at, int(e.originator_version)))


def occurred_as_corrected(events: Iterable[Any]) -> dict[int, datetime]:
    """Version -> occurred_at of each lifecycle event as its corrections make it (withdrawn
    events and the amendments themselves absent): what "as it happened at T" selects by."""
    return {
        int(f["version"]): f["occurred_at"] for f in amended_facts([_fact_of(e) for e in events])
    }


class CorrectedFact:
    """A recorded event as its corrections make it (ADR 0008 addendum): the corrected
    `occurred_at` and `data`, `corrected_by` (the corrections' versions); every other attribute
    is the recorded event's own, which is never changed."""

    def __init__(self, event: Any, fact: Mapping[str, Any]) -> None:
        self._event = event
        self.occurred_at: datetime = fact["occurred_at"]
        self.data: dict[str, Any] = fact["data"]
        self.corrected_by: list[int] = list(fact["corrected_by"])

    def __getattr__(self, name: str) -> Any:
        return getattr(self._event, name)


def judge_history(
    case_id: str,
    events: Iterable[Any],
    reference: ReferenceData | None,
    future_tolerance: timedelta = timedelta(minutes=5),
) -> tuple[Referral | None, list[Refusal]]:
    """Replays recorded events through the same checks `Referral.open` / `Referral.record` apply
    when recording, each judged at its own recording time; the refused ones are skipped.

    `events` are stored events (or any objects with the same attributes: WIRE_TYPE, event_id,
    agency_id, occurred_at, data, originator_version, timestamp, content_digest,
    identity_ciphertext), in version order. Gives the case as its lawful events make it (None if
    none is lawful) and every refusal. The wire-shape checks of `data` are the catalogue's
    (`normalise_data`); what needs the clear identity (erasure, age band) cannot be judged here.
    Without `reference` the events are only folded (no rule is checked, nothing is refused).
    """
    from domain.catalogue import normalise_data

    state = Referral.__new__(Referral)
    state._initial_state(case_id)
    state._id = referral_id(case_id)
    state._version = 0
    refusals: list[Refusal] = []
    for event in events:
        wire_type = getattr(event, "WIRE_TYPE", "") or ""
        if reference is None:
            state._apply(event)
            state._version = int(event.originator_version)
            continue
        try:
            if wire_type not in EVENT_TYPES:
                raise InvalidEventError("EVENT_TYPE_UNKNOWN", "type", value=wire_type[:64])
            if getattr(event, "case_id", case_id) != case_id:
                raise InvalidEventError(
                    "FIELD_INVALID",
                    "case_id",
                    rule_vi=f"phải là {case_id}",
                    rule_en=f"must be {case_id}",
                )
            if event.event_id in state.event_ids:
                raise ConflictError("EVENT_ID_CONFLICT", "event_id", value=event.event_id)
            data = event.data or {}
            normalise_data(wire_type, data, reference)
            if wire_type in AMENDMENT_TYPES:
                state._check_amendment(
                    wire_type,
                    event.event_id,
                    event.agency_id,
                    event.occurred_at,
                    data,
                    reference,
                    event.timestamp,
                    future_tolerance,
                )
                state._apply(event)
                state._version = int(event.originator_version)
                continue
            if state.status is None and wire_type in OPENING_TYPES:
                _check_opening(
                    case_id,
                    wire_type,
                    event.agency_id,
                    event.occurred_at,
                    data,
                    reference,
                    fields=False,
                )
            state._check(
                wire_type,
                event.event_id,
                event.agency_id,
                event.occurred_at,
                data,
                reference,
                event.timestamp,
                future_tolerance,
            )
        except DomainError as error:
            since = RULES_IN_FORCE_FROM.get(error.code)
            refusals.append(
                Refusal(
                    int(event.originator_version),
                    str(getattr(event, "event_id", "")),
                    wire_type,
                    event.timestamp,
                    error,
                    in_force=since is None or event.timestamp >= since,
                )
            )
            continue
        state._apply(event)
        state._version = int(event.originator_version)
    return (state if state.status is not None else None), refusals


def _check_actor_kind(wire_type: str, agency_id: str, agency: Any) -> None:
    """Refuses an event the law gives to other kinds of agency (e.g. only a proceedings agency
    registers counsel, CPC 2015 Art. 78(4); a detention facility passes requests on)."""
    spec = EVENT_TYPES[wire_type]
    if not spec.actor_kinds or agency.kind in spec.actor_kinds:
        return
    raise RuleViolationError(
        "AGENCY_KIND_NOT_PERMITTED",
        "agency_id",
        value=agency_id,
        kind=agency.kind,
        kind_vi=KIND_NAMES_VI.get(agency.kind, agency.kind),
        event_type=wire_type,
        expected=" or ".join(spec.actor_kinds),
        expected_vi=" hoặc ".join(KIND_NAMES_VI.get(k, k) for k in spec.actor_kinds),
        basis=spec.actor_basis,
    )


def case_id_province(case_id: str, reference: ReferenceData) -> str | None:
    """The province whose numbering a case id follows: its first `-`-separated segment if
    that is a province code (`LSN-2026-000123`), else its second one after a series prefix
    that is not a province code (`VV-LSN-2026-000123`); None if neither is."""
    segments = case_id.split("-", 2)
    if segments[0] in reference.provinces:
        return segments[0]
    if len(segments) > 1 and segments[1] in reference.provinces:
        return segments[1]
    return None


def check_case_id_province(case_id: str, province: str | None, reference: ReferenceData) -> None:
    """An agency opens cases only under its own province's numbering (no squatting of another
    province's ids); a national agency (no province) is not bound."""
    if province is not None and case_id_province(case_id, reference) != province:
        raise RuleViolationError(
            "CASE_ID_OTHER_PROVINCE", "case_id", case_id=case_id, province=province
        )


def _not_after(value: str, occurred_at: datetime, field: str) -> None:
    if datetime.fromisoformat(value) > occurred_at:
        raise InvalidEventError(
            "FIELD_INVALID",
            field,
            rule_vi="không được muộn hơn thời điểm xảy ra sự kiện (occurred_at)",
            rule_en="must not be later than occurred_at",
        )


def _agency(
    reference: ReferenceData, agency_id: str, occurred_at: datetime, field: str = "agency_id"
) -> Any:
    agency = reference.agencies.get(agency_id)
    if agency is None:
        raise InvalidEventError("AGENCY_UNKNOWN", field, value=agency_id)
    day = occurred_at.astimezone(VIETNAM_TZ).date()
    if not agency.validity.covers(day):
        raise InvalidEventError(
            "AGENCY_INACTIVE",
            field,
            value=agency_id,
            date=f"{day:%d/%m/%Y}",
            valid=agency.validity.describe_vi(),
            valid_en=agency.validity.describe_en(),
        )
    return agency


EVENT_CLASSES: dict[str, type[Referral.Event]] = {
    cls.WIRE_TYPE: cls
    for cls in vars(Referral).values()
    if isinstance(cls, type) and issubclass(cls, Referral.Event) and cls.WIRE_TYPE
}
