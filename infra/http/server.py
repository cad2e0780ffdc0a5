"""Runs the HTTP service with uvicorn."""

from __future__ import annotations

import uvicorn

from infra.bootstrap import Container
from infra.http.app import create_app


def serve_container(container: Container) -> None:
    """Serves the container's API on the configured host and port until interrupted."""
    settings = container.settings
    uvicorn.run(create_app(container), host=settings.http_host, port=settings.http_port,
                log_level="info")
