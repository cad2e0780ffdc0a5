"""Collects the `referrals` sub-commands each area of the system contributes."""

from __future__ import annotations

import typer


def register_all(app: typer.Typer) -> None:
    """Adds every area's commands to the CLI (imports stay lazy inside each command)."""
    from infra.http.commands import register as register_http

    register_http(app)
