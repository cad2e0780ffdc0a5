"""The fast write paths keep what the plain ones guaranteed (bench issue 7): the COPY insert
and the single-event function on PostgreSQL, deferred first keys of a batch, the case cache,
group commit of single posts, receipts from the written bytes, replay without a second read.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from domain.errors import DomainError
from domain.referral import Recorded
from infra.bootstrap import Container, build_container
from infra.postgres.recorder import COPY_THRESHOLD
from infra.transparency.service import receipt_for
from services.group_recording import GroupRecorder
from services.personal_data import WrappedKey
from tests.factories import CaseScript

pytestmark = pytest.mark.postgres

IDENTITY = {"full_name": "Trần Thị Bình", "date_of_birth": "1991-02-03"}


def _cases(n: int) -> list[CaseScript]:
    return [CaseScript() for _ in range(n)]


def test_a_big_batch_gets_consecutive_ids_in_its_order_when_copied(pg_container: Container):
    app = pg_container.referrals
    wires = [w for case in _cases(20) for w in case.full_history()[:4]]
    assert len(wires) >= COPY_THRESHOLD
    results = app.record_batch(wires)
    positions = [r.position for r in results]
    assert positions == list(range(positions[0], positions[0] + len(wires)))
    stored = {
        n.id: n for n in app.recorder.select_notifications(start=positions[0], limit=len(wires))
    }
    for result in results:
        assert result.stored.state == stored[result.position].state
        assert result.stored.originator_version == result.version


def test_a_conflicting_batch_inserts_nothing_when_copied(pg_container: Container):
    app = pg_container.referrals
    recorder = app.recorder
    case = CaseScript()
    app.record_event(case.notification())
    existing = recorder.select_notifications(start=1, limit=1)[0]
    clash = [
        StoredEvent(uuid.uuid4(), 1, existing.topic, existing.state) for _ in range(COPY_THRESHOLD)
    ]
    clash.append(StoredEvent(existing.originator_id, 1, existing.topic, existing.state))
    with pytest.raises(IntegrityError):
        recorder.insert_events(clash)
    assert recorder.max_notification_id() == existing.id


def test_an_insert_in_flight_holds_readers_back_when_copied(pg_container: Container):
    """The gap-settling reader's SHARE lock waits for a COPY insert that has drawn its ids."""
    recorder = pg_container.referrals.recorder
    table = f'"{recorder.datastore.schema}"."{recorder.events_table_name}"'
    state = b'{"x":1}'
    with recorder.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
        curs.execute(recorder._bulk_prepare)
        with curs.copy(recorder._bulk_copy) as copy:
            copy.set_types(recorder._bulk_types)
            copy.write_row((0, uuid.uuid4(), 1, "t", state))
        curs.execute(recorder._bulk_insert)
        with psycopg.connect(pg_container.settings.pg_conninfo(), autocommit=True) as other:
            with pytest.raises(psycopg.errors.LockNotAvailable), other.transaction():
                other.execute("SET LOCAL lock_timeout = '200ms'")
                other.execute(f"LOCK TABLE {table} IN SHARE MODE")
    with (
        psycopg.connect(pg_container.settings.pg_conninfo(), autocommit=True) as other,
        other.transaction(),
    ):
        other.execute("SET LOCAL lock_timeout = '2s'")
        other.execute(f"LOCK TABLE {table} IN SHARE MODE")  # granted once committed


def test_a_single_post_notifies_listeners_when_inserted_by_our_function(
    pg_container: Container,
):
    app = pg_container.referrals
    with psycopg.connect(pg_container.settings.pg_conninfo(), autocommit=True) as listener:
        listener.execute(f'LISTEN "{app.recorder.channel_name}"')
        recorded = app.record_event(CaseScript().notification())
        got = list(listener.notifies(timeout=5, stop_after=1))
    assert got and got[0].channel == app.recorder.channel_name
    assert recorded.position == app.recorder.max_notification_id()
    with pytest.raises(DomainError):
        app.record_event(dict(CaseScript().notification(), event_id=""))


def test_a_batch_is_judged_again_when_another_writer_stored_the_first_key(
    pg_container: Container,
    monkeypatch: pytest.MonkeyPatch,
):
    app = pg_container.referrals
    store = app.vault.store
    case = CaseScript()
    first = dict(case.notification(), identity=IDENTITY)
    real_insert_many = store.insert_many_if_absent

    def rival_first(keys):  # another writer stores this person's first key just before us
        key_id, wrapped = app.vault.master_keys.wrap(case.person_id, b"\x07" * 32)
        store.insert_if_absent(WrappedKey(case.person_id, key_id, wrapped, None))
        return real_insert_many(keys)

    monkeypatch.setattr(store, "insert_many_if_absent", rival_first)
    results = app.record_batch([first, case.request()])
    assert [type(r) for r in results] == [Recorded, Recorded]
    assert app.reveal_identity(case.case_id)["identity"] == IDENTITY  # under the stored key
    assert app.record_event(first).duplicate is True  # same digest under the stored key


def test_a_cached_case_sees_events_another_process_wrote(pg_settings):
    first, second = build_container(pg_settings), build_container(pg_settings)
    try:
        case = CaseScript()
        first.referrals.record_event(case.notification())
        first.referrals.record_event(case.request())  # cached at version 2
        second.referrals.record_event(case.transfer())  # version 3, elsewhere
        assert first.referrals.record_event(case.accept()).version == 4
        assert first.referrals.record_batch([case.assign()])[0].version == 5
        assert second.referrals.record_event(case.register()).version == 6
        assert first.referrals.get_case(case.case_id).version == 6
        again = first.referrals.record_batch([dict(case.register(), event_id="x-1")])
        # judged on version 6, not the cache's 5: a second registration is held (ADR 0008)
        assert again[0].awaiting["reason"] == "ORDER_VIOLATION"
    finally:
        first.close()
        second.close()


def test_concurrent_posts_get_their_own_answers_when_grouped(pg_container: Container):
    app = pg_container.referrals
    group = GroupRecorder(app)
    cases = _cases(24)
    good = [c.notification() for c in cases]
    app.record_event(good[0])
    bad = dict(cases[1].request(), type="NO_SUCH_TYPE")
    posts = [*good, bad, dict(good[0])]
    answers: dict[int, object] = {}

    def post(i: int) -> None:
        try:
            answers[i] = group.record(posts[i])
        except DomainError as error:
            answers[i] = error

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(posts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert isinstance(answers[len(good)], DomainError)
    assert answers[len(good)].code == "EVENT_TYPE_UNKNOWN"
    for i in (0, len(posts) - 1):  # the repost of an event recorded before
        assert answers[i].duplicate and answers[i].recorded_at is not None
    fresh = [answers[i] for i in range(1, len(good))]
    assert all(isinstance(a, Recorded) and not a.duplicate and a.version == 1 for a in fresh)
    assert len({a.position for a in fresh}) == len(fresh)
    assert app.recorder.max_notification_id() >= len(good)


def test_a_receipt_is_the_same_when_made_from_the_written_bytes(pg_container: Container):
    recorded = pg_container.referrals.record_event(
        dict(CaseScript().notification(), identity=IDENTITY)
    )
    assert recorded.stored is not None
    read_back = dataclasses.replace(recorded, stored=None)
    assert receipt_for(pg_container, recorded) == receipt_for(pg_container, read_back)


def test_a_case_as_of_an_instant_is_the_case_at_that_version(pg_container: Container):
    app = pg_container.referrals
    case = CaseScript()
    for wire in case.full_history():
        app.record_event(wire)
    history = app.case_history(case.case_id)
    for event in history:
        referral, events = app.case_as_of(case.case_id, event.timestamp)
        expected = app.get_case(case.case_id, version=event.originator_version)
        assert referral.snapshot_view() == expected.snapshot_view()
        assert [e.originator_version for e in events][-1] == event.originator_version
