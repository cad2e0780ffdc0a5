"""Web fixtures: the API app with the pages installed, over a container on the embedded SQLite
store, with a few scripted cases and one inspector account per province."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from domain.calendar import VIETNAM_TZ
from infra.bootstrap import Container, build_container
from infra.http.app import create_app
from infra.settings import Settings
from infra.web import install
from infra.web.accounts import AccountStore
from tests.factories import VLG_POLICE, CaseScript

PASSWORD = "mat-khau-dung-1"


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test-only scrypt work factor (2^12, not OWASP's 2^17 = ~1 s a hash on the shared test
    machine): these tests are about pages and sessions; tests/fault/test_insiders.py checks the
    production parameters."""
    from infra.web import accounts

    monkeypatch.setattr(accounts, "SCRYPT_N", 2**12)


SECRET_NAME = "Nguyễn Văn Bảo Mật"


@dataclass
class Web:
    """A TestClient over the app, its container and account store, and the scripted cases."""

    container: Container
    client: TestClient
    store: AccountStore
    cases: dict[str, CaseScript] = field(default_factory=dict)

    def sign_in(self, username: str = "tt-lsn", password: str = PASSWORD) -> httpx.Response:
        token = self.sign_in_token()
        return self.client.post(
            "/web/sign-in",
            data={
                "username": username,
                "password": password,
                "csrf_token": token,
                "next": "/web/cases",
            },
            follow_redirects=False,
        )

    def sign_in_token(self) -> str:
        page = self.client.get("/web/sign-in")
        return csrf_of(page.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    if found is None:
        raise AssertionError("no CSRF token in the page")
    return found.group(1)


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    container = build_container(settings)
    start = datetime.now(VIETNAM_TZ).replace(microsecond=0) - timedelta(days=20)
    full = CaseScript(start=start)
    opening = full.notification()
    opening["identity"] = {"full_name": SECRET_NAME, "date_of_birth": "1990-05-01"}
    other = CaseScript(case_id="VLG-T-web-0001", start=start, holder=VLG_POLICE)
    wires = [
        opening,
        full.request(),
        full.transfer(),
        full.accept(),
        full.assign(),
        full.register(),
        full.close(),
        other.notification(),
        other.request(),
    ]
    results = container.referrals.record_batch(wires)
    assert all(not hasattr(r, "error") for r in results), results
    container.projections.catch_up(timeout=30)
    app = create_app(container)
    install(app, container)
    store = app.state.web_accounts
    store.create_account(
        "tt-lsn",
        PASSWORD,
        "inspector",
        "Thanh tra Lạng Sơn",
        provinces=["LSN"],
        reference=container.reference,
    )
    store.create_account(
        "tt-vlg",
        PASSWORD,
        "inspector",
        "Thanh tra Vĩnh Long",
        provinces=["VLG"],
        reference=container.reference,
    )
    with TestClient(app, base_url="http://testserver") as client:
        yield Web(container, client, store, {"full": full, "other": other})
    container.close()
