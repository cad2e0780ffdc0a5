"""The HTTP service with the web pages, for the browser tests: `python -m tests.browser.launcher
PORT`. Builds the container from the REFERRALS_* environment, `create_app(container)`, then
`infra.web.install(app, container)` — what `create_app` does itself once the lead wires it
(install is idempotent, so this keeps working afterwards)."""

from __future__ import annotations

import sys

import uvicorn

from infra.bootstrap import build_container
from infra.http.app import create_app
from infra.http.middleware import logging_config
from infra.settings import Settings
from infra.web import install


def main(argv: list[str]) -> None:
    port = int(argv[1])
    container = build_container(Settings())
    app = create_app(container, owns_container=True)
    install(app, container)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=logging_config("WARNING"),
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main(sys.argv)
