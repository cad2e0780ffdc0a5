"""Web accounts and sessions: scrypt hashes, the principal binding, lockout, expiry."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from infra.web import accounts
from infra.web.accounts import (
    IDLE_TTL,
    LOCK_FOR,
    MAX_FAILURES,
    SESSION_TTL,
    AccountError,
    SignInError,
    SqliteAccountStore,
    hash_password,
    verify_password,
)
from tests.unit.conftest import FixedClock

PASSWORD = "mot-mat-khau-dai"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 3, 2, 0, tzinfo=timezone.utc))


@pytest.fixture
def store(tmp_path: Path, clock: FixedClock, reference) -> SqliteAccountStore:  # type: ignore[no-untyped-def]
    accounts = SqliteAccountStore(tmp_path / "web.sqlite", clock=clock)
    accounts.create_account(
        "thanhtra",
        PASSWORD,
        "inspector",
        "Thanh tra",
        provinces=["LSN", "VLG"],
        reference=reference,
    )
    yield accounts
    accounts.close()


def test_password_verifies_only_when_it_is_the_same() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith(f"scrypt${accounts.SCRYPT_N}$8$1$")
    assert verify_password(PASSWORD, stored)
    assert not verify_password(PASSWORD + "x", stored)
    assert not verify_password(PASSWORD, "plain$text")
    assert hash_password(PASSWORD) != stored  # salted


def test_account_is_bound_to_a_principal_like_an_api_token(store: SqliteAccountStore) -> None:
    account = store.authenticate("ThanhTra ", PASSWORD)
    assert account.principal.principal_id == "web:thanhtra"
    assert account.principal.role == "inspector"
    assert account.principal.provinces == frozenset({"LSN", "VLG"})


@pytest.mark.parametrize(
    ("username", "role", "provinces", "password", "message"),
    [
        ("ab", "inspector", ["LSN"], PASSWORD, "username"),
        ("hoidong", "agency", ["LSN"], PASSWORD, "role"),
        ("hoidong", "council", ["LSN", "VLG"], PASSWORD, "exactly one province"),
        ("hoidong", "inspector", [], PASSWORD, "at least one province"),
        ("hoidong", "inspector", ["XXX"], PASSWORD, "unknown province"),
        ("hoidong", "council", ["LSN"], "short", "at least 10"),
        ("thanhtra", "inspector", ["LSN"], PASSWORD, "taken"),
    ],
)
def test_create_account_refused_when_binding_or_password_invalid(
    store: SqliteAccountStore,
    reference,
    username: str,
    role: str,  # type: ignore[no-untyped-def]
    provinces: list[str],
    password: str,
    message: str,
) -> None:
    with pytest.raises(AccountError, match=message):
        store.create_account(
            username, password, role, "x", provinces=provinces, reference=reference
        )


def test_sign_in_fails_when_password_wrong_or_user_unknown(store: SqliteAccountStore) -> None:
    with pytest.raises(SignInError):
        store.authenticate("thanhtra", "sai-mat-khau-roi")
    with pytest.raises(SignInError):
        store.authenticate("khongco", PASSWORD)


def test_account_locked_after_repeated_failures_even_with_the_right_password(
    store: SqliteAccountStore, clock: FixedClock
) -> None:
    for _ in range(MAX_FAILURES):
        with pytest.raises(SignInError):
            store.authenticate("thanhtra", "sai-mat-khau-roi")
    with pytest.raises(SignInError):
        store.authenticate("thanhtra", PASSWORD)
    clock.advance(LOCK_FOR + timedelta(seconds=1))
    assert store.authenticate("thanhtra", PASSWORD).username == "thanhtra"


def test_session_expires_when_idle_too_long(store: SqliteAccountStore, clock: FixedClock) -> None:
    session_id, _ = store.open_session(store.authenticate("thanhtra", PASSWORD))
    clock.advance(IDLE_TTL - timedelta(minutes=1))
    assert store.session(session_id) is not None  # used: idle time starts again
    clock.advance(IDLE_TTL - timedelta(minutes=1))
    assert store.session(session_id) is not None
    clock.advance(IDLE_TTL + timedelta(seconds=1))
    assert store.session(session_id) is None
    assert store.session(session_id) is None  # deleted, not just refused


def test_session_expires_at_its_absolute_end_even_when_used(
    store: SqliteAccountStore, clock: FixedClock
) -> None:
    session_id, session = store.open_session(store.authenticate("thanhtra", PASSWORD))
    assert session.expires_at - session.created_at == SESSION_TTL
    while clock.now + timedelta(minutes=30) < session.expires_at:
        clock.advance(timedelta(minutes=30))
        assert store.session(session_id) is not None
    clock.advance(timedelta(minutes=30))
    assert store.session(session_id) is None


def test_only_a_hash_of_the_session_id_is_stored(store: SqliteAccountStore, tmp_path: Path) -> None:
    session_id, session = store.open_session(store.authenticate("thanhtra", PASSWORD))
    with sqlite3.connect(tmp_path / "web.sqlite") as conn:
        dump = "\n".join(conn.iterdump())
    assert session_id not in dump
    assert PASSWORD not in dump
    assert session.csrf_token in dump  # the per-session CSRF token lives with the session


def test_disabling_an_account_ends_its_sessions(store: SqliteAccountStore) -> None:
    session_id, _ = store.open_session(store.authenticate("thanhtra", PASSWORD))
    assert store.disable("thanhtra")
    assert store.session(session_id) is None
    with pytest.raises(SignInError):
        store.authenticate("thanhtra", PASSWORD)


def test_new_password_ends_sessions_and_replaces_the_old_one(store: SqliteAccountStore) -> None:
    session_id, _ = store.open_session(store.authenticate("thanhtra", PASSWORD))
    assert store.set_password("thanhtra", "mat-khau-moi-2026")
    assert store.session(session_id) is None
    with pytest.raises(SignInError):
        store.authenticate("thanhtra", PASSWORD)
    assert store.authenticate("thanhtra", "mat-khau-moi-2026")
