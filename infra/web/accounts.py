"""Web accounts and server-side sessions of the inspectors' and council's pages.

An account is a username and a password (hashed with scrypt at OWASP's parameters, N=2^17, r=8,
p=1, `hashlib.scrypt`; hashes of older parameters still verify and are re-hashed at the next
successful sign-in) bound to the same
kind of principal as an API bearer token (`services.access.Principal`: role, agency, provinces),
so the pages apply exactly the API's access policy. Only inspector and council accounts exist:
the pages are theirs.

A session is a random id in an HttpOnly, SameSite=Lax cookie; only its SHA-256 hash is stored,
with the session's CSRF token, its absolute expiry and the time it was last used (idle expiry).
Sign-in attempts are throttled by username (known or not: the same answer and timing) and by
source address, with growing delays: five free attempts per username, then 15 s, 30 s, … at most
five minutes (so nobody can lock a clerk out for long), twenty per source address, then 1 s,
2 s, … at most an hour. Every attempt is counted atomically BEFORE its password is checked (a
row lock on PostgreSQL, an immediate transaction on SQLite), so parallel guesses never get more
evaluations than the limit; a blocked attempt is refused without checking the password.

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

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**17, 8, 1  # OWASP (2025): ~128 MiB, ~0.4-1 s per hash
SCRYPT_MAXMEM = 2**28  # hashlib's default (32 MiB) is below N=2^17's needs
SCRYPT_MAX_N = 2**20  # a stored hash asking for more is refused (a tampered row, not a DoS)
SESSION_TTL = timedelta(hours=10)  # absolute: one working day
IDLE_TTL = timedelta(minutes=60)  # without any request
TOUCH_EVERY = timedelta(seconds=60)  # how often `last_seen_at` is written
MAX_FAILURES = 5  # free attempts per username before delays start
LOCK_FOR = timedelta(minutes=5)  # the longest a username is held back (the delays' cap)
USER_FIRST_DELAY = timedelta(seconds=15)
SOURCE_FREE = 20  # free attempts per source address
SOURCE_FIRST_DELAY = timedelta(seconds=1)
SOURCE_MAX_DELAY = timedelta(hours=1)
THROTTLE_FORGET = timedelta(hours=1)  # a key's failures are forgotten after this quiet time

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
    # sign-in throttling by username and by source address (keys hashed: fixed length, and an
    # unknown username leaves no readable trace)
    """CREATE TABLE IF NOT EXISTS web_sign_in_throttle (
        throttle_key TEXT PRIMARY KEY,
        failures INTEGER NOT NULL,
        blocked_until TIMESTAMPTZ,
        last_attempt_at TIMESTAMPTZ NOT NULL
    )""",
)
_ACCOUNT_COLUMNS = "username, role, display_name, agency_id, provinces, created_at, disabled_at"


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
    """`scrypt$N$r$p$<salt>$<hash>` (base64) of a password, at the current parameters."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=SCRYPT_N,
        r=SCRYPT_R,
        p=SCRYPT_P,
        dklen=32,
        maxmem=SCRYPT_MAXMEM,
    )
    return "$".join(
        (
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash was made with other parameters than today's."""
    return not stored.startswith(f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$")


def verify_password(password: str, stored: str) -> bool:
    """Whether a password matches a stored `hash_password` value (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        if not (1 < int(n) <= SCRYPT_MAX_N and 0 < int(r) <= 32 and 0 < int(p) <= 16):
            return False
        actual = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=SCRYPT_MAXMEM,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DUMMY_HASHES: dict[tuple[int, int, int], str] = {}


def _dummy_hash() -> str:
    """A hash at today's parameters that no password matches: unknown names spend the same
    time as known ones (made once per parameter set, when first needed)."""
    params = (SCRYPT_N, SCRYPT_R, SCRYPT_P)
    if params not in _DUMMY_HASHES:
        _DUMMY_HASHES[params] = hash_password(secrets.token_urlsafe(16))
    return _DUMMY_HASHES[params]


def throttle_delay(failures: int, free: int, first: timedelta, cap: timedelta) -> timedelta:
    """How long a key is held back after `failures` counted attempts: nothing for the first
    `free - 1`, then `first`, doubling, at most `cap`."""
    if failures < free:
        return timedelta(0)
    return min(first * (2 ** min(failures - free, 30)), cap)


def _throttle_key(kind: str, value: str) -> str:
    return kind + ":" + hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


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

    def __init__(
        self,
        clock: Callable[[], datetime] = _now,
        session_ttl: timedelta = SESSION_TTL,
        idle_ttl: timedelta = IDLE_TTL,
    ) -> None:
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
                self._sql(
                    "INSERT INTO web_accounts (username, password_hash, role, "
                    "display_name, agency_id, provinces, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)"
                ),
                (
                    username,
                    hash_password(password),
                    role,
                    display_name.strip(),
                    agency_id,
                    ",".join(sorted(provinces)),
                    self._ts(created),
                ),
            )
        account = self.account(username)
        if account is None:  # pragma: no cover - the row was just written
            raise RuntimeError("account vanished after insert")
        return account

    def account(self, username: str) -> Account | None:
        """One account, or None."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(f"SELECT {_ACCOUNT_COLUMNS} FROM web_accounts WHERE username = %s"),
                (username.strip().lower(),),
            )
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
                self._sql(
                    "UPDATE web_accounts SET password_hash = %s, failed_attempts = 0, "
                    "locked_until = NULL WHERE username = %s"
                ),
                (hash_password(password), username),
            )
            changed = bool(cur.rowcount)
            cur.execute(
                self._sql("DELETE FROM web_sign_in_throttle WHERE throttle_key = %s"),
                (_throttle_key("user", username.strip().lower()),),
            )
            cur.execute(self._sql("DELETE FROM web_sessions WHERE username = %s"), (username,))
        return changed

    def disable(self, username: str) -> bool:
        """Disables an account and ends its sessions; False if there is no such active account."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "UPDATE web_accounts SET disabled_at = %s "
                    "WHERE username = %s AND disabled_at IS NULL"
                ),
                (self._ts(self.clock()), username),
            )
            changed = bool(cur.rowcount)
            cur.execute(self._sql("DELETE FROM web_sessions WHERE username = %s"), (username,))
        return changed

    # ------------------------------------------------------------------------- signing in
    def authenticate(self, username: str, password: str, source: str | None = None) -> Account:
        """The account of a correct username and password; SignInError otherwise (unknown,
        wrong password, disabled, or held back by the throttle).

        The attempt is counted against the username and the source address atomically before
        the password is checked; a held-back attempt is refused without checking it. Unknown
        usernames are counted and timed like known ones. A success clears the username's count
        and takes back its own count from the source; a hash of older parameters is replaced.
        """
        name = username.strip().lower()
        now = self.clock()
        keys = [(_throttle_key("user", name), MAX_FAILURES, USER_FIRST_DELAY, LOCK_FOR)]
        if source:
            keys.append(
                (_throttle_key("source", source), SOURCE_FREE, SOURCE_FIRST_DELAY, SOURCE_MAX_DELAY)
            )
        with self._cursor() as cur:
            self._begin_locked(cur)
            try:
                allowed = True
                for key, free, first, cap in keys:  # every key counted, even once held back
                    allowed = self._count_attempt(cur, key, now, free, first, cap) and allowed
                cur.execute(
                    self._sql(
                        "SELECT password_hash, disabled_at FROM web_accounts WHERE username = %s"
                    ),
                    (name,),
                )
                row = cur.fetchone()
            except BaseException:
                self._rollback_locked(cur)
                raise
            self._commit_locked(cur)
        if not allowed:
            raise SignInError(name)
        if row is None:
            verify_password(password, _dummy_hash())
            raise SignInError(name)
        stored, disabled = row
        if not verify_password(password, stored) or disabled is not None:
            raise SignInError(name)
        with self._cursor() as cur:
            cur.execute(
                self._sql("DELETE FROM web_sign_in_throttle WHERE throttle_key = %s"), (keys[0][0],)
            )
            if source:
                cur.execute(
                    self._sql(
                        "UPDATE web_sign_in_throttle SET failures = failures - 1 "
                        "WHERE throttle_key = %s AND failures > 0"
                    ),
                    (keys[1][0],),
                )
            if needs_rehash(stored):
                cur.execute(
                    self._sql(
                        "UPDATE web_accounts SET password_hash = %s "
                        "WHERE username = %s AND password_hash = %s"
                    ),
                    (hash_password(password), name, stored),
                )
        account = self.account(name)
        if account is None:  # pragma: no cover - deleted meanwhile
            raise SignInError(name)
        return account

    def _count_attempt(
        self, cur: Any, key: str, now: datetime, free: int, first: timedelta, cap: timedelta
    ) -> bool:
        """Counts one attempt against a throttle key (its row locked); False if held back."""
        cur.execute(
            self._sql(
                "INSERT INTO web_sign_in_throttle (throttle_key, failures, blocked_until, "
                "last_attempt_at) VALUES (%s, 0, NULL, %s) ON CONFLICT (throttle_key) DO NOTHING"
            ),
            (key, self._ts(now)),
        )
        cur.execute(
            self._sql(
                "SELECT failures, blocked_until, last_attempt_at FROM "
                "web_sign_in_throttle WHERE throttle_key = %s" + self._for_update
            ),
            (key,),
        )
        failures, blocked_until, last = cur.fetchone()
        if blocked_until is not None and _parse_ts(blocked_until) > now:
            return False
        if now - _parse_ts(last) > THROTTLE_FORGET:
            failures = 0
        failures = int(failures) + 1  # counted as failed until the password proves right
        delay = throttle_delay(failures, free, first, cap)
        cur.execute(
            self._sql(
                "UPDATE web_sign_in_throttle SET failures = %s, blocked_until = %s, "
                "last_attempt_at = %s WHERE throttle_key = %s"
            ),
            (failures, self._ts(now + delay) if delay else None, self._ts(now), key),
        )
        return True

    _for_update = ""

    def _begin_locked(self, cur: Any) -> None:
        """Starts the transaction that counts an attempt (PostgreSQL: already in one)."""

    def _commit_locked(self, cur: Any) -> None:
        """Ends it (PostgreSQL: the cursor's transaction ends with it)."""

    def _rollback_locked(self, cur: Any) -> None:
        """Abandons it (PostgreSQL: the cursor's transaction rolls back on the error)."""

    # --------------------------------------------------------------------------- sessions
    def open_session(self, account: Account) -> tuple[str, WebSession]:
        """A new session for a signed-in account: (the cookie value, shown only now; session)."""
        session_id = secrets.token_urlsafe(32)
        now = self.clock()
        session = WebSession(
            account.username,
            account.principal,
            secrets.token_urlsafe(32),
            now,
            now + self.session_ttl,
        )
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO web_sessions (session_hash, username, csrf_token, "
                    "created_at, last_seen_at, expires_at) "
                    "VALUES (%s, %s, %s, %s, %s, %s)"
                ),
                (
                    session_hash(session_id),
                    account.username,
                    session.csrf_token,
                    self._ts(now),
                    self._ts(now),
                    self._ts(session.expires_at),
                ),
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
                self._sql(
                    "SELECT s.csrf_token, s.created_at, s.last_seen_at, s.expires_at, "
                    "a.username, a.role, a.display_name, a.agency_id, a.provinces, "
                    "a.created_at, a.disabled_at FROM web_sessions s "
                    "JOIN web_accounts a ON a.username = s.username "
                    "WHERE s.session_hash = %s"
                ),
                (digest,),
            )
            row = cur.fetchone()
        if row is None:
            return None
        csrf, created, last_seen, expires = (
            row[0],
            _parse_ts(row[1]),
            _parse_ts(row[2]),
            _parse_ts(row[3]),
        )
        account = _account(row[4:])
        if now >= expires or now - last_seen > self.idle_ttl or account.disabled_at is not None:
            self._delete(digest)
            return None
        if now - last_seen >= TOUCH_EVERY:
            with self._cursor() as cur:
                cur.execute(
                    self._sql("UPDATE web_sessions SET last_seen_at = %s WHERE session_hash = %s"),
                    (self._ts(now), digest),
                )
        return WebSession(account.username, account.principal, csrf, created, expires)

    def close_session(self, session_id: str | None) -> None:
        """Ends a session (signing out)."""
        if session_id:
            self._delete(session_hash(session_id))

    def purge_expired(self) -> int:
        """Deletes sessions past their absolute or idle expiry; returns how many."""
        now = self.clock()
        with self._cursor() as cur:
            cur.execute(
                self._sql("DELETE FROM web_sessions WHERE expires_at <= %s OR last_seen_at < %s"),
                (self._ts(now), self._ts(now - self.idle_ttl)),
            )
            purged = int(cur.rowcount or 0)
            cur.execute(
                self._sql(
                    "DELETE FROM web_sign_in_throttle WHERE last_attempt_at < %s "
                    "AND (blocked_until IS NULL OR blocked_until < %s)"
                ),
                (self._ts(now - THROTTLE_FORGET), self._ts(now)),
            )
            return purged

    def _delete(self, digest: str) -> None:
        with self._cursor() as cur:
            cur.execute(self._sql("DELETE FROM web_sessions WHERE session_hash = %s"), (digest,))


class SqliteAccountStore(_SqlAccountStore, SqliteTables):
    """Accounts and sessions in their own SQLite file (embedded default)."""

    def __init__(self, path: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._open_sqlite(path, _DDL)

    def _begin_locked(self, cur: Any) -> None:
        cur.execute("BEGIN IMMEDIATE")  # other processes' writers wait: the count is atomic

    def _commit_locked(self, cur: Any) -> None:
        cur.execute("COMMIT")

    def _rollback_locked(self, cur: Any) -> None:
        cur.execute("ROLLBACK")


class PostgresAccountStore(_SqlAccountStore, PostgresTables):
    """Accounts and sessions in PostgreSQL tables beside (not inside) the event store."""

    _for_update = " FOR UPDATE"  # the throttle row is locked until the count is written

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

            return PostgresAccountStore(
                open_pg_pool(settings, max_size=2), owns_pool=True, **kwargs
            )
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
    return Account(
        row[0], principal, _parse_ts(row[5]), None if row[6] is None else _parse_ts(row[6])
    )


def _parse_ts(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
