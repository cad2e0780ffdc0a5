"""`referrals secrets init`: writes secrets.env with every secret docker-compose.yml needs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from infra.deployment import EXIT_CONFIGURATION, generate_secrets, write_secrets_file


def register(app: typer.Typer) -> None:
    """Adds `referrals secrets init` to the CLI."""
    group = typer.Typer(
        help="Bí mật của docker-compose.yml (secrets.env): init.", no_args_is_help=True
    )
    app.add_typer(group, name="secrets")

    @group.command("init")
    def init(
        log_origin: str = typer.Option(
            ...,
            "--log-origin",
            help="the transparency log's name, first line of every signed checkpoint, "
            "e.g. ledger.tgpl.gov.vn/log (REFERRALS_LOG_ORIGIN)",
        ),
        out: Path = typer.Option(Path("secrets.env"), "--out", "-o", dir_okay=False),
        force: bool = typer.Option(False, "--force", help="replace an existing file"),
    ) -> None:
        """Writes secrets.env (mode 0600) with every secret docker-compose.yml needs."""
        try:
            values = generate_secrets(log_origin)
        except ValueError as error:
            print(f"--log-origin: {error}", file=sys.stderr)
            raise typer.Exit(code=EXIT_CONFIGURATION) from None
        try:
            write_secrets_file(out, values, force=force)
        except FileExistsError:
            print(
                f"{out} đã tồn tại; không ghi đè (dùng --force nếu chắc chắn)\n"
                f"{out} already exists; not overwritten (use --force if you are sure)",
                file=sys.stderr,
            )
            raise typer.Exit(code=EXIT_CONFIGURATION) from None
        from services.transparency.note import signer_from_key_text

        public = signer_from_key_text(values["REFERRALS_LOG_SIGNING_KEY"]).verifier().key_text
        print(f"Đã ghi {out} (0600) / wrote {out}: {', '.join(values)}", file=sys.stderr)
        print(public)
