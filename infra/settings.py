"""Settings: the only reader of the environment. Every process (API, projection worker, Kafka
ingest and relay, CLI) builds one `Settings` and hands it to `infra.bootstrap`.

Environment variables are prefixed `REFERRALS_` (e.g. `REFERRALS_STORE=postgres`); a `.env`
file in the working directory is read too. With nothing set, the ledger runs embedded: SQLite
files under `./var`, a generated development master key, projections in process, no Kafka.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# the event store's transcoder (byte-identical to the library's, faster) and, on PostgreSQL,
# its recorder (the library's, with a COPY path for batches); see those modules
TRANSCODER_TOPIC = "infra.transcoding:FastJSONTranscoder"
POSTGRES_RECORDER_TOPIC = "infra.postgres.recorder:PostgresReferralRecorder"
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

    # --- personal data ----------------------------------------------------------------------
    master_keys: SecretStr | None = None  # JSON {"key-id": "<base64 32 bytes>"}
    active_master_key_id: str | None = None
    master_keys_file: Path | None = None  # default: <data_dir>/master-keys.json (dev only)
    retention_years: str = '{"default": 10}'  # JSON per eligible category, after closure

    # --- rules and reference data -------------------------------------------------------------
    reference_data_dir: Path | None = None  # default: the files shipped in infra/reference_data
    future_tolerance_seconds: int = Field(default=300, ge=0, le=86400)

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
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT"
    )
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
                "PERSISTENCE_MODULE": "eventsourcing.postgres",
                "POSTGRES_DBNAME": self.pg_dbname,
                "POSTGRES_HOST": self.pg_host,
                "POSTGRES_PORT": str(self.pg_port),
                "POSTGRES_USER": self.pg_user,
                "POSTGRES_PASSWORD": self.pg_password.get_secret_value(),
                "POSTGRES_POOL_SIZE": str(self.pg_pool_size),
                "POSTGRES_MAX_OVERFLOW": str(self.pg_pool_size),
                "POSTGRES_ENABLE_DB_FUNCTIONS": "y" if self.pg_db_functions else "n",
                "POSTGRES_LOCK_TIMEOUT": "5",
                "TRANSCODER_TOPIC": TRANSCODER_TOPIC,
                "APPLICATION_RECORDER_TOPIC": POSTGRES_RECORDER_TOPIC,
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
