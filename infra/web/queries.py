"""Read helpers of the pages over the read models (case index, compliance) and the event store:
the events an agency recorded in a period (the cases behind a count), many case histories in
one read, and the case rows for lists. Scoped by the caller (the principal's provinces)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from domain.calendar import VIETNAM_TZ
from domain.referral import referral_id
from infra.event_reads import select_events_of
from infra.web.format import day_after, day_start
from services.held import held_listing, held_scope

PAGE = 500


def case_histories(container: Any, case_ids: Sequence[str]) -> dict[str, list[Any]]:
    """Every stored event of each case, in order (one query per 500 cases when the store
    supports it)."""
    referrals = container.referrals
    out: dict[str, list[Any]] = {}
    unique = list(dict.fromkeys(case_ids))
    for start in range(0, len(unique), PAGE):
        chunk = unique[start : start + PAGE]
        by_id = {referral_id(c): c for c in chunk}
        stored = select_events_of(referrals.recorder, list(by_id))
        if stored is None:
            for case_id in chunk:
                out[case_id] = list(referrals.events.get(referral_id(case_id)))
            continue
        for aggregate_id, case_id in by_id.items():
            out[case_id] = [
                referrals.mapper.to_domain_event(r) for r in stored.get(aggregate_id, ())
            ]
    return out


def touched_cases(
    container: Any, agency_id: str, start: date, end: date, provinces: Iterable[str]
) -> list[str]:
    """Cases of the provinces that the agency touched and that were active in the period."""
    index = container.projections.case_index
    found: list[str] = []
    offset = 0
    while True:
        rows, total = index.search(
            touched_by=agency_id,
            occurred_from=day_start(start),
            occurred_to=day_after(end),
            provinces=sorted(provinces),
            limit=PAGE,
            offset=offset,
        )
        found.extend(row["case_id"] for row in rows)
        offset += len(rows)
        if not rows or offset >= total:
            return found


def agency_events(
    container: Any,
    agency_id: str,
    start: date,
    end: date,
    provinces: Iterable[str],
    event_types: Sequence[str] | None = None,
) -> tuple[list[tuple[str, Any]], dict[str, list[Any]]]:
    """The events the agency recorded whose Vietnam-local day of occurrence is in
    `start`..`end` (the attribution of the agency counts), as (case id, event) in time order,
    and the histories of their cases."""
    histories = case_histories(
        container, touched_cases(container, agency_id, start, end, provinces)
    )
    events = []
    for case_id, history in histories.items():
        for event in history:
            if event.agency_id != agency_id:
                continue
            if event_types is not None and event.WIRE_TYPE not in event_types:
                continue
            if start <= event.occurred_at.astimezone(VIETNAM_TZ).date() <= end:
                events.append((case_id, event))
    events.sort(key=lambda item: (item[1].occurred_at, item[0]))
    return events, histories


def case_rows(
    container: Any, case_ids: Iterable[str], provinces: Iterable[str]
) -> tuple[list[dict[str, Any]], int]:
    """Case-index rows of the given cases that lie in the provinces, and how many did not."""
    index = container.projections.case_index
    allowed = set(provinces)
    rows, hidden = [], 0
    for case_id in dict.fromkeys(case_ids):
        row = index.get(case_id)
        if row is None:
            continue
        if row["province"] in allowed:
            rows.append(row)
        else:
            hidden += 1
    return rows, hidden


def compliance_group(
    container: Any,
    province: str,
    start: date,
    end: date,
    rule_id: str,
    agency_id: str | None,
    now: Any,
) -> dict[str, Any] | None:
    """One (rule, responsible agency) group of the compliance summary; `agency_id` None is the
    group without a responsible agency."""
    for group in container.projections.compliance.summary(
        province, start, end, now=now, rule_id=rule_id
    ):
        if group["responsible_agency_id"] == agency_id:
            return group
    return None


def held_in_scope(
    container: Any, principal: Any, agency_id: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """The held events the principal may list (`services.held.held_scope`: an agency its own,
    an inspector or the council its provinces'), oldest first, each with `age_hours` and
    `anomaly` (held longer than the setting `held_anomaly_after_hours`). From the case index."""
    scope = held_scope(principal, agency_id)
    rows = container.projections.case_index.held(limit=limit, **scope)
    return held_listing(rows, container.referrals.clock(), held_anomaly_after(container), principal)


def held_anomaly_after(container: Any) -> float:
    """The setting: hours a held event may wait before it is an anomaly (72 by default)."""
    return float(getattr(container.settings, "held_anomaly_after_hours", 72.0))
