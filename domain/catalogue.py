"""The event catalogue: which fields each referral event type carries in its `data`, and the
checks that turn a wire `data` object into the normalised, non-identifying dict that is stored.

Legal basis per type is in domain.md §3; the lifecycle order is enforced by `domain.referral`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from domain.errors import InvalidEventError
from domain.reference import PROCEDURAL_KINDS, UNDETERMINED_CATEGORY, ReferenceData

MAX_TEXT = 200


@dataclass(frozen=True)
class FieldSpec:
    """One field of an event's `data`: its kind, whether required, and what it refers to."""

    name: str
    kind: str  # text | bool | datetime | uuid | code | agency | category | enum | language
    # | citation (a legal article, e.g. "Luật TGPL 2017 Điều 7")
    required: bool = False
    reference: str | None = None  # code list name, or agency kinds joined by '|'
    choices: tuple[str, ...] = ()
    max_length: int = MAX_TEXT
    title_vi: str = ""


@dataclass(frozen=True)
class EventTypeSpec:
    """One wire event type: its name, who may emit it, and its type-specific fields."""

    wire_type: str
    title_vi: str
    title_en: str
    emitter: str  # holder | centre | closer | oversight | poster (corrections, withdrawals)
    fields: tuple[FieldSpec, ...]
    legal_basis: str
    # agency kinds that may record it at all (empty: any the emitter rule allows), and the
    # article that says so (quoted in the AGENCY_KIND_NOT_PERMITTED error)
    actor_kinds: tuple[str, ...] = ()
    actor_basis: str = ""


COMMON_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("person_id", "uuid", title_vi="Mã người (bí danh, ngẫu nhiên)"),
    FieldSpec(
        "proceedings_kind",
        "enum",
        choices=("criminal", "civil", "administrative"),
        title_vi="Loại tố tụng",
    ),
    FieldSpec("eligible_category", "category", title_vi="Diện người được TGPL"),
    FieldSpec("financial_hardship", "bool", title_vi="Có khó khăn về tài chính"),
    FieldSpec("procedural_role", "code", reference="procedural_roles", title_vi="Tư cách tố tụng"),
    FieldSpec("stage", "code", reference="stages", title_vi="Giai đoạn tố tụng"),
    FieldSpec("age_band", "code", reference="age_bands", title_vi="Nhóm tuổi tại ngày sự kiện"),
    FieldSpec("sex", "code", reference="sexes", title_vi="Giới tính"),
    FieldSpec("official", "text", max_length=64, title_vi="Mã cán bộ thực hiện"),
    FieldSpec("channel", "code", reference="channels", title_vi="Hình thức"),
    FieldSpec("document_ref", "text", title_vi="Số/ký hiệu văn bản, biên bản"),
)

_CENTRE = "legal_aid_centre"
_PROCEDURAL = "police|procuracy|court|detention_facility"
# cơ quan có thẩm quyền tiến hành tố tụng: investigation body (police), procuracy, court
PROCEEDINGS_AGENCY_KINDS = ("police", "procuracy", "court")
_PROCEEDINGS = "|".join(PROCEEDINGS_AGENCY_KINDS)

EVENT_TYPES: dict[str, EventTypeSpec] = {
    spec.wire_type: spec
    for spec in (
        EventTypeSpec(
            "PROCEDURAL_CONTACT",
            "Tiếp xúc tố tụng: bắt, tạm giữ, khởi tố bị can, đưa ra xét xử, xác định bị hại, "
            "đương sự",
            "Procedural contact: arrest, temporary holding, prosecution as an accused, committal "
            "for trial, recognition as a victim or litigant",
            "holder",
            (
                FieldSpec(
                    "register_ref",
                    "text",
                    title_vi="Số sổ, số thứ tự trong sổ (sổ tiếp nhận, sổ tạm giữ, quyết định)",
                ),
                FieldSpec("minutes_ref", "text", title_vi="Biên bản, quyết định tố tụng"),
            ),
            "TTLT 10/2018 Điều 7 khoản 1 (thời điểm phải giải thích, thông báo quyền); "
            "BLTTHS 2015 Điều 71",
            actor_kinds=tuple(sorted(PROCEDURAL_KINDS)),
            actor_basis="TTLT 10/2018 Điều 7 khoản 1; Điều 10",
        ),
        EventTypeSpec(
            "NOTIFICATION_ISSUED",
            "Giải thích, thông báo về quyền được trợ giúp pháp lý",
            "Person told of the right to legal aid",
            "holder",
            (
                # MAU_03 stays accepted: events recorded before 2026-12-01 carry it (issue 20:
                # Mẫu 03 is the notice to the Centre, i.e. REQUEST_TRANSFERRED)
                FieldSpec(
                    "form",
                    "enum",
                    choices=("MAU_01", "MAU_03"),
                    title_vi="Biểu mẫu đã giao, đọc (Mẫu 01; MAU_03: giá trị cũ)",
                ),
                FieldSpec(
                    "trigger",
                    "code",
                    reference="notification_triggers",
                    title_vi="Thời điểm giải thích",
                ),
                FieldSpec("minutes_ref", "text", title_vi="Biên bản tố tụng ghi nhận"),
                FieldSpec("interpreter", "bool", title_vi="Có người phiên dịch"),
            ),
            "TTLT 10/2018 Điều 7 khoản 1; BLTTHS Điều 71",
        ),
        EventTypeSpec(
            "NOT_ELIGIBLE_DETERMINED",
            "Xác định người không thuộc diện được trợ giúp pháp lý",
            "Person determined not eligible for legal aid",
            "closer",
            (
                FieldSpec(
                    "reason",
                    "code",
                    required=True,
                    reference="ineligibility_reasons",
                    title_vi="Lý do không thuộc diện",
                ),
                FieldSpec(
                    "article",
                    "citation",
                    required=True,
                    max_length=120,
                    title_vi="Điều, khoản căn cứ (ví dụ Luật TGPL 2017 Điều 7)",
                ),
            ),
            "Luật TGPL 2017 Điều 7 (người được trợ giúp pháp lý)",
        ),
        EventTypeSpec(
            "AID_REQUESTED",
            "Tiếp nhận yêu cầu trợ giúp pháp lý",
            "Legal-aid request received",
            "holder",
            (
                FieldSpec(
                    "request_form",
                    "enum",
                    choices=("written", "oral"),
                    title_vi="Hình thức yêu cầu",
                ),
                FieldSpec("documents_complete", "bool", title_vi="Đủ giấy tờ chứng minh diện"),
            ),
            "BLTTHS Điều 71; Luật TGPL Điều 29",
        ),
        EventTypeSpec(
            "REQUEST_TRANSFERRED",
            "Chuyển yêu cầu trợ giúp pháp lý cho Trung tâm TGPL nhà nước",
            "Request transferred to the State Legal Aid Centre",
            "holder",
            (
                FieldSpec(
                    "centre_id",
                    "agency",
                    required=True,
                    reference=_CENTRE,
                    title_vi="Trung tâm TGPL nhận yêu cầu",
                ),
            ),
            "Luật TGPL Điều 31 khoản 3 (thông báo cho Trung tâm); TTLT 10/2018 Mẫu 03 "
            "(thông báo cho Trung tâm, CHƯA XÁC MINH)",
            actor_kinds=PROCEEDINGS_AGENCY_KINDS,
            actor_basis="Luật TGPL Điều 31 khoản 3",
        ),
        EventTypeSpec(
            "REQUEST_FORWARDED",
            "Cơ sở giam giữ chuyển yêu cầu trợ giúp pháp lý cho cơ quan tiến hành tố tụng",
            "Detention facility passed the legal-aid request on to the proceedings agency",
            "holder",
            (
                FieldSpec(
                    "to_agency_id",
                    "agency",
                    required=True,
                    reference=_PROCEEDINGS,
                    title_vi="Cơ quan tiến hành tố tụng nhận yêu cầu",
                ),
            ),
            "TTLT 10/2018 Điều 10 khoản 1 điểm a; BLTTHS Điều 75",
            actor_kinds=("detention_facility",),
            actor_basis="TTLT 10/2018 Điều 10 khoản 1 điểm a",
        ),
        EventTypeSpec(
            "APPOINTMENT_REQUESTED",
            "Đề nghị cử người bào chữa (chỉ định, BLTTHS Điều 76)",
            "Appointment of defence counsel requested (CPC Art. 76)",
            "holder",
            (
                FieldSpec(
                    "centre_id",
                    "agency",
                    required=True,
                    reference=_CENTRE,
                    title_vi="Trung tâm TGPL được đề nghị",
                ),
                FieldSpec(
                    "ground",
                    "code",
                    required=True,
                    reference="appointment_grounds",
                    title_vi="Căn cứ chỉ định",
                ),
            ),
            "BLTTHS Điều 76",
            actor_kinds=PROCEEDINGS_AGENCY_KINDS,
            actor_basis="BLTTHS Điều 76",
        ),
        EventTypeSpec(
            "CASE_TRANSFERRED",
            "Chuyển vụ việc sang cơ quan hoặc giai đoạn tố tụng khác",
            "Case moved to another procedural agency and/or stage",
            "holder",
            (
                FieldSpec(
                    "to_agency_id", "agency", reference=_PROCEDURAL, title_vi="Cơ quan tiếp nhận"
                ),
                FieldSpec("to_stage", "code", reference="stages", title_vi="Giai đoạn mới"),
            ),
            "BLTTHS (chuyển hồ sơ giữa các giai đoạn)",
        ),
        EventTypeSpec(
            "REQUEST_ACCEPTED",
            "Trung tâm thụ lý vụ việc trợ giúp pháp lý",
            "Centre accepted the case",
            "centre",
            (
                FieldSpec("immediate", "bool", title_vi="Thụ lý ngay"),
                FieldSpec("logbook_ref", "text", title_vi="Số thụ lý (Mẫu 01-TP-TGPL)"),
                FieldSpec(
                    "notice_received_at",
                    "datetime",
                    title_vi="Thời điểm Trung tâm nhận được thông báo",
                ),
            ),
            "Luật TGPL Điều 30; TT 12/2018 Điều 5–6",
        ),
        EventTypeSpec(
            "REQUEST_REFUSED",
            "Trung tâm từ chối thụ lý",
            "Centre refused the request",
            "centre",
            (
                FieldSpec(
                    "reason",
                    "code",
                    required=True,
                    reference="refusal_reasons",
                    title_vi="Lý do từ chối",
                ),
                FieldSpec("written", "bool", required=True, title_vi="Từ chối bằng văn bản"),
                FieldSpec(
                    "notice_received_at",
                    "datetime",
                    title_vi="Thời điểm Trung tâm nhận được thông báo",
                ),
            ),
            "Luật TGPL Điều 30 khoản 3",
        ),
        EventTypeSpec(
            "AID_ASSIGNED",
            "Cử người thực hiện trợ giúp pháp lý",
            "Legal-aid provider assigned",
            "centre",
            (
                FieldSpec(
                    "provider_id",
                    "text",
                    required=True,
                    max_length=64,
                    title_vi="Mã người thực hiện TGPL",
                ),
                FieldSpec(
                    "provider_type",
                    "code",
                    required=True,
                    reference="provider_types",
                    title_vi="Loại người thực hiện TGPL",
                ),
                FieldSpec(
                    "aid_form",
                    "enum",
                    required=True,
                    choices=("DEFENCE", "PROTECTION"),
                    title_vi="Bào chữa / bảo vệ quyền lợi",
                ),
            ),
            "TTLT 10/2018 Điều 3 khoản 4; Luật TGPL",
        ),
        EventTypeSpec(
            "COUNSEL_REGISTERED",
            "Đăng ký bào chữa / bảo vệ quyền lợi",
            "Defence (or protection) registered",
            "holder",
            (
                FieldSpec(
                    "documents_complete_at",
                    "datetime",
                    required=True,
                    title_vi="Thời điểm nhận đủ giấy tờ",
                ),
                FieldSpec("provider_id", "text", max_length=64, title_vi="Mã người thực hiện TGPL"),
                FieldSpec("registration_ref", "text", title_vi="Số đăng ký"),
            ),
            "TTLT 10/2018 Điều 12; BLTTHS Điều 78 khoản 4",
            actor_kinds=PROCEEDINGS_AGENCY_KINDS,
            actor_basis="BLTTHS Điều 78 khoản 4",
        ),
        EventTypeSpec(
            "AID_DECLINED",
            "Người được TGPL từ chối trợ giúp pháp lý",
            "Person declined legal aid",
            "holder",
            (
                FieldSpec(
                    "three_party_record", "bool", required=True, title_vi="Có biên bản ba bên"
                ),
                FieldSpec("record_ref", "text", title_vi="Số biên bản"),
            ),
            "TTLT 29/2025 (sửa đổi TTLT 10/2018; có hiệu lực từ ngày ký 31/12/2025)",
        ),
        EventTypeSpec(
            "INTERPRETER_REQUESTED",
            "Trung tâm đề nghị cơ quan tiến hành tố tụng, cơ sở giam giữ yêu cầu người "
            "phiên dịch tham gia",
            "Centre asked the proceedings agency (or detention facility) to call an interpreter",
            "centre",
            (
                FieldSpec(
                    "language",
                    "language",
                    required=True,
                    max_length=16,
                    title_vi="Ngôn ngữ cần phiên dịch (mã ISO 639)",
                ),
            ),
            "TTLT 29/2025 (sửa đổi TTLT 10/2018; có hiệu lực từ ngày ký 31/12/2025)",
        ),
        EventTypeSpec(
            "PROVIDER_CHANGED",
            "Thay đổi người thực hiện trợ giúp pháp lý",
            "Legal-aid provider changed",
            "centre",
            (
                FieldSpec(
                    "provider_id",
                    "text",
                    required=True,
                    max_length=64,
                    title_vi="Mã người thực hiện TGPL mới",
                ),
                FieldSpec(
                    "provider_type",
                    "code",
                    required=True,
                    reference="provider_types",
                    title_vi="Loại người thực hiện TGPL",
                ),
                FieldSpec(
                    "requested_at",
                    "datetime",
                    required=True,
                    title_vi="Thời điểm có yêu cầu thay đổi",
                ),
                FieldSpec(
                    "grounds",
                    "code",
                    required=True,
                    reference="change_grounds",
                    title_vi="Căn cứ thay đổi",
                ),
            ),
            "Luật TGPL Điều 25",
        ),
        EventTypeSpec(
            "AID_DISCONTINUED",
            "Không tiếp tục thực hiện trợ giúp pháp lý",
            "Legal aid discontinued",
            "centre",
            (
                FieldSpec(
                    "grounds",
                    "code",
                    required=True,
                    reference="discontinuation_grounds",
                    title_vi="Căn cứ",
                ),
            ),
            "Luật TGPL Điều 37",
        ),
        EventTypeSpec(
            "CASE_CLOSED",
            "Kết thúc vụ việc trợ giúp pháp lý",
            "Case closed",
            "closer",
            (
                FieldSpec(
                    "close_reason",
                    "code",
                    required=True,
                    reference="close_reasons",
                    title_vi="Lý do kết thúc",
                ),
                FieldSpec(
                    "outcome",
                    "enum",
                    choices=("SUCCESSFUL", "NOT_SUCCESSFUL", "UNKNOWN"),
                    title_vi="Kết quả",
                ),
            ),
            "TT 12/2018 Điều 10",
        ),
        EventTypeSpec(
            "QUALITY_ASSESSED",
            "Đánh giá chất lượng vụ việc",
            "Case quality assessed",
            "oversight",
            (
                FieldSpec(
                    "result",
                    "code",
                    required=True,
                    reference="quality_results",
                    title_vi="Kết quả đánh giá",
                ),
                FieldSpec("reviewer", "text", max_length=64, title_vi="Mã người đánh giá"),
            ),
            "TT 12/2018 Điều 15 (sửa đổi bởi TT 03/2021)",
        ),
    )
}

# Corrections and withdrawals (issue 13 item 3; ADR 0008 addendum): events about another event
# of the same case. The target stays in the log; the derivation applies them (domain.referral).
AMENDMENT_TYPES = ("EVENT_CORRECTED", "EVENT_WITHDRAWN")
# the fields a correction may change: the law's clock and the facts the figures and time limits
# read. `occurred_at` always; a `data.*` field only if the target carries it.
CORRECTABLE_FIELDS = (
    "occurred_at",
    "data.procedural_role",
    "data.eligible_category",
    "data.provider_id",
    "data.provider_type",
    "data.stage",
)
# who may correct or withdraw an event (the rules table: docs/adr/0008 addendum, docs/api.md):
# the agency that recorded it — so a Centre only its own events, and never an agency of another
# province; the error is AMENDMENT_NOT_PERMITTED
AMENDMENT_BY = "poster"
_AMENDMENT_FIELDS = (
    FieldSpec(
        "target_event_id",
        "event_ref",
        required=True,
        title_vi="Mã sự kiện (event_id) được đính chính hoặc rút",
    ),
    # filled in by the ledger from target_event_id (a client may send it: it must agree)
    FieldSpec("target_version", "version", title_vi="Số thứ tự của sự kiện đó trong vụ việc"),
)
EVENT_TYPES.update(
    {
        spec.wire_type: spec
        for spec in (
            EventTypeSpec(
                "EVENT_CORRECTED",
                "Đính chính sự kiện đã ghi",
                "Recorded event corrected",
                AMENDMENT_BY,
                (
                    *_AMENDMENT_FIELDS,
                    FieldSpec(
                        "changes",
                        "changes",
                        required=True,
                        title_vi="Các trường đính chính và giá trị đúng",
                    ),
                    FieldSpec(
                        "reason_code",
                        "code",
                        required=True,
                        reference="correction_reasons",
                        title_vi="Lý do đính chính",
                    ),
                    FieldSpec("reason", "text", title_vi="Số văn bản, biên bản đính chính"),
                ),
                "Sự kiện đã ghi không bị sửa hay xoá; đính chính là một sự kiện mới (ADR 0008)",
            ),
            EventTypeSpec(
                "EVENT_WITHDRAWN",
                "Rút sự kiện đã ghi (ghi nhầm vụ việc, ghi trùng)",
                "Recorded event withdrawn (wrong case, entered twice)",
                AMENDMENT_BY,
                (
                    *_AMENDMENT_FIELDS,
                    FieldSpec(
                        "reason_code",
                        "code",
                        required=True,
                        reference="correction_reasons",
                        title_vi="Lý do rút",
                    ),
                    FieldSpec("reason", "text", title_vi="Số văn bản, biên bản"),
                ),
                "Sự kiện đã ghi không bị sửa hay xoá; việc rút là một sự kiện mới (ADR 0008)",
            ),
        )
    }
)

OPENING_TYPES = (
    "NOTIFICATION_ISSUED",
    "AID_REQUESTED",
    "APPOINTMENT_REQUESTED",
    "PROCEDURAL_CONTACT",
)
OPENING_REQUIRED = ("person_id", "proceedings_kind", "procedural_role", "stage")

# RFC 3339 with an explicit offset within ±14:00, seconds required, fraction optional: the one
# instant format of the wire (the OpenAPI document carries this pattern); years 1000-9899, far
# from the edges where an offset would overflow a store
INSTANT_PATTERN = (
    r"^([1-8][0-9]{3}|9[0-8][0-9]{2})-(0[1-9]|1[0-2])-"
    r"(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"(Z|[+-](0[0-9]|1[0-3]):[0-5][0-9]|[+-]14:00)$"
)
# its shape alone (any year): the years are checked after the legal range, which says more
_INSTANT_SHAPE = re.compile(INSTANT_PATTERN.replace("([1-8][0-9]{3}|9[0-8][0-9]{2})", "[0-9]{4}"))
FIRST_YEAR, LAST_YEAR = 1000, 9899


def has_instant_shape(value: str) -> bool:
    """Whether the text is shaped as the wire's instants are (years and range not checked)."""
    return _INSTANT_SHAPE.fullmatch(value) is not None


_OFFSET_TEXT = re.compile(r"(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$")  # no seconds: "+07:00:30"
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# the free-text fields of `data` (kind "text": document numbers, officials' and providers'
# codes) hold references only, never a name: no whitespace, at least one digit, letters
# (Vietnamese included), digits and / - . _ : — e.g. 123/BB-CSĐT, 01-TP-TGPL/2026/15, CB-0042
# a citation of a legal article: letters, digits, spaces and / - . , ( ) ; at least one digit and
# an article word ("Điều", "Art"), so that it can name the law but not carry a person's name
CITATION_TEXT = re.compile(r"(?=.*\d)(?=.*(?:Điều|Art))[^\W_][\w /().,;-]*", re.IGNORECASE)
# an ISO 639 language code, optionally with subtags (BCP 47 style): `km`, `hmn`, `zh-Hant`
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
REFERENCE_TEXT = re.compile(r"(?=[^\d]*\d)(?:[^\W_]|[/\-._:])+")


def field_specs(wire_type: str) -> dict[str, FieldSpec]:
    """Every field the type accepts in `data`, common fields included."""
    return dict(_FIELD_SPECS[wire_type])


# per type: every accepted field in catalogue order (built once; normalise_data reads it)
_FIELD_SPECS: dict[str, dict[str, FieldSpec]] = {
    wire_type: {
        f.name: f
        for f in (*(COMMON_FIELDS if wire_type not in AMENDMENT_TYPES else ()), *spec.fields)
    }
    for wire_type, spec in EVENT_TYPES.items()
}
_EVENT_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}")  # the wire's event_id format
# the specs a correction's `changes` are checked with (keys: CORRECTABLE_FIELDS)
_CHANGE_SPECS: dict[str, FieldSpec] = {
    "occurred_at": FieldSpec("occurred_at", "datetime"),
    **{f"data.{f.name}": f for f in COMMON_FIELDS if f"data.{f.name}" in CORRECTABLE_FIELDS},
    "data.provider_id": FieldSpec("provider_id", "text", max_length=64),
    "data.provider_type": FieldSpec("provider_type", "code", reference="provider_types"),
}


def event_type_spec(wire_type: Any) -> EventTypeSpec:
    """The spec of a wire type, or EVENT_TYPE_UNKNOWN."""
    if not isinstance(wire_type, str) or wire_type not in EVENT_TYPES:
        raise InvalidEventError("EVENT_TYPE_UNKNOWN", "type", value=str(wire_type)[:64])
    return EVENT_TYPES[wire_type]


MAX_OFFSET = timedelta(hours=14)
"""The widest UTC offset in use (Kiribati, +14:00); PostgreSQL `timestamptz` holds no wider."""
_SAFE_MIN = datetime.min.replace(tzinfo=timezone.utc) + timedelta(days=1)
_SAFE_MAX = datetime.max.replace(tzinfo=timezone.utc) - timedelta(days=1)


@dataclass(frozen=True)
class InstantRange:
    """The instants the ledger accepts on the wire: from `earliest` (the law in force) to
    `latest` (the recording time plus the clock tolerance), both inclusive."""

    earliest: datetime
    latest: datetime


def parse_instant(value: Any, field_name: str, allowed: InstantRange | None = None) -> datetime:
    """An ISO-8601 timestamp with an explicit UTC offset; anything else is rejected.

    Every store and view must be able to hold what passes: the offset is whole minutes within
    ±14:00, the instant converts to UTC and to any offset without overflow, and, when
    `allowed` is given, lies within it (OCCURRED_TOO_EARLY / OCCURRED_IN_FUTURE otherwise)."""
    shaped = isinstance(value, str) and 10 <= len(value) <= 40 and _INSTANT_SHAPE.fullmatch(value)
    if shaped:  # the one format (the common case): its offset is whole minutes within ±14:00
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _not_an_instant(field_name) from None
    else:
        parsed = _parsed_unshaped(value, field_name)
    try:
        utc = parsed.astimezone(timezone.utc)
    except OverflowError:  # year 1 east of UTC, year 9999 west of it
        utc = _SAFE_MIN - timedelta(days=1) if parsed.year < 5000 else _SAFE_MAX + timedelta(days=1)
    if allowed is not None:
        if utc < allowed.earliest:
            raise InvalidEventError(
                "OCCURRED_TOO_EARLY",
                field_name,
                value=parsed.isoformat(),
                earliest=allowed.earliest.date().isoformat(),
            )
        if utc > allowed.latest:
            raise InvalidEventError("OCCURRED_IN_FUTURE", field_name, value=parsed.isoformat())
    if not _SAFE_MIN <= utc <= _SAFE_MAX or (
        isinstance(value, str) and not FIRST_YEAR <= parsed.year <= LAST_YEAR
    ):
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi=f"thời điểm nằm ngoài khoảng năm {FIRST_YEAR}–{LAST_YEAR} mà sổ nhận",
            rule_en=f"the instant is outside the years {FIRST_YEAR}–{LAST_YEAR} the ledger takes",
        )
    return parsed


def _not_an_instant(field_name: str) -> InvalidEventError:
    return InvalidEventError(
        "FIELD_INVALID",
        field_name,
        rule_vi="phải là thời điểm theo ISO 8601, ví dụ 2026-01-05T09:30:00+07:00",
        rule_en="must be an ISO 8601 instant, e.g. 2026-01-05T09:30:00+07:00",
    )


def _parsed_unshaped(value: Any, field_name: str) -> datetime:
    """`parse_instant` of a value not in the one format: a datetime (from a trusted caller),
    or the first rule a string breaks, in the order the errors are answered."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str) and 10 <= len(value) <= 40:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _not_an_instant(field_name) from None
    else:
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi="phải là chuỗi thời điểm theo ISO 8601 có múi giờ",
            rule_en="must be an ISO 8601 string with a UTC offset",
        )
    offset = parsed.utcoffset() if parsed.tzinfo is not None else None
    if offset is None:
        raise InvalidEventError("TIMESTAMP_WITHOUT_OFFSET", field_name)
    if (
        abs(offset) > MAX_OFFSET
        or offset % timedelta(minutes=1)
        or (isinstance(value, str) and not _OFFSET_TEXT.search(value))
    ):
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi="múi giờ phải nằm trong khoảng -14:00 đến +14:00, tính bằng giờ và phút",
            rule_en="the UTC offset must be within -14:00 to +14:00, in hours and minutes",
        )
    if isinstance(value, str):  # one format everywhere
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi="phải là thời điểm theo RFC 3339 (có giây, múi giờ dạng +07:00 hoặc Z), "
            "ví dụ 2026-01-05T09:30:00+07:00",
            rule_en="must be an RFC 3339 instant (with seconds, offset as +07:00 or Z), "
            "e.g. 2026-01-05T09:30:00+07:00",
        )
    return parsed


def clean_text(value: Any, field_name: str, max_length: int = MAX_TEXT) -> str:
    """A short, printable, non-empty string."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi="phải là chuỗi ký tự không rỗng",
            rule_en="must be a non-empty string",
        )
    if len(value) > max_length:
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi=f"dài tối đa {max_length} ký tự",
            rule_en=f"at most {max_length} characters",
        )
    if _UNSAFE_TEXT.search(value):
        raise InvalidEventError(
            "FIELD_INVALID",
            field_name,
            rule_vi="chứa ký tự điều khiển hoặc Unicode hỏng",
            rule_en="contains control characters or broken Unicode",
        )
    return value.strip()


def normalise_data(
    wire_type: str, data: Any, reference: ReferenceData, allowed: InstantRange | None = None
) -> dict[str, Any]:
    """Checks a wire `data` object field by field and returns its stored form.

    Every field is named in the error it raises; unknown fields are refused rather than kept,
    because the log is immutable and must not collect data nobody vetted (PDPL 2025, minimise).
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidEventError(
            "FIELD_INVALID",
            "data",
            rule_vi="phải là một đối tượng JSON",
            rule_en="must be a JSON object",
        )
    specs = _FIELD_SPECS[wire_type]
    out: dict[str, Any] = {}
    for name in data:
        if name not in specs:
            raise InvalidEventError("FIELD_UNKNOWN", f"data.{str(name)[:64]}", event_type=wire_type)
    get = data.get
    for name, spec in specs.items():  # catalogue order: the first bad field is named
        value = get(name)
        if value is None:
            if spec.required:
                raise InvalidEventError("FIELD_REQUIRED", f"data.{name}")
            continue
        out[name] = _check_value(spec, value, f"data.{name}", reference, allowed)
    return out


def citation_refused(path: str) -> InvalidEventError:
    """The error for a field of kind "citation" that does not cite a legal article."""
    return InvalidEventError(
        "FIELD_INVALID",
        path,
        rule_vi="phải là trích dẫn điều luật, ví dụ «Luật TGPL 2017 Điều 7» (có số điều)",
        rule_en="must cite a legal article, e.g. 'Luật TGPL 2017 Điều 7' (with its number)",
    )


def _check_value(
    spec: FieldSpec,
    value: Any,
    path: str,
    reference: ReferenceData,
    allowed: InstantRange | None = None,
) -> Any:
    kind = spec.kind
    if kind == "text":
        text = clean_text(value, path, spec.max_length)
        if not REFERENCE_TEXT.fullmatch(text):
            raise InvalidEventError("REFERENCE_FORMAT_INVALID", path)
        return text
    if kind == "citation":
        text = clean_text(value, path, spec.max_length)
        if not CITATION_TEXT.fullmatch(text):
            raise citation_refused(path)
        return text
    if kind == "language":
        code = clean_text(value, path, spec.max_length)
        if not LANGUAGE_CODE.fullmatch(code):
            raise InvalidEventError(
                "FIELD_INVALID",
                path,
                rule_vi="phải là mã ngôn ngữ ISO 639 (ví dụ km, hmn, en)",
                rule_en="must be an ISO 639 language code (e.g. km, hmn, en)",
            )
        return code
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidEventError(
                "FIELD_INVALID",
                path,
                rule_vi="phải là true hoặc false",
                rule_en="must be true or false",
            )
        return value
    if kind == "datetime":
        return parse_instant(value, path, allowed).isoformat()
    if kind == "uuid":
        try:
            return str(uuid.UUID(str(value))) if isinstance(value, str) else _bad_uuid(path)
        except ValueError:
            return _bad_uuid(path)
    if kind == "enum":
        if value not in spec.choices:
            raise InvalidEventError(
                "FIELD_INVALID",
                path,
                rule_vi="phải là một trong " + ", ".join(spec.choices),
                rule_en="must be one of " + ", ".join(spec.choices),
            )
        return value
    if kind == "code":
        code = clean_text(value, path, 64)
        if code not in reference.codes(spec.reference or ""):
            raise InvalidEventError(
                "VALUE_NOT_IN_REFERENCE", path, value=code, reference=spec.reference
            )
        return code
    if kind == "category":
        code = clean_text(value, path, 64)
        if code == UNDETERMINED_CATEGORY:  # not yet known; settled by a later event
            return code
        if code not in reference.categories:
            raise InvalidEventError(
                "VALUE_NOT_IN_REFERENCE", path, value=code, reference="eligible_categories"
            )
        return code
    if kind == "event_ref":
        if not isinstance(value, str) or not _EVENT_REF.fullmatch(value):
            raise InvalidEventError(
                "FIELD_INVALID",
                path,
                rule_vi="1–128 ký tự gồm chữ, số và . _ : / @ -",
                rule_en="1–128 characters of letters, digits and . _ : / @ -",
            )
        return value
    if kind == "version":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
            raise InvalidEventError(
                "FIELD_INVALID",
                path,
                rule_vi="phải là số nguyên dương",
                rule_en="must be a positive integer",
            )
        return value
    if kind == "changes":
        return _check_changes(value, path, reference, allowed)
    if kind == "agency":
        agency_id = clean_text(value, path, 64)
        agency = reference.agencies.get(agency_id)
        if agency is None:
            raise InvalidEventError("AGENCY_UNKNOWN", path, value=agency_id)
        kinds = (spec.reference or "").split("|")
        if agency.kind not in kinds:
            from domain.reference import KIND_NAMES_VI

            raise InvalidEventError(
                "AGENCY_WRONG_KIND",
                path,
                value=agency_id,
                kind=agency.kind,
                kind_vi=KIND_NAMES_VI.get(agency.kind, agency.kind),
                expected=" or ".join(kinds),
                expected_vi=" hoặc ".join(KIND_NAMES_VI.get(k, k) for k in kinds),
            )
        return agency_id
    raise ValueError(f"unknown field kind {kind}")  # programming error in the catalogue


def _bad_uuid(path: str) -> str:
    raise InvalidEventError(
        "FIELD_INVALID",
        path,
        rule_vi="phải là UUID ngẫu nhiên do hệ thống của cơ quan sinh ra (không dùng số CCCD)",
        rule_en="must be a random UUID generated by the agency's system (never an ID number)",
    )


def _check_changes(
    value: Any, path: str, reference: ReferenceData, allowed: InstantRange | None
) -> dict[str, Any]:
    """A correction's `changes`: a non-empty object whose keys are CORRECTABLE_FIELDS, each
    value checked as the field itself is (`occurred_at` as an instant in the accepted range)."""
    if not isinstance(value, Mapping) or not value:
        raise InvalidEventError(
            "FIELD_INVALID",
            path,
            rule_vi="phải là đối tượng JSON không rỗng, khoá là một trong "
            + ", ".join(CORRECTABLE_FIELDS),
            rule_en="must be a non-empty JSON object whose keys are among "
            + ", ".join(CORRECTABLE_FIELDS),
        )
    out: dict[str, Any] = {}
    for name, item in value.items():
        spec = _CHANGE_SPECS.get(name) if isinstance(name, str) else None
        if spec is None:
            raise InvalidEventError(
                "FIELD_INVALID",
                f"{path}.{str(name)[:64]}",
                rule_vi="không đính chính được trường này; chỉ " + ", ".join(CORRECTABLE_FIELDS),
                rule_en="this field cannot be corrected; only " + ", ".join(CORRECTABLE_FIELDS),
            )
        if item is None:
            raise InvalidEventError("FIELD_REQUIRED", f"{path}.{name}")
        if spec.kind == "category" and item == UNDETERMINED_CATEGORY:
            raise InvalidEventError(
                "FIELD_INVALID",
                f"{path}.{name}",
                rule_vi="đính chính phải ghi một diện cụ thể",
                rule_en="a correction names a definite category",
            )
        out[name] = _check_value(spec, item, f"{path}.{name}", reference, allowed)
    return {k: out[k] for k in sorted(out)}
