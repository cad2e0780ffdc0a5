"""Unit fixtures: the Referrals application on the in-memory (POPO) event store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from infra.keystore import SqliteKeyStore
from infra.reference_data import load_calendar, load_reference, load_time_limits
from services.personal_data import MasterKeys, PersonalDataVault
from services.referrals import Referrals
from tests.factories import T0


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture(scope="session")
def reference():  # type: ignore[no-untyped-def]
    return load_reference()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0 + timedelta(days=60))


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[PersonalDataVault]:
    store = SqliteKeyStore(tmp_path / "keys.sqlite")
    yield PersonalDataVault(store, MasterKeys({"k1": b"\x01" * 32}, "k1"))
    store.close()


@pytest.fixture
def referrals(reference, vault: PersonalDataVault, clock: FixedClock) -> Iterator[Referrals]:  # type: ignore[no-untyped-def]
    app = Referrals(
        {"PERSISTENCE_MODULE": "eventsourcing.popo"},
        reference=reference,
        vault=vault,
        rules=load_time_limits(),
        calendar=load_calendar(),
        clock=clock,
    )
    yield app
    app.close()
