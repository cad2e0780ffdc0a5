"""Wire schemas of the HTTP API (pydantic, edge only).

The request models of events are generated from `domain.catalogue.EVENT_TYPES`, one model per
event type joined in a union discriminated by `type`, so the OpenAPI document shows every
type's `data` fields with their Vietnamese titles. The schema says exactly what the edge
accepts: optional fields are omitted (never `null`), free text follows the reference format,
instants are RFC 3339 with an offset, identifiers and UUIDs have their patterns, and the code
lists of the reference data are enums (`openapi_with_reference`, from the container's
reference data). What a schema cannot say (validity dates, the lifecycle, who may act, instants
in the legal range) the service checks and answers 422 naming the field (docs/api.md).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    StrictBool,
    StrictInt,
    create_model,
)
from pydantic_core import PydanticCustomError

from domain.calendar import FIRST_REPORT_DAY, LAST_REPORT_DAY
from domain.catalogue import (
    AMENDMENT_TYPES,
    CITATION_TEXT,
    COMMON_FIELDS,
    CORRECTABLE_FIELDS,
    EVENT_TYPES,
    INSTANT_PATTERN,
    OPENING_TYPES,
    REFERENCE_TEXT,
    FieldSpec,
    citation_refused,
    has_instant_shape,
    parse_instant,
)
from domain.errors import InvalidEventError
from domain.reference import ReferenceData

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"
# domain.catalogue.REFERENCE_TEXT as JSON Schema (ECMA-262) and Python read it alike: no
# look-ahead, no `\w`/`\d` (ASCII in ECMA-262, Unicode in Python): Latin letters (Vietnamese
# included: Latin-1, Extended-A/B and Additional), digits and / - . _ :, at least one digit 0-9
_REFERENCE_CHAR = r"[A-Za-z0-9\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF/\-._:]"
REFERENCE_TEXT_PATTERN = f"^{_REFERENCE_CHAR}*[0-9]{_REFERENCE_CHAR}*$"
_REFERENCE_WIRE = re.compile(REFERENCE_TEXT_PATTERN)
# domain.catalogue.CITATION_TEXT alike (a legal article: a letter or digit first, then letters,
# digits, spaces and / ( ) . , ; - _, with a digit and an article word "Điều"/"Art" somewhere),
# in the same portable form: the two orders of the digit and the word, no look-ahead
_CITATION_FIRST = r"[A-Za-z0-9\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF]"
_CITATION_CHAR = r"[A-Za-z0-9\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u024F\u1E00-\u1EFF /().,;_\-]"
_ARTICLE_WORD = r"(?:[Đđ][Ii][Ềề][Uu]|[Aa][Rr][Tt])"
CITATION_PATTERN = (
    f"^(?:(?:{_CITATION_FIRST}{_CITATION_CHAR}*)?{_ARTICLE_WORD}{_CITATION_CHAR}*[0-9]"
    f"|(?:{_CITATION_FIRST}{_CITATION_CHAR}*)?[0-9]{_CITATION_CHAR}*{_ARTICLE_WORD})"
    f"{_CITATION_CHAR}*$"
)
_CITATION_WIRE = re.compile(CITATION_PATTERN)
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
MAX_BATCH = 1000

_KIND_HINTS = {
    "uuid": "UUID ngẫu nhiên do hệ thống của cơ quan sinh ra (không dùng số CCCD)",
    "datetime": "ISO 8601 có múi giờ, ví dụ 2026-01-05T09:30:00+07:00",
    "category": "mã trong danh mục diện người được TGPL",
    "language": "mã ngôn ngữ ISO 639, ví dụ km, hmn",
    "citation": "trích dẫn điều luật, ví dụ «Luật TGPL 2017 Điều 7»",
}


def _description(spec: FieldSpec) -> str:
    text = spec.title_vi
    if spec.kind == "code":
        text += f" (mã trong danh mục {spec.reference})"
    elif spec.kind == "agency":
        text += f" (mã cơ quan, loại {spec.reference})"
    elif spec.kind in _KIND_HINTS:
        text += f" ({_KIND_HINTS[spec.kind]})"
    return text


def _refuse(error: InvalidEventError) -> PydanticCustomError:
    """A domain error raised inside a pydantic validator (infra.http.errors.validation_error
    turns it back into the same code, on the field's wire path)."""
    params = {k: v for k, v in error.params.items() if k != "field"}
    return PydanticCustomError("domain_rule", error.message_en, {"code": error.code, **params})


def _untrimmed(path: str) -> InvalidEventError:
    return InvalidEventError(
        "FIELD_INVALID",
        path,
        rule_vi="không được có khoảng trắng ở đầu hoặc cuối",
        rule_en="must not start or end with whitespace",
    )


def _checked(kind: str) -> AfterValidator:
    """What the schema's pattern says, checked with the domain's own error codes."""

    def check(value: str) -> str:
        if value != value.strip():
            raise _refuse(_untrimmed("value"))
        if kind == "text" and not (
            REFERENCE_TEXT.fullmatch(value) and _REFERENCE_WIRE.fullmatch(value)
        ):
            raise _refuse(InvalidEventError("REFERENCE_FORMAT_INVALID", "value"))
        if kind == "citation" and not (
            CITATION_TEXT.fullmatch(value) and _CITATION_WIRE.fullmatch(value)
        ):
            raise _refuse(citation_refused("value"))
        if kind == "uuid" and not re.fullmatch(UUID_PATTERN, value):
            raise _refuse(
                InvalidEventError(
                    "FIELD_INVALID",
                    "value",
                    rule_vi="phải là UUID ngẫu nhiên do hệ thống của cơ quan sinh ra (không dùng "
                    "số CCCD), dạng 8-4-4-4-12 chữ số hex",
                    rule_en="must be a random UUID generated by the agency's system (never an ID "
                    "number), written 8-4-4-4-12 hex digits",
                )
            )
        if kind == "datetime" and not has_instant_shape(value):  # the years and the legal
            try:  # range: the service's
                parse_instant(value, "value")
            except InvalidEventError as error:
                raise _refuse(error) from None
        return value

    return AfterValidator(check)


def instant_field(**kwargs: Any) -> Any:
    """A wire instant: RFC 3339 with an offset (pattern in the schema, domain check at the edge)."""
    return Annotated[
        str,
        Field(
            min_length=10,
            max_length=40,
            **kwargs,
            json_schema_extra={"format": "date-time", "pattern": INSTANT_PATTERN},
        ),
        _checked("datetime"),
    ]


def _annotation(spec: FieldSpec) -> Any:
    """The field's type with its shape constraints (description added by the caller)."""
    if spec.kind == "bool":
        return StrictBool
    if spec.kind == "enum":
        return Literal[spec.choices]  # type: ignore[valid-type]
    if spec.kind == "datetime":
        return instant_field()
    if spec.kind == "uuid":
        return Annotated[
            str,
            Field(json_schema_extra={"format": "uuid", "pattern": UUID_PATTERN}),
            _checked("uuid"),
        ]
    if spec.kind in ("code", "category", "agency"):  # enums: openapi_with_reference
        return Annotated[str, Field(min_length=1, max_length=64), _checked(spec.kind)]
    if spec.kind == "event_ref":  # the target of a correction or withdrawal
        return Annotated[str, Field(pattern=ID_PATTERN)]
    if spec.kind == "version":
        return Annotated[StrictInt, Field(ge=1, lt=2**31)]
    if spec.kind == "changes":  # keys: CORRECTABLE_FIELDS; values checked by the service
        return Annotated[
            dict[str, Any],
            Field(
                min_length=1,
                json_schema_extra={"propertyNames": {"enum": list(CORRECTABLE_FIELDS)}},
            ),
        ]
    if spec.kind == "citation":  # a legal article (spaces allowed), not a reference number
        return _patterned_text(spec, CITATION_PATTERN, "citation")
    if spec.kind == "language":
        return Annotated[
            str,
            Field(
                min_length=2,
                max_length=spec.max_length,
                pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
            ),
        ]
    return _patterned_text(spec, REFERENCE_TEXT_PATTERN, "text")


def _patterned_text(spec: FieldSpec, pattern: str, kind: str) -> Any:
    """Free text with the portable pattern in the document and the domain's check behind it."""
    return Annotated[
        str,
        Field(min_length=1, max_length=spec.max_length, json_schema_extra={"pattern": pattern}),
        _checked(kind),
    ]


def _no_null_defaults(schema: dict[str, Any]) -> None:
    """An optional field is omitted, never null: no `"default": null` in the document."""
    for prop in schema.get("properties", {}).values():
        if prop.get("default", ...) is None:
            del prop["default"]


def _camel(wire_type: str) -> str:
    return "".join(part.capitalize() for part in wire_type.split("_"))


class IdentityIn(BaseModel):
    """Thông tin định danh của người được TGPL: được mã hoá trước khi lưu, không bao giờ lưu
    dạng rõ trong sổ; chỉ cơ quan đã ghi và thanh tra của tỉnh được xem."""

    model_config = ConfigDict(extra="forbid")

    full_name: str | None = Field(None, max_length=200, description="Họ và tên")
    date_of_birth: str | None = Field(
        None,
        max_length=10,
        description="Ngày sinh (YYYY-MM-DD)",
        json_schema_extra={"format": "date"},
    )
    id_number: str | None = Field(None, max_length=200, description="Số định danh cá nhân/CCCD")
    address: str | None = Field(None, max_length=200, description="Nơi cư trú")
    phone: str | None = Field(None, max_length=200, description="Số điện thoại")
    guardian_name: str | None = Field(
        None, max_length=200, description="Họ tên người đại diện/giám hộ"
    )
    guardian_relationship: str | None = Field(
        None, max_length=200, description="Quan hệ với người được TGPL"
    )
    guardian_phone: str | None = Field(
        None, max_length=200, description="Số điện thoại người đại diện"
    )


def _data_model(wire_type: str) -> type[BaseModel]:
    spec = EVENT_TYPES[wire_type]
    fields: dict[str, Any] = {}
    common = COMMON_FIELDS if wire_type not in AMENDMENT_TYPES else ()
    for field_spec in (*common, *spec.fields):
        annotation = _annotation(field_spec)
        description = _description(field_spec)
        # optional: may be omitted, not sent as null (the stored event leaves it out)
        default = ... if field_spec.required else None
        fields[field_spec.name] = (annotation, Field(default, description=description))
    opening = (
        " Sự kiện mở vụ việc cần person_id, proceedings_kind, procedural_role, stage."
        if wire_type in OPENING_TYPES
        else ""
    )
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{_camel(wire_type)}Data",
        __config__=ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults),
        __doc__=f"Dữ liệu của sự kiện {wire_type}: {spec.title_vi}.{opening}",
        **fields,
    )


def _event_model(wire_type: str, data_model: type[BaseModel]) -> type[BaseModel]:
    spec = EVENT_TYPES[wire_type]
    has_required = any(f.required for f in spec.fields)
    # an object, never null; may be omitted when the type has no required field
    data_field: Any = (
        data_model,
        Field(... if has_required else None, description="Dữ liệu riêng của loại sự kiện"),
    )
    return create_model(  # type: ignore[call-overload, no-any-return]
        f"{_camel(wire_type)}Event",
        __config__=ConfigDict(extra="forbid", json_schema_extra=_no_null_defaults),
        __doc__=f"{spec.title_vi} ({spec.title_en}). Căn cứ: {spec.legal_basis}.",
        event_id=(
            str,
            Field(
                ...,
                pattern=ID_PATTERN,
                description=(
                    "Mã sự kiện do hệ thống của cơ quan sinh ra; gửi lại cùng mã và cùng nội dung "
                    "không ghi trùng (idempotent)"
                ),
            ),
        ),
        case_id=(
            str,
            Field(..., pattern=ID_PATTERN, description="Mã vụ việc dùng chung giữa các cơ quan"),
        ),
        type=(
            Literal[wire_type],  # type: ignore[valid-type]
            Field(..., description="Loại sự kiện"),
        ),
        agency_id=(
            str,
            Field(
                ...,
                pattern=ID_PATTERN,
                description=("Mã cơ quan ghi sự kiện (phải là cơ quan của mã truy cập)"),
            ),
        ),
        occurred_at=(
            instant_field(),
            Field(
                ...,
                description=(
                    "Thời điểm xảy ra, RFC 3339 có múi giờ, ví dụ 2026-01-05T09:30:00+07:00; trong "
                    "khoảng luật định (từ ngày luật có hiệu lực đến thời điểm ghi), ngoài khoảng → 422"
                ),
            ),
        ),
        data=data_field,
        identity=(
            IdentityIn | None,
            Field(None, description=("Thông tin định danh (tuỳ chọn), mã hoá trước khi lưu")),
        ),
        # strict: `true` or `1.0` is not a version (lax pydantic read `true` as 1)
        expected_version=(
            StrictInt | None,
            Field(
                None,
                ge=0,
                lt=2**31,
                description=(
                    "Phiên bản vụ việc mà cơ quan đã đọc; khác phiên bản hiện tại → 409 "
                    "VERSION_CONFLICT (0 = vụ việc chưa có)"
                ),
            ),
        ),
    )


DATA_MODELS: dict[str, type[BaseModel]] = {t: _data_model(t) for t in EVENT_TYPES}
EVENT_MODELS: dict[str, type[BaseModel]] = {t: _event_model(t, DATA_MODELS[t]) for t in EVENT_TYPES}

WireEventIn = Annotated[
    Union[tuple(EVENT_MODELS.values())],  # type: ignore[valid-type]  # noqa: UP007 - `X | Y` cannot unpack a tuple of models
    Field(discriminator="type"),
]


def reference_codes(spec: FieldSpec, reference: ReferenceData) -> list[str]:
    """The codes a `code`, `category` or `agency` field takes (any validity: whether a code
    is in force on the event's date is checked by the service)."""
    if spec.kind == "category":
        return list(reference.categories)
    if spec.kind == "agency":
        kinds = (spec.reference or "").split("|")
        return [a.agency_id for a in reference.agencies.values() if a.kind in kinds]
    return list(reference.codes(spec.reference or ""))


def openapi_with_reference(document: dict[str, Any], reference: ReferenceData) -> dict[str, Any]:
    """The OpenAPI document with the reference lists as enums of every event's `data` fields
    (the same codes `GET /v1/reference` answers)."""
    schemas = document.get("components", {}).get("schemas", {})
    for wire_type, spec in EVENT_TYPES.items():
        properties = schemas.get(f"{_camel(wire_type)}Data", {}).get("properties", {})
        for field_spec in (*COMMON_FIELDS, *spec.fields):
            prop = properties.get(field_spec.name)
            if prop is not None and field_spec.kind in ("code", "category", "agency"):
                prop["enum"] = reference_codes(field_spec, reference)
                prop["description"] = prop.get("description", "") + " (GET /v1/reference)"
    return document


def wire_dict(event: BaseModel) -> dict[str, Any]:
    """The validated event back in wire form, exactly the fields the client sent."""
    return event.model_dump(mode="json", exclude_unset=True)


# ------------------------------------------------------------------------------- requests
class BatchIn(BaseModel):
    """Một lô tối đa 1.000 sự kiện; mỗi sự kiện được xét riêng và trả lời riêng."""

    model_config = ConfigDict(extra="forbid")

    # Items are documented as events but judged one by one in the route, so that one bad
    # item is answered as rejected instead of refusing the whole batch.
    events: list[SkipValidation[WireEventIn]] = Field(  # type: ignore[valid-type]
        ..., min_length=1, max_length=MAX_BATCH, description="Các sự kiện, theo thứ tự ghi"
    )


# ------------------------------------------------------------------------------ responses
class ErrorOut(BaseModel):
    """Mọi lỗi đều có dạng này: mã ổn định, trường liên quan, thông báo tiếng Việt và tiếng
    Anh, mã yêu cầu để tra nhật ký."""

    code: str = Field(description="Mã lỗi ổn định, ví dụ FIELD_REQUIRED")
    field: str | None = Field(description="Trường gây lỗi, ví dụ data.person_id")
    message: str = Field(description="Thông báo tiếng Việt")
    message_en: str = Field(description="English message")
    request_id: str = Field(description="Mã yêu cầu (X-Request-ID)")


class ItemError(BaseModel):
    """Lỗi của một sự kiện trong lô."""

    code: str
    field: str | None
    message: str
    message_en: str


class AwaitingOut(BaseModel):
    """Sự kiện đang chờ (held, ADR 0008): đã ghi vào sổ, chưa có hiệu lực vì sự kiện đứng
    trước nó (theo thời điểm xảy ra) chưa đến; tự có hiệu lực khi sự kiện đó đến."""

    reason: str = Field(description="Mã quy tắc sự kiện chưa đáp ứng, ví dụ ORDER_VIOLATION")
    types: list[str] = Field(description="Các loại sự kiện đang chờ (một trong số đó)")
    message: str = Field(description="Giải thích tiếng Việt")
    message_en: str = Field(description="English explanation")


def awaiting_out(entry: Any) -> AwaitingOut | None:
    """The held entry of a fact (`Referral.standing`) as the API answers it."""
    if entry is None:
        return None
    return AwaitingOut(
        reason=entry["reason"],
        types=list(entry["awaiting"]),
        message=entry["message"],
        message_en=entry["message_en"],
    )


class RecordedOut(BaseModel):
    """Kết quả ghi một sự kiện (ghi mới, đang chờ hoặc trùng lặp)."""

    case_id: str
    event_id: str
    status: Literal["recorded", "held", "duplicate"] = Field(
        default="recorded",
        description="recorded: đã ghi và có hiệu lực (201); held: đã ghi, đang chờ sự kiện "
        "đứng trước (202); duplicate: đã ghi trước đó (200)",
    )
    awaiting: AwaitingOut | None = Field(
        default=None,
        description="Với status held (hoặc duplicate của sự kiện đang chờ): sự kiện đang chờ",
    )
    version: int | None = Field(
        description="Phiên bản của vụ việc sau sự kiện này; null khi cơ quan gửi chưa có phần "
        "trong vụ việc (sự kiện được giữ mà không so với trạng thái vụ việc: câu trả lời "
        "không cho biết gì về vụ việc, ADR 0008)"
    )
    recorded_at: datetime | None = Field(description="Thời điểm sổ ghi nhận sự kiện")
    duplicate: bool = Field(description="true: sự kiện này đã được ghi trước đó, không ghi lại")
    position: int | None = Field(default=None, description="Vị trí của sự kiện trong sổ")
    receipt: str | None = Field(
        default=None,
        description="Biên nhận có chữ ký (Ed25519, signed note) để cơ quan lưu giữ và đối chiếu "
        "với điểm kiểm tra của sổ (docs/verification.md)",
    )


class BatchItemOut(BaseModel):
    """Kết quả của một sự kiện trong lô."""

    index: int
    status: Literal["recorded", "held", "duplicate", "rejected"]
    event_id: str | None
    awaiting: AwaitingOut | None = None
    case_id: str | None = None
    version: int | None = None
    recorded_at: datetime | None = None
    position: int | None = None
    receipt: str | None = None
    error: ItemError | None = None


class BatchOut(BaseModel):
    """Kết quả của lô: số ghi mới, trùng, bị từ chối và từng sự kiện."""

    recorded: int
    duplicates: int
    rejected: int
    held: int = Field(
        default=0,
        description="Trong số sự kiện ghi mới (recorded), số sự kiện "
        "đang chờ sự kiện đứng trước (status held, ADR 0008)",
    )
    items: list[BatchItemOut]


class CaseOut(BaseModel):
    """Tình trạng vụ việc (bí danh: người chỉ được nêu bằng person_id)."""

    case_id: str
    province: str | None = Field(description="Tỉnh của cơ quan mở vụ việc")
    version: int
    status: str | None
    status_vi: str
    holder_agency_id: str | None
    centre_id: str | None
    provider_id: str | None
    provider_type: str | None
    aid_form: str | None
    quality_assessed: bool
    opened_at: datetime | None
    closed_at: datetime | None
    last_occurred_at: datetime | None
    person: dict[str, Any]


class CaseSummaryOut(BaseModel):
    """Một vụ việc trong kết quả tìm kiếm (bí danh)."""

    case_id: str
    province: str | None
    opening_agency_id: str
    holder_agency_id: str | None
    centre_id: str | None
    status: str
    status_vi: str
    eligible_category: str | None
    procedural_role: str | None
    stage: str | None
    proceedings_kind: str | None
    person_id: str | None
    opened_at: datetime
    last_occurred_at: datetime
    closed_at: datetime | None
    version: int


class CaseSearchOut(BaseModel):
    """Một trang kết quả tìm kiếm vụ việc, hoạt động gần nhất trước."""

    total: int = Field(description="Tổng số vụ việc khớp điều kiện")
    limit: int
    offset: int
    cases: list[CaseSummaryOut]


class EncryptedMarker(BaseModel):
    """Sự kiện có thông tin định danh (đã mã hoá, không hiển thị)."""

    encrypted: Literal[True] = True


class AmendedByOut(BaseModel):
    """Một sự kiện đính chính hoặc rút sự kiện này: số thứ tự, mã, cơ quan, thời điểm ghi."""

    version: int
    event_id: str
    agency_id: str
    recorded_at: datetime


class HistoryEventOut(BaseModel):
    """Một sự kiện đã ghi của vụ việc."""

    version: int
    event_id: str
    type: str
    title_vi: str
    agency_id: str
    agency_name_vi: str | None
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any]
    identity: EncryptedMarker | None
    # issue 13 item 3: the corrections (in order) and the withdrawal of this event, by whom and
    # when; the event itself is shown as recorded (its corrections are events of their own)
    corrected_by: list[AmendedByOut] | None = None
    withdrawn_by: AmendedByOut | None = None


class HistoryIntegrityOut(BaseModel):
    """Kiểm tra nhanh chuỗi kiểm toán của vụ việc: mỗi sự kiện trong kho được tạo lại thành lá
    và so với sổ kiểm toán (lá, chuỗi băm của vụ việc). Không kiểm chữ ký điểm kiểm: việc đó
    do `/bundle` và `referrals verify` làm."""

    status: Literal["verified", "broken", "pending", "unavailable"]
    events_checked: int
    broken_version: int | None = None
    broken_event_id: str | None = None
    code: str | None = None  # LOG_INTEGRITY_FAILED when broken
    message: str | None = None
    message_en: str | None = None


class HistoryOut(BaseModel):
    """Lịch sử vụ việc theo thứ tự ghi."""

    case_id: str
    events: list[HistoryEventOut]
    integrity: HistoryIntegrityOut | None = None


class AsOfOut(BaseModel):
    """Vụ việc như sổ đã biết tại một thời điểm (các sự kiện ghi trước hoặc đúng thời điểm đó)."""

    case_id: str
    as_of: datetime
    clock: Literal["recorded", "occurred"] = Field(
        default="recorded",
        description="recorded: như sổ đã biết tại thời điểm đó (ghi trước hoặc đúng lúc đó); "
        "occurred: như đã xảy ra đến thời điểm đó (xảy ra trước hoặc đúng lúc đó, theo mọi sự "
        "kiện sổ biết đến nay), ADR 0008",
    )
    case: CaseOut | None
    events: list[HistoryEventOut]


class ReferenceVersionRef(BaseModel):
    """Một phiên bản dữ liệu tham chiếu đã dùng để xét (issue 14): văn bản, số phiên bản, SHA-256."""

    ref: str = Field(description="Văn bản: `time_limits`, `holidays/2026`, `agencies`…")
    version: int
    sha256: str


class TimeLimitOut(BaseModel):
    """Một thời hạn luật định của vụ việc: đã đáp ứng, quá hạn, đang chạy hoặc huỷ."""

    rule_id: str
    title_vi: str
    title_en: str
    legal_basis: str
    verified: bool = Field(description="false: căn cứ chưa được xác minh với văn bản chính thức")
    status: Literal["met", "missed", "running", "cancelled"]
    outstanding: bool = Field(description="Quá hạn mà chưa thực hiện")
    trigger_version: int
    trigger_at: datetime
    deadline: datetime
    target_version: int | None
    met_at: datetime | None
    responsible_agency_id: str | None
    basis: list[ReferenceVersionRef] = Field(
        default_factory=list,
        description="Các phiên bản dữ liệu tham chiếu đã dùng: bảng thời hạn và lịch của mỗi năm "
        "mà thời hạn tính theo ngày làm việc đi qua",
    )


class TimeLimitsOut(BaseModel):
    """Các thời hạn của vụ việc tại thời điểm `at`."""

    case_id: str
    at: datetime
    time_limits: list[TimeLimitOut]


class IdentityFieldAuthor(BaseModel):
    """Cơ quan đã ghi một trường định danh (và phiên bản vụ việc của sự kiện đó)."""

    agency_id: str
    version: int


class IdentityOtherVersion(BaseModel):
    """Giá trị khác của một trường do cơ quan khác ghi (không ghi đè giá trị của tác giả)."""

    field: str
    value: str
    agency_id: str
    version: int


class IdentityOut(BaseModel):
    """Thông tin định danh dạng rõ (mỗi lần xem đều được ghi nhật ký truy cập): mỗi trường
    thuộc cơ quan ghi nó đầu tiên; giá trị khác do cơ quan khác ghi nằm trong
    `other_versions`, kèm cơ quan ghi."""

    case_id: str
    person_id: str | None
    erased: bool
    identity: dict[str, str] | None
    authors: dict[str, IdentityFieldAuthor] = {}
    other_versions: list[IdentityOtherVersion] = []


class AccessLogEntryOut(BaseModel):
    """Một lần xem dữ liệu cá nhân dạng rõ."""

    at: datetime
    principal_id: str
    principal_role: str
    agency_id: str | None
    person_id: str
    case_id: str | None
    purpose: str


class AccessLogOut(BaseModel):
    """Nhật ký truy cập dữ liệu cá nhân, mới nhất trước."""

    entries: list[AccessLogEntryOut]


class HealthOut(BaseModel):
    status: Literal["ok"]


class ReadyOut(BaseModel):
    status: Literal["ready"]
    store: str


# a day of a period: YYYY-MM-DD within FIRST_REPORT_DAY..LAST_REPORT_DAY (2000-01-01 to
# 2100-12-31), as the schema's pattern; the shape is checked here, the range by `_days`
DAY_PATTERN = r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
assert (FIRST_REPORT_DAY, LAST_REPORT_DAY) == (date(2000, 1, 1), date(2100, 12, 31)), DAY_PATTERN


def _day_text(value: Any) -> Any:
    """Only `YYYY-MM-DD` (pydantic alone also reads a midnight date-time or a Unix time)."""
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        raise PydanticCustomError(
            "domain_rule",
            "must be a date YYYY-MM-DD",
            {
                "code": "FIELD_INVALID",
                "rule_vi": "phải là ngày dạng YYYY-MM-DD",
                "rule_en": "must be a date YYYY-MM-DD",
            },
        )
    return value


Day = Annotated[date | None, BeforeValidator(_day_text)]
_DAY = {"pattern": DAY_PATTERN}
