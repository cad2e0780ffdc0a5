"""Issue 13 item 3 over HTTP: a correction and a withdrawal are posted as events; the history
shows the original with who corrected it and when, the replay as known before the correction
shows the original, and another agency is refused with a stable code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.e2e.conftest import Api, assert_error_shape, auth
from tests.factories import CENTRE, POLICE, CaseScript


def test_correct_and_withdraw_over_http(api: Api) -> None:
    case = CaseScript()
    police = auth(api.token("agency", agency_id=POLICE))
    centre = auth(api.token("agency", agency_id=CENTRE))
    wires = [case.notification(), case.request(), case.transfer(), case.accept()]
    for wire in wires:
        headers = centre if wire["agency_id"] == CENTRE else police
        assert api.client.post("/v1/events", json=wire, headers=headers).status_code == 201
    before = datetime.now(timezone.utc)
    right_at = datetime.fromisoformat(wires[1]["occurred_at"]) - timedelta(minutes=30)
    correction = case.event(
        "EVENT_CORRECTED",
        after=timedelta(minutes=1),
        data={
            "target_event_id": wires[1]["event_id"],
            "changes": {"occurred_at": right_at.isoformat()},
            "reason_code": "WRONG_OCCURRED_AT",
            "reason": "CV-12/2026",
        },
    )

    # the Centre is in the case, but did not record the request: refused, named
    refused = api.client.post(
        "/v1/events", json={**correction, "agency_id": CENTRE}, headers=centre
    )
    body = assert_error_shape(refused, 422, "AMENDMENT_NOT_PERMITTED")
    assert body["field"] == "agency_id"

    posted = api.client.post("/v1/events", json=correction, headers=police)
    assert posted.status_code == 201, posted.text
    assert posted.json()["status"] == "recorded" and posted.json()["version"] == 5
    withdrawal = case.event(
        "EVENT_WITHDRAWN",
        agency=CENTRE,
        after=timedelta(minutes=1),
        data={"target_event_id": wires[3]["event_id"], "reason_code": "ENTERED_TWICE"},
    )
    assert api.client.post("/v1/events", json=withdrawal, headers=centre).status_code == 201

    case_url = f"/v1/cases/{case.case_id}"
    state = api.client.get(case_url, headers=police).json()
    assert state["status"] == "AT_CENTRE"  # the acceptance was withdrawn
    history = api.client.get(f"{case_url}/history", headers=police).json()["events"]
    assert [e["type"] for e in history][-2:] == ["EVENT_CORRECTED", "EVENT_WITHDRAWN"]
    request = history[1]
    assert request["occurred_at"] == wires[1]["occurred_at"]  # shown as recorded
    assert [(c["version"], c["agency_id"]) for c in request["corrected_by"]] == [(5, POLICE)]
    assert request["corrected_by"][0]["recorded_at"]
    assert history[3]["withdrawn_by"]["agency_id"] == CENTRE
    assert history[4]["data"]["target_version"] == 2

    known = api.client.get(
        f"{case_url}/as-of", params={"at": before.isoformat()}, headers=police
    ).json()
    assert known["case"]["status"] == "ACCEPTED" and len(known["events"]) == 4
    assert known["events"][1]["corrected_by"] is None
