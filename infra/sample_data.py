"""Deterministic generator of realistic referral histories (wire events), by seed.

Used for the embedded demo (`referrals` with no arguments), for `referrals load` tests and for
the benchmarks. Every generated case follows the lifecycle the domain enforces; some limits are
met and some missed, as in real data. Names are synthetic.

Most cases start with the procedural contact (arrest, holding, charge, victim's statement) the
agency records from its register (issue 17); the person is then told of the right in time,
late, or never, or is found not eligible. Those choices come from a generator of their own
(seeded by the case), so the rest of every history is what it was before contacts existed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from domain.calendar import VIETNAM_TZ
from domain.reference import ReferenceData

_FAMILY = (
    "Nguyễn",
    "Trần",
    "Lê",
    "Phạm",
    "Hoàng",
    "Vũ",
    "Đặng",
    "Bùi",
    "Đỗ",
    "Hồ",
    "Ngô",
    "Dương",
    "Lý",
    "Hà",
    "Nông",
    "Lục",
)
_MIDDLE = ("Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Thu", "Hoài")
_GIVEN = (
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Giang",
    "Hà",
    "Hạnh",
    "Hùng",
    "Lan",
    "Linh",
    "Mai",
    "Nam",
    "Phúc",
    "Quân",
    "Sơn",
    "Thảo",
    "Trang",
    "Tuấn",
    "Vy",
    "Yến",
)
_ALWAYS = (
    "POOR_HOUSEHOLD",
    "ETHNIC_MINORITY_HARDSHIP_AREA",
    "ACCUSED_NEAR_POOR",
    "REVOLUTION_CONTRIBUTOR",
    "DISABLED",
    "DOMESTIC_VIOLENCE_VICTIM",
    "HIV",
)


def _ids(rng: random.Random, seed: int, n: int) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128) ^ (seed << 64) ^ n, version=4))


def generate_events(
    seed: int,
    cases: int,
    reference: ReferenceData,
    start: datetime,
    end: datetime,
    provinces: Sequence[str] | None = None,
    identity_ratio: float = 0.5,
    case_prefix: str = "VV",
) -> Iterator[dict[str, Any]]:
    """Wire events of `cases` cases opened between `start` and `end`, sorted by occurred_at.

    Events that would fall after `end` are left out (those cases are still running).
    """
    rng = random.Random(seed)
    provinces = list(
        provinces
        or sorted({a.province for a in reference.agencies.values() if a.province and a.is_centre})
    )
    events: list[dict[str, Any]] = []
    span = (end - start).total_seconds()
    for n in range(cases):
        province = provinces[n % len(provinces)]
        opened = start + timedelta(seconds=rng.random() * span * 0.97)
        history = _case_history(
            rng, seed, n, province, opened, reference, identity_ratio, case_prefix
        )
        events.extend(e for e in history if datetime.fromisoformat(e["occurred_at"]) <= end)
    events.sort(key=lambda e: (e["occurred_at"], e["case_id"]))
    yield from events


def _agencies(reference: ReferenceData, province: str, kind: str, day: Any) -> list[str]:
    return [
        a.agency_id
        for a in reference.agencies_in(province)
        if a.kind == kind and a.validity.covers(day)
    ]


# shares of the contacts' outcomes (rule C2): told in time, late, never, found not eligible
CONTACT_SHARE = 0.7
CONTACT_OUTCOMES = (("in_time", 0.80), ("late", 0.12), ("never", 0.05), ("not_eligible", 0.03))
# the document behind a contact, as its reference symbol (biên bản bắt người, quyết định tạm giữ,
# quyết định khởi tố bị can, biên bản lấy lời khai bị hại): references only, never names
_CONTACT_REFS = {
    "ARRESTED": "BB-BN",
    "TEMPORARILY_DETAINED": "QĐ-TG",
    "SUSPECT": "QĐ-KTBC",
    "VICTIM": "BB-LLK",
}


def _case_history(
    rng: random.Random,
    seed: int,
    n: int,
    province: str,
    opened: datetime,
    reference: ReferenceData,
    identity_ratio: float,
    case_prefix: str,
) -> list[dict[str, Any]]:
    history = _referral_history(
        rng, seed, n, province, opened, reference, identity_ratio, case_prefix
    )
    return _with_contact(random.Random(f"contact-{seed}-{n}-{case_prefix}"), history)


def _with_contact(rng: random.Random, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history preceded by the person's procedural contact (or not), and what followed
    it: a notification in time or late, none at all, or a not-eligible determination."""
    if rng.random() >= CONTACT_SHARE:
        return history
    first = history[0]
    data = first["data"]
    pick, outcome = rng.random(), "in_time"
    for name, share in CONTACT_OUTCOMES:
        if pick < share:
            outcome = name
            break
        pick -= share
    told = datetime.fromisoformat(first["occurred_at"])
    hours = {"in_time": rng.uniform(0.3, 20), "late": rng.uniform(25, 96)}.get(outcome, 0.0)
    contact_at = told - timedelta(hours=hours)
    role = data["procedural_role"]
    undetermined = outcome == "not_eligible" or rng.random() < 0.15
    contact_data = {
        k: data[k]
        for k in ("person_id", "proceedings_kind", "procedural_role", "stage", "sex", "channel")
        if k in data
    }
    if not undetermined:
        contact_data["eligible_category"] = data["eligible_category"]
        if "financial_hardship" in data:
            contact_data["financial_hardship"] = data["financial_hardship"]
    else:
        contact_data["eligible_category"] = "UNDETERMINED"
    contact_data["minutes_ref"] = f"{rng.randint(1, 999)}/{_CONTACT_REFS.get(role, 'BB')}"
    contact = {
        "event_id": f"{first['case_id']}-C1",
        "case_id": first["case_id"],
        "type": "PROCEDURAL_CONTACT",
        "agency_id": first["agency_id"],
        "occurred_at": contact_at.astimezone(VIETNAM_TZ).isoformat(timespec="seconds"),
        "data": contact_data,
    }
    if "identity" in first:  # the register names the person; the notification need not
        contact["identity"] = first["identity"]
        history = [{k: v for k, v in first.items() if k != "identity"}, *history[1:]]
    if outcome == "never":
        return [contact]
    if outcome == "not_eligible":
        decided = contact_at + timedelta(hours=rng.uniform(2, 48))
        return [
            contact,
            {
                "event_id": f"{first['case_id']}-C2",
                "case_id": first["case_id"],
                "type": "NOT_ELIGIBLE_DETERMINED",
                "agency_id": first["agency_id"],
                "occurred_at": decided.astimezone(VIETNAM_TZ).isoformat(timespec="seconds"),
                "data": {
                    "reason": rng.choice(("NO_CATEGORY", "NO_FINANCIAL_HARDSHIP")),
                    "article": "Luật TGPL 2017 Điều 7",
                },
            },
        ]
    return [contact, *history]


def _referral_history(
    rng: random.Random,
    seed: int,
    n: int,
    province: str,
    opened: datetime,
    reference: ReferenceData,
    identity_ratio: float,
    case_prefix: str,
) -> list[dict[str, Any]]:
    day = opened.astimezone(VIETNAM_TZ).date()
    case_id = f"{case_prefix}-{province}-{opened.year}-{seed % 1000:03d}{n:07d}"
    police = _agencies(reference, province, "police", day)
    centre = _agencies(reference, province, "legal_aid_centre", day)[0]
    oversight = _agencies(reference, province, "justice_department", day)
    holder = rng.choice(police)
    person_id = _ids(rng, seed, n)
    role = rng.choice(("ARRESTED", "TEMPORARILY_DETAINED", "SUSPECT", "VICTIM"))
    categories = [
        c
        for c in _ALWAYS
        if reference.categories[c].roles is None or role in (reference.categories[c].roles or ())
    ]
    category = rng.choice(categories)
    data0: dict[str, Any] = {
        "person_id": person_id,
        "proceedings_kind": "criminal",
        "procedural_role": role,
        "stage": "INVESTIGATION",
        "eligible_category": category,
        "sex": rng.choice(("MALE", "MALE", "FEMALE")),
        "channel": "PAPER",
    }
    if reference.categories[category].requires_financial_hardship:
        data0["financial_hardship"] = True
    out: list[dict[str, Any]] = []
    t = opened
    counter = 0

    def emit(
        wire_type: str,
        agency: str,
        at: datetime,
        data: dict[str, Any],
        identity: dict[str, Any] | None = None,
    ) -> None:
        nonlocal counter
        counter += 1
        event = {
            "event_id": f"{case_id}-{counter:02d}",
            "case_id": case_id,
            "type": wire_type,
            "agency_id": agency,
            "occurred_at": at.astimezone(VIETNAM_TZ).isoformat(timespec="seconds"),
            "data": data,
        }
        if identity:
            event["identity"] = identity
        out.append(event)

    identity = None
    if rng.random() < identity_ratio:
        born = day.replace(year=day.year - rng.randint(19, 58), day=min(day.day, 28))
        identity = {
            "full_name": f"{rng.choice(_FAMILY)} {rng.choice(_MIDDLE)} {rng.choice(_GIVEN)}",
            "date_of_birth": born.isoformat(),
        }
    emit(
        "NOTIFICATION_ISSUED",
        holder,
        t,
        {**data0, "form": "MAU_03", "trigger": "ARREST" if role == "ARRESTED" else "STATEMENT"},
        identity,
    )
    if rng.random() < 0.12:
        return out  # told of the right, never asked
    t += timedelta(minutes=rng.randint(5, 240))
    mandatory = rng.random() < 0.1 and role != "VICTIM"
    if mandatory:
        emit(
            "APPOINTMENT_REQUESTED",
            holder,
            t,
            {"centre_id": centre, "ground": "PENALTY_20Y_LIFE_DEATH"},
        )
    else:
        emit("AID_REQUESTED", holder, t, {"request_form": "written"})
        limit = 12 if role in ("ARRESTED", "TEMPORARILY_DETAINED") else 24
        t += timedelta(hours=rng.uniform(0.5, limit * (1.6 if rng.random() < 0.2 else 0.9)))
        emit("REQUEST_TRANSFERRED", holder, t, {"centre_id": centre, "document_ref": "MAU-03"})
    t += timedelta(hours=rng.uniform(0.2, 6))
    if rng.random() < 0.05:
        emit("REQUEST_REFUSED", centre, t, {"reason": "NOT_ELIGIBLE", "written": True})
        t += timedelta(hours=2)
        emit("CASE_CLOSED", centre, t, {"close_reason": "REFUSED"})
        return out
    emit("REQUEST_ACCEPTED", centre, t, {"immediate": mandatory})
    t += timedelta(hours=rng.uniform(1, 24 * (7 if rng.random() < 0.15 else 3)))
    provider = f"tgv-{province.lower()}-{rng.randint(1, 40):03d}"
    emit(
        "AID_ASSIGNED",
        centre,
        t,
        {
            "provider_id": provider,
            "provider_type": rng.choice(
                ("LEGAL_AID_OFFICER", "LEGAL_AID_OFFICER", "CONTRACTED_LAWYER")
            ),
            "aid_form": "PROTECTION" if role == "VICTIM" else "DEFENCE",
        },
    )
    if rng.random() < 0.04:
        t += timedelta(hours=3)
        emit("AID_DECLINED", holder, t, {"three_party_record": True})
        t += timedelta(days=1)
        emit("CASE_CLOSED", centre, t, {"close_reason": "DECLINED"})
        return out
    docs = t + timedelta(hours=rng.uniform(1, 48))
    t = docs + timedelta(hours=rng.uniform(0.5, 30 if rng.random() < 0.2 else 20))
    emit(
        "COUNSEL_REGISTERED",
        holder,
        t,
        {"documents_complete_at": docs.astimezone(VIETNAM_TZ).isoformat(timespec="seconds")},
    )
    if rng.random() < 0.05:
        requested = t + timedelta(days=rng.randint(1, 20))
        t = requested + timedelta(hours=rng.uniform(2, 24 * 6))
        provider = f"tgv-{province.lower()}-{rng.randint(41, 60):03d}"
        emit(
            "PROVIDER_CHANGED",
            centre,
            t,
            {
                "provider_id": provider,
                "provider_type": "LEGAL_AID_OFFICER",
                "requested_at": requested.astimezone(VIETNAM_TZ).isoformat(timespec="seconds"),
                "grounds": "PERSON_REQUEST",
            },
        )
        changed = t
        t += timedelta(hours=rng.uniform(1, 20))
        # the documents include the new assignment letter: not complete before the change
        emit(
            "COUNSEL_REGISTERED",
            holder,
            t,
            {
                "documents_complete_at": max(t - timedelta(hours=2), changed)
                .astimezone(VIETNAM_TZ)
                .isoformat(timespec="seconds")
            },
        )
    if role != "VICTIM" and rng.random() < 0.7:
        for kind, stage, new_role in (
            ("procuracy", "INDICTMENT", "SUSPECT"),
            ("court", "TRIAL", "DEFENDANT"),
        ):
            t += timedelta(days=rng.randint(20, 90))
            # an agency that stays in operation for the rest of the case (district courts ended
            # on 01/07/2025)
            later = (t + timedelta(days=200)).astimezone(VIETNAM_TZ).date()
            candidates = [
                a
                for a in _agencies(reference, province, kind, t.astimezone(VIETNAM_TZ).date())
                if reference.agencies[a].validity.covers(later)
            ]
            holder = rng.choice(candidates)
            emit(
                "CASE_TRANSFERRED",
                _holder_of(out),
                t,
                {"to_agency_id": holder, "to_stage": stage, "procedural_role": new_role},
            )
            docs = t + timedelta(hours=rng.uniform(1, 72))
            t = docs + timedelta(hours=rng.uniform(1, 22))
            emit(
                "COUNSEL_REGISTERED",
                holder,
                t,
                {
                    "documents_complete_at": docs.astimezone(VIETNAM_TZ).isoformat(
                        timespec="seconds"
                    )
                },
            )
    t += timedelta(days=rng.randint(10, 60))
    emit(
        "CASE_CLOSED",
        centre,
        t,
        {"close_reason": "COMPLETED", "outcome": rng.choice(("SUCCESSFUL", "UNKNOWN"))},
    )
    if oversight and rng.random() < 0.1:
        t += timedelta(days=rng.randint(5, 40))
        emit("QUALITY_ASSESSED", oversight[0], t, {"result": rng.choice(("GOOD", "ACHIEVED"))})
    return out


def _holder_of(events: list[dict[str, Any]]) -> str:
    holder = events[0]["agency_id"]
    for event in events:
        if event["type"] == "CASE_TRANSFERRED":
            holder = event["data"].get("to_agency_id", holder)
    return holder
