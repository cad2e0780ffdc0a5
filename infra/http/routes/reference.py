"""The reference lists a client needs to write events: `GET /v1/reference` (public) and
`referrals reference show` print the same document, built here from the reference data
(infra/reference_data/*.json) and the event catalogue (domain/catalogue.py).

Kept simple on purpose: versioned reference documents are issue 14's."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from domain.catalogue import COMMON_FIELDS, EVENT_TYPES
from domain.reference import KIND_NAMES_VI, ReferenceData
from infra.http.deps import ContainerDep
from infra.http.routes import error_responses

router = APIRouter(prefix="/v1/reference", tags=["reference"])

# the catalogue's fixed choices (domain/catalogue.py), by field name: not reference data files
_CHOICE_LISTS = ("proceedings_kind", "form", "request_form", "aid_form", "outcome")
_CHOICE_TITLES: dict[str, tuple[str, str]] = {
    "criminal": ("hình sự", "criminal"),
    "civil": ("dân sự", "civil"),
    "administrative": ("hành chính", "administrative"),
    "MAU_01": ("Mẫu 01", "Form 01"),
    "MAU_03": ("Mẫu 03 (giá trị cũ)", "Form 03 (legacy value)"),
    "written": ("bằng văn bản", "in writing"),
    "oral": ("bằng lời nói", "oral"),
    "DEFENCE": ("bào chữa", "defence"),
    "PROTECTION": ("bảo vệ quyền lợi", "protection of rights"),
    "SUCCESSFUL": ("thành công", "successful"),
    "NOT_SUCCESSFUL": ("không thành công", "not successful"),
    "UNKNOWN": ("chưa rõ", "unknown"),
}
_KIND_NAMES_EN = {
    "police": "police",
    "procuracy": "procuracy",
    "court": "court",
    "detention_facility": "detention facility",
    "legal_aid_centre": "State legal aid centre",
    "council": "interagency council",
    "justice_department": "Department of Justice",
}


class ReferenceItemOut(BaseModel):
    """Một mã của danh mục."""

    code: str
    title_vi: str
    title_en: str | None = Field(description="Tên tiếng Anh (null: danh mục chưa có bản dịch)")
    attributes: dict[str, Any] = Field(
        default_factory=dict,
        description="Thuộc tính khác của mã, ví dụ kind/province của cơ quan, hiệu lực",
    )


class ReferenceListOut(BaseModel):
    """Một danh mục: phiên bản tệp dữ liệu tham chiếu và các mã."""

    version: str
    items: list[ReferenceItemOut]


class ReferenceOut(BaseModel):
    """Các danh mục dùng khi ghi sự kiện (giai đoạn, tư cách tố tụng, diện, biểu mẫu, lý do,
    cơ quan và loại cơ quan…), với phiên bản dữ liệu tham chiếu."""

    version: str = Field(description="Phiên bản dữ liệu tham chiếu (mới nhất trong các tệp)")
    lists: dict[str, ReferenceListOut]


def _validity(validity: Any) -> dict[str, str]:
    out = {}
    if validity.valid_from is not None:
        out["valid_from"] = validity.valid_from.isoformat()
    if validity.valid_to is not None:
        out["valid_to"] = validity.valid_to.isoformat()
    return out


def _item(
    code: str, title_vi: str, title_en: str | None = None, **attributes: Any
) -> dict[str, Any]:
    return {
        "code": code,
        "title_vi": title_vi,
        "title_en": title_en,
        "attributes": {k: v for k, v in attributes.items() if v not in (None, {}, ())},
    }


def reference_lists(reference: ReferenceData) -> dict[str, dict[str, Any]]:
    """Every list, by name: the reference files' code lists, `categories`, `agencies`,
    `agency_kinds`, `provinces`, `event_types` and the catalogue's fixed choices."""
    versions = reference.versions
    catalogue = max(versions.values(), default="?")  # shipped with the code, as the files
    lists: dict[str, dict[str, Any]] = {}
    for name, items in sorted(reference.code_lists.items()):
        lists[name] = {
            "version": versions.get(name, "?"),
            "items": [
                _item(
                    i.code,
                    i.name_vi,
                    i.attributes.get("name_en"),
                    **{k: v for k, v in i.attributes.items() if k != "name_en"},
                )
                for i in items.values()
            ],
        }
    lists["categories"] = {
        "version": versions.get("categories", "?"),
        "items": [
            _item(
                c.code,
                c.name_vi,
                None,
                clause=c.clause,
                **_validity(c.validity),
                requires_financial_hardship=c.requires_financial_hardship or None,
                roles=sorted(c.roles) if c.roles else None,
                age_bands=sorted(c.age_bands) if c.age_bands else None,
            )
            for c in reference.categories.values()
        ],
    }
    lists["agencies"] = {
        "version": versions.get("agencies", "?"),
        "items": [
            _item(
                a.agency_id,
                a.name_vi,
                None,
                kind=a.kind,
                level=a.level,
                province=a.province,
                **_validity(a.validity),
            )
            for a in reference.agencies.values()
        ],
    }
    lists["agency_kinds"] = {
        "version": versions.get("agencies", "?"),
        "items": [
            _item(kind, KIND_NAMES_VI[kind], _KIND_NAMES_EN.get(kind)) for kind in KIND_NAMES_VI
        ],
    }
    lists["provinces"] = {
        "version": versions.get("provinces", "?"),
        "items": [
            _item(p.code, p.name_vi, None, merged_from=list(p.merged_from) or None)
            for p in reference.provinces.values()
        ],
    }
    lists["event_types"] = {
        "version": catalogue,
        "items": [
            _item(t.wire_type, t.title_vi, t.title_en, emitter=t.emitter, legal_basis=t.legal_basis)
            for t in EVENT_TYPES.values()
        ],
    }
    for name in _CHOICE_LISTS:
        choices: list[str] = []
        for spec in (*COMMON_FIELDS, *(f for t in EVENT_TYPES.values() for f in t.fields)):
            if spec.name == name:
                choices += [c for c in spec.choices if c not in choices]
        lists[name] = {
            "version": catalogue,
            "items": [_item(c, *_CHOICE_TITLES.get(c, (c, None))) for c in choices],
        }
    return lists


LIST_NAMES = (
    "age_bands",
    "agencies",
    "agency_kinds",
    "aid_form",
    "appointment_grounds",
    "categories",
    "change_grounds",
    "channels",
    "close_reasons",
    "correction_reasons",
    "discontinuation_grounds",
    "event_types",
    "form",
    "notification_triggers",
    "outcome",
    "proceedings_kind",
    "procedural_roles",
    "provider_types",
    "provinces",
    "quality_results",
    "refusal_reasons",
    "request_form",
    "sexes",
    "stages",
)
ListName = Literal[LIST_NAMES]  # type: ignore[valid-type]


def reference_document(reference: ReferenceData, list_name: str | None = None) -> dict[str, Any]:
    """The document `GET /v1/reference` answers (one list when `list_name` is given)."""
    lists = reference_lists(reference)
    if list_name is not None:
        lists = {list_name: lists[list_name]}
    return {"version": max(reference.versions.values(), default="?"), "lists": lists}


@router.get(
    "",
    response_model=ReferenceOut,
    responses=error_responses(422),
    summary="Danh mục tham chiếu (công khai)",
)
def read_reference(
    container: ContainerDep,
    list_name: Annotated[
        ListName | None,
        Query(  # type: ignore[valid-type]
            alias="list", description="Chỉ một danh mục, ví dụ stages"
        ),
    ] = None,
) -> dict[str, Any]:
    """The code lists an event's `data` takes (the OpenAPI document lists the same codes as
    enums): stages, procedural roles, eligible categories, forms, reasons, agencies and their
    kinds…, each with its Vietnamese title (English where the list has one) and the version of
    the reference data. Public: the lists are the law's, not anyone's data."""
    return reference_document(container.reference, list_name)
