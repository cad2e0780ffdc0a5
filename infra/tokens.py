"""Bearer tokens of the HTTP API: each bound to one principal, stored only as a SHA-256 hash.

A token reads `rlt_<token id>_<secret>`; the token id is public (listed, revoked by it), the
secret is shown once at creation. Tokens may expire and may be revoked. PostgreSQL beside the
event store in deployments; a SQLite file under the data folder on the embedded default.

Authentication keeps recently seen tokens in memory for `cache_seconds` (default 5 s) so a post
costs no extra query; a revocation made by another process (the CLI) therefore takes effect
within that time. Expiry is checked on every request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from domain.reference import ReferenceData
from infra.sql_tables import PostgresTables, SqliteTables, SqlTables, parse_ts
from services.access import NotAuthenticatedError, Principal, check_principal

TOKEN_PATTERN = re.compile(r"^rlt_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")

_DDL = (
    """CREATE TABLE IF NOT EXISTS api_tokens (
        token_id TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        principal_id TEXT NOT NULL,
        role TEXT NOT NULL,
        agency_id TEXT,
        provinces TEXT NOT NULL,
        display_name TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        expires_at TIMESTAMPTZ,
        revoked_at TIMESTAMPTZ
    )""",
)
_COLUMNS = (
    "token_id, principal_id, role, agency_id, provinces, display_name, created_at, "
    "expires_at, revoked_at"
)


@dataclass(frozen=True)
class TokenRecord:
    """A stored token (never its secret): the principal it stands for and its lifetime."""

    token_id: str
    principal: Principal
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    def status(self, now: datetime) -> str:
        """active | expired | revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"


def token_hash(token: str) -> str:
    """The only form in which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _SqlTokenStore(SqlTables):
    """The token store over our own tables; the store mixin supplies connections."""

    def __init__(self, cache_seconds: float = 5.0) -> None:
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, TokenRecord]] = {}
        self._cache_lock = threading.Lock()

    # ---------------------------------------------------------------------------- managing
    def create(
        self,
        role: str,
        display_name: str,
        *,
        agency_id: str | None = None,
        provinces: Iterable[str] = (),
        principal_id: str | None = None,
        expires_at: datetime | None = None,
        reference: ReferenceData | None = None,
        now: datetime | None = None,
    ) -> tuple[str, TokenRecord]:
        """Creates a token; returns (the token, shown only now; its record)."""
        provinces = frozenset(provinces)
        if reference is not None:
            provinces = _check_against_reference(role, agency_id, provinces, reference)
        check_principal(role, agency_id, provinces)
        if not display_name.strip():
            raise ValueError("a token needs a display name")
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at needs a UTC offset")
        token_id = secrets.token_hex(6)
        token = f"rlt_{token_id}_{secrets.token_urlsafe(32)}"
        principal = Principal(
            principal_id or f"{role}:{token_id}", role, display_name.strip(), agency_id, provinces
        )
        record = TokenRecord(token_id, principal, now or _now(), expires_at, None)
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    f"INSERT INTO api_tokens (token_hash, {_COLUMNS}) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                ),
                (
                    token_hash(token),
                    token_id,
                    principal.principal_id,
                    role,
                    agency_id,
                    ",".join(sorted(provinces)),
                    principal.display_name,
                    self._ts(record.created_at),
                    self._ts(expires_at),
                    None,
                ),
            )
        return token, record

    def revoke(self, token_id: str, now: datetime | None = None) -> bool:
        """Revokes a token by id; False if there is no such active token."""
        with self._cursor() as cur:
            cur.execute(
                self._sql(
                    "UPDATE api_tokens SET revoked_at = %s "
                    "WHERE token_id = %s AND revoked_at IS NULL"
                ),
                (self._ts(now or _now()), token_id),
            )
            changed = bool(cur.rowcount)
        with self._cache_lock:
            for key, (_, record) in list(self._cache.items()):
                if record.token_id == token_id:
                    del self._cache[key]
        return changed

    def list(self) -> list[TokenRecord]:
        """Every token ever created (revoked and expired included), oldest first."""
        with self._cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at, token_id")
            rows = cur.fetchall()
        return [_record(row) for row in rows]

    # ----------------------------------------------------------------------- authenticating
    def authenticate_cached(
        self, token: str | None, now: datetime | None = None
    ) -> Principal | None:
        """Like `authenticate` without touching the database: None when the token is not in
        the in-memory cache (the caller then calls `authenticate`, off the event loop)."""
        record = self._check_and_lookup(token)
        if record is None:
            return None
        return _principal_if_valid(record, now)

    def authenticate(self, token: str | None, now: datetime | None = None) -> Principal:
        """The principal of a presented token; NotAuthenticatedError otherwise."""
        record = self._check_and_lookup(token)
        digest = token_hash(token or "")
        if record is None:
            with self._cursor() as cur:
                cur.execute(
                    self._sql(f"SELECT {_COLUMNS} FROM api_tokens WHERE token_hash = %s"), (digest,)
                )
                row = cur.fetchone()
            if row is None:
                raise _unauthenticated("mã truy cập không hợp lệ", "the token is not valid")
            record = _record(row)
            with self._cache_lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (time.monotonic(), record)
        return _principal_if_valid(record, now)

    def _check_and_lookup(self, token: str | None) -> TokenRecord | None:
        if not token:
            raise _unauthenticated(
                "thiếu mã truy cập (Authorization: Bearer …)",
                "no bearer token (Authorization: Bearer …)",
            )
        if not TOKEN_PATTERN.match(token):
            raise _unauthenticated("mã truy cập không hợp lệ", "the token is not valid")
        return self._cached(token_hash(token))

    def _cached(self, digest: str) -> TokenRecord | None:
        with self._cache_lock:
            hit = self._cache.get(digest)
            if hit is None:
                return None
            if time.monotonic() - hit[0] > self.cache_seconds:
                del self._cache[digest]
                return None
            return hit[1]


class SqliteTokenStore(_SqlTokenStore, SqliteTables):
    """Tokens in their own SQLite file (embedded default)."""

    def __init__(self, path: Path, cache_seconds: float = 5.0) -> None:
        super().__init__(cache_seconds)
        self._open_sqlite(path, _DDL)


class PostgresTokenStore(_SqlTokenStore, PostgresTables):
    """Tokens in a PostgreSQL table beside (not inside) the event store."""

    def __init__(self, pool: Any, cache_seconds: float = 5.0) -> None:
        super().__init__(cache_seconds)
        self._open_postgres(pool, 726355, _DDL)


TokenStore = SqliteTokenStore | PostgresTokenStore


def _principal_if_valid(record: TokenRecord, now: datetime | None) -> Principal:
    status = record.status(now or _now())
    if status == "expired":
        raise _unauthenticated("mã truy cập đã hết hạn", "the token has expired")
    if status == "revoked":
        raise _unauthenticated("mã truy cập không hợp lệ", "the token is not valid")
    return record.principal


def _unauthenticated(rule_vi: str, rule_en: str) -> NotAuthenticatedError:
    return NotAuthenticatedError(
        "NOT_AUTHENTICATED", "Authorization", rule_vi=rule_vi, rule_en=rule_en
    )


def _check_against_reference(
    role: str, agency_id: str | None, provinces: frozenset[str], reference: ReferenceData
) -> frozenset[str]:
    if role == "agency":
        agency = reference.agencies.get(agency_id or "")
        if agency is None:
            raise ValueError(f"unknown agency {agency_id!r}")
        return frozenset({agency.province}) if agency.province else frozenset()
    if agency_id is not None and agency_id not in reference.agencies:
        raise ValueError(f"unknown agency {agency_id!r}")
    unknown = sorted(provinces - set(reference.provinces))
    if unknown:
        raise ValueError(f"unknown province(s) {', '.join(unknown)}")
    return provinces


def _record(row: Any) -> TokenRecord:
    provinces = frozenset(p for p in (row[4] or "").split(",") if p)
    principal = Principal(row[1], row[2], row[5], row[3], provinces)
    return TokenRecord(row[0], principal, parse_ts(row[6]), _opt_ts(row[7]), _opt_ts(row[8]))


def _opt_ts(value: Any) -> datetime | None:
    return None if value is None else parse_ts(value)
