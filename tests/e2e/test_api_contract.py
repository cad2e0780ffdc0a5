"""The OpenAPI document says exactly what the server accepts (issue 15, "The API contract"):
`data` fields are omitted rather than null, the reference lists are enums (the same codes
`GET /v1/reference` and `referrals reference show` give), free text, UUIDs and instants carry
the patterns the server checks, and the rules a schema cannot say are documented on the 422."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from domain.catalogue import EVENT_TYPES, REFERENCE_TEXT, field_specs, parse_instant
from domain.errors import InvalidEventError
from infra.http.schemas import DATA_MODELS
from tests.e2e.conftest import Api, assert_error_shape, auth, new_case_id, now, opening

pytestmark = pytest.mark.postgres


@pytest.fixture
def police(api: Api) -> dict[str, str]:
    return auth(api.token("agency", agency_id="lsn-police-investigation"))


@pytest.fixture
def spec(api: Api) -> dict[str, Any]:
    return api.client.get("/openapi.json").json()


def _schema(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return spec["components"]["schemas"][name]


def _camel(wire_type: str) -> str:
    return "".join(part.capitalize() for part in wire_type.split("_"))


def _allows_null(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(_allows_null(p) for p in prop.get("anyOf", ()))


def test_no_data_field_is_nullable_and_data_is_an_object(spec: dict[str, Any]) -> None:
    for wire_type in EVENT_TYPES:
        data = _schema(spec, f"{_camel(wire_type)}Data")
        nullable = [n for n, p in data["properties"].items() if _allows_null(p)]
        assert nullable == [], f"{wire_type}: {nullable} accept null"
        assert not any(p.get("default", ...) is None for p in data["properties"].values())
        event = _schema(spec, f"{_camel(wire_type)}Event")
        assert not _allows_null(event["properties"]["data"]), wire_type
        has_required = any(f.required for f in EVENT_TYPES[wire_type].fields)
        assert ("data" in event["required"]) == has_required, wire_type
        assert set(data.get("required", ())) == {
            f.name for f in EVENT_TYPES[wire_type].fields if f.required
        }


def test_reference_lists_are_enums_of_the_data_fields(api: Api, spec: dict[str, Any]) -> None:
    reference = api.container.reference
    stage = _schema(spec, "NotificationIssuedData")["properties"]["stage"]
    assert stage["enum"] == list(reference.codes("stages"))
    assert "PROSECUTION" not in stage["enum"]  # the newcomer: not a stage
    for wire_type in EVENT_TYPES:
        properties = _schema(spec, f"{_camel(wire_type)}Data")["properties"]
        for field in field_specs(wire_type).values():
            prop = properties[field.name]
            if field.kind == "code":
                assert prop["enum"] == list(reference.codes(field.reference or "")), field.name
            elif field.kind == "category":
                assert prop["enum"] == list(reference.categories)
            elif field.kind == "agency":
                kinds = (field.reference or "").split("|")
                assert prop["enum"] and all(
                    reference.agencies[a].kind in kinds for a in prop["enum"]
                ), field.name
            elif field.kind == "enum":
                assert prop["enum"] == list(field.choices)
    centre = _schema(spec, "RequestTransferredData")["properties"]["centre_id"]
    assert "lsn-centre" in centre["enum"] and "lsn-police" not in centre["enum"]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("123/BB-CSĐT", True),
        ("01-TP-TGPL/2026/15", True),
        ("CB-0042", True),
        ("Nguyễn Văn An", False),
        ("BB-CSĐT", False),
        (" CB-0042", False),
        ("CB-0042\n", False),
        ("CB_0042", True),
        ("CB 0042", False),
        ("ƯU-1", True),
        ("×1", False),
        ("AB٣", False),
        ("Я-1", False),  # a digit 0-9, Latin letters: as ECMA-262 reads it too
    ],
)
def test_free_text_pattern_says_what_the_server_accepts(
    spec: dict[str, Any], value: str, accepted: bool
) -> None:
    prop = _schema(spec, "NotificationIssuedData")["properties"]["document_ref"]
    assert _valid(prop, value) is accepted
    try:
        DATA_MODELS["NOTIFICATION_ISSUED"].model_validate({"document_ref": value})
    except ValidationError:
        assert not accepted
    else:
        assert accepted and REFERENCE_TEXT.fullmatch(value)


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("2026-01-05T09:30:00+07:00", True),
        ("2026-01-05T02:30:00Z", True),
        ("2026-01-05T09:30:00.123456+07:00", True),
        ("2026-01-05T09:30:00+14:00", True),
        ("2026-01-05T09:30+07:00", False),
        ("2026-01-05T09:30:00+0700", False),
        ("2026-01-05 09:30:00+07:00", False),
        ("2026-01-05T09:30:00", False),
        ("2026-01-05T09:30:00+14:30", False),
        ("0001-01-01T00:00:00Z", False),
    ],
)
def test_instant_pattern_says_what_the_server_accepts(
    spec: dict[str, Any], value: str, accepted: bool
) -> None:
    prop = _schema(spec, "NotificationIssuedEvent")["properties"]["occurred_at"]
    assert _valid(prop, value) is accepted
    try:
        parse_instant(value, "occurred_at")
    except InvalidEventError:
        assert not accepted
    else:
        assert accepted
    as_of = next(
        p
        for p in spec["paths"]["/v1/cases/{case_id}/as-of"]["get"]["parameters"]
        if p["name"] == "at"
    )
    assert _valid(as_of["schema"], value) is accepted


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """JSON Schema patterns are ECMA-262: `$` is the end of the string, never before a final
    newline as in Python's `re` (which the jsonschema package uses as is)."""
    if isinstance(instance, str) and not re.search(re.sub(r"\$$", r"\\Z", pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"pattern": _ecma_pattern}
)


def _valid(schema: dict[str, Any], value: Any) -> bool:
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    return _Validator(schema, format_checker=checker).is_valid(value)


@pytest.mark.parametrize(
    ("data", "code", "field"),
    [
        ({"official": None}, "FIELD_INVALID", "data.official"),
        ({"stage": " INVESTIGATION"}, "FIELD_INVALID", "data.stage"),
        ({"document_ref": "Nguyễn Văn An"}, "REFERENCE_FORMAT_INVALID", "data.document_ref"),
        ({"person_id": "0f8fad5bd9cb469fa16570867728950e"}, "FIELD_INVALID", "data.person_id"),
    ],
)
def test_what_the_schema_refuses_is_422_naming_the_field(
    api: Api, police: dict[str, str], data: dict[str, Any], code: str, field: str
) -> None:
    event = opening(new_case_id(), now() - timedelta(hours=1), **data)
    body = assert_error_shape(api.client.post("/v1/events", json=event, headers=police), 422, code)
    assert body["field"] == field


def test_null_data_and_a_non_rfc3339_instant_are_422(api: Api, police: dict[str, str]) -> None:
    case_id = new_case_id()
    t = now() - timedelta(hours=1)
    assert (
        api.client.post("/v1/events", json=opening(case_id, t), headers=police).status_code == 201
    )
    event = {
        "event_id": f"{case_id}-02",
        "case_id": case_id,
        "type": "AID_REQUESTED",
        "agency_id": "lsn-police-investigation",
        "occurred_at": t.isoformat(),
        "data": None,
    }
    body = assert_error_shape(api.client.post("/v1/events", json=event, headers=police), 422)
    assert body["field"] == "data"
    event["data"] = {"request_form": "written"}
    event["occurred_at"] = (t + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M%z")  # +0700
    body = assert_error_shape(
        api.client.post("/v1/events", json=event, headers=police), 422, "FIELD_INVALID"
    )
    assert body["field"] == "occurred_at" and "RFC 3339" in body["message_en"]
    del event["data"]  # omitted: no required field in AID_REQUESTED
    event["occurred_at"] = (t + timedelta(minutes=1)).isoformat()
    assert api.client.post("/v1/events", json=event, headers=police).status_code == 201


def test_reference_is_public_and_gives_the_schema_enums(api: Api, spec: dict[str, Any]) -> None:
    response = api.client.get("/v1/reference")
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["version"] == max(api.container.reference.versions.values())
    lists = document["lists"]
    for name in (
        "stages",
        "procedural_roles",
        "categories",
        "form",
        "refusal_reasons",
        "close_reasons",
        "agencies",
        "agency_kinds",
        "event_types",
    ):
        assert lists[name]["items"], name
    stages = [item["code"] for item in lists["stages"]["items"]]
    assert stages == _schema(spec, "NotificationIssuedData")["properties"]["stage"]["enum"]
    assert lists["stages"]["items"][0]["title_vi"]
    assert {i["code"] for i in lists["event_types"]["items"]} == set(EVENT_TYPES)
    assert all(i["title_en"] for i in lists["event_types"]["items"])
    one = api.client.get("/v1/reference", params={"list": "stages"}).json()
    assert set(one["lists"]) == {"stages"} and one["lists"]["stages"] == lists["stages"]
    assert_error_shape(
        api.client.get("/v1/reference", params={"list": "nope"}), 422, "FIELD_INVALID"
    )
    token = api.token("inspector", provinces=["LSN"])
    assert api.client.get("/v1/reference", headers=auth(token)).json() == document


def test_reference_show_prints_what_the_api_answers(api: Api) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from infra.cli import main; main()",
            "reference",
            "show",
            "--list",
            "procedural_roles",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        json.loads(done.stdout)
        == api.client.get("/v1/reference", params={"list": "procedural_roles"}).json()
    )
    bad = subprocess.run(
        [
            sys.executable,
            "-c",
            "from infra.cli import main; main()",
            "reference",
            "show",
            "--list",
            "PROSECUTION",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert bad.returncode == 2 and "stages" in bad.stderr


def test_rules_beyond_the_schema_are_documented_on_the_422(spec: dict[str, Any]) -> None:
    def described(path: str, method: str = "get") -> str:
        operation = spec["paths"][path][method]
        texts = [operation["responses"]["422"]["description"]]
        texts += [p.get("description", "") for p in operation.get("parameters", ())]
        return " ".join(texts)

    assert re.search(r"version.*event_id", described("/v1/log/proofs/inclusion"))
    assert "year" in described("/v1/reports/{province}") and "`from`" in described(
        "/v1/reports/{province}"
    )
    for path in ("/v1/stats/agency-counts", "/v1/stats/compliance", "/v1/stats/overdue"):
        assert "province" in described(path) and "more than one" in described(path)
    assert "lifecycle" in described("/v1/events", "post")
    batch = spec["paths"]["/v1/events/batch"]["post"]["responses"]["200"]["description"]
    assert "every item is rejected" in batch


def test_period_days_are_a_pattern_the_server_holds_to(api: Api, spec: dict[str, Any]) -> None:
    parameter = next(
        p for p in spec["paths"]["/v1/stats/compliance"]["get"]["parameters"] if p["name"] == "from"
    )
    for day, accepted in (
        ("2026-01-01", True),
        ("2000-01-01", True),
        ("1999-12-31", False),
        ("2026-01-01T00:00:00", False),
        ("1767225600", False),
    ):
        assert _valid(parameter["schema"], day) is accepted, day
        response = api.client.get(
            "/v1/stats/compliance",
            params={"from": day},
            headers=auth(api.token("inspector", provinces=["LSN"])),
        )
        assert (response.status_code == 200) is accepted, (day, response.text)
        if not accepted:
            assert_error_shape(response, 422, "FIELD_INVALID")
