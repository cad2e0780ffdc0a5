"""Posting and reading events over the API (TestClient, real PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from infra.bootstrap import build_container
from infra.http.app import create_app
from infra.settings import Settings
from tests.conftest import make_pg_settings
from tests.e2e.conftest import (
    POLICE,
    Api,
    assert_error_shape,
    auth,
    new_case_id,
    now,
    opening,
    request_aid,
    transfer,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def police(api: Api) -> dict[str, str]:
    return auth(api.token("agency", agency_id=POLICE))


def _history_length(api: Api, case_id: str) -> int:
    return len(api.container.referrals.case_history(case_id))


def test_post_one_event_records_it_and_points_to_the_case(api: Api, police: dict) -> None:
    case_id = new_case_id()
    response = api.client.post("/v1/events", json=opening(case_id, now()), headers=police)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["case_id"] == case_id and body["version"] == 1 and body["duplicate"] is False
    assert body["recorded_at"]
    assert response.headers["location"] == f"/v1/cases/{case_id}"
    case = api.client.get(response.headers["location"], headers=police)
    assert case.status_code == 200
    assert case.json()["status"] == "OPEN" and case.json()["province"] == "LSN"


def test_retry_of_a_lost_response_is_a_duplicate_when_posted_twice(api: Api, police: dict) -> None:
    case_id = new_case_id()
    event = opening(case_id, now())
    first = api.client.post("/v1/events", json=event, headers=police)
    second = api.client.post("/v1/events", json=event, headers=police)
    assert first.status_code == 201 and second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["version"] == first.json()["version"]
    assert second.json()["recorded_at"] == first.json()["recorded_at"]
    assert second.headers["location"] == first.headers["location"]
    assert _history_length(api, case_id) == 1


def test_same_event_id_with_other_content_is_409_when_retried(api: Api, police: dict) -> None:
    case_id = new_case_id()
    event = opening(case_id, now())
    assert api.client.post("/v1/events", json=event, headers=police).status_code == 201
    changed = {**event, "data": {**event["data"], "stage": "INDICTMENT"}}
    response = api.client.post("/v1/events", json=changed, headers=police)
    assert_error_shape(response, 409, "EVENT_ID_CONFLICT")
    assert _history_length(api, case_id) == 1


def test_stale_expected_version_is_409_when_the_case_moved_on(api: Api, police: dict) -> None:
    case_id = new_case_id()
    t = now() - timedelta(hours=2)
    opened = api.client.post("/v1/events", json=opening(case_id, t), headers=police)
    assert opened.status_code == 201
    fresh = {**request_aid(case_id, t + timedelta(minutes=5)), "expected_version": 1}
    assert api.client.post("/v1/events", json=fresh, headers=police).status_code == 201
    stale = {**transfer(case_id, t + timedelta(minutes=10)), "expected_version": 1}
    body = assert_error_shape(
        api.client.post("/v1/events", json=stale, headers=police), 409, "VERSION_CONFLICT"
    )
    assert body["field"] == "expected_version"


def test_batch_answers_each_item_when_valid_duplicate_and_invalid_are_mixed(
    api: Api, police: dict
) -> None:
    case_id = new_case_id()
    t = now() - timedelta(hours=2)
    first = opening(case_id, t)
    assert api.client.post("/v1/events", json=first, headers=police).status_code == 201
    missing_centre = {**transfer(case_id, t + timedelta(minutes=20), n=4), "data": {}}
    batch = {
        "events": [
            first,  # duplicate
            request_aid(case_id, t + timedelta(minutes=10)),  # recorded
            missing_centre,  # rejected: pydantic, data.centre_id
            {"type": "NOTIFICATION_ISSUED"},  # rejected: event_id missing
            {**opening(new_case_id(), t), "agency_id": "vlg-police"},  # rejected: not its agency
            {**request_aid(case_id, t + timedelta(minutes=30), n=6), "type": "NO_SUCH_TYPE"},
            transfer(case_id, t + timedelta(minutes=40)),  # recorded
            {**transfer(case_id, t + timedelta(minutes=50), n=7)},  # held (ADR 0008; was refused)
        ]
    }
    response = api.client.post("/v1/events/batch", json=batch, headers=police)
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [item["status"] for item in body["items"]]
    assert statuses == [
        "duplicate",
        "recorded",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "recorded",
        "held",
    ]
    # recorded counts every new event, held ones included (they are in the log)
    assert (body["recorded"], body["duplicates"], body["rejected"], body["held"]) == (3, 1, 4, 1)
    assert body["items"][7]["awaiting"]["reason"] == "ORDER_VIOLATION"
    errors = [(i["error"]["code"], i["error"]["field"]) for i in body["items"] if i["error"]]
    assert errors == [
        ("FIELD_REQUIRED", "data.centre_id"),
        ("FIELD_REQUIRED", "event_id"),
        ("NOT_AUTHORISED", "agency_id"),
        ("EVENT_TYPE_UNKNOWN", "type"),
    ]
    for item in body["items"]:
        if item["error"]:
            assert item["error"]["message"] and item["error"]["message_en"]
    assert [i["version"] for i in body["items"] if i["status"] == "recorded"] == [2, 3]
    assert _history_length(api, case_id) == 4  # the held transfer is in the log too


def test_event_whose_predecessor_has_not_arrived_is_202_held_and_takes_effect_later(
    api: Api, police: dict
) -> None:
    # issue 13 / ADR 0008: a transfer posted before the request it follows is recorded and held
    case_id = new_case_id()
    t = now() - timedelta(hours=2)
    assert (
        api.client.post("/v1/events", json=opening(case_id, t), headers=police).status_code == 201
    )
    early = transfer(case_id, t + timedelta(minutes=20))
    response = api.client.post("/v1/events", json=early, headers=police)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "held" and body["receipt"] and body["version"] == 2
    assert body["awaiting"]["reason"] == "ORDER_VIOLATION"
    assert "AID_REQUESTED" in body["awaiting"]["types"]
    assert body["awaiting"]["message"] and body["awaiting"]["message_en"]
    again = api.client.post("/v1/events", json=early, headers=police)  # a retry: its standing
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["awaiting"]["reason"] == "ORDER_VIOLATION"
    late = request_aid(case_id, t + timedelta(minutes=10), n=4)
    answer = api.client.post("/v1/events", json=late, headers=police)
    assert answer.status_code == 201 and answer.json()["status"] == "recorded"
    case = api.client.get(f"/v1/cases/{case_id}", headers=police).json()
    assert case["status"] == "AT_CENTRE"
    again = api.client.post("/v1/events", json=early, headers=police)
    assert again.status_code == 200 and again.json()["awaiting"] is None


def test_as_of_replays_by_either_clock_when_a_fact_arrived_late(api: Api, police: dict) -> None:
    # issue 13: "as known at T" (recorded <= T, the default) stays; "as it happened at T"
    # (occurred <= T, every fact known now) is new
    case_id = new_case_id()
    t = now() - timedelta(hours=3)
    for wire in (opening(case_id, t), transfer(case_id, t + timedelta(minutes=20))):
        api.client.post("/v1/events", json=wire, headers=police)  # the transfer is held
    history = api.client.get(f"/v1/cases/{case_id}/history", headers=police).json()
    known_before_request = history["events"][-1]["recorded_at"]
    late = request_aid(case_id, t + timedelta(minutes=10), n=4)
    assert api.client.post("/v1/events", json=late, headers=police).status_code == 201
    at = (t + timedelta(minutes=15)).isoformat()

    def as_of(query: dict) -> dict:
        response = api.client.get(f"/v1/cases/{case_id}/as-of", params=query, headers=police)
        assert response.status_code == 200, response.text
        return response.json()

    happened = as_of({"at": at, "clock": "occurred"})
    assert happened["clock"] == "occurred" and happened["case"]["status"] == "REQUESTED"
    assert [e["type"] for e in happened["events"]] == ["NOTIFICATION_ISSUED", "AID_REQUESTED"]
    known = as_of({"at": known_before_request})  # clock=recorded, as before
    assert known["clock"] == "recorded" and known["case"]["status"] == "OPEN"
    assert [e["type"] for e in known["events"]] == ["NOTIFICATION_ISSUED", "REQUEST_TRANSFERRED"]
    assert as_of({"at": now().isoformat(), "clock": "occurred"})["case"]["status"] == "AT_CENTRE"
    bad = api.client.get(
        f"/v1/cases/{case_id}/as-of", params={"at": at, "clock": "wall"}, headers=police
    )
    assert bad.status_code == 422


def test_openapi_documents_the_held_answer(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    answers = spec["paths"]["/v1/events"]["post"]["responses"]
    assert "202" in answers and "held" in answers["202"]["description"]
    recorded = spec["components"]["schemas"]["RecordedOut"]["properties"]
    assert "awaiting" in recorded and "held" in str(recorded["status"])
    item = spec["components"]["schemas"]["BatchItemOut"]["properties"]["status"]
    assert "held" in str(item)


def test_batch_over_1000_items_is_422(api: Api, police: dict) -> None:
    events = [opening(new_case_id(), now(), identity=False) for _ in range(1001)]
    response = api.client.post("/v1/events/batch", json={"events": events}, headers=police)
    body = assert_error_shape(response, 422, "FIELD_INVALID")
    assert body["field"] == "events"


def test_as_of_between_two_events_shows_the_earlier_state(api: Api, police: dict) -> None:
    case_id = new_case_id()
    t = now() - timedelta(hours=2)
    one = api.client.post("/v1/events", json=opening(case_id, t), headers=police).json()
    two = api.client.post(
        "/v1/events", json=request_aid(case_id, t + timedelta(minutes=5)), headers=police
    ).json()
    assert one["recorded_at"] < two["recorded_at"]
    response = api.client.get(
        f"/v1/cases/{case_id}/as-of", params={"at": one["recorded_at"]}, headers=police
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["case"]["version"] == 1 and body["case"]["status"] == "OPEN"
    assert [e["type"] for e in body["events"]] == ["NOTIFICATION_ISSUED"]
    assert body["events"][0]["identity"] == {"encrypted": True}
    latest = api.client.get(
        f"/v1/cases/{case_id}/as-of", params={"at": two["recorded_at"]}, headers=police
    ).json()
    assert latest["case"]["status"] == "REQUESTED" and len(latest["events"]) == 2
    before = api.client.get(
        f"/v1/cases/{case_id}/as-of", params={"at": "2020-01-01T00:00:00+07:00"}, headers=police
    ).json()
    assert before["case"] is None and before["events"] == []
    no_offset = api.client.get(
        f"/v1/cases/{case_id}/as-of", params={"at": "2026-01-01T00:00:00"}, headers=police
    )
    assert_error_shape(no_offset, 422, "TIMESTAMP_WITHOUT_OFFSET")


def test_history_lists_events_in_order_without_identity(api: Api, police: dict) -> None:
    case_id = new_case_id()
    t = now() - timedelta(hours=3)
    for event in (
        opening(case_id, t),
        request_aid(case_id, t + timedelta(hours=1)),
        transfer(case_id, t + timedelta(hours=2)),
    ):
        assert api.client.post("/v1/events", json=event, headers=police).status_code == 201
    response = api.client.get(f"/v1/cases/{case_id}/history", headers=police)
    events = response.json()["events"]
    assert [(e["version"], e["type"]) for e in events] == [
        (1, "NOTIFICATION_ISSUED"),
        (2, "AID_REQUESTED"),
        (3, "REQUEST_TRANSFERRED"),
    ]
    assert events[0]["title_vi"].startswith("Giải thích")
    assert events[0]["agency_id"] == POLICE and events[0]["identity"] == {"encrypted": True}
    assert events[1]["identity"] is None
    assert "Nguyễn" not in response.text
    limits = api.client.get(f"/v1/cases/{case_id}/time-limits", headers=police).json()
    c1 = next(v for v in limits["time_limits"] if v["rule_id"] == "C1_12H")
    assert c1["status"] == "met" and c1["met_at"] and c1["title_vi"] and c1["legal_basis"]
    assert c1["responsible_agency_id"] == POLICE


def test_identity_read_writes_the_access_log_and_a_refused_read_does_not(
    api: Api, police: dict
) -> None:
    case_id = new_case_id()
    t = now() - timedelta(hours=2)
    for event in (
        opening(case_id, t),
        request_aid(case_id, t + timedelta(minutes=5)),
        transfer(case_id, t + timedelta(minutes=10)),
    ):
        assert api.client.post("/v1/events", json=event, headers=police).status_code == 201
    store = api.container.vault.store
    # an agency with no role on the case (the Centre, addressed by the transfer, has one)
    procuracy = auth(api.token("agency", agency_id="lsn-procuracy"))
    refused = api.client.get(
        f"/v1/cases/{case_id}/identity", params={"purpose": "tò mò"}, headers=procuracy
    )
    assert_error_shape(refused, 403, "NOT_AUTHORISED")
    missing_purpose = api.client.get(f"/v1/cases/{case_id}/identity", headers=police)
    assert assert_error_shape(missing_purpose, 422, "FIELD_REQUIRED")["field"] == "purpose"
    assert store.access_log() == []

    response = api.client.get(
        f"/v1/cases/{case_id}/identity", params={"purpose": "liên hệ người bị bắt"}, headers=police
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["identity"] == {"full_name": "Nguyễn Văn An", "date_of_birth": "1990-05-01"}
    entries = store.access_log(body["person_id"])
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.principal_role, entry.agency_id, entry.case_id, entry.purpose) == (
        "agency",
        POLICE,
        case_id,
        "liên hệ người bị bắt",
    )
    admin = auth(api.token("admin"))
    log = api.client.get(
        "/v1/access-log", params={"person_id": body["person_id"]}, headers=admin
    ).json()["entries"]
    assert [e["purpose"] for e in log] == ["liên hệ người bị bắt"]


def test_oversized_body_is_413_before_parsing(pg_settings: Settings) -> None:
    settings = make_pg_settings(
        pg_settings.pg_dbname, pg_settings.pg_schema, pg_settings.data_dir, max_body_bytes=2_000
    )
    container = build_container(settings)
    try:
        token = container.tokens.create(
            "agency",
            "a",
            agency_id=POLICE,  # type: ignore[union-attr]
            reference=container.reference,
        )[0]
        with TestClient(create_app(container)) as client:
            big = b'{"events": [' + b" " * 3_000 + b"]}"
            declared = client.post(
                "/v1/events/batch",
                content=big,
                headers={**auth(token), "content-type": "application/json"},
            )
            assert_error_shape(declared, 413, "BODY_TOO_LARGE")

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted as streamed
                yield b'{"events": ['
                for _ in range(10):
                    yield b" " * 500
                yield b"]}"

            streamed = client.post(
                "/v1/events/batch",
                content=chunks(),
                headers={**auth(token), "content-type": "application/json"},
            )
            assert "content-length" not in streamed.request.headers
            assert_error_shape(streamed, 413, "BODY_TOO_LARGE")
            small = client.post(
                "/v1/events", json=opening(new_case_id(), now()), headers=auth(token)
            )
            assert small.status_code == 201
    finally:
        container.close()


def test_malformed_json_is_422_in_the_error_shape(api: Api, police: dict) -> None:
    response = api.client.post(
        "/v1/events",
        content=b'{"event_id": ',
        headers={**police, "content-type": "application/json"},
    )
    body = assert_error_shape(response, 422, "FIELD_INVALID")
    assert body["field"] == "$"
    not_utf8 = api.client.post(
        "/v1/events",
        content=b'{"a": "\xff"}',
        headers={**police, "content-type": "application/json"},
    )
    assert_error_shape(not_utf8, 422, "FIELD_INVALID")


def test_missing_field_is_422_naming_the_field(api: Api, police: dict) -> None:
    event = opening(new_case_id(), now())
    del event["occurred_at"]
    body = assert_error_shape(
        api.client.post("/v1/events", json=event, headers=police), 422, "FIELD_REQUIRED"
    )
    assert body["field"] == "occurred_at"
    assert "occurred_at" in body["message"] and body["message_en"]
    refused = {**transfer(new_case_id(), now()), "data": {"centre_id": "lsn-centre", "x": 1}}
    body = assert_error_shape(
        api.client.post("/v1/events", json=refused, headers=police), 422, "FIELD_UNKNOWN"
    )
    assert body["field"] == "data.x"
    domain = opening(new_case_id(), now(), eligible_category="NO_SUCH_CATEGORY")
    body = assert_error_shape(
        api.client.post("/v1/events", json=domain, headers=police), 422, "VALUE_NOT_IN_REFERENCE"
    )
    assert body["field"] == "data.eligible_category"


def test_request_id_is_honoured_and_echoed(api: Api) -> None:
    response = api.client.get("/health", headers={"X-Request-ID": "agency-42.abc"})
    assert response.headers["x-request-id"] == "agency-42.abc"
    generated = api.client.get("/health", headers={"X-Request-ID": "bad id\twith tab"})
    assert generated.headers["x-request-id"] != "bad id\twith tab"
    unknown = api.client.get("/v1/nothing-here")
    assert_error_shape(unknown, 404, "ROUTE_NOT_FOUND")


def test_ready_is_503_when_the_event_store_is_gone(api: Api, pg_settings: Settings) -> None:
    assert api.client.get("/ready").json() == {"status": "ready", "store": "postgres"}
    from tests.conftest import _admin_connect

    with _admin_connect(pg_settings.pg_dbname) as conn:
        conn.execute(f'DROP SCHEMA "{pg_settings.pg_schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{pg_settings.pg_schema}"')
    response = api.client.get("/ready")
    assert_error_shape(response, 503, "STORE_UNAVAILABLE")


def test_openapi_documents_every_event_type(api: Api) -> None:
    from domain.catalogue import EVENT_TYPES

    spec = api.client.get("/openapi.json").json()
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    mapping = body["schema"]["discriminator"]["mapping"]
    assert set(mapping) == set(EVENT_TYPES)
    for wire_type, ref in mapping.items():
        schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
        data_ref = schema["properties"]["data"].get("$ref") or next(
            s["$ref"] for s in schema["properties"]["data"]["anyOf"] if "$ref" in s
        )
        data = spec["components"]["schemas"][data_ref.rsplit("/", 1)[1]]
        for field in EVENT_TYPES[wire_type].fields:
            assert data["properties"][field.name]["description"].startswith(field.title_vi)
    assert json.dumps(spec["components"]["schemas"]["ErrorOut"])
