"""`referrals serve` and `referrals token create | revoke | list`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import typer


def register(app: typer.Typer) -> None:
    """Adds the HTTP area's commands to the `referrals` CLI."""

    @app.command("serve")
    def serve(
        host: str | None = typer.Option(None, help="default: REFERRALS_HTTP_HOST"),
        port: int | None = typer.Option(
            None, "--port", "-p", min=1, max=65535, help="default: REFERRALS_HTTP_PORT (8000)"
        ),
        log_level: str = typer.Option("info"),
        workers: int = typer.Option(1, min=1, max=64, help="uvicorn worker processes"),
    ) -> None:
        """Serves the HTTP API (embedded SQLite by default, PostgreSQL by settings)."""
        import os

        from infra.bootstrap import build_container
        from infra.cli.core import settings_from_env
        from infra.deployment import DeploymentError, check_port_free, fail
        from infra.http.server import serve as serve_api

        os.environ.setdefault("REFERRALS_SERVICE", "api")  # uvicorn's workers inherit it
        settings = settings_from_env()
        try:  # before anything is built: a taken port is said at once
            check_port_free(host or settings.http_host, port or settings.http_port)
        except DeploymentError as error:
            raise fail(error) from None
        container = build_container(settings)
        try:
            serve_api(container, host, port, log_level, workers)
        finally:
            container.close()

    token = typer.Typer(
        help="Mã truy cập API (bearer tokens): create, revoke, list.", no_args_is_help=True
    )
    app.add_typer(token, name="token")

    @token.command("create")
    def create(
        role: str = typer.Option(..., help="agency | inspector | council | admin"),
        name: str = typer.Option(..., help="display name of the holder"),
        agency: str | None = typer.Option(None, help="agency id (role agency)"),
        province: list[str] = typer.Option([], help="province code (inspector, council); repeat"),
        principal_id: str | None = typer.Option(None, help="default: <role>:<token id>"),
        expires_days: float | None = typer.Option(None, min=0.0001, help="days until expiry"),
    ) -> None:
        """Creates a token and prints it ONCE (only its SHA-256 hash is stored)."""
        from infra.bootstrap import build_container
        from infra.cli.core import console, settings_from_env

        container = build_container(settings_from_env())
        try:
            expires = (
                datetime.now(timezone.utc) + timedelta(days=expires_days)
                if expires_days is not None
                else None
            )
            try:
                secret, record = container.tokens.create(  # type: ignore[union-attr]
                    role,
                    name,
                    agency_id=agency,
                    provinces=province,
                    principal_id=principal_id,
                    expires_at=expires,
                    reference=container.reference,
                )
            except ValueError as error:
                console.print(f"[red]Không tạo được mã truy cập:[/red] {error}")
                raise typer.Exit(code=2) from None
        finally:
            container.close()
        console.print(
            f"Mã truy cập {record.token_id} cho {record.principal.principal_id} "
            f"({role}); chỉ hiện một lần, hãy lưu lại:"
        )
        print(secret)

    @token.command("revoke")
    def revoke(token_id: str = typer.Argument(..., help="the token id from `token list`")) -> None:
        """Revokes a token (takes effect within seconds in running servers)."""
        from infra.bootstrap import build_container
        from infra.cli.core import settings_from_env

        container = build_container(settings_from_env())
        try:
            revoked = container.tokens.revoke(token_id)  # type: ignore[union-attr]
        finally:
            container.close()
        print(json.dumps({"token_id": token_id, "revoked": revoked}))
        if not revoked:
            raise typer.Exit(code=1)

    @token.command("list")
    def list_tokens(
        as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table"),
    ) -> None:
        """Lists tokens (never their secrets): id, principal, role, scope, status."""
        from rich.console import Console
        from rich.table import Table

        from infra.bootstrap import build_container
        from infra.cli.core import settings_from_env

        container = build_container(settings_from_env())
        try:
            records = container.tokens.list()  # type: ignore[union-attr]
        finally:
            container.close()
        now = datetime.now(timezone.utc)
        rows = [
            {
                "token_id": r.token_id,
                "principal_id": r.principal.principal_id,
                "role": r.principal.role,
                "name": r.principal.display_name,
                "agency_id": r.principal.agency_id,
                "provinces": sorted(r.principal.provinces),
                "created_at": r.created_at.isoformat(),
                "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                "status": r.status(now),
            }
            for r in records
        ]
        if as_json:
            for row in rows:
                print(json.dumps(row, ensure_ascii=False))
            return
        table = Table(title="Mã truy cập API")
        for column in (
            "token_id",
            "principal_id",
            "role",
            "name",
            "agency_id",
            "provinces",
            "expires_at",
            "status",
        ):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row["token_id"],
                row["principal_id"],
                row["role"],
                row["name"],
                row["agency_id"] or "—",
                ",".join(row["provinces"]) or "—",
                row["expires_at"] or "—",
                row["status"],
            )
        Console().print(table)
