"""Web accounts and server-side sessions of the inspectors' and council's pages.

An account is a username and a password (hashed with scrypt, `hashlib.scrypt`) bound to the same
kind of principal as an API bearer token (`services.access.Principal`: role, agency, provinces),
so the pages apply exactly the API's access policy. Only inspector and council accounts exist:
the pages are theirs.

A session is a random id in an HttpOnly, SameSite=Lax cookie; only its SHA-256 hash is stored,
with the session's CSRF token, its absolute expiry and the time it was last used (idle expiry).
Five wrong passwords in a row lock the account for five minutes.

PostgreSQL beside the event store in deployments; a SQLite file under the data folder on the
embedded default (the pattern of `infra/keystore.py` and `infra/tokens.py`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from domain.reference import ReferenceData
from infra.sql_tables import PostgresTables, SqliteTables, SqlTables
from services.access import Principal, check_principal

WEB_ROLES = ("inspector", "council")
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
MIN_PASSWORD_LENGTH = 10

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MiB, ~50 ms per hash
SESSION_TTL = timedelta(hours=10)  # absolute: one working day
IDLE_TTL = timedelta(minutes=60)  # without any request
TOUCH_EVERY = timedelta(seconds=60)  # how often `last_seen_at` is written
MAX_FAILURES = 5
LOCK_FOR = timedelta(minutes=5)

_DDL = (
    """CREATE TABLE IF NOT EXISTS web_accounts (
        username TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        display_name TEXT NOT NULL,
        agency_id TEXT,
        provinces TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        disabled_at TIMESTAMPTZ,
        failed_attempts INTEGER NOT NULL DEFAULT 0,
        locked_until TIMESTAMPTZ
    )""",
    """CREATE TABLE IF NOT EXISTS web_sessions (
        session_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        last_seen_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS web_sessions_by_user ON web_sessions (username)",
)
_ACCOUNT_COLUMNS = ("username, role, display_name, agency_id, provinces, created_at, "
                    "disabled_at")


class AccountError(ValueError):
    """Raised when an account cannot be created or changed (bad name, role, scope, password)."""


class SignInError(Exception):
    """Raised when a username and password do not open a session (never says which was wrong)."""


@dataclass(frozen=True)
class Account:
    """A web account (never its password hash)."""

    username: str
    principal: Principal
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True)
class WebSession:
    """A signed-in session: whose, its CSRF token, and when it ends."""

    username: str
    principal: Principal
    csrf_token: str
    created_at: datetime
    expires_at: datetime


# ------------------------------------------------------------------------------- passwords
def hash_password(password: str) -> str:
    """`scrypt$N$r$p$<salt>$<hash>` (base64) of a password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R,
                            p=SCRYPT_P, dklen=32)
    return "$".join(("scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()))


def verify_password(password: str, stored: str) -> bool:
    """Whether a password matches a stored `hash_password` value (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n),
                                r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))  # spends the same time on unknown names


def session_hash(session_id: str) -> str:
    """The only form in which a session id is stored."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def check_new_password(password: str) -> None:
    """Raises AccountError unless the password is long enough."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")


# ----------------------------------------------------------------------------------- store
class _SqlAccountStore(SqlTables):
    """Accounts and sessions over our own tables; the store mixin supplies connections."""

    def __init__(self, clock: Callable[[], datetime] = _now,
                 session_ttl: timedelta = SESSION_TTL, idle_ttl: timedelta = IDLE_TTL) -> None:
        self.clock = clock
        self.session_ttl = session_ttl
        self.idle_ttl = idle_ttl

    # -------------------------------------------------------------------------- accounts
    def create_account(
        self,
        username: str,
        password: str,
        role: str,
        display_name: str,
        *,
        agency_id: str | None = None,
        provinces: Iterable[str] = (),
        reference: ReferenceData | None = None,
    ) -> Account:
        """Creates an account; AccountError if the name is taken or the binding is invalid."""
        username = username.strip().lower()
        if not USERNAME_PATTERN.match(username):
            raise AccountError("a username is 3–64 characters: a–z, 0–9, '.', '_', '-'")
        if role not in WEB_ROLES:
            raise AccountError(f"a web account's role is one of {', '.join(WEB_ROLES)}")
        provinces = frozenset(p.strip().upper() for p in provinces if p.strip())
        if reference is not None:
            unknown = sorted(provinces - set(reference.provinces))
            if unknown:
                raise AccountError(f"unknown province(s) {', '.join(unknown)}")
            if agency_id is not None and agency_id not in reference.agencies:
                raise AccountError(f"unknown agency {agency_id!r}")
        try:
            check_principal(role, agency_id, provinces)
        except ValueError as error:
            raise AccountError(str(error)) from None
        if not display_name.strip():
            raise AccountError("an account needs a display name")
        check_new_password(password)
        created = self.clock()
        with self._cursor() as cur:
            cur.execute(self._sql("SELECT 1 FROM web_accounts WHERE username = %s"), (username,))
            if cur.fetchone() is not None:
                raise AccountError(f"the username {username!r} is taken")
            cur.execute(
                self._sql("INSERT INTO web_accounts (username, password_hash, role, "
                          "display_name, agency_id, provinces, created_at) "
                          "VALUES (%s, %s, %s, %s, %s, %s, %s)"),
                (username, hash_password(password), role, display_name.strip(), agency_id,
                 ",".join(sorted(provinces)), self._ts(created)),
            )
        account = self.account(username)
        if account is None:  # pragma: no cover - the row was just written
            raise RuntimeError("account vanished after insert")
        return account

    def account(self, username: str) -> Account | None:
        """One account, or None."""
        with self._cursor() as cur:
            cur.execute(self._sql(f"SELECT {_ACCOUNT_COLUMNS} FROM web_accounts "
                                  "WHERE username = %s"), (username.strip().lower(),))
            row = cur.fetchone()
        return None if row is None else _account(row)

    def accounts(self) -> list[Account]:
        """Every account, by username."""
        with self._cursor() as cur:
            cur.execute(f"SELECT {_ACCOUNT_COLUMNS} FROM web_accounts ORDER BY username")
            rows = cur.fetchall()
        return [_account(row) for row in rows]

    def set_password(self, username: str, password: str) -> bool:
        """Replaces a password, unlocks the account and ends its sessions; False if unknown."""
        check_new_password(password)
        with self._cursor() as cur:
            cur.execute(
                self._sql("UPDATE web_accounts SET password_hash = %s, failed_attempts = 0, "
                          "locked_until = NULL WHERE username = %s"),
                (hash_password(password), username),
            )
            changed = bool(cur.rowcount)
            cur.execute(self._sql("DELETE FROM web_sessions WHERE username = %s"), (username,))
        return changed

    def disable(self, username: str) -> bool:
        """Disables an account and ends its sessions; False if there is no such active account."""
        with self._cursor() as cur:
            cur.execute(
                self._sql("UPDATE web_accounts SET disabled_at = %s "
                          "WHERE username = %s AND disabled_at IS NULL"),
                (self._ts(self.clock()), username),
            )
            changed = bool(cur.rowcount)
            cur.execute(self._sql("DELETE FROM web_sessions WHERE username = %s"), (username,))
        return changed

    # ------------------------------------------------------------------------- signing in
    def authenticate(self, username: str, password: str) -> Account:
        """The account of a correct username and password; SignInError otherwise (unknown,
        wrong password, disabled, or locked after repeated failures)."""
        name = username.strip().lower()
        now = self.clock()
        with self._cursor() as cur:
            cur.execute(self._sql("SELECT password_hash, disabled_at, failed_attempts, "
                                  "locked_until FROM web_accounts WHERE username = %s"), (name,))
            row = cur.fetchone()
        if row is None:
            verify_password(password, _DUMMY_HASH)
            raise SignInError(name)
        stored, disabled, failures, locked_until = row
        locked = locked_until is not None and _parse_ts(locked_until) > now
        if not verify_password(password, stored) or disabled is not None or locked:
            if not locked and disabled is None:
                failures = int(failures) + 1
                lock = now + LOCK_FOR if failures >= MAX_FAILURES else None
                with self._cursor() as cur:
                    cur.execute(self._sql(
                        "UPDATE web_accounts SET failed_attempts = %s, locked_until = %s "
                        "WHERE username = %s"),
                        (0 if lock else failures, self._ts(lock), name))
            raise SignInError(name)
        if failures:
            with self._cursor() as cur:
                cur.execute(self._sql("UPDATE web_accounts SET failed_attempts = 0, "
                                      "locked_until = NULL WHERE username = %s"), (name,))
        account = self.account(name)
        if account is None:  # pragma: no cover - deleted meanwhile
            raise SignInError(name)
        return account

    # --------------------------------------------------------------------------- sessions
    def open_session(self, account: Account) -> tuple[str, WebSession]:
        """A new session for a signed-in account: (the cookie value, shown only now; session)."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session = WebSession(account.username, account.principal, secrets.token_urlsafe(32),
                             now, now + self.session_ttl)
        with self._cursor() as cur:
            cur.execute(
                self._sql("INSERT INTO web_sessions (session_hash, username, csrf_token, "
                          "created_at, last_seen_at, expires_at) "
                          "VALUES (%s, %s, %s, %s, %s, %s)"),
                (session_hash(session_id), account.username, session.csrf_token,
                 self._ts(now), self._ts(now), self._ts(session.expires_at)),
            )
        return session_id, session

    def session(self, session_id: str | None) -> WebSession | None:
        """The live session of a cookie value; None if unknown, expired, idle too long, or its
        account is disabled. An expired session is deleted."""
        if not session_id or len(session_id) > 100:
            return None
        digest = session_hash(session_id)
        now = self.clock()
        with self._cursor() as cur:
            cur.execute(
                self._sql("SELECT s.csrf_token, s.created_at, s.last_seen_at, s.expires_at, "
                          "a.username, a.role, a.display_name, a.agency_id, a.provinces, "
                          "a.created_at, a.disabled_at FROM web_sessions s "
                          "JOIN web_accounts a ON a.username = s.username "
                          "WHERE s.session_hash = %s"),
                (digest,),
            )
            row = cur.fetchone()
        if row is None:
            return None
        csrf, created, last_seen, expires = row[0], _parse_ts(row[1]), _parse_ts(row[2]), \
            _parse_ts(row[3])
        account = _account(row[4:])
        if now >= expires or now - last_seen > self.idle_ttl or account.disabled_at is not None:
            self._delete(digest)
            return None
        if now - last_seen >= TOUCH_EVERY:
            with self._cursor() as cur:
                cur.execute(self._sql("UPDATE web_sessions SET last_seen_at = %s "
                                      "WHERE session_hash = %s"), (self._ts(now), digest))
        return WebSession(account.username, account.principal, csrf, created, expires)

    def close_session(self, session_id: str | None) -> None:
        """Ends a session (signing out)."""
        if session_id:
            self._delete(session_hash(session_id))

    def purge_expired(self) -> int:
        """Deletes sessions past their absolute or idle expiry; returns how many."""
        now = self.clock()
        with self._cursor() as cur:
            cur.execute(self._sql("DELETE FROM web_sessions WHERE expires_at <= %s "
                                  "OR last_seen_at < %s"),
                        (self._ts(now), self._ts(now - self.idle_ttl)))
            return int(cur.rowcount or 0)

    def _delete(self, digest: str) -> None:
        with self._cursor() as cur:
            cur.execute(self._sql("DELETE FROM web_sessions WHERE session_hash = %s"), (digest,))


class SqliteAccountStore(_SqlAccountStore, SqliteTables):
    """Accounts and sessions in their own SQLite file (embedded default)."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._open_sqlite(path, _DDL)


class PostgresAccountStore(_SqlAccountStore, PostgresTables):
    """Accounts and sessions in PostgreSQL tables beside (not inside) the event store."""

    def __init__(self, pool: Any, owns_pool: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owns_pool = owns_pool
        self._open_postgres(pool, 726356, _DDL)

    def close(self) -> None:
        """Closes the pool only if this store opened it (the CLI); else it is the container's."""
        if self._owns_pool:
            self._pool.close()


AccountStore = SqliteAccountStore | PostgresAccountStore


def open_account_store(settings: Any, pg_pool: Any = None, **kwargs: Any) -> AccountStore:
    """The account store for the configured store: the given pool, or one of its own."""
    if settings.store == "postgres":
        if pg_pool is None:
            from infra.bootstrap import open_pg_pool

            return PostgresAccountStore(open_pg_pool(settings, max_size=2), owns_pool=True,
                                        **kwargs)
        return PostgresAccountStore(pg_pool, **kwargs)
    return SqliteAccountStore(Path(settings.data_dir) / "web-accounts.sqlite", **kwargs)


def account_store(container: Any) -> AccountStore:
    """The container's account store (opened once, kept in `container.web_accounts`, closed
    with it)."""
    store = container.web_accounts
    if store is None:
        store = container.web_accounts = open_account_store(container.settings, container.pg_pool)
    return store


def _account(row: Any) -> Account:
    provinces = frozenset(p for p in (row[4] or "").split(",") if p)
    principal = Principal(f"web:{row[0]}", row[1], row[2], row[3], provinces)
    return Account(row[0], principal, _parse_ts(row[5]),
                   None if row[6] is None else _parse_ts(row[6]))


def _parse_ts(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
