"""Erasure is real: once `erase-person` (or retention --apply) returns, no copy of the person's
wrapped data key is readable in the live database files, read byte by byte; the data directory
and the files we create in it are private (0700 / 0600).
"""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest

from infra.bootstrap import build_container
from infra.settings import Settings
from tests.factories import CaseScript

NAME = "Trần Văn Phúc"

pytestmark = pytest.mark.fault


def _record_person(app, case: CaseScript) -> None:  # type: ignore[no-untyped-def]
    app.record_event(
        case.notification()
        | {
            "identity": {
                "full_name": NAME,
                "date_of_birth": "2012-02-01",
                "id_number": "001212009876",
            }
        }
    )


def _pg_raw_pages(settings: Settings) -> bytes:
    """Every page of person_data_keys, its TOAST table and its indexes, after a CHECKPOINT."""
    with psycopg.connect(settings.pg_conninfo(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pageinspect SCHEMA public")
        conn.execute("CHECKPOINT")
        table = conn.execute("SELECT 'person_data_keys'::regclass::oid").fetchone()[0]
        relations = [
            r[0]
            for r in conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c WHERE c.oid = %s "
                "OR c.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = %s) "
                "OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = %s OR indrelid = "
                "(SELECT reltoastrelid FROM pg_class WHERE oid = %s))",
                (table, table, table, table),
            ).fetchall()
        ]
        assert len(relations) >= 2, relations  # the heap and its primary key at least
        out = bytearray()
        for relation in relations:
            blocks = conn.execute(
                "SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int",
                (relation,),
            ).fetchone()[0]
            for block in range(int(blocks)):
                out += conn.execute(
                    "SELECT public.get_raw_page(%s, %s)", (relation, block)
                ).fetchone()[0]
        return bytes(out)


def _wrapped(settings: Settings, person_id: str) -> bytes:
    container = build_container(settings)
    try:
        stored = container.vault.store.get(person_id)
    finally:
        container.close()
    assert stored is not None and stored.wrapped is not None
    return stored.wrapped


@pytest.mark.postgres
def test_postgres_erasure_leaves_no_wrapped_key_in_any_page(pg_settings):
    container = build_container(pg_settings)
    try:
        cases = [CaseScript() for _ in range(3)]
        for case in cases:
            _record_person(container.referrals, case)
    finally:
        container.close()
    keys = {case.person_id: _wrapped(pg_settings, case.person_id) for case in cases}
    raw = _pg_raw_pages(pg_settings)
    assert all(key in raw for key in keys.values())  # the probe sees live keys

    from tests.fault.support import cli

    erased = cases[0].person_id
    done = cli(
        pg_settings,
        "erase-person",
        erased,
        "--reason",
        "REQUEST_OF_PERSON",
        "--requested-by",
        "admin-1",
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    raw = _pg_raw_pages(pg_settings)
    assert keys[erased] not in raw, "the erased wrapped key is still readable in a page"
    for person_id, key in keys.items():
        if person_id != erased:
            assert key in raw  # the others are untouched


@pytest.mark.postgres
def test_retention_apply_leaves_no_wrapped_key_of_the_persons_it_erases(pg_settings):
    from datetime import datetime

    from domain.calendar import VIETNAM_TZ
    from tests.fault.support import cli

    container = build_container(pg_settings)
    try:
        old = [CaseScript(start=datetime(2018, 3, 1, 9, tzinfo=VIETNAM_TZ)) for _ in range(2)]
        for case in old:
            wires = case.full_history()
            wires[0]["identity"] = {"full_name": NAME}
            for wire in wires:
                container.referrals.record_event(wire)
        live = CaseScript()
        _record_person(container.referrals, live)
        keys = {c.person_id: container.vault.store.get(c.person_id).wrapped for c in old + [live]}
    finally:
        container.close()
    five_years = pg_settings.model_copy(update={"retention_years": '{"default": 5}'})
    done = cli(five_years, "retention", "--apply")
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert '"erased": 2' in done.stdout.decode()
    raw = _pg_raw_pages(pg_settings)
    assert all(keys[c.person_id] not in raw for c in old)
    assert keys[live.person_id] in raw


@pytest.mark.postgres
def test_postgres_purge_reports_a_copy_an_old_snapshot_still_holds_then_removes_it(pg_settings):
    container = build_container(pg_settings)
    try:
        case = CaseScript()
        _record_person(container.referrals, case)
        key = container.vault.store.get(case.person_id).wrapped
        with psycopg.connect(pg_settings.pg_conninfo(), autocommit=True) as reader:
            reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            # a long report's snapshot: no lock on the key table, but it could see the old row
            reader.execute("SELECT count(*) FROM referrals_events").fetchone()
            assert container.referrals.erase_person(
                case.person_id, "REQUEST_OF_PERSON", "PDPL 2025", "admin-1", purge=False
            )
            assert container.vault.store.purge_erased(wait_seconds=1.5) is False
            assert key in _pg_raw_pages(pg_settings)  # honestly reported as still there
            reader.execute("ROLLBACK")
        assert container.vault.purge_erased() is True
        assert key not in _pg_raw_pages(pg_settings)
    finally:
        container.close()


def test_sqlite_erasure_leaves_no_wrapped_key_in_db_or_wal(sqlite_settings):
    container = build_container(sqlite_settings)
    try:
        cases = [CaseScript() for _ in range(3)]
        for case in cases:
            _record_person(container.referrals, case)
        keys = {c.person_id: container.vault.store.get(c.person_id).wrapped for c in cases}
        data_dir = Path(sqlite_settings.data_dir)
        files = [data_dir / "personal-data.sqlite", data_dir / "personal-data.sqlite-wal"]

        def raw() -> bytes:
            return b"".join(f.read_bytes() for f in files if f.exists())

        assert all(key in raw() for key in keys.values())
        # erased while the server's container (and its connection) stays open
        assert (
            container.referrals.erase_person(
                cases[0].person_id, "REQUEST_OF_PERSON", "PDPL 2025", "admin-1"
            )
            is True
        )
        after = raw()
        assert keys[cases[0].person_id] not in after
        assert keys[cases[1].person_id] in after
    finally:
        container.close()


def test_data_directory_and_files_are_private(tmp_path):
    data_dir = tmp_path / "var"
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    container = build_container(settings)
    try:
        case = CaseScript()
        _record_person(container.referrals, case)
        from infra.transparency.service import transparency_log

        transparency_log(container).signer  # noqa: B018 - makes the log signing key
        from infra.web.accounts import open_account_store

        open_account_store(settings).close()
    finally:
        container.close()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    made = [p for p in data_dir.iterdir() if p.is_file() and not p.name.endswith(".pub")]
    names = {p.name for p in made}
    for expected in (
        "ledger.sqlite",
        "personal-data.sqlite",
        "api-tokens.sqlite",
        "master-keys.json",
        "projections.sqlite",
        "web-accounts.sqlite",
        "log-signing.key",
    ):
        assert expected in names, names
    loose = {
        p.name: oct(stat.S_IMODE(p.stat().st_mode))
        for p in made
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert not loose, loose


def test_an_existing_loose_data_directory_and_its_files_are_tightened(tmp_path):
    data_dir = tmp_path / "var"
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    build_container(settings).close()
    data_dir.chmod(0o755)
    for path in data_dir.iterdir():
        path.chmod(0o644)
    container = build_container(settings)
    try:
        from infra.transparency.service import transparency_log

        transparency_log(container).signer  # noqa: B018 - reads (or makes) the log key
    finally:
        container.close()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    loose = {
        p.name: oct(stat.S_IMODE(p.stat().st_mode))
        for p in data_dir.iterdir()
        if p.is_file() and not p.name.endswith(".pub") and stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert not loose, loose


# ------------------------------------------------------------- idempotency survives erasure
@pytest.mark.parametrize("path", ["single", "batch"])
def test_resending_a_recorded_identity_event_after_erasure_is_a_duplicate(sqlite_container, path):
    from domain.errors import ConflictError, RuleViolationError

    app = sqlite_container.referrals
    case = CaseScript()
    first = case.notification() | {
        "identity": {"full_name": NAME, "date_of_birth": "2012-02-01", "id_number": "001212009876"}
    }
    recorded = app.record_event(first)
    app.record_event(case.request())
    app.record_event(case.transfer())  # the Centre has a part in the case (scope first)
    assert app.erase_person(case.person_id, "REQUEST_OF_PERSON", "PDPL 2025", "admin-1")

    def send(wire):  # type: ignore[no-untyped-def]
        if path == "single":
            return app.record_event(wire)
        [outcome] = app.record_batch([wire])
        if not hasattr(outcome, "duplicate"):
            raise outcome.error if hasattr(outcome, "error") else AssertionError(outcome)
        return outcome

    again = send(first)
    assert again.duplicate is True and again.version == recorded.version
    # the same event id with other (non-identity) content is still a conflict
    changed = dict(first, data=dict(first["data"], procedural_role="TEMPORARILY_DETAINED"))
    with pytest.raises((ConflictError, RuleViolationError)) as error:
        send(changed)
    assert error.value.code == "EVENT_ID_CONFLICT"
    # a new event with identity for the erased person is still refused
    fresh = case.accept() | {"identity": {"full_name": NAME}}
    with pytest.raises(RuleViolationError) as refused:
        app.record_event(fresh)
    assert refused.value.code == "PERSON_ERASED"
