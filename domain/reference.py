"""Reference data as values: agencies, provinces, eligible-person categories, procedural roles,
stages, provider types and the code lists events use. Loaded from versioned files by `infra`;
this module only gives them shape and answers questions about them (validity on a date).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

PROCEDURAL_KINDS = frozenset({"police", "procuracy", "court", "detention_facility"})
CENTRE_KIND = "legal_aid_centre"
OVERSIGHT_KINDS = frozenset({"council", "justice_department"})
AGENCY_KINDS = PROCEDURAL_KINDS | {CENTRE_KIND} | OVERSIGHT_KINDS
AGENCY_LEVELS = frozenset({"central", "provincial", "regional", "commune"})

KIND_NAMES_VI = {
    "police": "cơ quan công an",
    "procuracy": "viện kiểm sát",
    "court": "toà án",
    "detention_facility": "cơ sở giam giữ",
    "legal_aid_centre": "Trung tâm trợ giúp pháp lý nhà nước",
    "council": "Hội đồng phối hợp liên ngành",
    "justice_department": "Sở Tư pháp",
}
LEVEL_NAMES_VI = {
    "central": "trung ương",
    "provincial": "cấp tỉnh",
    "regional": "khu vực",
    "commune": "cấp xã",
}
PROCEEDINGS_KINDS = ("criminal", "civil", "administrative")
# an eligible_category value meaning "not known yet" (a procedural contact recorded before the
# person's category is established); never a category of Luật TGPL Điều 7, so it has no
# validity, no roles and no financial-hardship condition, and starts no rule C2 limit by itself
UNDETERMINED_CATEGORY = "UNDETERMINED"
UNDETERMINED_NAME_VI = "Chưa xác định diện"


@dataclass(frozen=True)
class Validity:
    """A closed-open interval of dates [valid_from, valid_to) in which something is in force."""

    valid_from: date | None = None
    valid_to: date | None = None  # first day it is no longer in force

    def covers(self, day: date) -> bool:
        """Whether the thing is in force on `day`."""
        if self.valid_from is not None and day < self.valid_from:
            return False
        return not (self.valid_to is not None and day >= self.valid_to)

    def describe_vi(self) -> str:
        """Vietnamese description, e.g. 'từ 01/07/2025 đến trước 01/01/2026'."""
        parts = []
        if self.valid_from:
            parts.append(f"từ {self.valid_from:%d/%m/%Y}")
        if self.valid_to:
            parts.append(f"đến trước {self.valid_to:%d/%m/%Y}")
        return " ".join(parts) or "không giới hạn"

    def describe_en(self) -> str:
        """English description, e.g. 'from 2025-07-01 until before 2026-01-01'."""
        parts = []
        if self.valid_from:
            parts.append(f"from {self.valid_from.isoformat()}")
        if self.valid_to:
            parts.append(f"until before {self.valid_to.isoformat()}")
        return " ".join(parts) or "without limit"


@dataclass(frozen=True)
class Province:
    code: str
    name_vi: str
    merged_from: tuple[str, ...] = ()


@dataclass(frozen=True)
class Agency:
    agency_id: str
    name_vi: str
    kind: str
    level: str
    province: str | None
    validity: Validity = Validity()

    @property
    def is_procedural(self) -> bool:
        return self.kind in PROCEDURAL_KINDS

    @property
    def is_centre(self) -> bool:
        return self.kind == CENTRE_KIND


@dataclass(frozen=True)
class EligibleCategory:
    """A category of person entitled to legal aid (Luật TGPL 2017 Điều 7, as amended)."""

    code: str
    name_vi: str
    clause: str
    validity: Validity
    requires_financial_hardship: bool = False
    roles: frozenset[str] | None = None  # procedural roles it is limited to, if any
    age_bands: frozenset[str] | None = None  # age bands it is limited to, if any


@dataclass(frozen=True)
class CodeItem:
    """One entry of a simple code list (roles, stages, provider types, reasons, …)."""

    code: str
    name_vi: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceData:
    """Every code list the ledger validates against, with the file versions it came from."""

    versions: Mapping[str, str]
    provinces: Mapping[str, Province]
    agencies: Mapping[str, Agency]
    categories: Mapping[str, EligibleCategory]
    code_lists: Mapping[str, Mapping[str, CodeItem]]

    def codes(self, list_name: str) -> Mapping[str, CodeItem]:
        """The named code list, e.g. 'procedural_roles'."""
        return self.code_lists[list_name]

    def agencies_in(self, province: str) -> list[Agency]:
        """Agencies of one province, in register order."""
        return [a for a in self.agencies.values() if a.province == province]


def _parse_date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def validity_from_record(record: Mapping[str, Any]) -> Validity:
    """Reads `valid_from` / `valid_to` ISO dates from a record."""
    return Validity(_parse_date(record.get("valid_from")), _parse_date(record.get("valid_to")))


def reference_from_records(files: Mapping[str, Mapping[str, Any]]) -> ReferenceData:
    """Builds ReferenceData from parsed JSON documents keyed by file stem.

    Expected keys: provinces, agencies, categories and one document per code list
    (each `{"version": ..., "items": [{"code", "name_vi", ...}]}`).
    """
    versions = {name: str(doc.get("version", "?")) for name, doc in files.items()}
    provinces = {
        p["code"]: Province(p["code"], p["name_vi"], tuple(p.get("merged_from", ())))
        for p in files["provinces"]["items"]
    }
    agencies: dict[str, Agency] = {}
    for rec in _items(files, "agencies"):
        kind, level = rec["kind"], rec["level"]
        if kind not in AGENCY_KINDS:
            raise ValueError(f"agency {rec['agency_id']}: unknown kind {kind!r}")
        if level not in AGENCY_LEVELS:
            raise ValueError(f"agency {rec['agency_id']}: unknown level {level!r}")
        province = rec.get("province")
        if province is not None and province not in provinces:
            raise ValueError(f"agency {rec['agency_id']}: unknown province {province!r}")
        agencies[rec["agency_id"]] = Agency(
            rec["agency_id"], rec["name_vi"], kind, level, province, validity_from_record(rec)
        )
    categories = {
        rec["code"]: EligibleCategory(
            code=rec["code"],
            name_vi=rec["name_vi"],
            clause=rec["clause"],
            validity=validity_from_record(rec),
            requires_financial_hardship=bool(rec.get("requires_financial_hardship", False)),
            roles=frozenset(rec["roles"]) if rec.get("roles") else None,
            age_bands=frozenset(rec["age_bands"]) if rec.get("age_bands") else None,
        )
        for rec in _items(files, "categories")
    }
    code_lists = {
        name: {
            item["code"]: CodeItem(
                item["code"],
                item["name_vi"],
                {k: v for k, v in item.items() if k not in ("code", "name_vi")},
            )
            for item in doc["items"]
        }
        for name, doc in files.items()
        if name not in ("provinces", "agencies", "categories") and "items" in doc
    }
    roles = code_lists.get("procedural_roles", {})
    for cat in categories.values():
        unknown = (cat.roles or frozenset()) - set(roles)
        if unknown:
            raise ValueError(f"category {cat.code}: unknown roles {sorted(unknown)}")
    return ReferenceData(versions, provinces, agencies, categories, code_lists)


def _items(files: Mapping[str, Mapping[str, Any]], name: str) -> Iterable[Mapping[str, Any]]:
    return files[name]["items"]
