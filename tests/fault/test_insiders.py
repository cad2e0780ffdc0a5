"""Insiders who must not widen their access (issue 12, medium and low items): an agency that
posts a trivial identity block to read a person's identity or to overwrite another agency's
fields; an agency that opens another province's case ids (squatting); parallel and spread
password guesses against the web sign-in; clear personal data in free-text `data` fields; an
out-of-scope poster reading a case's state from the errors it gets.

Each test failed on the code before the fix (docs/fault-suite.md lists each probe and its
result). In-process: the API over a PostgreSQL container (a fresh schema per test), the web
account store on PostgreSQL and on SQLite.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from domain.catalogue import EVENT_TYPES, _check_value, field_specs, normalise_data
from domain.errors import InvalidEventError
from infra.http.app import create_app
from infra.reference_data import load_reference
from infra.web import accounts
from infra.web.accounts import (
    LOCK_FOR,
    MAX_FAILURES,
    SOURCE_FREE,
    PostgresAccountStore,
    SignInError,
    SqliteAccountStore,
)
from tests.e2e.conftest import Api, assert_error_shape, auth
from tests.factories import CENTRE, DOJ, POLICE, PROCURACY, VLG_POLICE, CaseScript
from tests.unit.conftest import FixedClock

pytestmark = [pytest.mark.fault, pytest.mark.postgres]

PURPOSE = {"purpose": "kiểm tra hồ sơ"}
NAME = "Nguyễn Văn An"
REFERENCE = load_reference()


@pytest.fixture
def api(pg_container: Any) -> Iterator[Api]:
    """The API over a PostgreSQL container (a fresh schema), and a way to mint tokens."""
    with TestClient(create_app(pg_container)) as client:
        yield Api(pg_container, client)


def _record(api: Api, *wires: dict[str, Any]) -> None:
    for wire in wires:
        api.container.referrals.record_event(wire)


def _identity(api: Api, case_id: str, token: str) -> Any:
    return api.client.get(f"/v1/cases/{case_id}/identity", params=PURPOSE, headers=auth(token))


# ---------------------------------------------------------------------------- identity
def test_posting_a_trivial_identity_block_does_not_open_the_identity(api: Api) -> None:
    case = CaseScript()
    _record(
        api,
        {**case.notification(), "identity": {"full_name": NAME, "id_number": "012345678901"}},
        *case.full_history()[1:],
    )
    doj = api.token("agency", agency_id=DOJ)
    assert_error_shape(_identity(api, case.case_id, doj), 403, "NOT_AUTHORISED")
    # the oversight body may post its assessment, even with an identity block ...
    wire = case.event(
        "QUALITY_ASSESSED",
        agency=DOJ,
        data={"result": "GOOD"},
        identity={"guardian_relationship": "n/a"},
    )
    posted = api.client.post("/v1/events", json=wire, headers=auth(doj))
    assert posted.status_code == 201, posted.text
    # ... but that gives it no role on the case: still no identity
    assert_error_shape(_identity(api, case.case_id, doj), 403, "NOT_AUTHORISED")


def test_identity_follows_the_holder_and_the_centre_the_request_was_transferred_to(
    api: Api,
) -> None:
    case = CaseScript()
    _record(api, {**case.notification(), "identity": {"full_name": NAME}}, case.request())
    centre = api.token("agency", agency_id=CENTRE)
    procuracy = api.token("agency", agency_id=PROCURACY)
    police = api.token("agency", agency_id=POLICE)
    assert _identity(api, case.case_id, centre).status_code == 403  # not addressed yet
    _record(api, case.transfer())
    seen = _identity(api, case.case_id, centre)  # addressed: no identity block needed
    assert seen.status_code == 200, seen.text
    assert seen.json()["identity"] == {"full_name": NAME}
    _record(
        api,
        case.event("CASE_TRANSFERRED", data={"to_agency_id": PROCURACY, "to_stage": "INDICTMENT"}),
    )
    assert _identity(api, case.case_id, procuracy).status_code == 200  # the new holder
    assert _identity(api, case.case_id, police).status_code == 403  # no longer holds it


def test_a_later_block_of_another_agency_never_overwrites_a_field(api: Api) -> None:
    case = CaseScript()
    _record(
        api,
        {**case.notification(), "identity": {"full_name": NAME, "phone": "0912345678"}},
        case.request(),
        case.transfer(),
    )
    centre = api.token("agency", agency_id=CENTRE)
    wire = case.accept(identity={"full_name": "Người Khác", "address": "Lạng Sơn"})
    assert api.client.post("/v1/events", json=wire, headers=auth(centre)).status_code == 201
    body = _identity(api, case.case_id, api.token("agency", agency_id=POLICE)).json()
    assert body["identity"] == {"full_name": NAME, "phone": "0912345678", "address": "Lạng Sơn"}
    assert body["authors"]["full_name"] == {"agency_id": POLICE, "version": 1}
    assert body["authors"]["address"] == {"agency_id": CENTRE, "version": 4}
    assert body["other_versions"] == [
        {"field": "full_name", "value": "Người Khác", "agency_id": CENTRE, "version": 4}
    ]


# ------------------------------------------------------------------------------ squatting
@pytest.mark.parametrize(
    "case_id", ["LSN-2026-000123", "VV-LSN-2026-0000042", "X-2026-1", "2026-000123"]
)
def test_an_agency_cannot_open_a_case_id_of_another_provinces_numbering(
    api: Api, case_id: str
) -> None:
    squatter = api.token("agency", agency_id=VLG_POLICE)
    wire = {**CaseScript(case_id=case_id, holder=VLG_POLICE).notification()}
    body = assert_error_shape(
        api.client.post("/v1/events", json=wire, headers=auth(squatter)),
        422,
        "CASE_ID_OTHER_PROVINCE",
    )
    assert body["field"] == "case_id" and "VLG" in body["message"]
    assert "mã tỉnh" in body["message"] and "province code" in body["message_en"]
    if "LSN" in case_id:  # the rightful agency can still open it
        rightful = CaseScript(case_id=case_id, holder=POLICE).notification()
        answer = api.client.post(
            "/v1/events", json=rightful, headers=auth(api.token("agency", agency_id=POLICE))
        )
        assert answer.status_code == 201, answer.text


# ------------------------------------------------------------------------------- sign-in
@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    monkeypatch.setattr(accounts, "SCRYPT_N", 2**12)  # the counting is tested, not the cost
    if request.param == "sqlite":
        made: Any = SqliteAccountStore(tmp_path / "web.sqlite")
    else:
        container = request.getfixturevalue("pg_container")
        made = PostgresAccountStore(container.pg_pool)
    made.create_account("thanhtra", "mat-khau-dung-1", "inspector", "Thanh tra", provinces=["LSN"])
    yield made
    made.close()


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stored hashes a password was checked against (each one a scrypt evaluation)."""
    seen: list[str] = []
    real = accounts.verify_password
    lock = threading.Lock()

    def counting(password: str, stored: str) -> bool:
        with lock:
            seen.append(stored)
        return real(password, stored)

    monkeypatch.setattr(accounts, "verify_password", counting)
    return seen


def test_parallel_wrong_guesses_never_exceed_the_limit_nor_sign_in(
    store: Any, checks: list[str]
) -> None:
    def guess(n: int) -> bool:
        try:
            store.authenticate("thanhtra", f"sai-mat-khau-{n}", source=f"198.51.100.{n % 200}")
        except SignInError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        signed_in = list(pool.map(guess, range(64), timeout=120))
    assert not any(signed_in)
    assert len(checks) <= MAX_FAILURES, len(checks)
    with pytest.raises(SignInError):  # held back now, even with the right password
        store.authenticate("thanhtra", "mat-khau-dung-1", source="198.51.100.250")


def test_unknown_usernames_are_throttled_like_known_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[str]
) -> None:
    monkeypatch.setattr(accounts, "SCRYPT_N", 2**12)
    clock = FixedClock(datetime(2026, 3, 3, 2, 0, tzinfo=timezone.utc))
    store = SqliteAccountStore(tmp_path / "web.sqlite", clock=clock)
    store.create_account("thanhtra", "mat-khau-dung-1", "inspector", "Thanh tra", provinces=["LSN"])
    evaluated = {}
    for name in ("thanhtra", "khong-co-ai"):
        checks.clear()
        for n in range(MAX_FAILURES + 5):
            with pytest.raises(SignInError):
                store.authenticate(name, f"sai-mat-khau-{n}", source=f"192.0.2.{n}")
        evaluated[name] = len(checks)
    assert evaluated == {"thanhtra": MAX_FAILURES, "khong-co-ai": MAX_FAILURES}
    # and a clerk is never held back for long: at most LOCK_FOR after the last guess
    clock.advance(LOCK_FOR + timedelta(seconds=1))
    assert store.authenticate("thanhtra", "mat-khau-dung-1").username == "thanhtra"
    store.close()


def test_one_source_spreading_guesses_over_usernames_is_held_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, checks: list[str]
) -> None:
    monkeypatch.setattr(accounts, "SCRYPT_N", 2**12)
    store = SqliteAccountStore(tmp_path / "web.sqlite")
    for n in range(SOURCE_FREE + 10):
        with pytest.raises(SignInError):
            store.authenticate(f"ten-{n}", "sai-mat-khau", source="203.0.113.9")
    assert len(checks) == SOURCE_FREE
    with pytest.raises(SignInError):
        store.authenticate("ten-khac", "sai-mat-khau", source="203.0.113.10")
    assert len(checks) == SOURCE_FREE + 1  # another source is not held back
    store.close()


def test_old_scrypt_hashes_still_verify_and_are_rehashed_at_sign_in(tmp_path: Path) -> None:
    assert (accounts.SCRYPT_N, accounts.SCRYPT_R, accounts.SCRYPT_P) == (2**17, 8, 1)  # OWASP
    store = SqliteAccountStore(tmp_path / "web.sqlite")
    store.create_account("thanhtra", "mat-khau-dung-1", "inspector", "Thanh tra", provinces=["LSN"])
    salt = secrets.token_bytes(16)
    old = "$".join(
        (
            "scrypt",
            "16384",
            "8",
            "1",
            base64.b64encode(salt).decode(),
            base64.b64encode(
                hashlib.scrypt(b"mat-khau-dung-1", salt=salt, n=2**14, r=8, p=1, dklen=32)
            ).decode(),
        )
    )
    with store._cursor() as cur:  # an account from before the change
        cur.execute("UPDATE web_accounts SET password_hash = ? WHERE username = 'thanhtra'", (old,))
    assert store.authenticate("thanhtra", "mat-khau-dung-1").username == "thanhtra"
    with store._cursor() as cur:
        cur.execute("SELECT password_hash FROM web_accounts WHERE username = 'thanhtra'")
        (stored,) = cur.fetchone()
    assert stored.startswith("scrypt$131072$8$1$")
    assert store.authenticate("thanhtra", "mat-khau-dung-1").username == "thanhtra"
    store.close()


# ----------------------------------------------------------------------------- free text
FREE_TEXT = sorted(
    {
        (wire_type, name)
        for wire_type in EVENT_TYPES
        for name, spec in field_specs(wire_type).items()
        if spec.kind == "text"
    }
)


def test_every_free_text_field_is_one_of_the_eight_references() -> None:
    assert {name for _, name in FREE_TEXT} == {
        "document_ref",
        "official",
        "minutes_ref",
        "logbook_ref",
        "registration_ref",
        "record_ref",
        "provider_id",
        "reviewer",
        "register_ref",  # PROCEDURAL_CONTACT's
        "reason",  # EVENT_CORRECTED's / EVENT_WITHDRAWN's short reason (issue 13)
    }


@pytest.mark.parametrize(("wire_type", "name"), FREE_TEXT)
@pytest.mark.parametrize("value", [NAME, "NguyenVanAn", "ông An 0912345678"])
def test_a_name_in_a_free_text_field_is_refused(wire_type: str, name: str, value: str) -> None:
    spec = field_specs(wire_type)[name]
    with pytest.raises(InvalidEventError) as caught:  # the field's own check (others required)
        _check_value(spec, value, f"data.{name}", REFERENCE)
    assert caught.value.code == "REFERENCE_FORMAT_INVALID"
    assert caught.value.field == f"data.{name}"
    assert "identity" in caught.value.message_vi and "họ tên" in caught.value.message_vi


@pytest.mark.parametrize("value", ["123/BB-CSĐT", "01-TP-TGPL/2026/15", "CB-0042", "tgv-001"])
def test_reference_numbers_are_accepted(value: str) -> None:
    assert normalise_data(
        "NOTIFICATION_ISSUED", {"document_ref": value, "official": value}, REFERENCE
    ) == {"document_ref": value, "official": value}


def test_a_name_posted_in_document_ref_never_reaches_the_log(api: Api) -> None:
    case = CaseScript()
    wire = case.notification(document_ref=NAME)
    body = assert_error_shape(
        api.client.post(
            "/v1/events", json=wire, headers=auth(api.token("agency", agency_id=POLICE))
        ),
        422,
        "REFERENCE_FORMAT_INVALID",
    )
    assert body["field"] == "data.document_ref"
    assert (
        api.client.get(
            f"/v1/cases/{case.case_id}", headers=auth(api.token("inspector", provinces=["LSN"]))
        ).status_code
        == 404
    )


# ---------------------------------------------------------------------- scope comes first
def test_an_out_of_scope_poster_learns_nothing_of_the_case_state(api: Api) -> None:
    case = CaseScript()
    first = case.notification()
    _record(api, first, case.request(), case.transfer())
    state = api.container.referrals.get_case(case.case_id)
    last = state.last_occurred_at.isoformat()
    probes = {
        "stale version": case.event("AID_REQUESTED", expected_version=1),
        "earlier than the last event": case.event(
            "AID_REQUESTED", occurred_at="2026-03-03T08:00:00+07:00"
        ),
        "reused event id": {**case.event("AID_REQUESTED"), "event_id": first["event_id"]},
        "out of order": case.event("CASE_CLOSED", data={"close_reason": "COMPLETED"}),
        "identity": case.event(
            "AID_REQUESTED", identity={"full_name": NAME}, data={"person_id": case.person_id}
        ),
    }
    # ADR 0008 (was 422 for PROCURACY too): an agency of the case's province with no part yet
    # may become the holder by a late transfer, so what needs no case state is held; what
    # would need it (a version to expect, a reused event id, an identity block) gets the
    # scope answer. Either way the answer is the same whatever the case's state.
    needs_state = {"stale version", "reused event id", "identity"}
    held = 0
    for agency in (VLG_POLICE, PROCURACY):  # another province; the province but no part
        token = api.token("agency", agency_id=agency)
        answers = set()
        for what, wire in probes.items():
            response = api.client.post(
                "/v1/events", json={**wire, "agency_id": agency}, headers=auth(token)
            )
            if agency == PROCURACY and what not in needs_state:
                assert response.status_code == 202, (what, response.text)
                body = response.json()["awaiting"]
                held += 1
            else:
                body = assert_error_shape(response, 422, "AGENCY_NOT_HOLDER")
                body["code"] = body["reason"] = "AGENCY_NOT_HOLDER"
            text = body["message"] + body["message_en"]
            assert str(state.version) not in text and last[:16] not in text, what
            assert POLICE not in text, what
            answers.add((body.get("reason"), body["message"], body["message_en"]))
        assert len(answers) == 1, answers
    state_now = api.container.referrals.get_case(case.case_id)
    assert state_now.version == state.version + held  # recorded, held: nothing took effect
    assert (state_now.status, state_now.last_occurred_at) == (state.status, state.last_occurred_at)
    assert all(h["reason"] == "AGENCY_NOT_HOLDER" for h in state_now.held.values())


def test_an_out_of_scope_poster_does_not_learn_that_a_person_was_erased(api: Api) -> None:
    case = CaseScript()
    _record(api, {**case.notification(), "identity": {"full_name": NAME}})
    api.container.referrals.erase_person(
        case.person_id, "REQUEST_OF_PERSON", "PDPL 2025", "admin-1"
    )
    wire = case.event(
        "AID_REQUESTED",
        agency=VLG_POLICE,
        identity={"full_name": NAME},
        data={"person_id": case.person_id},
    )
    response = api.client.post(
        "/v1/events", json=wire, headers=auth(api.token("agency", agency_id=VLG_POLICE))
    )
    assert_error_shape(response, 422, "AGENCY_NOT_HOLDER")


def test_a_case_from_a_snapshot_without_touched_still_knows_its_posters(api: Api) -> None:
    case = CaseScript()
    _record(api, case.notification(), case.request(), case.transfer())
    app = api.container.referrals
    first, *rest = app.case_history(case.case_id)
    referral = first.mutate(None)
    del referral.__dict__["touched"]  # as restored from a snapshot taken before the field
    assert referral.posters_in_scope() == {POLICE}
    for event in rest:
        referral = event.mutate(referral)
    assert referral.posters_in_scope() == {POLICE, CENTRE}
    referral.check_poster_in_scope(CENTRE, app.reference, "REQUEST_ACCEPTED")
