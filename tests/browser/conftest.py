"""Browser fixtures: Debian's chromium driven by Playwright (sync API, never `playwright
install`) against a real uvicorn process on a free loopback port, over a fresh PostgreSQL
schema loaded through the service, with projections caught up and a signed checkpoint before
the browser looks.

Without /usr/bin/chromium the browser tests skip locally and fail under CI (CI=true).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.calendar import VIETNAM_TZ
from infra.bootstrap import build_container
from infra.sample_data import generate_events
from infra.settings import Settings
from infra.transparency.service import transparency_log
from infra.web.accounts import account_store
from tests.conftest import IN_CI, PG_HOST, PG_PORT, PG_USER, _admin_connect, make_pg_settings
from tests.factories import VLG_POLICE, CaseScript

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
VIEWPORTS = ((1280, 800), (800, 1280))
PASSWORD = "mat-khau-thu-nghiem-1"
SECRET_NAME = "Lê Thị Bí Mật"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Site:
    """The running service, its data and accounts."""

    base_url: str
    period_from: date
    period_to: date
    replay_case: str
    no_form03_case: str
    late_case: str
    vlg_case: str
    log_path: Path

    def url(self, path: str) -> str:
        return self.base_url + path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERRALS_")}
    env.update(
        {
            "REFERRALS_STORE": "postgres",
            "REFERRALS_PG_HOST": PG_HOST,
            "REFERRALS_PG_PORT": str(PG_PORT),
            "REFERRALS_PG_USER": PG_USER,
            "REFERRALS_PG_DBNAME": settings.pg_dbname,
            "REFERRALS_PG_SCHEMA": settings.pg_schema,
            "REFERRALS_PG_POOL_SIZE": "4",
            "REFERRALS_DATA_DIR": str(settings.data_dir),
        }
    )
    return env


def _record(container: Any, wires: list[dict[str, Any]]) -> None:
    for start in range(0, len(wires), 500):
        results = container.referrals.record_batch(wires[start : start + 500])
        rejected = [r for r in results if hasattr(r, "error")]
        if rejected:
            raise AssertionError(f"rejected while loading: {rejected[:3]}")


def _load(settings: Settings) -> dict[str, Any]:
    """Sample data for two provinces and scripted cases, through the service; projections
    caught up and a checkpoint signed; one account per role and province."""
    container = build_container(settings)
    try:
        now = datetime.now(VIETNAM_TZ).replace(microsecond=0)
        sample = list(
            generate_events(
                seed=11,
                cases=40,
                reference=container.reference,
                start=now - timedelta(days=300),
                end=now - timedelta(hours=1),
            )
        )
        t0 = now - timedelta(days=10)
        replay = CaseScript(case_id="LSN-WEB-REPLAY-01", start=t0)
        history = replay.full_history()
        history[0]["identity"] = {"full_name": SECRET_NAME, "date_of_birth": "1988-02-03"}
        no_form = CaseScript(case_id="LSN-WEB-NOFORM03", start=t0 + timedelta(hours=1))
        late = CaseScript(case_id="LSN-WEB-LATE-01", start=t0 + timedelta(hours=2))
        vlg = CaseScript(case_id="VLG-WEB-0001", start=t0, holder=VLG_POLICE)
        scripted = [
            *history,
            no_form.event(
                "AID_REQUESTED",
                data={
                    "person_id": no_form.person_id,
                    "proceedings_kind": "criminal",
                    "procedural_role": "SUSPECT",
                    "stage": "INVESTIGATION",
                    "eligible_category": "POOR_HOUSEHOLD",
                    "request_form": "written",
                },
            ),
            no_form.transfer(after=timedelta(hours=2)),
            late.notification(role="ARRESTED"),
            late.request(after=timedelta(minutes=10)),
            late.transfer(after=timedelta(hours=30)),
            vlg.notification(),
            vlg.request(),
        ]
        _record(container, sample)
        _record(container, scripted)
        container.projections.process_pending(timeout=120)
        transparency_log(container).publish_checkpoint()
        store = account_store(container)
        for username, role, name, provinces in (
            ("tt-lsn", "inspector", "Thanh tra Lạng Sơn", ["LSN"]),
            ("tt-vlg", "inspector", "Thanh tra Vĩnh Long", ["VLG"]),
            ("hd-lsn", "council", "Hội đồng tỉnh Lạng Sơn", ["LSN"]),
        ):
            store.create_account(
                username, PASSWORD, role, name, provinces=provinces, reference=container.reference
            )
        return {
            "period_from": (now - timedelta(days=200)).date(),
            "period_to": now.date(),
            "replay_case": replay.case_id,
            "no_form03_case": no_form.case_id,
            "late_case": late.case_id,
            "vlg_case": vlg.case_id,
        }
    finally:
        container.close()


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium; skip without it locally, fail without it in CI."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"{CHROMIUM} is required in CI for the browser tests")
        pytest.skip(f"{CHROMIUM} is not installed")
    return CHROMIUM


@pytest.fixture(scope="module")
def site(
    chromium: Path, pg_database: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with _admin_connect(pg_database) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    data_dir = tmp_path_factory.mktemp("web")
    settings = make_pg_settings(pg_database, schema, data_dir)
    process = None
    try:
        facts = _load(settings)
        port = _free_port()
        log_path = data_dir / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.browser.launcher", str(port)],
                env=_server_env(settings),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited:\n{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        yield Site(base, log_path=log_path, **facts)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        with _admin_connect(pg_database) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def browser(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One chromium with a fresh profile directory for the module.

    Playwright refuses `--user-data-dir` among `launch(args=...)`; `launch_persistent_context`
    passes exactly that flag with the fresh directory given here."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(chromium),
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 800},
            locale="vi-VN",
            timezone_id="Asia/Ho_Chi_Minh",
            accept_downloads=True,
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh tab with no cookies (nobody signed in)."""
    browser.clear_cookies()
    tab = browser.new_page()
    tab.set_default_timeout(15_000)
    try:
        yield tab
    finally:
        tab.close()
