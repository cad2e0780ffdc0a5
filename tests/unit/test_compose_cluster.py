"""docker-compose.cluster.yml (issue 19) cannot run here: parse it and check what the cluster
needs — three KRaft brokers voting together, replication 3 and min.insync.replicas 2, two API
replicas behind the proxy, two ingest consumers in one group, two projection workers, an
active and a standby relay, each a real `referrals` command with real settings, and producers
that wait for every in-sync replica."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.settings import Settings
from tests.unit.test_compose import cli_commands, command_of, environment_of  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text(encoding="utf-8"))


def _ledger(cluster: dict[str, Any], command: str) -> dict[str, dict[str, Any]]:
    return {
        name: s
        for name, s in cluster["services"].items()
        if "command" in s and command_of(s)[:1] == [command]
    }


def test_three_kraft_brokers_vote_together_and_replicate_three_times(
    cluster: dict[str, Any],
) -> None:
    brokers = {
        n: environment_of(s) for n, s in cluster["services"].items() if n.startswith("kafka-")
    }
    assert len(brokers) == 3
    voters = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in brokers.values()}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    assert sorted(env["KAFKA_NODE_ID"] for env in brokers.values()) == ["1", "2", "3"]
    for name, env in brokers.items():
        assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{name}:9092"
        assert "controller" in env["KAFKA_PROCESS_ROLES"]
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
        assert env["KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE"] == "false"
    volumes = [tuple(s["volumes"]) for n, s in cluster["services"].items() if n in brokers]
    assert len(set(volumes)) == 3  # a data directory per broker


def test_the_ledger_services_are_replicated_as_the_cluster_needs(
    cluster: dict[str, Any],
    cli_commands: dict[str, Any],  # noqa: F811
) -> None:
    replicas = {cmd: _ledger(cluster, cmd) for cmd in ("serve", "ingest", "project", "relay")}
    assert {cmd: len(s) for cmd, s in replicas.items()} == {
        "serve": 2,
        "ingest": 2,
        "project": 2,
        "relay": 2,
    }
    fields = set(Settings.model_fields)
    instances = []
    for cmd, services in replicas.items():
        assert cmd in cli_commands
        for service in services.values():
            env = environment_of(service)
            for variable in env:
                if variable.startswith("REFERRALS_"):
                    assert variable.removeprefix("REFERRALS_").lower() in fields, variable
            assert env["REFERRALS_KAFKA_REPLICATION_FACTOR"] == "3"
            assert env["REFERRALS_KAFKA_MIN_INSYNC_REPLICAS"] == "2"
            assert env["REFERRALS_KAFKA_BOOTSTRAP_SERVERS"].count("kafka-") == 3
            assert env["REFERRALS_ENVIRONMENT"] == "production"
            assert service["env_file"][0]["path"] == "./secrets.env"  # the same keys everywhere
            instances.append(env["REFERRALS_INSTANCE"])
            settings = Settings(
                _env_file=None,
                **{  # type: ignore[arg-type]
                    k.removeprefix("REFERRALS_").lower(): v
                    for k, v in env.items()
                    if k.startswith("REFERRALS_") and k not in ("REFERRALS_ENVIRONMENT",)
                },
            )
            assert settings.kafka_min_insync_replicas == 2
    assert len(set(instances)) == len(instances)  # every node named apart
    groups = {environment_of(s)["REFERRALS_KAFKA_GROUP_ID"] for s in replicas["ingest"].values()}
    assert len(groups) == 1  # one consumer group: partitions split between the two


def test_the_proxy_spreads_requests_over_both_api_replicas(cluster: dict[str, Any]) -> None:
    proxy = cluster["services"]["proxy"]
    mount = next(v for v in proxy["volumes"] if "nginx.conf" in v)
    source = ROOT / mount.split(":")[0].removeprefix("./")
    conf = source.read_text(encoding="utf-8")
    apis = _ledger(cluster, "serve")
    upstream = re.search(r"upstream referrals_api \{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = re.findall(r"server ([\w-]+):(\d+)", upstream.group(1))
    assert {s for s, _ in servers} == set(apis)
    for service in apis.values():
        assert {p for _, p in servers} == {environment_of(service)["REFERRALS_HTTP_PORT"]}
    assert "proxy_pass http://referrals_api;" in conf
    assert set(proxy["depends_on"]) == set(apis)
    assert conf.count("{") == conf.count("}")


def test_producers_wait_for_every_in_sync_replica_and_are_idempotent() -> None:
    for module in ("infra/kafka/relay.py", "infra/kafka/ingest.py"):
        text = "".join((ROOT / module).read_text(encoding="utf-8").split())  # layout-free
        assert 'acks="all",enable_idempotence=True' in text, module


def test_topics_are_created_with_min_insync_replicas_when_set() -> None:
    from domain.reference import ReferenceData  # noqa: F401
    from infra.kafka.clients import wanted_topics
    from infra.reference_data import load_reference

    settings = Settings(
        _env_file=None,
        kafka_replication_factor=3,  # type: ignore[call-arg]
        kafka_min_insync_replicas=2,
        kafka_inbound_agencies="lsn-police",
    )
    topics = wanted_topics(settings, load_reference(None))
    assert topics and all(t["replication_factor"] == 3 for t in topics.values())
    assert all(t["configs"]["min.insync.replicas"] == "2" for t in topics.values())
    with pytest.raises(ValueError):
        Settings(
            _env_file=None,
            kafka_replication_factor=1,  # type: ignore[call-arg]
            kafka_min_insync_replicas=2,
        )
