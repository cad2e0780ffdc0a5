"""Every operation of the OpenAPI document, called by parties who must get nothing: no token,
an expired token, a revoked token (revoked with `referrals token revoke`), another agency's
token and an inspector of another province. Against a `referrals serve` subprocess.

The operations are read from the running service's `/openapi.json` (paths × methods), so a
route added later is covered without editing this file; path parameters get a real case id
(`case_id`), its province (`province`) or a real tree size (`size`).

Proves: without a valid token every secured operation answers 401 NOT_AUTHENTICATED with
`WWW-Authenticate: Bearer`; out-of-scope principals get 403 NOT_AUTHORISED, except where the
API answers otherwise on purpose (listed in OUT_OF_SCOPE: searches and the access log are
filtered to the token's scope, a batch is answered item by item); the API does not hide
existence (an out-of-scope case is 403, an unknown one 404); the operations without
`security` are exactly the public ones (health, readiness, the transparency log's key,
checkpoints and consistency proofs, witness cosignatures). And none of it leaves a trace: the
event store, the audit trail, the personal-data access log, the tokens and the cosignatures
hold exactly what they held before.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from infra.bootstrap import build_container
from tests.e2e.conftest import (
    LiveServer,
    auth,
    live_server,
    mint_token,
    new_case_id,
    now,
    opening,
    request_aid,
    transfer,
)
from tests.fault.support import assert_error_body, cli, cli_token, cli_token_id, table_count

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]

POLICE = "lsn-police-investigation"
OTHER_AGENCY = "vlg-police-investigation"
PUBLIC = {
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/v1/log/public-key"),
    ("get", "/v1/log/checkpoint"),
    ("get", "/v1/log/checkpoints/{size}"),
    ("post", "/v1/log/checkpoints/{size}/cosignatures"),
    ("get", "/v1/log/proofs/consistency"),
    ("get", "/v1/reference"),  # the law's code lists (issue 15): nobody's data
}
UNAUTHENTICATED = ("none", "expired", "revoked", "malformed")
OUT_OF_SCOPE_PRINCIPALS = ("other_agency", "other_inspector")
# (principal, method, path) -> what the API answers on purpose instead of 403
OUT_OF_SCOPE: dict[tuple[str, str, str], str] = {
    ("other_agency", "post", "/v1/events/batch"): "batch item NOT_AUTHORISED",
    ("other_agency", "get", "/v1/cases"): "200 without the case",
    ("other_inspector", "get", "/v1/cases"): "200 without the case",
    ("other_inspector", "get", "/v1/access-log"): "200 without the case",
    # positions and lag of the views, no case data: every inspector and council may see it
    ("other_inspector", "get", "/v1/projections/status"): "200 without the case",
    # quarantined events of the views, filtered to the principal's provinces (issue 12)
    ("other_inspector", "get", "/v1/projections/quarantine"): "200 without the case",
    # the law's recorded reference versions (issue 14): nobody's data, any signed-in principal
    ("other_agency", "get", "/v1/reference/versions"): "200: the law's data",
    ("other_agency", "get", "/v1/reference/versions/history"): "200: the law's data",
    ("other_agency", "get", "/v1/reference/versions/{ref}"): "200: the law's data",
    ("other_inspector", "get", "/v1/reference/versions"): "200: the law's data",
    ("other_inspector", "get", "/v1/reference/versions/history"): "200: the law's data",
    ("other_inspector", "get", "/v1/reference/versions/{ref}"): "200: the law's data",
    # held events (issue 13): each principal sees its own agency's / provinces' only
    ("other_agency", "get", "/v1/held-events"): "200 without the case",
    ("other_inspector", "get", "/v1/held-events"): "200 without the case",
}
TRACE_TABLES = (
    "referrals_events",
    "audit_trail",
    "personal_data_access_log",
    "api_tokens",
    "audit_trail_cosignatures",
    "audit_trail_checkpoints",
)


@dataclass
class World:
    server: LiveServer
    case_id: str
    size: int
    headers: dict[str, dict[str, str]]


def _process_projections(server: LiveServer) -> None:
    """Brings the views (case index, audit trail) up to date, as the worker would."""
    container = build_container(server.settings)
    try:
        container.projections.process_pending()
    finally:
        container.close()


@pytest.fixture(scope="module")
def world(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with live_server(pg_database, tmp_path_factory.mktemp("access")) as server:
        settings = server.settings
        police = mint_token(settings, "agency", agency_id=POLICE)
        inspector = mint_token(settings, "inspector", provinces=["LSN"])
        case_id = new_case_id()
        t = now() - timedelta(hours=3)
        with httpx.Client(base_url=server.base_url, headers=auth(police), timeout=15) as http:
            for event in (
                opening(case_id, t),
                request_aid(case_id, t + timedelta(minutes=5)),
                transfer(case_id, t + timedelta(minutes=10)),
            ):
                assert http.post("/v1/events", json=event).status_code == 201
        with httpx.Client(base_url=server.base_url, headers=auth(inspector), timeout=15) as http:
            read = http.get(f"/v1/cases/{case_id}/identity", params={"purpose": "thanh tra"})
            assert read.status_code == 200, read.text  # the access log holds one entry
        _process_projections(server)
        checkpoint = cli(settings, "checkpoint", timeout=60)
        assert checkpoint.returncode == 0, checkpoint.stderr.decode(errors="replace")

        revoked = cli_token(settings, "agency", "--agency", POLICE)
        done = cli(settings, "token", "revoke", cli_token_id(settings, revoked), timeout=60)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        expired = mint_token(
            settings,
            "inspector",
            provinces=["LSN"],
            expires_at=datetime.now(timezone.utc) - timedelta(seconds=1),
        )
        headers = {
            "none": {},
            "expired": auth(expired),
            "revoked": auth(revoked),
            "malformed": auth("rlt_" + "0" * 12 + "_" + "A" * 43),
            "other_agency": auth(mint_token(settings, "agency", agency_id=OTHER_AGENCY)),
            "other_inspector": auth(mint_token(settings, "inspector", provinces=["VLG"])),
        }
        yield World(server, case_id, table_count(settings, "audit_trail"), headers)


def _operations(world: World) -> list[tuple[str, str, dict[str, Any]]]:
    doc = httpx.get(world.server.base_url + "/openapi.json", timeout=15).json()
    out = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                out.append((method, path, operation))
    return out


def _request(
    world: World, method: str, path: str, operation: dict[str, Any]
) -> tuple[str, dict[str, Any], Any]:
    """The URL, query and JSON body of a well-formed call of one operation on the real case."""
    values = {
        "case_id": world.case_id,
        "province": "LSN",
        "size": world.size,
        "report_id": "lsn-report-unknown",
        "ref": "holidays/2026",
    }
    url = path
    for name, value in values.items():
        url = url.replace("{" + name + "}", str(value))
    assert "{" not in url, f"no value for a path parameter of {path}"
    fill = {
        "at": now().isoformat(),
        "purpose": "kiểm tra hồ sơ",
        "case_id": world.case_id,
        "version": 1,
        "old": 0,
        "year": now().year,
        "province": "LSN",
    }
    query = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and parameter["name"] in fill:
            query[parameter["name"]] = fill[parameter["name"]]
        elif parameter["in"] == "query" and parameter.get("required"):
            raise AssertionError(f"no value for required {parameter['name']} of {path}")
    body: Any = None
    if method == "post":
        event = {
            "event_id": f"{world.case_id}-intruder",
            "case_id": world.case_id,
            "type": "CASE_CLOSED",
            "agency_id": POLICE,
            "occurred_at": now().isoformat(),
            "data": {"close_reason": "OTHER"},
        }
        body = {"events": [event]} if path.endswith("/batch") else event
    return url, query, body


def _traces(world: World) -> dict[str, int]:
    return {table: table_count(world.server.settings, table) for table in TRACE_TABLES}


def test_every_operation_refuses_whoever_has_no_valid_token_or_no_scope(world: World) -> None:
    operations = _operations(world)
    public = {(m, p) for m, p, op in operations if not op.get("security")}
    assert public == PUBLIC, "operations without `security` must be exactly the public ones"
    secured = [(m, p, op) for m, p, op in operations if op.get("security")]
    assert len(secured) >= 15
    before = _traces(world)
    seen: dict[tuple[str, str, str], int] = {}
    with httpx.Client(base_url=world.server.base_url, timeout=30) as http:
        for method, path, operation in secured:
            url, query, body = _request(world, method, path, operation)
            for principal in (*UNAUTHENTICATED, *OUT_OF_SCOPE_PRINCIPALS):
                response = http.request(
                    method, url, params=query, json=body, headers=world.headers[principal]
                )
                seen[(principal, method, path)] = response.status_code
                where = (
                    f"{principal} {method.upper()} {url}: {response.status_code} "
                    f"{response.text[:300]}"
                )
                expected = OUT_OF_SCOPE.get((principal, method, path))
                if principal in UNAUTHENTICATED:
                    assert response.status_code == 401, where
                    assert assert_error_body(response)["code"] == "NOT_AUTHENTICATED", where
                    assert response.headers["www-authenticate"] == "Bearer", where
                elif expected is None:
                    assert response.status_code == 403, where
                    assert assert_error_body(response)["code"] == "NOT_AUTHORISED", where
                elif expected == "batch item NOT_AUTHORISED":
                    assert response.status_code == 200, where
                    answer = response.json()
                    assert (answer["recorded"], answer["rejected"]) == (0, 1), where
                    assert answer["items"][0]["error"]["code"] == "NOT_AUTHORISED", where
                else:
                    assert response.status_code == 200, where
                    assert world.case_id not in response.text, where
    _process_projections(world.server)
    assert _traces(world) == before
    assert len(seen) == len(secured) * 6


def test_out_of_scope_case_is_forbidden_while_an_unknown_case_is_not_found(world: World) -> None:
    """The API tells 'not yours' (403) from 'no such case' (404): it does not hide existence
    of a case id from an authenticated principal of another scope."""
    with httpx.Client(base_url=world.server.base_url, timeout=15) as http:
        for principal in OUT_OF_SCOPE_PRINCIPALS:
            headers = world.headers[principal]
            mine = http.get(f"/v1/cases/{world.case_id}", headers=headers)
            unknown = http.get(f"/v1/cases/{new_case_id()}", headers=headers)
            assert (mine.status_code, unknown.status_code) == (403, 404), principal
            assert assert_error_body(unknown)["code"] == "CASE_NOT_FOUND"


def test_public_operations_record_nothing_for_anyone(world: World) -> None:
    """The one public write (a witness cosignature) refuses a line no configured witness
    signed, and stores nothing; the public reads reveal no case data."""
    before = _traces(world)
    with httpx.Client(base_url=world.server.base_url, timeout=15) as http:
        forged = http.post(
            f"/v1/log/checkpoints/{world.size}/cosignatures",
            content="— witness.example/w1 AAAAAAAAAAAA\n".encode(),
            headers={"Content-Type": "text/plain"},
        )
        assert forged.status_code in (404, 422), forged.text
        assert_error_body(forged)
        for path in (
            "/v1/log/public-key",
            "/v1/log/checkpoint",
            f"/v1/log/checkpoints/{world.size}",
            "/v1/log/proofs/consistency?old=0",
        ):
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.text)
            assert world.case_id not in answer.text and "Nguyễn" not in answer.text
    assert _traces(world) == before


def test_a_token_revoked_while_in_use_is_refused_within_the_cache_window(world: World) -> None:
    """A running server keeps recently seen tokens for 5 s (infra/tokens.py): revocation
    takes effect within that window, never later, and nothing is recorded after it."""
    settings = world.server.settings
    secret = cli_token(settings, "inspector", "--province", "LSN")
    with httpx.Client(base_url=world.server.base_url, headers=auth(secret), timeout=15) as http:
        assert http.get(f"/v1/cases/{world.case_id}").status_code == 200  # now cached
        done = cli(settings, "token", "revoke", cli_token_id(settings, secret), timeout=60)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        revoked_at = time.monotonic()
        for _ in range(100):
            answer = http.get(f"/v1/cases/{world.case_id}")
            if answer.status_code == 401:
                break
            assert answer.status_code == 200, answer.text
            time.sleep(0.1)
        assert answer.status_code == 401, "still accepted after 10 s"
        assert time.monotonic() - revoked_at <= 5.0 + 1.0
        assert assert_error_body(answer)["code"] == "NOT_AUTHENTICATED"
