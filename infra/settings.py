"""Settings: the only reader of the environment. Every process (API, projection worker, Kafka
ingest and relay, CLI) builds one `Settings` and hands it to `infra.bootstrap`.

Environment variables are prefixed `REFERRALS_` (e.g. `REFERRALS_STORE=postgres`); a `.env`
file in the working directory is read too. With nothing set, the ledger runs embedded: SQLite
files under `./var`, a generated development master key, projections in process, no Kafka.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# the event store's transcoder (byte-identical to the library's, faster) and, on PostgreSQL,
# its recorder (the library's, with a COPY path for batches); see those modules
TRANSCODER_TOPIC = "infra.transcoding:FastJSONTranscoder"
POSTGRES_RECORDER_TOPIC = "infra.postgres.recorder:PostgresReferralRecorder"
# the library's PostgreSQL factory, plus our session settings on every connection (issue 19)
POSTGRES_FACTORY_TOPIC = "infra.postgres.recorder:ReferralsPostgresFactory"
# the development log origin; production refuses it (set REFERRALS_LOG_ORIGIN)
PLACEHOLDER_LOG_ORIGIN = "legal-aid-ledger.example/log"


class Settings(BaseSettings):
    """Configuration of one ledger process."""

    model_config = SettingsConfigDict(
        env_prefix="REFERRALS_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")

    # --- event store ----------------------------------------------------------------------
    store: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: Path | None = None  # default: <data_dir>/ledger.sqlite
    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_dbname: str = "referrals"
    pg_user: str = "postgres"
    pg_password: SecretStr = SecretStr("")
    pg_schema: str = ""  # empty: the user's default schema
    pg_pool_size: int = 8
    pg_db_functions: bool = True  # eventsourcing's insert function: ~2x single-event posts
    case_cache_size: int = Field(default=10_000, ge=0)  # cases kept in memory for recording

    # --- PostgreSQL sessions and connection budget (issue 19, docs/cluster.md) ------------------
    service: Literal["api", "project", "ingest", "relay", "cli"] = "cli"  # set by each command
    instance: str = ""  # appended to application_name (referrals-api:<instance>): one node
    pg_lock_timeout_ms: int = Field(default=10_000, ge=0)  # no session waits on a lock for ever
    pg_statement_timeout_ms: int = Field(default=120_000, ge=0)
    # the projection worker's pages take well under a second: a worker frozen inside a
    # statement (e.g. a COPY waiting for its rows) gives its locks back after this long
    pg_project_statement_timeout_ms: int = Field(default=30_000, ge=0)
    pg_idle_in_transaction_timeout_ms: int = Field(default=30_000, ge=0)  # a frozen client's
    pg_keepalives_idle_seconds: int = Field(default=30, ge=1)  # libpq TCP keepalives
    pg_keepalives_interval_seconds: int = Field(default=10, ge=1)
    pg_keepalives_count: int = Field(default=3, ge=1)
    # pools per process (None: the service's default, see `pool_budget`)
    pg_event_pool_max: int | None = Field(default=None, ge=1, le=200)
    pg_projection_pool_max: int | None = Field(default=None, ge=1, le=200)
    pg_own_pool_max: int | None = Field(default=None, ge=1, le=200)
    # an API read that catches a view up itself waits this long for a worker's lock, then
    # answers from the view as it is (flagged as lagging)
    api_read_wait_seconds: float = Field(default=2.0, ge=0, le=60)
    projection_busy_backoff_seconds: float = Field(default=1.0, gt=0, le=60)
    projection_lease_seconds: float = Field(default=10.0, ge=1, le=600)  # a view's worker

    # --- personal data ----------------------------------------------------------------------
    master_keys: SecretStr | None = None  # JSON {"key-id": "<base64 32 bytes>"}
    active_master_key_id: str | None = None
    master_keys_file: Path | None = None  # default: <data_dir>/master-keys.json (dev only)
    retention_years: str = '{"default": 10}'  # JSON per eligible category, after closure

    # --- rules and reference data -------------------------------------------------------------
    reference_data_dir: Path | None = None  # default: the files shipped in infra/reference_data
    reference_poll_seconds: float = Field(default=5.0, ge=0, le=3600)  # issue 14: reload check
    # clear identity also for agencies that held a case before a transfer (services/access.py)
    identity_former_holders: bool = False
    future_tolerance_seconds: int = Field(default=300, ge=0, le=86400)
    # issue 13 item 5: an event is "entered late" when recorded more than this many hours
    # after it occurred (the council report's, dashboard's and inspection pack's timeliness)
    late_entry_hours: float = Field(default=24.0, gt=0, le=24 * 366)
    # issue 13 / ADR 0008: a fact still held (awaiting an earlier fact) after this long is an
    # anomaly, reported to its agency and the inspectors (REFERRALS_HELD_ANOMALY_AFTER_HOURS)
    held_anomaly_after_hours: float = Field(default=72.0, gt=0, le=24 * 366)
    # the wire's legal range of instants: from this day (00:00 Vietnam time; the Legal Aid Law
    # 2017 took effect on 2018-01-01) to now + future_tolerance_seconds
    earliest_occurrence: date = Field(
        default=date(2018, 1, 1), ge=date(2018, 1, 1), le=date(2100, 1, 1)
    )

    # --- HTTP ---------------------------------------------------------------------------------
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    max_body_bytes: int = 2_000_000
    session_secret: SecretStr | None = None

    # --- projections ----------------------------------------------------------------------------
    projections_in_process: bool = True
    signing_key_file: Path | None = None  # Ed25519 log key; default <data_dir>/log-signing.key
    log_origin: str = PLACEHOLDER_LOG_ORIGIN  # first line of every signed checkpoint
    checkpoint_interval_seconds: int = 60
    log_signing_key: SecretStr | None = None  # the log key text itself (PRIVATE+KEY+...), a secret
    log_witness_keys: str = ""  # witnesses' cosignature keys (name+id+key), comma-separated

    # --- Kafka ----------------------------------------------------------------------------------
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_inbound_topic: str = "referral-events-in"
    kafka_outbound_topic: str = "referral-events"
    kafka_dead_letter_topic: str = "referral-events-dlq"
    kafka_receipts_topic: str = "referral-receipts"  # <prefix>.<agency_id>: signed receipts
    kafka_group_id: str = "referral-ledger-ingest"
    kafka_partitions: int = Field(default=3, ge=1, le=1000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=10)
    kafka_min_insync_replicas: int | None = Field(default=None, ge=1, le=10)  # per topic
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_ssl_certfile: Path | None = None  # client certificate (SSL principal), PEM
    kafka_ssl_keyfile: Path | None = None
    kafka_client_id: str = "referral-ledger"
    kafka_inbound_agencies: str = ""  # comma-separated; empty: every agency of the reference data
    kafka_create_topics: bool = True  # create missing topics when a worker starts
    kafka_inbound_retention_ms: int = Field(default=7 * 86_400_000, ge=-1)  # clear identity
    kafka_dead_letter_retention_ms: int = Field(default=30 * 86_400_000, ge=-1)  # ditto
    kafka_batch_size: int = Field(default=500, ge=1, le=10_000)  # records a batch (both workers)
    kafka_poll_timeout_ms: int = Field(default=1000, ge=10, le=60_000)
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=3000, ge=100)
    kafka_max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    kafka_store_retry_attempts: int = Field(default=5, ge=1, le=100)  # event store down
    kafka_store_retry_backoff_ms: int = Field(default=500, ge=10)
    kafka_relay_idle_ms: int = Field(default=200, ge=10, le=60_000)  # relay: poll when caught up
    kafka_flush_timeout_seconds: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.environment == "production":
            if self.master_keys is None or self.active_master_key_id is None:
                raise ValueError(
                    "REFERRALS_MASTER_KEYS and REFERRALS_ACTIVE_MASTER_KEY_ID are required in "
                    "production (the generated development key file is refused)"
                )
            if self.session_secret is None:
                raise ValueError("REFERRALS_SESSION_SECRET is required in production")
        if (self.kafka_min_insync_replicas or 0) > self.kafka_replication_factor:
            raise ValueError(
                "REFERRALS_KAFKA_MIN_INSYNC_REPLICAS cannot exceed "
                "REFERRALS_KAFKA_REPLICATION_FACTOR"
            )
        json.loads(self.retention_years)
        return self

    @property
    def sqlite_file(self) -> Path:
        return self.sqlite_path or self.data_dir / "ledger.sqlite"

    @property
    def keys_file(self) -> Path:
        return self.master_keys_file or self.data_dir / "master-keys.json"

    @property
    def log_signing_key_file(self) -> Path:
        return self.signing_key_file or self.data_dir / "log-signing.key"

    def retention(self) -> dict[str, int]:
        """Years to keep identifying data after closure, per eligible category ('default')."""
        return {str(k): int(v) for k, v in json.loads(self.retention_years).items()}

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment the eventsourcing library is configured with (passed explicitly)."""
        if self.store == "postgres":
            env = {
                "PERSISTENCE_MODULE": POSTGRES_FACTORY_TOPIC,
                "POSTGRES_DBNAME": self.pg_dbname,
                "POSTGRES_HOST": self.pg_host,
                "POSTGRES_PORT": str(self.pg_port),
                "POSTGRES_USER": self.pg_user,
                "POSTGRES_PASSWORD": self.pg_password.get_secret_value(),
                "POSTGRES_POOL_SIZE": "1",
                "POSTGRES_MAX_OVERFLOW": str(self.pool_budget()["event_store"] - 1),
                "POSTGRES_ENABLE_DB_FUNCTIONS": "y" if self.pg_db_functions else "n",
                "POSTGRES_LOCK_TIMEOUT": "5",
                "TRANSCODER_TOPIC": TRANSCODER_TOPIC,
                "APPLICATION_RECORDER_TOPIC": POSTGRES_RECORDER_TOPIC,
                "POSTGRES_CONNECT_KWARGS": json.dumps(self.pg_session_kwargs()),
                "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": str(
                    max(1, self.pg_idle_in_transaction_timeout_ms // 1000)
                ),
            }
            if self.pg_schema:
                env["POSTGRES_SCHEMA"] = self.pg_schema
            return env
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(self.sqlite_file),
            "SQLITE_LOCK_TIMEOUT": "10",
            "TRANSCODER_TOPIC": TRANSCODER_TOPIC,
        }

    @property
    def application_name(self) -> str:
        """What pg_stat_activity shows for this process's connections (referrals-api, ...)."""
        name = f"referrals-{self.service}"
        return f"{name}:{self.instance}"[:63] if self.instance else name

    def pool_budget(self) -> dict[str, int]:
        """The most connections each of this process's pools opens (docs/cluster.md).

        Each service builds the pools it uses: the API writes and reads (event store, our
        own tables for tokens and keys, the views); the projection worker reads the log and
        writes the views (one connection per view, plus the checkpointer) and LISTENs; the
        ingest writes events and reads keys; the relay reads the log. A pool opens a
        connection when it is first needed and keeps at most `max` (idle ones close after
        10 minutes)."""
        defaults = {
            #            event store, views, our own tables, LISTEN
            "api": (self.pg_pool_size, 4, 4, 0),
            "project": (3, 6, 1, 1),
            "ingest": (3, 2, 2, 0),
            "relay": (2, 0, 1, 0),  # no views: the relay reads the log only
            "cli": (self.pg_pool_size, 6, 2, 1),
        }[self.service]
        event, views, own, listen = defaults
        return {
            "event_store": self.pg_event_pool_max or event,
            "projections": (self.pg_projection_pool_max or views) if views else 0,
            "own": self.pg_own_pool_max or own,
            "listen": listen,
            "relay_lease": 1 if self.service == "relay" else 0,  # the lease's session
            "reference": 1,  # the recorded reference versions (issue 14): read, polled
        }

    def connection_budget(self) -> int:
        """The most PostgreSQL connections one process of this service holds."""
        return sum(self.pool_budget().values())

    def _statement_timeout_ms(self) -> int:
        if self.service == "project" and self.pg_project_statement_timeout_ms:
            return min(
                self.pg_statement_timeout_ms or self.pg_project_statement_timeout_ms,
                self.pg_project_statement_timeout_ms,
            )
        return self.pg_statement_timeout_ms

    def pg_session_kwargs(self) -> dict[str, str | int]:
        """libpq parameters of every connection a service opens: its name, TCP keepalives
        (a dead peer is noticed in about a minute, not two hours) and session timeouts (a
        frozen client's transaction and locks do not stay for ever)."""
        options = [
            f"-c lock_timeout={self.pg_lock_timeout_ms}",
            f"-c statement_timeout={self._statement_timeout_ms()}",
            f"-c idle_in_transaction_session_timeout={self.pg_idle_in_transaction_timeout_ms}",
            f"-c tcp_keepalives_idle={self.pg_keepalives_idle_seconds}",
            f"-c tcp_keepalives_interval={self.pg_keepalives_interval_seconds}",
            f"-c tcp_keepalives_count={self.pg_keepalives_count}",
        ]
        if self.pg_schema:
            options.insert(0, f"-c search_path={self.pg_schema}")
        return {
            "application_name": self.application_name,
            "keepalives": 1,
            "keepalives_idle": self.pg_keepalives_idle_seconds,
            "keepalives_interval": self.pg_keepalives_interval_seconds,
            "keepalives_count": self.pg_keepalives_count,
            "options": " ".join(options),
        }

    def pg_service_conninfo(self) -> str:
        """`pg_conninfo()` with this service's session parameters (`pg_session_kwargs`)."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.pg_conninfo(), **self.pg_session_kwargs())

    def pg_conninfo(self) -> str:
        """libpq connection string for our own tables (projections, keys, tokens)."""
        parts = [
            f"host={self.pg_host}",
            f"port={self.pg_port}",
            f"dbname={self.pg_dbname}",
            f"user={self.pg_user}",
        ]
        password = self.pg_password.get_secret_value()
        if password:
            parts.append(f"password={password}")
        if self.pg_schema:
            parts.append(f"options=-csearch_path={self.pg_schema}")
        return " ".join(parts)
