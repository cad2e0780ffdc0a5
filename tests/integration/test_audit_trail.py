"""The audit-trail projection over real PostgreSQL: leaves, chains and Merkle proofs checked
against an independent, straightforward RFC 6962 reference written from the RFC text.

Also holds the helpers the other transparency test modules import (`record_cases`, `sql`,
`burn_notification_ids`, `cli_env`, reference Merkle functions).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.settings import Settings
from infra.transparency.service import transparency_log
from services.transparency.leaves import CHAIN_SEED, leaf_of_notification
from services.transparency.merkle import verify_consistency, verify_inclusion
from services.transparency.verify import verify_log
from tests.factories import CaseScript

pytestmark = pytest.mark.postgres


# ------------------------------------------------------------------------ shared test helpers
def record_cases(app: Any, count: int, identity: bool = False) -> list[CaseScript]:
    """Records `count` complete case histories; returns their scripts."""
    cases = []
    for _ in range(count):
        case = CaseScript()
        history = case.full_history()
        if identity:
            history[0] = history[0] | {
                "identity": {"full_name": "Nguyễn Thị Hồng Nhung", "date_of_birth": "1991-04-30"}
            }
        for wire in history:
            app.record_event(wire)
        cases.append(case)
    return cases


def sql(settings: Settings, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Runs one statement in the test schema (as a tamperer with database access would)."""
    with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return list(cursor.fetchall()) if cursor.description else []


def burn_notification_ids(settings: Settings, count: int) -> None:
    """Consumes sequence values without rows, as failed inserts do (a gap in the log)."""
    sql(
        settings,
        "SELECT setval(pg_get_serial_sequence('referrals_events', 'notification_id'), "
        "(SELECT max(notification_id) FROM referrals_events) + %s)",
        (count,),
    )


def cli_env(settings: Settings) -> dict[str, str]:
    """The REFERRALS_* environment of `settings` (for CLI runs)."""
    env = {
        "REFERRALS_DATA_DIR": str(settings.data_dir),
        "REFERRALS_STORE": settings.store,
        "REFERRALS_LOG_WITNESS_KEYS": settings.log_witness_keys,
    }
    if settings.store == "postgres":
        env.update(
            {
                "REFERRALS_PG_HOST": settings.pg_host,
                "REFERRALS_PG_PORT": str(settings.pg_port),
                "REFERRALS_PG_USER": settings.pg_user,
                "REFERRALS_PG_DBNAME": settings.pg_dbname,
                "REFERRALS_PG_SCHEMA": settings.pg_schema,
            }
        )
    return env


def audit_view(container: Any) -> Any:
    return container.projections.view("audit_trail")


# ------------------------------------------------- reference RFC 6962 §2.1, from the RFC text
def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_leaf(entry: bytes) -> bytes:
    return _sha(b"\x00" + entry)


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(entries: list[bytes]) -> bytes:
    """MTH(D[n])."""
    n = len(entries)
    if n == 0:
        return _sha(b"")
    if n == 1:
        return ref_leaf(entries[0])
    k = _k(n)
    return _sha(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:]))


def ref_path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n])."""
    n = len(entries)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, entries[:k]) + [ref_mth(entries[k:])]
    return ref_path(m - k, entries[k:]) + [ref_mth(entries[:k])]


def ref_proof(m: int, entries: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""

    def subproof(m: int, d: list[bytes], whole: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if whole else [ref_mth(d)]
        k = _k(n)
        if m <= k:
            return subproof(m, d[:k], whole) + [ref_mth(d[k:])]
        return subproof(m - k, d[k:], False) + [ref_mth(d[:k])]

    return subproof(m, entries, True) if 0 < m < len(entries) else []


# -------------------------------------------------------------------------------------- tests
def test_proofs_served_by_the_projection_match_the_reference_when_the_log_has_gaps(
    pg_container: Any, pg_settings: Settings
) -> None:
    app = pg_container.referrals
    cases = record_cases(app, 2, identity=True)
    burn_notification_ids(pg_settings, 5)
    cases += record_cases(app, 2)
    app.erase_person(cases[0].person_id, "REQUEST_OF_PERSON", "PDPL 2025", "admin")
    pg_container.projections.process_pending(batch_size=4)  # many small incremental batches

    view = audit_view(pg_container)
    rows = view.rows(-1, 1000)
    stored = list(app.recorder.select_notifications(start=1, limit=1000))
    entries = [leaf_of_notification(app.mapper, n) for n in stored]
    n = len(entries)
    assert n == 30  # 4 cases x 7 events + person.Created + person.Erased
    assert [r["position"] for r in rows] == [s.id for s in stored]
    assert [r["leaf_index"] for r in rows] == list(range(n))
    assert rows[-1]["position"] == n + 5  # the burnt ids: positions are not indexes
    assert [r["leaf_hash"] for r in rows] == [ref_leaf(e) for e in entries]
    assert rows[-1]["type"] == "person.Erased.v1" and rows[-1]["case_id"] is None

    global_chain, case_chains = CHAIN_SEED, {}
    for row, entry in zip(rows, entries, strict=True):
        global_chain = _sha(global_chain + entry)
        case_chains[row["originator_id"]] = _sha(
            case_chains.get(row["originator_id"], CHAIN_SEED) + entry
        )
        assert row["global_chain_hash"] == global_chain
        assert row["case_chain_hash"] == case_chains[row["originator_id"]]
    assert view.head().chain_hash == global_chain

    for size in range(0, n + 1):
        assert view.root(size) == ref_mth(entries[:size])
    for size in (1, 2, 3, 8, 13, 16, 17, n):
        for m in range(size):
            proof = view.inclusion_proof(m, size)
            assert proof == ref_path(m, entries[:size])
            assert verify_inclusion(ref_leaf(entries[m]), m, size, proof, ref_mth(entries[:size]))
    for old in range(1, n + 1, 3):
        for new in sorted({old, min(old + 1, n), n} | ({16} if old <= 16 else set())):
            proof = view.consistency_proof(old, new)
            assert proof == ref_proof(old, entries[:new])
            assert verify_consistency(
                old, new, ref_mth(entries[:old]), ref_mth(entries[:new]), proof
            )


def test_case_timeline_shows_who_recorded_what_and_when_when_read_in_order(
    pg_container: Any,
) -> None:
    app = pg_container.referrals
    [case] = record_cases(app, 1)
    pg_container.projections.process_pending()
    view = audit_view(pg_container)
    timeline = view.case_timeline(case.case_id)
    assert [r["version"] for r in timeline] == list(range(1, 8))
    assert [r["type"] for r in timeline] == [
        "NOTIFICATION_ISSUED",
        "AID_REQUESTED",
        "REQUEST_TRANSFERRED",
        "REQUEST_ACCEPTED",
        "AID_ASSIGNED",
        "COUNSEL_REGISTERED",
        "CASE_CLOSED",
    ]
    history = app.case_history(case.case_id)
    assert [r["agency_id"] for r in timeline] == [e.agency_id for e in history]
    assert [r["occurred_at"] for r in timeline] == [e.occurred_at for e in history]
    assert [r["recorded_at"] for r in timeline] == [e.timestamp for e in history]
    assert all(r["recorded_at"] > r["occurred_at"] for r in timeline)
    centre = view.agency_timeline("lsn-centre")
    assert [r["type"] for r in centre] == ["REQUEST_ACCEPTED", "AID_ASSIGNED", "CASE_CLOSED"]
    assert view.entry_by_event(case.case_id, f"{case.case_id}-003")["version"] == 3


def test_rebuild_reproduces_the_same_tree_and_keeps_the_signed_checkpoints(
    pg_container: Any,
) -> None:
    record_cases(pg_container.referrals, 2)
    log = transparency_log(pg_container)
    log.catch_up()
    first = log.publish_checkpoint()
    before = audit_view(pg_container).dump()
    pg_container.projections.rebuild(names=["audit_trail"], batch_size=5)
    assert audit_view(pg_container).dump() == before
    assert audit_view(pg_container).checkpoints() == [first]
    assert log.publish_checkpoint().note == first.note  # idempotent per size
    report = verify_log(pg_container.referrals, log.view, log.signer.verifier())
    assert report.ok and report.checkpoints_checked == 1 and report.events_checked == 14


@pytest.mark.parametrize("store", ["pg_container", "sqlite_container"])
def test_latest_checkpoint_at_an_instant_is_the_largest_signed_by_then(
    store: str,
    request: pytest.FixtureRequest,
) -> None:
    from datetime import timedelta

    container = request.getfixturevalue(store)
    record_cases(container.referrals, 1)
    log = transparency_log(container)
    log.catch_up()
    first = log.publish_checkpoint()
    record_cases(container.referrals, 1)
    log.catch_up()
    second = log.publish_checkpoint()
    view = audit_view(container)
    assert view.latest_checkpoint_at(first.created_at - timedelta(microseconds=1)) is None
    assert view.latest_checkpoint_at(first.created_at).size == first.size
    assert view.latest_checkpoint_at(second.created_at - timedelta(microseconds=1)).size == (
        first.size
    )
    assert view.latest_checkpoint_at(second.created_at + timedelta(days=1)).size == second.size


def test_audit_trail_runs_in_process_when_the_store_is_sqlite(sqlite_container: Any) -> None:
    record_cases(sqlite_container.referrals, 2)
    log = transparency_log(sqlite_container)
    log.catch_up()
    stored = log.publish_checkpoint()
    assert stored.size == 14
    report = verify_log(sqlite_container.referrals, log.view, log.signer.verifier())
    assert report.ok, report.finding
    answer = log.inclusion(audit_view(sqlite_container).entry_at(3)["case_id"], 4)
    assert answer["tree_size"] == 14 and answer["leaf_index"] == 3


def test_log_key_file_is_generated_in_development_and_required_in_production(
    tmp_path: Path,
) -> None:
    from infra.transparency.service import LogKeyError, load_log_signer

    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    signer = load_log_signer(settings)
    assert signer.name == settings.log_origin
    assert (tmp_path / "log-signing.key").stat().st_mode & 0o777 == 0o600
    assert load_log_signer(settings).key_text == signer.key_text
    assert (tmp_path / "log-signing.key.pub").read_text().strip() == signer.verifier().key_text
    production = Settings(
        _env_file=None,
        data_dir=tmp_path / "prod",
        environment="production",  # type: ignore[call-arg]
        master_keys='{"k": "' + "A" * 43 + '="}',
        active_master_key_id="k",
        session_secret="s",
    )
    with pytest.raises(LogKeyError):
        load_log_signer(production)
    other = Settings(_env_file=None, data_dir=tmp_path, log_origin="other.example/log")  # type: ignore[call-arg]
    with pytest.raises(LogKeyError):
        load_log_signer(other)


def test_checkpointer_publishes_at_its_interval_when_the_tree_grows(pg_container: Any) -> None:
    import time

    from infra.transparency.service import start_checkpointer

    publisher = start_checkpointer(pg_container, interval=0.05)
    assert start_checkpointer(pg_container) is publisher  # one per process
    record_cases(pg_container.referrals, 1)
    transparency_log(pg_container).catch_up()
    deadline = time.monotonic() + 10
    while audit_view(pg_container).latest_checkpoint() is None or (
        audit_view(pg_container).latest_checkpoint().size < 7
    ):
        assert time.monotonic() < deadline, publisher.status()
        time.sleep(0.05)
    published = publisher.published
    time.sleep(0.3)
    assert publisher.published == published  # nothing new: no new checkpoint
    assert publisher.status()["running"] and publisher.status()["error"] is None
    publisher.stop()
    assert not publisher.status()["running"]


def test_checkpoint_for_position_binds_a_report_to_the_log_as_it_stood(
    pg_container: Any, pg_settings: Settings
) -> None:
    from infra.transparency.service import LogEntryNotFoundError, checkpoint_for_position
    from services.transparency.checkpoint import parse_checkpoint
    from services.transparency.note import open_note

    app = pg_container.referrals
    record_cases(app, 1)
    burn_notification_ids(pg_settings, 2)
    record_cases(app, 1)  # positions 10..16
    size, root, note = checkpoint_for_position(pg_container, 11)
    log = transparency_log(pg_container)
    checkpoint = parse_checkpoint(open_note(note, [log.signer.verifier()])[0])
    assert (size, checkpoint.size) == (9, 9)  # 7 events, the gap, then positions 10 and 11
    assert root == checkpoint.root_hash == audit_view(pg_container).root(9)
    assert checkpoint_for_position(pg_container, 8) == (
        7,
        audit_view(pg_container).root(7),
        audit_view(pg_container).checkpoint(7).note,
    )
    record_cases(app, 1)
    assert checkpoint_for_position(pg_container, 11)[2] == note  # the same checkpoint later on
    with pytest.raises(LogEntryNotFoundError, match="beyond the end of the log"):
        checkpoint_for_position(pg_container, 10_000)
