"""Runs the HTTP service with uvicorn: `serve` for `referrals serve`, `serve_container` for the
embedded demo (which also prints demo tokens, once per start)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import uvicorn
from fastapi import FastAPI

from infra.bootstrap import Container
from infra.http.app import create_app
from infra.http.middleware import logging_config
from infra.process_tuning import tune_for_throughput

DEMO_TOKEN_PREFIX = "demo-"
DEMO_AGENCY = "lsn-police-investigation"
DEMO_PROVINCES = ("LSN", "VLG")


def serve(
    container: Container,
    host: str | None = None,
    port: int | None = None,
    log_level: str = "info",
    workers: int = 1,
) -> None:
    """Serves the container's API until interrupted (JSON logs on stderr).

    With `workers` > 1, uvicorn starts that many processes, each building its own container
    from the environment (`app_from_env`); the given container is then only used for its
    settings' host and port.
    """
    settings = container.settings
    config = logging_config(log_level.upper())
    options = {
        "host": host or settings.http_host,
        "port": port or settings.http_port,
        "log_config": config,
        "access_log": False,
        "log_level": log_level,
        "server_header": False,
    }
    if workers > 1:
        uvicorn.run("infra.http.server:app_from_env", factory=True, workers=workers, **options)
    else:
        app = create_app(container)
        tune_for_throughput()
        uvicorn.run(app, **options)


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker process: its own container, closed at shutdown."""
    from infra.bootstrap import build_container
    from infra.settings import Settings

    app = create_app(build_container(Settings()), owns_container=True)
    tune_for_throughput()
    return app


def create_demo_tokens(container: Container) -> dict[str, str]:
    """Revokes earlier demo tokens and creates a demo inspector and a demo agency token
    (valid 7 days). Refused in production."""
    if container.settings.environment == "production" or container.tokens is None:
        return {}
    store = container.tokens
    for record in store.list():
        demo = record.principal.principal_id.startswith(DEMO_TOKEN_PREFIX)
        if demo and record.revoked_at is None:
            store.revoke(record.token_id)
    expires = datetime.now(timezone.utc) + timedelta(days=7)
    inspector, _ = store.create(
        "inspector",
        "Thanh tra (demo)",
        provinces=DEMO_PROVINCES,
        principal_id=f"{DEMO_TOKEN_PREFIX}inspector",
        expires_at=expires,
        reference=container.reference,
    )
    agency, _ = store.create(
        "agency",
        "Cơ quan CSĐT Công an tỉnh Lạng Sơn (demo)",
        agency_id=DEMO_AGENCY,
        principal_id=f"{DEMO_TOKEN_PREFIX}agency",
        expires_at=expires,
        reference=container.reference,
    )
    return {"inspector": inspector, "agency": agency}


def demo_tokens(container: Container) -> dict[str, str]:
    """The demo tokens kept in the data directory while they are valid for another day;
    otherwise new ones (create_demo_tokens), kept there in turn. Refused in production."""
    if container.settings.environment == "production" or container.tokens is None:
        return {}
    from infra import demo_credentials

    kept = demo_credentials.load(container.settings)["tokens"]
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    try:
        if set(kept) == {"inspector", "agency"}:
            for secret in kept.values():
                container.tokens.authenticate(secret, now=tomorrow)
            return kept
    except Exception:  # noqa: BLE001 - revoked, expired or unknown: make new ones
        pass
    tokens = create_demo_tokens(container)
    demo_credentials.save(container.settings, "tokens", tokens)
    return tokens


def serve_container(container: Container, port: int | None = None) -> None:
    """The embedded demo's server: prints the demo tokens (the same across restarts of the
    same data directory while valid), then serves."""
    tokens = demo_tokens(container)
    if tokens:
        base = f"http://{container.settings.http_host}:{port or container.settings.http_port}"
        print(
            f"Mã truy cập demo (giữ nguyên khi khởi động lại với cùng thư mục dữ liệu; "
            f"hết hạn sau 7 ngày kể từ khi tạo):\n"
            f"  thanh tra LSN, VLG : {tokens['inspector']}\n"
            f"  {DEMO_AGENCY}: {tokens['agency']}\n"
            f"Thử: curl -H 'Authorization: Bearer {tokens['inspector']}' "
            f"{base}/v1/access-log   —   tài liệu API: {base}/docs",
            flush=True,
        )
    serve(container, port=port)
