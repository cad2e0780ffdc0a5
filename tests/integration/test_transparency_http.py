"""The transparency routes through the API over real PostgreSQL: public checkpoints and keys,
witness cosignatures verified before they are stored, token-scoped proofs and case bundles."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.bootstrap import build_container
from infra.reference_data import load_calendar, load_time_limits
from infra.transparency.service import transparency_log
from services.transparency.bundle import unb64, verify_bundle
from services.transparency.checkpoint import generate_cosigner
from services.transparency.merkle import verify_consistency, verify_inclusion
from services.transparency.note import open_note, verifier_from_key_text
from tests.conftest import make_pg_settings
from tests.integration.test_audit_trail import record_cases
from tests.integration.test_transparency_witness import transparency_app

pytestmark = pytest.mark.postgres

WITNESS = generate_cosigner("vks-lang-son.example/witness")

# a case bundle is recomputed with the shipped rules and calendar (as `verify-bundle` does)
SHIPPED_TABLES = {"rules": load_time_limits(), "calendar": load_calendar()}


@pytest.fixture
def ledger(pg_database: str, pg_schema: str, tmp_path: Any) -> Any:
    settings = make_pg_settings(
        pg_database, pg_schema, tmp_path, log_witness_keys=WITNESS.verifier().key_text
    )
    container = build_container(settings)
    with TestClient(transparency_app(container)) as client:
        yield container, client
    container.close()


def _token(container: Any, role: str, **kwargs: Any) -> dict[str, str]:
    secret, _ = container.tokens.create(role, role, reference=container.reference, **kwargs)
    return {"Authorization": f"Bearer {secret}"}


def test_checkpoints_and_public_key_are_public_and_cosignatures_are_verified_first(
    ledger: Any,
) -> None:
    container, client = ledger
    record_cases(container.referrals, 1)
    key = client.get("/v1/log/public-key").text.strip()
    verifier = verifier_from_key_text(key)
    latest = client.get("/v1/log/checkpoint")
    assert latest.status_code == 200 and latest.headers["content-type"].startswith("text/plain")
    body, _ = open_note(latest.text, [verifier])
    assert body.split("\n")[:2] == [container.settings.log_origin, "7"]
    assert body.split("\n")[3].startswith("chain-head ")
    assert client.get("/v1/log/checkpoints/7").text == latest.text
    missing = client.get("/v1/log/checkpoints/6")
    assert missing.status_code == 404 and missing.json()["code"] == "CHECKPOINT_NOT_FOUND"

    line = WITNESS.cosign(body, 1_750_000_000)
    posted = client.post(
        "/v1/log/checkpoints/7/cosignatures", content=line, headers={"Content-Type": "text/plain"}
    )
    assert posted.status_code == 201 and posted.text == latest.text + line
    assert client.get("/v1/log/checkpoint").text == latest.text + line
    stranger = generate_cosigner("stranger.example/witness").cosign(body, 1_750_000_000)
    for bad in (stranger, "— not a line", line.replace(line.split()[-1][:8], "AAAAAAAA")):
        refused = client.post(
            "/v1/log/checkpoints/7/cosignatures",
            content=bad,
            headers={"Content-Type": "text/plain"},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "COSIGNATURE_REJECTED"


def test_inclusion_proofs_and_bundles_follow_case_access_rules(ledger: Any) -> None:
    container, client = ledger
    [case] = record_cases(container.referrals, 1)
    transparency_log(container).catch_up()
    url = f"/v1/log/proofs/inclusion?case_id={case.case_id}&version=4"
    assert client.get(url).status_code == 401
    assert (
        client.get(
            url, headers=_token(container, "agency", agency_id="vlg-police-investigation")
        ).status_code
        == 403
    )
    assert (
        client.get(url, headers=_token(container, "inspector", provinces=["VLG"])).status_code
        == 403
    )
    for headers in (
        _token(container, "agency", agency_id="lsn-centre"),
        _token(container, "inspector", provinces=["LSN"]),
        _token(container, "council", provinces=["LSN"]),
        _token(container, "admin"),
    ):
        answer = client.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
    proof = answer.json()
    assert (proof["leaf_index"], proof["tree_size"]) == (3, 7)
    assert verify_inclusion(
        unb64(proof["leaf_hash"]), 3, 7, [unb64(h) for h in proof["proof"]], unb64(proof["root"])
    )
    by_event = client.get(
        f"/v1/log/proofs/inclusion?case_id={case.case_id}&event_id={case.case_id}-004",
        headers=headers,
    ).json()
    assert by_event == proof
    neither = client.get(f"/v1/log/proofs/inclusion?case_id={case.case_id}", headers=headers)
    assert neither.status_code == 422
    unknown = client.get(
        "/v1/log/proofs/inclusion?case_id=LSN-NOPE&version=1", headers=_token(container, "admin")
    )
    assert unknown.status_code == 404

    record_cases(container.referrals, 1)
    transparency_log(container).catch_up()
    transparency_log(container).publish_checkpoint()
    consistency = client.get("/v1/log/proofs/consistency?old=7").json()
    assert consistency["new_size"] == 14
    assert verify_consistency(
        7,
        14,
        unb64(consistency["old_root"]),
        unb64(consistency["new_root"]),
        [unb64(h) for h in consistency["proof"]],
    )
    assert client.get("/v1/log/proofs/consistency?old=15").status_code == 404

    bundle_url = f"/v1/cases/{case.case_id}/bundle?since=7"
    assert client.get(bundle_url).status_code == 401
    bundle = client.get(bundle_url, headers=_token(container, "inspector", provinces=["LSN"]))
    assert bundle.status_code == 200, bundle.text
    document = bundle.json()
    assert [c["old_size"] for c in document["consistency"]] == [7]
    key = client.get("/v1/log/public-key").text.strip()
    assert verify_bundle(document, key, **SHIPPED_TABLES).ok
    naive = client.get(bundle_url + "&at=2026-03-10T00:00:00", headers=_token(container, "admin"))
    assert naive.status_code == 422
