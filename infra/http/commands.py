"""`referrals serve`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve() -> None:
        """Serves the HTTP API (embedded SQLite by default, PostgreSQL by settings)."""
        from infra.bootstrap import build_container
        from infra.cli import settings_from_env
        from infra.http.server import serve_container

        container = build_container(settings_from_env())
        try:
            serve_container(container)
        finally:
            container.close()
