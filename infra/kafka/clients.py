"""Kafka clients and topics, configured from `Settings` only: bootstrap servers, security
(PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), topic names, partitions, retention.

Inbound topics are bound to one agency each: `<kafka_inbound_topic>.<agency_id>` (ADR 0004).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from domain.reference import ReferenceData
from infra.settings import Settings

log = logging.getLogger(__name__)

TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
"""Kafka's own rule for topic names."""

TOPIC_ALREADY_EXISTS = 36

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""Outbound and dead-letter messages may be this large (Kafka's default is 1 MB), so that a large
event, or a nearly 1 MB inbound message plus the dead-letter headers, can never wedge a worker."""


class KafkaSetupError(RuntimeError):
    """Raised when the Kafka settings or topics cannot work (bad name, failed creation)."""


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection and security options shared by every producer, consumer and admin client."""
    servers = [s.strip() for s in settings.kafka_bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise KafkaSetupError("REFERRALS_KAFKA_BOOTSTRAP_SERVERS is empty")
    config: dict[str, Any] = {
        "bootstrap_servers": servers,
        "client_id": settings.kafka_client_id,
        "security_protocol": settings.kafka_security_protocol,
    }
    protocol = settings.kafka_security_protocol
    if protocol.startswith("SASL"):
        mechanism = settings.kafka_sasl_mechanism or "PLAIN"
        config["sasl_mechanism"] = mechanism
        if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            if not settings.kafka_sasl_username or settings.kafka_sasl_password is None:
                raise KafkaSetupError(
                    f"{protocol}/{mechanism} needs REFERRALS_KAFKA_SASL_USERNAME and "
                    "REFERRALS_KAFKA_SASL_PASSWORD"
                )
            config["sasl_plain_username"] = settings.kafka_sasl_username
            config["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    if protocol in ("SSL", "SASL_SSL"):
        config["ssl_check_hostname"] = True
        for option, value in (
            ("ssl_cafile", settings.kafka_ssl_cafile),
            ("ssl_certfile", settings.kafka_ssl_certfile),
            ("ssl_keyfile", settings.kafka_ssl_keyfile),
        ):
            if value is not None:
                config[option] = str(value)
    return config


def check_topic_name(name: str) -> str:
    """The name, if Kafka accepts it as a topic name."""
    if not TOPIC_NAME.match(name) or name in (".", ".."):
        raise KafkaSetupError(f"not a valid Kafka topic name: {name!r}")
    return name


def inbound_topic(settings: Settings, agency_id: str) -> str:
    """The inbound topic of one agency: only that agency's principal may write to it."""
    return check_topic_name(f"{settings.kafka_inbound_topic}.{agency_id}")


def receipts_topic(settings: Settings, agency_id: str) -> str:
    """The topic where an agency reads the signed receipts of its streamed events."""
    return check_topic_name(f"{settings.kafka_receipts_topic}.{agency_id}")


def inbound_pattern(settings: Settings) -> str:
    """The regular expression the ingest worker subscribes with (every agency's topic)."""
    return "^" + re.escape(settings.kafka_inbound_topic) + r"\.[A-Za-z0-9._-]+$"


def agency_of_topic(settings: Settings, topic: str) -> str | None:
    """The agency an inbound topic is bound to, or None if the topic is not an inbound one."""
    prefix = settings.kafka_inbound_topic + "."
    if topic.startswith(prefix) and len(topic) > len(prefix):
        return topic[len(prefix) :]
    return None


def inbound_agencies(settings: Settings, reference: ReferenceData) -> list[str]:
    """The agencies that get an inbound topic: the configured list, else the whole register."""
    configured = [a.strip() for a in settings.kafka_inbound_agencies.split(",") if a.strip()]
    return configured or sorted(reference.agencies)


def wanted_topics(settings: Settings, reference: ReferenceData) -> dict[str, dict[str, Any]]:
    """Every topic the ledger uses, with its creation options."""
    partitions = settings.kafka_partitions
    replication = settings.kafka_replication_factor
    topics: dict[str, dict[str, Any]] = {
        check_topic_name(settings.kafka_outbound_topic): {
            "num_partitions": partitions,
            "replication_factor": replication,
            "configs": {"max.message.bytes": str(MAX_MESSAGE_BYTES)},
        },
        check_topic_name(settings.kafka_dead_letter_topic): {
            "num_partitions": partitions,
            "replication_factor": replication,
            "configs": {
                "retention.ms": str(settings.kafka_dead_letter_retention_ms),
                "max.message.bytes": str(MAX_MESSAGE_BYTES),
            },
        },
    }
    for agency_id in inbound_agencies(settings, reference):
        topics[inbound_topic(settings, agency_id)] = {
            "num_partitions": partitions,
            "replication_factor": replication,
            "configs": {"retention.ms": str(settings.kafka_inbound_retention_ms)},
        }
        topics[receipts_topic(settings, agency_id)] = {
            "num_partitions": partitions,
            "replication_factor": replication,
            "configs": {},
        }
    if settings.kafka_min_insync_replicas:  # with acks=all: a write needs this many copies
        for options in topics.values():
            options["configs"]["min.insync.replicas"] = str(settings.kafka_min_insync_replicas)
    return topics


def ensure_topics(
    settings: Settings, topics: Mapping[str, Mapping[str, Any]], timeout_s: float = 30.0
) -> dict[str, int]:
    """Creates the missing topics and waits until each has a leader; {name: error code}.

    0 is created, 36 already existed (an existing topic keeps its partitions and configs).
    """
    from kafka import KafkaAdminClient
    from kafka.errors import for_code

    if not topics:
        return {}
    admin = KafkaAdminClient(request_timeout_ms=int(timeout_s * 1000), **client_config(settings))
    try:
        result = admin.create_topics(
            {name: dict(options) for name, options in topics.items()},
            timeout_ms=int(timeout_s * 1000),
            raise_errors=False,
        )
        codes = {t["name"]: t["error_code"] for t in result["topics"]}
        failed = {n: c for n, c in codes.items() if c not in (0, TOPIC_ALREADY_EXISTS)}
        if failed:
            raise KafkaSetupError(
                "could not create topics: "
                + ", ".join(f"{n} ({for_code(c).__name__})" for n, c in sorted(failed.items()))
            )
        _wait_for_leaders(admin, list(topics), timeout_s)
        created = sorted(n for n, c in codes.items() if c == 0)
        if created:
            log.info("created Kafka topics: %s", ", ".join(created))
        return codes
    finally:
        admin.close()


def _wait_for_leaders(admin: Any, names: Iterable[str], timeout_s: float) -> None:
    import time

    wanted = set(names)
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.1) + 1):
        ready = {
            d["name"]
            for d in admin.describe_topics(sorted(wanted))
            if d["error_code"] == 0
            and d["partitions"]
            and all(p["leader_id"] >= 0 for p in d["partitions"])
        }
        if ready >= wanted:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    raise KafkaSetupError(
        f"topics without a leader after {timeout_s:.0f}s: {', '.join(sorted(wanted - ready))}"
    )


def ensure_ledger_topics(settings: Settings, reference: ReferenceData) -> dict[str, int]:
    """Creates outbound, dead-letter and every agency's inbound topic if missing (if enabled)."""
    if not settings.kafka_create_topics:
        return {}
    return ensure_topics(settings, wanted_topics(settings, reference))
