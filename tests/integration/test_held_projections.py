"""Issue 13 / ADR 0008: the read models count a held event only once it takes effect, and judge
time limits on the effective facts in occurred order (case_index, agency_counts, compliance)."""

from __future__ import annotations

from datetime import date, timezone

import pytest

from infra.bootstrap import Container
from tests.factories import CENTRE, POLICE, PROCURACY, CaseScript

# on SQLite and PostgreSQL (any_container)

YEAR = (date(2018, 1, 1), date(2030, 12, 31))


def _counts(container: Container, agency: str) -> dict[str, int]:
    return container.projections.agency_counts.agency_table("LSN", *YEAR).get(agency, {})


def _rules(container: Container, case_id: str) -> dict[str, dict]:
    return {v["rule_id"]: v for v in container.projections.compliance.verdicts(case_id)}


def test_a_held_event_counts_and_is_judged_only_once_it_takes_effect(
    any_container: Container,
) -> None:
    app = any_container.referrals
    case = CaseScript()
    for wire in (case.notification(), case.request(), case.transfer(), case.accept()):
        app.record_event(wire)
    assign = case.assign()
    register = case.register()  # dated after the assignment, posted before it: held
    assert app.record_event(register).held
    any_container.projections.process_pending()

    row = any_container.projections.case_index.get(case.case_id)
    assert row["status"] == "ACCEPTED"
    assert "COUNSEL_REGISTERED" not in _counts(any_container, POLICE)
    assert not any(r.startswith("C4") for r in _rules(any_container, case.case_id))

    assert not app.record_event(assign).held  # the predecessor arrives: both take effect
    any_container.projections.process_pending()

    row = any_container.projections.case_index.get(case.case_id)
    assert (row["status"], row["version"]) == ("REGISTERED", 6)
    last = app.get_case(case.case_id).last_occurred_at  # the registration's, not the assignment's
    assert row["last_occurred_at"] == last.astimezone(timezone.utc).isoformat()
    assert _counts(any_container, POLICE)["COUNSEL_REGISTERED"] == 1
    assert _counts(any_container, CENTRE)["AID_ASSIGNED"] == 1
    assert _rules(any_container, case.case_id)["C4_CRIMINAL"]["status"] != "cancelled"


def test_a_fact_held_for_a_poster_with_no_part_gives_it_nothing_in_the_views(
    any_container: Container,
) -> None:
    app = any_container.referrals
    case = CaseScript()
    app.record_event(case.notification())
    app.record_event(case.request())
    early = case.transfer(agency=PROCURACY)  # the procuracy does not hold the case (yet)
    assert app.record_event(early).awaiting["reason"] == "AGENCY_NOT_HOLDER"
    any_container.projections.process_pending()

    index = any_container.projections.case_index
    assert index.get(case.case_id)["status"] == "REQUESTED"
    assert index.get(case.case_id)["centre_id"] is None
    assert PROCURACY not in index.touched_agencies(case.case_id)
    assert CENTRE not in index.touched_agencies(case.case_id)
    assert _counts(any_container, PROCURACY) == {}
    c1 = _rules(any_container, case.case_id)["C1_12H"]
    assert c1["target_version"] is None  # the held transfer does not meet the limit


def _case_view(container: Container, case_id: str) -> tuple[dict, list]:
    row = dict(container.projections.case_index.get(case_id))
    for name in ("case_id", "person_id"):
        row.pop(name)
    verdicts = sorted(
        (
            v["rule_id"],
            v["status"],
            v["trigger_at"],
            v["deadline"],
            v["met_at"],
            v["responsible_agency_id"],
        )
        for v in container.projections.compliance.verdicts(case_id)
    )
    return row, verdicts


@pytest.mark.parametrize(
    "order",
    [
        (6, 5, 4, 3, 2, 1, 0),  # reversed: every fact waits for the opening
        (0, 1, 2, 5, 4, 3, 6),  # the Centre's acceptance and assignment after the registration
        (2, 0, 4, 1, 6, 3, 5),
    ],
)
def test_the_views_end_as_with_in_order_arrival_whatever_the_arrival_order(
    any_container: Container,
    order: tuple[int, ...],
) -> None:
    app = any_container.referrals
    projections = any_container.projections
    in_order, shuffled = CaseScript(), CaseScript()  # the same facts, two cases
    for wire in in_order.full_history():
        assert not app.record_event(wire).held
    projections.process_pending()
    expected = _case_view(any_container, in_order.case_id)
    once = projections.agency_counts.agency_table("LSN", *YEAR)

    wires = shuffled.full_history()
    for n in order:  # one page per event: the incremental paths
        app.record_event(wires[n])
        projections.process_pending(batch_size=1)
    assert _case_view(any_container, shuffled.case_id) == expected
    twice = projections.agency_counts.agency_table("LSN", *YEAR)
    assert twice == {a: {t: 2 * n for t, n in types.items()} for a, types in once.items()}
    assert projections.case_index.held() == []
    assert projections.case_index.touched_agencies(shuffled.case_id) == (
        projections.case_index.touched_agencies(in_order.case_id)
    )

    paged = {name: p.view.dump() for name, p in projections.projections.items()}
    projections.rebuild()  # all at once, from the log: the same views
    assert {name: p.view.dump() for name, p in projections.projections.items()} == paged


def test_the_views_folded_once_per_process_equal_each_view_folding_alone(
    any_container: Container,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The derived cases are folded once per page for every view of the process
    (`PageDerivation`); a view folding its events itself (an event the shared fold did not
    prepare), or a fold that evicts cases and reads them again from the store, gives the
    same views."""
    from projections.derived import DerivedCases, PageDerivation

    app = any_container.referrals
    projections = any_container.projections
    scripts = [CaseScript() for _ in range(3)]
    orders = [(0, 1, 2, 3, 4, 5, 6), (6, 5, 4, 3, 2, 1, 0), (0, 1, 2, 5, 4, 3, 6)]
    histories = [s.full_history() for s in scripts]
    for k in range(7):  # the cases interleaved in the log
        for wires, order in zip(histories, orders, strict=True):
            app.record_event(wires[order[k]])
    projections.process_pending(batch_size=3)
    shared = {name: p.view.dump() for name, p in projections.projections.items()}

    projections.rebuild()  # one fold for all the views of the process
    assert {name: p.view.dump() for name, p in projections.projections.items()} == shared

    context = projections.projections["case_index"].context
    derivation = PageDerivation.of(context)
    assert derivation is not None
    monkeypatch.setattr(derivation.cases, "max_size", 1)  # every other case read again
    reads = derivation.cases.reads
    derivation.forget()
    projections.rebuild()
    assert {name: p.view.dump() for name, p in projections.projections.items()} == shared
    assert derivation.cases.reads > reads

    monkeypatch.setattr(PageDerivation, "prepare", lambda self, items: None)
    monkeypatch.setattr(PageDerivation, "step", lambda self, position: None)
    monkeypatch.setattr(PageDerivation, "case", lambda self, case_id: None)
    for projection in projections.projections.values():  # each view's own fold: tiny too
        derived = getattr(projection, "derived", None)
        if isinstance(derived, DerivedCases):
            monkeypatch.setattr(derived, "max_size", 1)
    projections.rebuild()  # each view folds alone
    assert {name: p.view.dump() for name, p in projections.projections.items()} == shared
