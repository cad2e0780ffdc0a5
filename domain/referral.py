"""The referral case: one person's legal-aid referral within one proceedings matter.

Every wire event is one domain event of this aggregate (explicit, versioned topics; never
renamed). The aggregate decides whether an event may follow the case's history — the order
the law implies (JC 10/2018; Legal Aid Law 2017; CPC 2015) and who may act — and keeps the
client `event_id`s it has recorded so that a retry is recognised, not recorded twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, ClassVar, cast

from eventsourcing.domain import Aggregate

from domain.calendar import VIETNAM_TZ
from domain.catalogue import EVENT_TYPES, OPENING_REQUIRED, OPENING_TYPES
from domain.errors import (
    ConflictError,
    InvalidEventError,
    RuleViolationError,
)
from domain.reference import KIND_NAMES_VI, OVERSIGHT_KINDS, ReferenceData

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
    {Status.OPEN, Status.REFUSED, Status.DECLINED, Status.DISCONTINUED}
)

# wire type -> (statuses in which it may be recorded, status afterwards or None = unchanged)
TRANSITIONS: dict[str, tuple[frozenset[str], str | None]] = {
    "NOTIFICATION_ISSUED": (_ACTIVE, None),
    "AID_REQUESTED": (_NEW_REQUEST_ALLOWED, Status.REQUESTED),
    "REQUEST_TRANSFERRED": (frozenset({Status.REQUESTED}), Status.AT_CENTRE),
    "APPOINTMENT_REQUESTED": (_NEW_REQUEST_ALLOWED | {Status.REQUESTED}, Status.AT_CENTRE),
    "CASE_TRANSFERRED": (_ACTIVE, None),
    "REQUEST_ACCEPTED": (frozenset({Status.AT_CENTRE}), Status.ACCEPTED),
    "REQUEST_REFUSED": (frozenset({Status.AT_CENTRE}), Status.REFUSED),
    "AID_ASSIGNED": (frozenset({Status.AT_CENTRE, Status.ACCEPTED}), Status.ASSIGNED),
    "COUNSEL_REGISTERED": (frozenset({Status.ASSIGNED, Status.REGISTERED}), Status.REGISTERED),
    "AID_DECLINED": (
        frozenset({Status.OPEN, Status.REQUESTED, Status.AT_CENTRE, Status.ACCEPTED,
                   Status.ASSIGNED, Status.REGISTERED}),
        Status.DECLINED,
    ),
    "PROVIDER_CHANGED": (frozenset({Status.ASSIGNED, Status.REGISTERED}), Status.ASSIGNED),
    "AID_DISCONTINUED": (
        frozenset({Status.ACCEPTED, Status.ASSIGNED, Status.REGISTERED}), Status.DISCONTINUED
    ),
    "CASE_CLOSED": (_ACTIVE, Status.CLOSED),
    "QUALITY_ASSESSED": (frozenset({Status.CLOSED}), None),
}

_PERSON_ATTRIBUTES = (
    "person_id", "proceedings_kind", "eligible_category", "financial_hardship",
    "procedural_role", "stage", "age_band", "sex",
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
    # the stored record as this process wrote it (id, topic, state bytes), when it wrote it:
    # receipts hash it without reading it back; not part of the outcome's value
    stored: Any = field(default=None, compare=False, repr=False)


class Referral(Aggregate):
    """A person's legal-aid referral case (vụ việc TGPL trong tố tụng)."""

    TOPIC = "referral.Referral"

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

    class NotificationIssued(Event):
        """Giải thích, thông báo về quyền được TGPL; Mẫu 03 (TTLT 10/2018 Điều 7)."""

        TOPIC = "referral.NotificationIssued.v1"
        WIRE_TYPE = "NOTIFICATION_ISSUED"

    class AidRequested(Event):
        """Tiếp nhận yêu cầu TGPL (BLTTHS Điều 71; Luật TGPL Điều 29)."""

        TOPIC = "referral.AidRequested.v1"
        WIRE_TYPE = "AID_REQUESTED"

    class RequestTransferred(Event):
        """Chuyển yêu cầu cho Trung tâm TGPL nhà nước (Luật TGPL Điều 31 k3, suy luận)."""

        TOPIC = "referral.RequestTransferred.v1"
        WIRE_TYPE = "REQUEST_TRANSFERRED"

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
        """Người được TGPL từ chối, có biên bản ba bên (TTLT 29/2025, chưa xác minh)."""

        TOPIC = "referral.AidDeclined.v1"
        WIRE_TYPE = "AID_DECLINED"

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

    # ------------------------------------------------------------------------------- state
    def _initial_state(self, case_id: str) -> None:
        self.case_id = case_id
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
        self.person: dict[str, Any] = {}
        self.event_ids: dict[str, tuple[int, str]] = {}
        self.has_identity = False

    def _apply(self, event: Referral.Event) -> None:
        wire_type = event.WIRE_TYPE
        data = event.data
        self.event_ids[event.event_id] = (event.originator_version, event.content_digest)
        self.last_occurred_at = event.occurred_at
        if self.status is None:
            self.opened_at = event.occurred_at
            self.opened_by = event.agency_id
            self.holder_agency_id = event.agency_id
            self.status = Status.OPEN
        for name in _PERSON_ATTRIBUTES:
            if name in data:
                self.person[name] = data[name]
        if event.identity_ciphertext:
            self.has_identity = True
        if wire_type in ("REQUEST_TRANSFERRED", "APPOINTMENT_REQUESTED"):
            self.centre_id = data["centre_id"]
        elif wire_type == "CASE_TRANSFERRED":
            self.holder_agency_id = data.get("to_agency_id", self.holder_agency_id)
            if "to_stage" in data:
                self.person["stage"] = data["to_stage"]
        elif wire_type in ("AID_ASSIGNED", "PROVIDER_CHANGED"):
            self.provider_id = data["provider_id"]
            self.provider_type = data["provider_type"]
            self.aid_form = data.get("aid_form", self.aid_form)
        elif wire_type == "COUNSEL_REGISTERED":
            self.registered_with = self.holder_agency_id
        elif wire_type == "CASE_CLOSED":
            self.closed_at = event.occurred_at
        elif wire_type == "QUALITY_ASSESSED":
            self.quality_assessed = True
        after = TRANSITIONS[wire_type][1]
        if after is not None:
            self.status = after

    # ----------------------------------------------------------------------------- queries
    def province(self, reference: ReferenceData) -> str | None:
        """The case's province: that of the agency that opened it."""
        opener = reference.agencies.get(self.opened_by or "")
        return opener.province if opener is not None else None

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
        }

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
    ) -> Referral:
        """Opens a case with its first event (a notification, a request or an appointment).

        `seal` is called only once every rule has passed: it encrypts the identity block (if
        any) and gives (ciphertext or None, content digest), so a refused event leaves nothing
        behind — not even a person's data key.
        """
        if wire_type not in OPENING_TYPES:
            raise RuleViolationError(
                "FIRST_EVENT_NOT_OPENING", "type", case_id=case_id, allowed=", ".join(OPENING_TYPES)
            )
        for name in OPENING_REQUIRED:
            if name not in data:
                raise InvalidEventError("FIELD_REQUIRED", f"data.{name}")
        agency = _agency(reference, agency_id, occurred_at)
        if not agency.is_procedural:
            raise RuleViolationError(
                "AGENCY_WRONG_KIND", "agency_id", value=agency_id, kind=agency.kind,
                kind_vi=KIND_NAMES_VI[agency.kind], expected="a procedural agency",
                expected_vi="cơ quan tiến hành tố tụng hoặc cơ sở giam giữ",
            )
        shell = cls.__new__(cls)
        shell._initial_state(case_id)
        shell._id = referral_id(case_id)
        shell._version = 0
        shell._check(wire_type, agency_id, occurred_at, data, reference, now, future_tolerance)
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
    ) -> None:
        """Records the next event of an existing case if the lifecycle allows it."""
        self._check(wire_type, agency_id, occurred_at, data, reference, now, future_tolerance)
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

    def check_not_conflicting(self, event_id: str, content_digest: str) -> Recorded | None:
        """A Recorded(duplicate) for a retry of a known event id; ConflictError if it differs."""
        known = self.recorded_event(event_id)
        if known is None:
            return None
        version, digest = known
        if digest != content_digest:
            raise ConflictError("EVENT_ID_CONFLICT", "event_id", value=event_id)
        return Recorded(self.case_id, event_id, version, duplicate=True)

    # ------------------------------------------------------------------------------ guards
    def _check(
        self,
        wire_type: str,
        agency_id: str,
        occurred_at: datetime,
        data: Mapping[str, Any],
        reference: ReferenceData,
        now: datetime,
        future_tolerance: timedelta,
    ) -> None:
        self._check_occurred_at(occurred_at, now, future_tolerance)
        agency = _agency(reference, agency_id, occurred_at)
        if self.status is not None:
            self._check_actor(wire_type, agency_id, agency, reference)
            self._check_order(wire_type)
        self._check_person(data, occurred_at, reference)
        self._check_specific(wire_type, occurred_at, data, reference)

    def _check_occurred_at(
        self, occurred_at: datetime, now: datetime, future_tolerance: timedelta
    ) -> None:
        if occurred_at > now + future_tolerance:
            raise InvalidEventError(
                "OCCURRED_IN_FUTURE", "occurred_at", value=occurred_at.isoformat()
            )
        if occurred_at < EARLIEST_OCCURRENCE:
            raise InvalidEventError(
                "OCCURRED_TOO_EARLY", "occurred_at", value=occurred_at.isoformat()
            )
        if self.last_occurred_at is not None and occurred_at < self.last_occurred_at:
            raise RuleViolationError(
                "OCCURRED_BEFORE_PREVIOUS", "occurred_at", value=occurred_at.isoformat(),
                previous=self.last_occurred_at.isoformat(),
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
                "ORDER_VIOLATION", "type", event_type=wire_type, status=self.status,
                status_vi=STATUS_NAMES_VI.get(self.status or "", ""),
                allowed=", ".join(sorted(allowed)),
                allowed_vi=", ".join(STATUS_NAMES_VI[s] for s in sorted(allowed)),
            )

    def _check_actor(
        self, wire_type: str, agency_id: str, agency: Any, reference: ReferenceData
    ) -> None:
        kind = agency.kind
        emitter = EVENT_TYPES[wire_type].emitter
        if emitter == "closer":
            emitter = "centre" if self.centre_id and agency_id == self.centre_id else "holder"
        if emitter == "holder" and agency_id != self.holder_agency_id:
            raise RuleViolationError(
                "AGENCY_NOT_HOLDER", "agency_id", agency_id=agency_id
            )
        # no centre addressed yet: the order rule names the problem (the request is not there)
        if emitter == "centre" and self.centre_id is not None and agency_id != self.centre_id:
            raise RuleViolationError(
"AGENCY_NOT_ADDRESSED_CENTRE", "agency_id")
        if emitter == "oversight":
            if kind not in OVERSIGHT_KINDS:
                raise RuleViolationError(
                    "AGENCY_WRONG_KIND", "agency_id", value=agency_id, kind=kind,
                    kind_vi=KIND_NAMES_VI.get(kind, kind),
                    expected="the council or the Department of Justice",
                    expected_vi="Hội đồng phối hợp liên ngành hoặc Sở Tư pháp",
                )
            if agency.province != self.province(reference):
                raise RuleViolationError("AGENCY_OTHER_PROVINCE", "agency_id", value=agency_id)

    def _check_person(
        self, data: Mapping[str, Any], occurred_at: datetime, reference: ReferenceData
    ) -> None:
        known = self.person.get("person_id")
        given = data.get("person_id")
        if known and given and given != known:
            raise RuleViolationError("PERSON_MISMATCH", "data.person_id", value=given,
                                     expected=known)
        if "eligible_category" not in data:
            return
        merged = {**self.person, **data}
        code = data["eligible_category"]
        category = reference.categories[code]
        day = occurred_at.astimezone(VIETNAM_TZ).date()
        if not category.validity.covers(day):
            raise InvalidEventError(
                "CATEGORY_NOT_VALID_ON_DATE", "data.eligible_category", value=code,
                date=f"{day:%d/%m/%Y}", valid=category.validity.describe_vi(),
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

    def _check_specific(
        self,
        wire_type: str,
        occurred_at: datetime,
        data: Mapping[str, Any],
        reference: ReferenceData,
    ) -> None:
        if wire_type in ("REQUEST_TRANSFERRED", "APPOINTMENT_REQUESTED"):
            _agency(reference, data["centre_id"], occurred_at, field="data.centre_id")
        elif wire_type == "CASE_TRANSFERRED":
            to_agency = data.get("to_agency_id")
            to_stage = data.get("to_stage")
            if to_agency is None and to_stage is None:
                raise InvalidEventError("FIELD_REQUIRED", "data.to_agency_id")
            if to_agency is not None:
                _agency(reference, to_agency, occurred_at, field="data.to_agency_id")
            if (to_agency in (None, self.holder_agency_id)) and (
                to_stage in (None, self.person.get("stage"))
            ):
                raise RuleViolationError("TRANSFER_TO_SELF", "data.to_agency_id")
        elif wire_type in ("AID_ASSIGNED", "PROVIDER_CHANGED"):
            provider_type = reference.codes("provider_types")[data["provider_type"]]
            if not provider_type.attributes.get("in_proceedings", False):
                raise InvalidEventError(
                    "PROVIDER_NOT_IN_PROCEEDINGS", "data.provider_type", value=data["provider_type"]
                )
            if wire_type == "PROVIDER_CHANGED":
                if data["provider_id"] == self.provider_id:
                    raise RuleViolationError("SAME_PROVIDER", "data.provider_id",
                                             value=data["provider_id"])
                _not_after(data["requested_at"], occurred_at, "data.requested_at")
        elif wire_type == "COUNSEL_REGISTERED":
            given = data.get("provider_id")
            if given is not None and given != self.provider_id:
                raise RuleViolationError("PROVIDER_MISMATCH", "data.provider_id", value=given,
                                         expected=self.provider_id)
            _not_after(data["documents_complete_at"], occurred_at, "data.documents_complete_at")


def _not_after(value: str, occurred_at: datetime, field: str) -> None:
    if datetime.fromisoformat(value) > occurred_at:
        raise InvalidEventError(
            "FIELD_INVALID", field,
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
            "AGENCY_INACTIVE", field, value=agency_id, date=f"{day:%d/%m/%Y}",
            valid=agency.validity.describe_vi(), valid_en=agency.validity.describe_en(),
        )
    return agency


EVENT_CLASSES: dict[str, type[Referral.Event]] = {
    cls.WIRE_TYPE: cls
    for cls in vars(Referral).values()
    if isinstance(cls, type) and issubclass(cls, Referral.Event) and cls.WIRE_TYPE
}
