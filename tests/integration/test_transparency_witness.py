"""Witnesses and receipts against a real PostgreSQL log: a witness cosigns consistent growth and
refuses the checkpoint of a rewritten log; a receipt issued before the rewrite stops verifying."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from infra.bootstrap import build_container
from infra.cli.transparency import register
from infra.http.app import create_app
from infra.reference_data import load_calendar, load_reference, load_time_limits
from infra.transparency.service import (
    LogForkError,
    receipt_for,
    receipts_for,
    transparency_log,
)
from infra.transparency.witness import RefusalReason, Witness, WitnessRefusal
from services.transparency.bundle import unb64, verify_bundle
from services.transparency.checkpoint import Checkpoint, generate_cosigner
from services.transparency.leaves import chain_extension
from services.transparency.note import sign_note
from services.transparency.receipt import check_receipt_against_checkpoint
from tests.conftest import make_pg_settings
from tests.factories import CaseScript
from tests.integration.test_audit_trail import cli_env, record_cases, sql

pytestmark = pytest.mark.postgres

# a case bundle is recomputed with the shipped rules and calendar (as `verify-bundle` does)
SHIPPED_TABLES = {
    "rules": load_time_limits(),
    "calendar": load_calendar(),
    "reference": load_reference(),
}


def transparency_app(container: Any) -> FastAPI:
    """The API with the transparency router placed before the cases router (as the lead will)."""
    from infra.http.routes.log import router

    app = create_app(container)
    count = len(app.router.routes)
    app.include_router(router)
    mine = app.router.routes[count:]
    del app.router.routes[count:]
    app.router.routes[0:0] = mine
    return app


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """A real uvicorn on a free loopback port, in a thread."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def _proof(answer: dict[str, Any]) -> list[bytes]:
    return [unb64(h) for h in answer["proof"]]


def test_witness_cosigns_growth_and_refuses_a_rewritten_log_whose_receipts_stop_verifying(
    pg_container: Any, pg_settings: Any, tmp_path: Path
) -> None:
    app = pg_container.referrals
    log = transparency_log(pg_container)
    trusted = [log.signer.verifier()]
    record_cases(app, 2)
    case = CaseScript()
    opening = case.notification()
    recorded = app.record_event(opening)
    receipt = receipt_for(pg_container, recorded)  # at post time, before the audit trail ran
    assert f"\nposition {recorded.position}\n" in receipt

    log.catch_up()
    assert receipt_for(pg_container, app.record_event(opening)) == receipt  # a retry's receipt
    first = log.publish_checkpoint()
    cosigner = generate_cosigner("vks-lang-son.example/witness")
    witness = Witness(cosigner.name, cosigner, log.public_key, tmp_path / "witness.json")
    witness.cosign(first.note, [])  # trust on first use
    record_cases(app, 1)
    log.catch_up()
    second = log.publish_checkpoint()
    line = witness.cosign(second.note, _proof(log.consistency(first.size, second.size)))
    assert line.startswith("— vks-lang-son.example/witness ")

    answer = log.inclusion(case.case_id, 1)
    assert answer["tree_size"] == second.size and answer["position"] == recorded.position
    assert check_receipt_against_checkpoint(
        receipt, answer["checkpoint"], answer["leaf_index"], _proof(answer), trusted
    )
    cli = typer.Typer()
    register(cli)
    receipt_file = _write(tmp_path / "receipt.txt", receipt)
    checked = CliRunner().invoke(
        cli,
        [
            "verify-receipt",
            str(receipt_file),
            "--log-key",
            log.public_key,
            "--proof",
            str(_write(tmp_path / "inclusion.json", json.dumps(answer))),
        ],
    )
    assert checked.exit_code == 0 and "VALID: event" in checked.stdout, checked.output

    # the operator rewrites the receipt's event, rebuilds the audit trail, and the log grows
    sql(
        pg_settings,
        "UPDATE referrals_events SET state = convert_to(replace(convert_from("
        "state, 'UTF8'), 'POOR_HOUSEHOLD', 'HIV'), 'UTF8') "
        "WHERE notification_id = %s",
        (recorded.position,),
    )
    pg_container.projections.rebuild(names=["audit_trail"])
    record_cases(app, 1)
    log.catch_up()
    with pytest.raises(LogForkError):  # the stored checkpoint keeps the old root
        log.publish_checkpoint(second.size)
    rewritten = log.publish_checkpoint()  # signed over the rewritten tree
    with pytest.raises(WitnessRefusal) as refusal:
        witness.cosign(rewritten.note, _proof(log.consistency(second.size, rewritten.size)))
    assert refusal.value.reason is RefusalReason.INCONSISTENT
    assert witness.state().size == second.size  # type: ignore[union-attr]

    fork = sign_note(
        Checkpoint(
            log.origin,
            second.size,
            log.view.root(second.size),
            (chain_extension(log.view.tree_head(second.size).chain_hash),),
        ).body(),
        log.signer,
    )
    with pytest.raises(WitnessRefusal) as refusal:
        witness.cosign(fork, [])
    assert refusal.value.reason is RefusalReason.SAME_SIZE_DIFFERENT_ROOT

    answer = log.inclusion(case.case_id, 1)
    assert answer["checkpoint"] == rewritten.cosigned_note
    assert not check_receipt_against_checkpoint(
        receipt, answer["checkpoint"], answer["leaf_index"], _proof(answer), trusted
    )
    broken = CliRunner().invoke(
        cli,
        [
            "verify-receipt",
            str(receipt_file),
            "--log-key",
            log.public_key,
            "--proof",
            str(_write(tmp_path / "inclusion.json", json.dumps(answer))),
        ],
    )
    assert broken.exit_code == 1 and "INVALID: the log did not keep" in broken.stdout


def test_witness_command_cosigns_over_http_and_the_ledger_keeps_the_cosignature(
    pg_database: str, pg_schema: str, tmp_path: Path
) -> None:
    cli = typer.Typer()
    register(cli)
    runner = CliRunner()
    key_file = tmp_path / "witness.key"
    made = runner.invoke(
        cli, ["witness", "keygen", "vks-lang-son.example/witness", "-o", str(key_file)]
    )
    assert made.exit_code == 0, made.output
    witness_key = made.stdout.strip()
    assert key_file.stat().st_mode & 0o777 == 0o600

    settings = make_pg_settings(pg_database, pg_schema, tmp_path, log_witness_keys=witness_key)
    container = build_container(settings)
    try:
        log = transparency_log(container)
        [case] = record_cases(container.referrals, 1)
        log.catch_up()
        log.publish_checkpoint()
        state = tmp_path / "witness-state.json"
        with serving(transparency_app(container)) as url:
            arguments = [
                "witness",
                "cosign",
                "--log-key",
                log.public_key,
                "--key-file",
                str(key_file),
                "--state",
                str(state),
                "--url",
                url,
            ]
            first = runner.invoke(cli, arguments)
            assert first.exit_code == 0, first.output
            record_cases(container.referrals, 1)
            log.catch_up()
            second = log.publish_checkpoint()
            grown = runner.invoke(cli, arguments)
            assert grown.exit_code == 0, grown.output
            served = httpx.get(f"{url}/v1/log/checkpoint").text
            assert served == second.note + grown.stdout.strip() + "\n"

            bogus = httpx.post(
                f"{url}/v1/log/checkpoints/{second.size}/cosignatures",
                content=first.stdout.strip(),
                headers={"Content-Type": "text/plain"},
            )
            assert bogus.status_code == 422 and bogus.json()["code"] == "COSIGNATURE_REJECTED"

        bundle = log.case_bundle(case.case_id)
        assert verify_bundle(bundle, log.public_key, [witness_key], **SHIPPED_TABLES).ok
        other = generate_cosigner("tand-lang-son.example/witness").verifier().key_text
        report = verify_bundle(bundle, log.public_key, [other], **SHIPPED_TABLES)
        assert not report.ok and "tand-lang-son.example/witness" in report.problems[0][1]

        offline = runner.invoke(
            cli,
            [
                "witness",
                "cosign",
                "--log-key",
                log.public_key,
                "--key-file",
                str(key_file),
                "--state",
                str(state),
                "--checkpoint",
                str(_write(tmp_path / "cp", second.note)),
            ],
        )
        assert offline.exit_code == 0, offline.output  # same size, same root: cosigned again
        line_file = _write(tmp_path / "line.txt", offline.stdout)
        added = runner.invoke(
            cli, ["add-cosignature", str(second.size), str(line_file)], env=cli_env(settings)
        )
        assert added.exit_code == 0, added.output
        assert added.stdout.strip().endswith(offline.stdout.strip())
        refused = runner.invoke(
            cli, ["add-cosignature", "7", str(line_file)], env=cli_env(settings)
        )
        assert refused.exit_code == 3 and "does not verify" in refused.stderr
    finally:
        container.close()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_receipts_for_a_batch_bind_positions_and_verify_against_a_later_checkpoint(
    pg_container: Any,
) -> None:
    from infra.transparency.service import receipts_for
    from services.transparency.receipt import open_receipt

    app = pg_container.referrals
    record_cases(app, 1)
    cases = [CaseScript() for _ in range(3)]
    refused = CaseScript().notification() | {"agency_id": "no-such-agency"}
    results = app.record_batch([c.notification() for c in cases] + [cases[0].request(), refused])
    receipts = receipts_for(pg_container, results)
    assert receipts[-1] is None  # the rejected item (an agency the register does not know)
    results, receipts = results[:-1], receipts[:-1]
    log = transparency_log(pg_container)
    trusted = [log.signer.verifier()]
    promised = [open_receipt(r, trusted) for r in receipts]
    assert [p.position for p in promised] == [r.position for r in results]
    assert [p.event_id for p in promised] == [r.event_id for r in results]
    log.catch_up()
    for result, receipt in zip(results, receipts, strict=True):
        answer = log.inclusion(result.case_id, result.version)
        assert answer["leaf_index"] == answer["position"] - 1  # no gaps in this log
        assert check_receipt_against_checkpoint(
            receipt, answer["checkpoint"], answer["leaf_index"], _proof(answer), trusted
        )
        assert not check_receipt_against_checkpoint(
            receipt, answer["checkpoint"], answer["leaf_index"] + 1, _proof(answer), trusted
        )


def test_a_batch_is_signed_once_and_verify_receipt_checks_both_kinds(
    pg_container: Any,
    tmp_path: Path,
) -> None:
    """Issue 16 / ADR 0011: receipts for a batch share one signature (batch-receipt/v1); a
    single post keeps receipt/v1; `verify-receipt` checks both offline."""
    from services.transparency.receipt import BATCH_RECEIPT_HEADER, RECEIPT_HEADER

    app = pg_container.referrals
    single_case = CaseScript()
    single = receipt_for(pg_container, app.record_event(single_case.notification()))
    assert single.startswith(RECEIPT_HEADER + "\n")
    cases = [CaseScript() for _ in range(5)]
    results = app.record_batch([c.notification() for c in cases])
    receipts = receipts_for(pg_container, results)
    assert all(r.startswith(BATCH_RECEIPT_HEADER + "\n") for r in receipts)
    assert len({r.rsplit("\n— ", 1)[1] for r in receipts}) == 1  # one signature
    log = transparency_log(pg_container)
    log.catch_up()
    cli = typer.Typer()
    register(cli)
    for case, receipt in [(single_case, single), *zip(cases, receipts, strict=True)]:
        answer = log.inclusion(case.case_id, 1)
        checked = CliRunner().invoke(
            cli,
            [
                "verify-receipt",
                str(_write(tmp_path / "receipt.txt", receipt)),
                "--log-key",
                log.public_key,
                "--proof",
                str(_write(tmp_path / "inclusion.json", json.dumps(answer))),
            ],
        )
        assert checked.exit_code == 0 and "VALID: event" in checked.stdout, checked.output
    wrong = dict(log.inclusion(cases[0].case_id, 1), leaf_index=answer["leaf_index"])
    checked = CliRunner().invoke(
        cli,
        [
            "verify-receipt",
            str(_write(tmp_path / "receipt.txt", receipts[0])),
            "--log-key",
            log.public_key,
            "--proof",
            str(_write(tmp_path / "inclusion.json", json.dumps(wrong))),
        ],
    )
    assert checked.exit_code != 0 and "INVALID" in checked.stdout, checked.output
