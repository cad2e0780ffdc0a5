"""Domain errors: every rejection has a stable machine code, the field it concerns, and a
Vietnamese message (English alongside) that a clerk can act on.

The codes are part of the public contract (HTTP, Kafka dead-letter topic, `referrals load`
reports): never rename one; add a new code instead.
"""

from __future__ import annotations

from typing import Any

# code -> (Vietnamese template, English template). Templates use str.format(**params).
MESSAGES: dict[str, tuple[str, str]] = {
    # --- input shape -----------------------------------------------------------------------
    "FIELD_REQUIRED": (
        "Thiếu trường bắt buộc «{field}».",
        "Required field '{field}' is missing.",
    ),
    "FIELD_UNKNOWN": (
        "Trường «{field}» không thuộc loại sự kiện {event_type}.",
        "Field '{field}' is not part of event type {event_type}.",
    ),
    "FIELD_INVALID": (
        "Giá trị của trường «{field}» không hợp lệ: {rule_vi}.",
        "Field '{field}' is invalid: {rule_en}.",
    ),
    "VALUE_NOT_IN_REFERENCE": (
        "Giá trị «{value}» của trường «{field}» không có trong danh mục {reference}.",
        "Value '{value}' of field '{field}' is not in the {reference} reference list.",
    ),
    "EVENT_TYPE_UNKNOWN": (
        "Loại sự kiện «{value}» không được hỗ trợ.",
        "Event type '{value}' is not supported.",
    ),
    "TIMESTAMP_WITHOUT_OFFSET": (
        "Thời điểm «{field}» phải ghi rõ múi giờ (ví dụ +07:00).",
        "Timestamp '{field}' must carry a UTC offset (e.g. +07:00).",
    ),
    "OCCURRED_IN_FUTURE": (
        "Thời điểm «{field}» ({value}) ở tương lai so với thời điểm ghi nhận.",
        "Timestamp '{field}' ({value}) is in the future relative to the recording time.",
    ),
    "OCCURRED_TOO_EARLY": (
        "Thời điểm «{field}» ({value}) trước ngày {earliest}, ngày sớm nhất sổ nhận "
        "(Luật Trợ giúp pháp lý 2017 có hiệu lực từ 01/01/2018).",
        "Timestamp '{field}' ({value}) is before {earliest}, the earliest date the ledger "
        "accepts (the Legal Aid Law 2017 took effect on 2018-01-01).",
    ),
    "OCCURRED_BEFORE_PREVIOUS": (
        "Thời điểm xảy ra ({value}) sớm hơn sự kiện trước đó của vụ việc ({previous}); "
        "các sự kiện của một vụ việc phải được ghi theo trình tự thời gian.",
        "occurred_at ({value}) is earlier than the case's previous event ({previous}); "
        "a case's events must be recorded in time order.",
    ),
    "OCCURRED_ORDER_CONFLICT": (
        "Thời điểm xảy ra ({value}) đặt sự kiện này trước sự kiện {event_type} đã ghi "
        "(xảy ra {other_at}), khiến sự kiện đó không còn hợp lệ ({rule}); hãy kiểm tra lại "
        "thời điểm hoặc đề nghị đính chính sự kiện kia.",
        "occurred_at ({value}) puts this event before the recorded {event_type} (occurred "
        "{other_at}), which would then break rule {rule} for good; check the instant, or have "
        "the other event corrected.",
    ),
    "REFERENCE_FORMAT_INVALID": (
        "Trường «{field}» chỉ ghi số hiệu, ký hiệu hoặc mã (ví dụ 123/BB-CSĐT, "
        "01-TP-TGPL/2026/15, CB-0042): không có khoảng trắng, có ít nhất một chữ số, chỉ gồm "
        "chữ cái, chữ số và / - . _ :. Không ghi họ tên hay thông tin cá nhân vào đây; "
        "thông tin định danh đặt trong khối «identity» (được mã hoá).",
        "Field '{field}' holds only a reference number or code (e.g. 123/BB-CSĐT, "
        "01-TP-TGPL/2026/15, CB-0042): no whitespace, at least one digit, only letters, "
        "digits and / - . _ :. Never put a name or personal data here; identifying data "
        "belongs in the encrypted 'identity' block.",
    ),
    "JSON_DUPLICATE_KEY": (
        "Khoá «{field}» xuất hiện hai lần trong cùng một đối tượng JSON; mỗi khoá chỉ được ghi "
        "một lần.",
        "Key '{field}' appears twice in the same JSON object; each key may appear only once.",
    ),
    # --- reference data --------------------------------------------------------------------
    "AGENCY_UNKNOWN": (
        "Cơ quan «{value}» (trường «{field}») không có trong danh mục cơ quan.",
        "Agency '{value}' (field '{field}') is not in the agency register.",
    ),
    "AGENCY_INACTIVE": (
        "Cơ quan «{value}» không hoạt động vào ngày {date} (hoạt động {valid}).",
        "Agency '{value}' was not operating on {date} (operating {valid_en}).",
    ),
    "AGENCY_WRONG_KIND": (
        "Cơ quan «{value}» (trường «{field}») là {kind_vi}; sự kiện này cần {expected_vi}.",
        "Agency '{value}' (field '{field}') is a {kind}; this event needs {expected}.",
    ),
    "CATEGORY_NOT_VALID_ON_DATE": (
        "Diện người được trợ giúp pháp lý «{value}» không có hiệu lực vào ngày {date} ({valid}).",
        "Eligible category '{value}' is not in force on {date} ({valid_en}).",
    ),
    "CATEGORY_REQUIRES_FINANCIAL_HARDSHIP": (
        "Diện «{value}» chỉ được trợ giúp pháp lý khi có khó khăn về tài chính "
        "(trường «financial_hardship» phải là true) — Luật TGPL Điều 7 khoản 7.",
        "Category '{value}' qualifies only with financial hardship "
        "('financial_hardship' must be true) — Legal Aid Law Art. 7(7).",
    ),
    "CATEGORY_ROLE_MISMATCH": (
        "Diện «{value}» không áp dụng cho tư cách tố tụng «{role}».",
        "Category '{value}' does not apply to procedural role '{role}'.",
    ),
    "CATEGORY_AGE_MISMATCH": (
        "Diện «{value}» không phù hợp với nhóm tuổi «{age_band}» tại ngày xảy ra sự kiện.",
        "Category '{value}' does not fit age band '{age_band}' on the event date.",
    ),
    "PROVIDER_NOT_IN_PROCEEDINGS": (
        "Người thực hiện TGPL loại «{value}» không được tham gia tố tụng; chỉ trợ giúp viên "
        "pháp lý và luật sư được cử tham gia tố tụng.",
        "Provider type '{value}' cannot act in proceedings; only legal aid officers and "
        "lawyers can.",
    ),
    # --- lifecycle -------------------------------------------------------------------------
    "FIRST_EVENT_NOT_OPENING": (
        "Vụ việc «{case_id}» chưa có trong sổ; sự kiện đầu tiên phải là một trong: {allowed}.",
        "Case '{case_id}' is not in the ledger; its first event must be one of: {allowed}.",
    ),
    "ORDER_VIOLATION": (
        "Không thể ghi {event_type} khi vụ việc đang ở trạng thái «{status_vi}»; "
        "chỉ được ghi khi ở trạng thái: {allowed_vi}.",
        "{event_type} cannot be recorded while the case is '{status}'; allowed only in: {allowed}.",
    ),
    "CASE_CLOSED": (
        "Vụ việc «{case_id}» đã kết thúc; sau khi kết thúc chỉ được ghi đánh giá chất lượng.",
        "Case '{case_id}' is closed; only a quality assessment may follow closure.",
    ),
    "QUALITY_ALREADY_ASSESSED": (
        "Vụ việc «{case_id}» đã được đánh giá chất lượng; không đánh giá hai lần (TT 12/2018).",
        "Case '{case_id}' has already been quality-assessed; a case is never assessed twice.",
    ),
    "AGENCY_NOT_HOLDER": (
        "Cơ quan «{agency_id}» không phải cơ quan đang thụ lý vụ việc này.",
        "Agency '{agency_id}' does not hold this case.",
    ),
    "AGENCY_KIND_NOT_PERMITTED": (
        "Cơ quan «{value}» là {kind_vi}; chỉ {expected_vi} được ghi sự kiện {event_type} "
        "({basis}).",
        "Agency '{value}' is a {kind}; only {expected} may record {event_type} ({basis}).",
    ),
    "AGENCY_NOT_ADDRESSED_CENTRE": (
        "Sự kiện này phải do Trung tâm TGPL nhà nước được chuyển yêu cầu ghi.",
        "This event must be recorded by the legal aid centre the request was sent to.",
    ),
    "AGENCY_OTHER_PROVINCE": (
        "Cơ quan «{value}» không thuộc tỉnh, thành phố của vụ việc.",
        "Agency '{value}' is not of the case's province.",
    ),
    "CASE_ID_OTHER_PROVINCE": (
        "Mã vụ việc «{case_id}» không theo cách đánh số của tỉnh, thành phố của cơ quan mở vụ "
        "việc ({province}): mã vụ việc phải bắt đầu bằng mã tỉnh, ví dụ {province}-2026-000123 "
        "(có thể có một tiền tố sổ phía trước, ví dụ VV-{province}-2026-000123).",
        "Case id '{case_id}' does not follow the numbering of the opening agency's province "
        "({province}): a case id starts with the province code, e.g. {province}-2026-000123 "
        "(optionally after one series prefix, e.g. VV-{province}-2026-000123).",
    ),
    "PERSON_MISMATCH": (
        "Mã người «{value}» khác với người của vụ việc («{expected}»); một vụ việc chỉ có một người.",
        "person_id '{value}' differs from the case's person ('{expected}'); a case has one person.",
    ),
    "PERSON_ERASED": (
        "Dữ liệu cá nhân của người «{value}» đã bị xoá; không thể ghi thêm thông tin định danh.",
        "Personal data of person '{value}' has been erased; identifying data cannot be added.",
    ),
    "PROVIDER_MISMATCH": (
        "Người thực hiện TGPL «{value}» không phải người đang được cử («{expected}»).",
        "Provider '{value}' is not the currently assigned provider ('{expected}').",
    ),
    "SAME_PROVIDER": (
        "Người thực hiện TGPL mới trùng với người đang được cử («{value}»).",
        "The new provider is the same as the current one ('{value}').",
    ),
    "DOCUMENTS_BEFORE_ASSIGNMENT": (
        "Thời điểm nhận đủ giấy tờ «{field}» ({value}) sớm hơn thời điểm cử (hoặc thay đổi) "
        "người thực hiện TGPL ({assigned_at}); giấy tờ đăng ký gồm văn bản cử của Trung tâm "
        "nên không thể đủ trước khi cử (BLTTHS Điều 78 khoản 1; TTLT 10/2018 Điều 12).",
        "'{field}' ({value}) is earlier than the assignment (or change) of the legal-aid "
        "provider ({assigned_at}); the registration documents include the Centre's assignment "
        "letter, so they cannot be complete before it (CPC 2015 Art. 78(1); JC 10/2018 Art. 12).",
    ),
    "TRANSFER_TO_SELF": (
        "Chuyển vụ việc phải sang cơ quan khác hoặc giai đoạn tố tụng khác.",
        "A case transfer must change the agency or the stage.",
    ),
    # --- conflicts ---------------------------------------------------------------------------
    # --- corrections and withdrawals (issue 13 item 3) ----------------------------------------
    "AMENDMENT_TARGET_UNKNOWN": (
        "Vụ việc {case_id} không có sự kiện «{value}» (trường «{field}») để đính chính hoặc rút.",
        "Case {case_id} has no event '{value}' (field '{field}') to correct or withdraw.",
    ),
    "AMENDMENT_TARGET_INVALID": (
        "Không đính chính hoặc rút được sự kiện «{value}» (trường «{field}»): {rule_vi}.",
        "Event '{value}' (field '{field}') cannot be corrected or withdrawn: {rule_en}.",
    ),
    "AMENDMENT_NOT_PERMITTED": (
        "Cơ quan «{agency_id}» không được đính chính hoặc rút sự kiện {event_type} (số "
        "{target_version}) của vụ việc: chỉ cơ quan đã ghi sự kiện đó mới được đính chính hoặc "
        "rút (Trung tâm TGPL chỉ sự kiện của Trung tâm; không bao giờ cơ quan tỉnh khác).",
        "Agency '{agency_id}' may not correct or withdraw the case's {event_type} (version "
        "{target_version}): only the agency that recorded an event may correct or withdraw it "
        "(a Centre only its own events; never an agency of another province).",
    ),
    "CORRECTION_FIELD_NOT_CARRIED": (
        "Sự kiện {event_type} được đính chính không có trường «{value}» (trường «{field}»); "
        "chỉ đính chính được thời điểm xảy ra và các trường sự kiện đó đã ghi.",
        "The corrected {event_type} does not carry '{value}' (field '{field}'); only "
        "occurred_at and the fields the event carries can be corrected.",
    ),
    "AMENDMENT_CONFLICT": (
        "Sau khi đính chính hoặc rút, sự kiện {event_type} (xảy ra {other_at}) của vụ việc không "
        "còn hợp lệ theo trình tự thời gian ({rule}); hãy kiểm tra lại nội dung đính chính hoặc "
        "đính chính, rút sự kiện kia trước.",
        "After this correction or withdrawal the case's {event_type} (occurred {other_at}) "
        "would break rule {rule} for good in occurred order; check the correction, or correct "
        "or withdraw that event first.",
    ),
    "EVENT_ID_CONFLICT": (
        "Mã sự kiện «{value}» đã được dùng cho một sự kiện có nội dung khác.",
        "event_id '{value}' was already used for an event with different content.",
    ),
    "VERSION_CONFLICT": (
        "Phiên bản vụ việc mong đợi là {expected}, nhưng phiên bản hiện tại là {actual}; "
        "hãy đọc lại vụ việc rồi gửi lại.",
        "Expected case version {expected}, but the current version is {actual}; "
        "re-read the case and resend.",
    ),
    "CONCURRENT_WRITE": (
        "Vụ việc vừa được cập nhật bởi một yêu cầu khác; hãy gửi lại.",
        "The case was changed by another request at the same time; resend.",
    ),
    "CASE_NOT_FOUND": (
        "Không tìm thấy vụ việc «{case_id}».",
        "Case '{case_id}' was not found.",
    ),
    "PERSON_NOT_FOUND": (
        "Không tìm thấy người «{value}» trong sổ.",
        "Person '{value}' was not found in the ledger.",
    ),
    "NOT_AUTHORISED": (
        "Không có quyền: {rule_vi}.",
        "Not allowed: {rule_en}.",
    ),
    # --- HTTP edge ---------------------------------------------------------------------------
    "NOT_AUTHENTICATED": (
        "Chưa xác thực: {rule_vi}.",
        "Not authenticated: {rule_en}.",
    ),
    "BODY_TOO_LARGE": (
        "Nội dung yêu cầu vượt quá giới hạn {limit} byte; hãy chia nhỏ lô sự kiện.",
        "The request body exceeds the {limit}-byte limit; split the batch.",
    ),
    "ROUTE_NOT_FOUND": (
        "Không có địa chỉ «{value}» trong API.",
        "There is no API path '{value}'.",
    ),
    "METHOD_NOT_ALLOWED": (
        "Địa chỉ «{value}» không hỗ trợ phương thức {method}.",
        "Path '{value}' does not support method {method}.",
    ),
    "HEADER_REPEATED": (
        "Tiêu đề «{field}» xuất hiện nhiều lần trong yêu cầu; chỉ gửi một lần.",
        "Header '{field}' appears more than once in the request; send it once.",
    ),
    "STORE_UNAVAILABLE": (
        "Kho dữ liệu tạm thời không truy cập được; hãy thử lại sau.",
        "The data store is temporarily unavailable; try again later.",
    ),
    "LOG_INTEGRITY_FAILED": (
        "Sổ sự kiện không vượt qua kiểm tra toàn vẹn: {detail_vi}. Dữ liệu này không được cung "
        "cấp; quản trị viên cần chạy «referrals verify».",
        "The ledger failed its integrity check: {detail_en}. This data is not served; "
        "administrators must run `referrals verify`.",
    ),
    # --- reference versions (issue 14) -----------------------------------------------------
    "REFERENCE_KIND_UNKNOWN": (
        "Loại văn bản tham chiếu «{value}» (trường «{field}») không có; các loại: {known}.",
        "Reference kind '{value}' (field '{field}') is unknown; the kinds: {known}.",
    ),
    "REFERENCE_KEY_INVALID": (
        "Khoá «{value}» (trường «{field}») không hợp lệ: lịch ghi theo năm (4 chữ số, ví dụ "
        "holidays/2026); các văn bản khác không có khoá.",
        "Key '{value}' (field '{field}') is invalid: a calendar is keyed by its year (4 digits, "
        "e.g. holidays/2026); other documents have no key.",
    ),
    "REFERENCE_SOURCE_REQUIRED": (
        "Thiếu căn cứ pháp lý (trường «{field}»): ghi văn bản công bố thay đổi (số, ngày, cơ "
        "quan ban hành).",
        "The legal source (field '{field}') is required: name the document that announced the "
        "change (number, date, issuer).",
    ),
    "REFERENCE_DATES_INVALID": (
        "Ngày hiệu lực (trường «{field}») không hợp lệ: {rule_vi}.",
        "Effective date (field '{field}') is invalid: {rule_en}.",
    ),
    "REFERENCE_CONTENT_INVALID": (
        "Nội dung văn bản {ref} (trường «{field}») không đúng cấu trúc: {detail}.",
        "The content of {ref} (field '{field}') does not follow its schema: {detail}.",
    ),
    "REFERENCE_UNCHANGED": (
        "Nội dung và ngày hiệu lực giống hệt phiên bản {version} đang có của {ref}; không "
        "công bố lại.",
        "Content and effective dates are identical to version {version} of {ref}; nothing to "
        "publish.",
    ),
    "REFERENCE_AGENCY_STILL_HELD": (
        "Không được bỏ cơ quan {value} khỏi danh mục (trường «{field}»): còn vụ việc đang mở "
        "do cơ quan này thụ lý; hãy ghi ngày hết hoạt động (valid_to) thay vì xoá.",
        "Agency {value} cannot be removed from the register (field '{field}'): open cases are "
        "still held by it; set its valid_to instead of removing it.",
    ),
    "REFERENCE_CATEGORY_REMOVED": (
        "Không được xoá diện người được TGPL «{value}» (trường «{field}»): các vụ việc đã ghi "
        "vẫn dùng; hãy ghi ngày hết hiệu lực (valid_to).",
        "Eligible category '{value}' cannot be removed (field '{field}'): recorded cases still "
        "use it; set its valid_to instead.",
    ),
    "REFERENCE_CATEGORY_RETROACTIVE": (
        "Không được cho diện «{value}» hết hiệu lực hồi tố từ {date} (trường «{field}»): ngày "
        "hết hiệu lực không được trước ngày công bố.",
        "Category '{value}' cannot be retired retroactively from {date} (field '{field}'): "
        "valid_to may not precede the publication day.",
    ),
    # --- published reports (issues 13.4, 14) ---------------------------------------------------
    "PUBLISHED_REPORT_NOT_FOUND": (
        "Không có báo cáo đã công bố «{value}» của tỉnh, thành phố «{province}».",
        "There is no published report '{value}' of province '{province}'.",
    ),
    "REPORT_NOT_REPRODUCED": (
        "Báo cáo lập lại từ điểm kiểm {size} không trùng với bản đã công bố ({output}: "
        "sha256 {published} khi công bố, {regenerated} khi lập lại).",
        "The report regenerated from checkpoint {size} differs from the published one "
        "({output}: sha256 {published} when published, {regenerated} now).",
    ),
    "INTERNAL_ERROR": (
        "Lỗi hệ thống; hãy báo cho quản trị viên kèm mã yêu cầu (request_id).",
        "Internal error; report it to the administrators with the request_id.",
    ),
}


class DomainError(Exception):
    """Raised when a command breaks a rule of the domain; carries code, field and messages."""

    http_status = 422

    def __init__(self, code: str, field: str | None = None, **params: Any) -> None:
        self.code = code
        self.field = utf8_safe(field) if isinstance(field, str) else field
        self.params = {"field": self.field, **params}
        vi, en = MESSAGES.get(code, ("Lỗi: {code}", "Error: {code}"))
        self.message_vi = utf8_safe(_render(vi, code, self.params))
        self.message_en = utf8_safe(_render(en, code, self.params))
        super().__init__(f"{code}: {self.message_en}")

    def as_dict(self) -> dict[str, Any]:
        """The error as the JSON object every edge returns."""
        return {
            "code": self.code,
            "field": self.field,
            "message": self.message_vi,
            "message_en": self.message_en,
        }


def utf8_safe(text: str) -> str:
    """The text with what UTF-8 cannot encode (lone surrogates, which JSON escapes and
    `json.loads` accept) replaced by U+FFFD, so an error that quotes client input can always
    be written out (HTTP body, dead-letter header, load report)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def _render(template: str, code: str, params: dict[str, Any]) -> str:
    try:
        return template.format(code=code, **params)
    except (KeyError, IndexError):
        return template


class InvalidEventError(DomainError):
    """Raised when an event's fields are missing, malformed or not in the reference data."""


class RuleViolationError(DomainError):
    """Raised when an event breaks the order or the actor rules the law implies."""


class ConflictError(DomainError):
    """Raised when an event id is reused with other content or the expected version is stale."""

    http_status = 409


class NotFoundError(DomainError):
    """Raised when a case or person is not in the ledger."""

    http_status = 404


class NotAuthorisedError(DomainError):
    """Raised when a principal acts outside its scope."""

    http_status = 403


class LogIntegrityError(ConflictError):
    """Raised when stored events no longer match the audit trail (the store was altered): the
    read that needs them (a case bundle, an export) is refused with LOG_INTEGRITY_FAILED."""

    def __init__(self, field: str | None, detail_vi: str, detail_en: str) -> None:
        super().__init__("LOG_INTEGRITY_FAILED", field, detail_vi=detail_vi, detail_en=detail_en)


class UnexpectedItemError(DomainError):
    """Raised as the answer of one batch item whose judging met an unexpected error (a bug,
    logged with its traceback); the batch's other items are answered on their own."""

    http_status = 500
