"""`referrals account create | list | disable | set-password`: web accounts of inspectors and
council staff (the pages under /web)."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Mật khẩu (password)", hide_input=True, confirmation_prompt=True)


def _store() -> tuple[Any, Any]:
    """The account store for the configured settings, and the reference data."""
    from infra.cli.core import settings_from_env
    from infra.reference_data import load_reference
    from infra.web.accounts import open_account_store

    settings = settings_from_env()
    return open_account_store(settings), load_reference(settings.reference_data_dir)


def register(app: typer.Typer) -> None:
    """Adds the web area's commands to the `referrals` CLI."""
    account = typer.Typer(
        help="Tài khoản trang web của thanh tra và Hội đồng: create, list, disable, set-password.",
        no_args_is_help=True,
    )
    app.add_typer(account, name="account")

    @account.command("create")
    def create(
        username: str = typer.Option(..., help="3–64 characters: a–z 0–9 . _ -"),
        role: str = typer.Option(..., help="inspector | council"),
        province: list[str] = typer.Option([], help="province code (repeat for an inspector)"),
        name: str | None = typer.Option(None, help="display name (default: the username)"),
        agency: str | None = typer.Option(None, help="the body the person works for (optional)"),
        password_stdin: bool = typer.Option(
            False, "--password-stdin", help="read the password from the first stdin line"
        ),
    ) -> None:
        """Creates a web account bound to a principal (role and provinces, as API tokens)."""
        from infra.cli.core import console
        from infra.web.accounts import AccountError

        password = _read_password(password_stdin)
        store, reference = _store()
        try:
            created = store.create_account(
                username,
                password,
                role,
                name or username,
                agency_id=agency,
                provinces=province,
                reference=reference,
            )
        except AccountError as error:
            console.print(f"[red]Không tạo được tài khoản:[/red] {error}")
            raise typer.Exit(code=2) from None
        finally:
            store.close()
        print(
            json.dumps(
                {
                    "username": created.username,
                    "role": created.principal.role,
                    "provinces": sorted(created.principal.provinces),
                }
            )
        )

    @account.command("list")
    def list_accounts() -> None:
        """Lists accounts (never their passwords), one JSON object a line."""
        store, _ = _store()
        try:
            accounts = store.accounts()
        finally:
            store.close()
        for a in accounts:
            print(
                json.dumps(
                    {
                        "username": a.username,
                        "role": a.principal.role,
                        "name": a.principal.display_name,
                        "agency_id": a.principal.agency_id,
                        "provinces": sorted(a.principal.provinces),
                        "created_at": a.created_at.isoformat(),
                        "disabled_at": a.disabled_at.isoformat() if a.disabled_at else None,
                    },
                    ensure_ascii=False,
                )
            )

    @account.command("disable")
    def disable(username: str = typer.Argument(...)) -> None:
        """Disables an account and ends its sessions at once."""
        store, _ = _store()
        try:
            done = store.disable(username)
        finally:
            store.close()
        print(json.dumps({"username": username, "disabled": done}))
        if not done:
            raise typer.Exit(code=1)

    @account.command("set-password")
    def set_password(
        username: str = typer.Argument(...),
        password_stdin: bool = typer.Option(False, "--password-stdin"),
    ) -> None:
        """Sets a new password (unlocks the account, ends its sessions)."""
        from infra.cli.core import console
        from infra.web.accounts import AccountError

        password = _read_password(password_stdin)
        store, _ = _store()
        try:
            done = store.set_password(username, password)
        except AccountError as error:
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(code=2) from None
        finally:
            store.close()
        print(json.dumps({"username": username, "changed": done}))
        if not done:
            raise typer.Exit(code=1)
