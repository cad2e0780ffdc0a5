"""The `referrals` command. With no arguments it runs the embedded demo: SQLite event store
under ./var, sample data for two provinces, projections in process, the web service on
http://127.0.0.1:8000.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from domain.errors import DomainError, InvalidEventError, utf8_safe
from infra.bootstrap import Container, build_container
from infra.settings import Settings
from services.wire import loads_strict

app = typer.Typer(
    help="Sổ theo dõi trợ giúp pháp lý trong tố tụng — legal-aid referral ledger.",
    no_args_is_help=False,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console(stderr=True)


def settings_from_env() -> Settings:
    """Settings from the environment (the only place the CLI reads configuration)."""
    return Settings()


@app.callback()
def default(
    ctx: typer.Context,
    port: int | None = typer.Option(
        None,
        "--port",
        "-p",
        min=1,
        max=65535,
        help="demo: HTTP port (default: REFERRALS_HTTP_PORT, 8000)",
    ),
) -> None:
    """Runs the embedded demo when no command is given (`referrals help`: the commands)."""
    if ctx.invoked_subcommand is None:
        settings = settings_from_env()
        if port is not None:
            settings = settings.model_copy(update={"http_port": port})
        run_demo(settings)


@app.command("help")
def help_command(ctx: typer.Context) -> None:
    """Shows this help (the same as `referrals --help`)."""
    print((ctx.parent or ctx).get_help())


def run_demo(settings: Settings, serve: bool = True) -> dict[str, int]:
    """Loads the sample data into an empty store, then serves the API and pages.

    The port is checked first: when it is taken, nothing is loaded and the message says
    which option to use."""
    if serve:
        from infra.deployment import DeploymentError, check_port_free, fail

        try:
            check_port_free(settings.http_host, settings.http_port)
        except DeploymentError as error:
            raise fail(error) from None
    container = build_container(settings)
    try:
        summary: dict[str, int] = {}
        if container.referrals.recorder.max_notification_id() in (None, 0):
            now = datetime.now(timezone.utc)
            from infra.sample_data import generate_events

            events = generate_events(
                seed=2026,
                cases=300,
                reference=container.reference,
                start=now - timedelta(days=700),
                end=now - timedelta(minutes=10),
            )
            report = load_events(container, _numbered(events), total=None)
            summary = report.counts()
            console.print(f"[green]Đã nạp dữ liệu mẫu[/green]: {summary}")
        from infra.web import ensure_demo_accounts

        for username, password in ensure_demo_accounts(container):
            console.print(f"[cyan]Tài khoản trang web thử nghiệm[/cyan]: {username} / {password}")
        if serve:
            from infra.http.server import serve_container

            serve_container(container, port=settings.http_port)
        return summary
    finally:
        container.close()


# --------------------------------------------------------------------------------- load
@dataclass
class LoadReport:
    """What `referrals load` did: recorded, duplicates skipped, rejected lines with reasons."""

    recorded: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str | None, dict[str, Any]]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "recorded": self.recorded,
            "duplicates": self.duplicates,
            "rejected": len(self.rejected),
        }


def _numbered(events: Any) -> Iterator[tuple[int, Any]]:
    yield from enumerate(events, start=1)


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded object or the DomainError that says why it isn't one)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, loads_strict(raw.decode("utf-8"))
            except DomainError as error:  # e.g. JSON_DUPLICATE_KEY
                yield number, error
            except UnicodeDecodeError:
                yield (
                    number,
                    InvalidEventError(
                        "FIELD_INVALID",
                        "$",
                        rule_vi="dòng không phải UTF-8 hợp lệ",
                        rule_en="the line is not valid UTF-8",
                    ),
                )
            except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
                msg = getattr(error, "msg", None) or str(error)[:80] or type(error).__name__
                col = getattr(error, "colno", 0)
                yield (
                    number,
                    InvalidEventError(
                        "FIELD_INVALID",
                        "$",
                        rule_vi=f"JSON không hợp lệ ({msg}, cột {col})",
                        rule_en=f"invalid JSON ({msg}, column {col})",
                    ),
                )


def load_events(
    container: Container,
    lines: Iterator[tuple[int, Any]],
    total: int | None,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> LoadReport:
    """Records numbered wire events in batches; every line is judged on its own."""
    report = LoadReport()
    task = progress.add_task("Đang ghi sự kiện", total=total) if progress else None
    batch: list[tuple[int, Any]] = []

    def flush() -> None:
        wires = [obj for _, obj in batch if not isinstance(obj, DomainError)]
        numbers = [n for n, obj in batch if not isinstance(obj, DomainError)]
        for number, obj in batch:
            if isinstance(obj, DomainError):
                report.rejected.append((number, None, obj.as_dict()))
        results = container.referrals.record_batch(wires) if wires else []
        for number, wire, result in zip(numbers, wires, results, strict=True):
            if isinstance(result, DomainError) or hasattr(result, "error"):
                event_id = wire.get("event_id") if isinstance(wire, dict) else None
                if isinstance(event_id, str):
                    event_id = utf8_safe(event_id[:128])
                report.rejected.append((number, event_id, result.error.as_dict()))
            elif result.duplicate:
                report.duplicates += 1
            else:
                report.recorded += 1
        if progress is not None and task is not None:
            progress.advance(task, len(batch))
        batch.clear()

    for item in lines:
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return report


@app.command("load")
def load_command(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="JSON Lines, one event a line"
    ),
    batch_size: int = typer.Option(500, min=1, max=1000),
    report_file: Path | None = typer.Option(None, help="write rejected lines as JSON Lines here"),
    lang: str | None = typer.Option(
        None,
        "--lang",
        help="vi | en: language of the printed report (default: from LANG; "
        "the report file always holds both)",
    ),
) -> None:
    """Records a file of wire-format events: recorded / duplicate / rejected (line, reason)."""
    language = output_language(lang)
    settings = settings_from_env()
    container = build_container(settings)
    try:
        total = sum(1 for line in file.open("rb") if line.strip())
        with _progress() as progress:
            report = load_events(container, read_jsonl(file), total, batch_size, progress)
    finally:
        container.close()
    _print_load_report(report, report_file, language)
    if report.rejected:
        raise typer.Exit(code=1)


def output_language(option: str | None) -> str:
    """ "vi" or "en": the --lang option, else LANG/LC_ALL (en_* gives English), else Vietnamese."""
    import os

    if option is not None:
        if option.lower() not in ("vi", "en"):
            raise typer.BadParameter("vi | en", param_hint="--lang")
        return option.lower()
    for variable in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(variable, "")
        if value and value not in ("C", "POSIX") and not value.startswith("C."):
            return "en" if value.lower().startswith("en") else "vi"
    return "vi"


def _print_load_report(report: LoadReport, report_file: Path | None, lang: str = "vi") -> None:
    en = lang == "en"
    table = Table(title="Load result" if en else "Kết quả nạp sự kiện")
    table.add_column("Recorded" if en else "Ghi mới (recorded)", justify="right")
    table.add_column("Duplicate, skipped" if en else "Trùng, bỏ qua (duplicate)", justify="right")
    table.add_column("Rejected" if en else "Từ chối (rejected)", justify="right")
    table.add_row(str(report.recorded), str(report.duplicates), str(len(report.rejected)))
    Console().print(table)
    for number, event_id, error in report.rejected[:50]:
        message = error["message_en"] if en else error["message"]
        Console().print(
            f"{'line' if en else 'dòng'} {number} ({event_id or '—'}): "
            f"[{error['code']}] {error['field']}: {message}",
            markup=False,
        )
    if len(report.rejected) > 50:
        rest = len(report.rejected) - 50
        Console().print(f"… and {rest} more lines" if en else f"… và {rest} dòng khác")
    if report_file is not None:
        with report_file.open("w", encoding="utf-8") as handle:
            for number, event_id, error in report.rejected:
                handle.write(
                    json.dumps({"line": number, "event_id": event_id, **error}, ensure_ascii=False)
                    + "\n"
                )
    print(json.dumps(report.counts()))


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command("generate")
def generate_command(
    output: Path = typer.Argument(..., dir_okay=False),
    cases: int = typer.Option(1000, min=1),
    seed: int = typer.Option(2026),
    years: float = typer.Option(2.0, min=0.01),
) -> None:
    """Writes deterministic sample events (JSON Lines) for two provinces."""
    from infra.reference_data import load_reference
    from infra.sample_data import generate_events

    reference = load_reference(settings_from_env().reference_data_dir)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    count = 0
    with output.open("w", encoding="utf-8") as handle:
        for event in generate_events(
            seed, cases, reference, now - timedelta(days=365 * years), now - timedelta(minutes=10)
        ):
            handle.write(json.dumps(event, ensure_ascii=False) + "\n")
            count += 1
    print(json.dumps({"events": count, "cases": cases}))


# ------------------------------------------------------------------------- personal data
@app.command("erase-person")
def erase_person_command(
    person_id: str = typer.Argument(...),
    reason: str = typer.Option(
        ..., help="REQUEST_OF_PERSON | RETENTION_EXPIRED | COURT_ORDER | OTHER"
    ),
    rule: str = typer.Option("Luật Bảo vệ dữ liệu cá nhân 2025", help="legal basis of the erasure"),
    requested_by: str = typer.Option(..., help="administrator recording the erasure"),
) -> None:
    """Erases a person's identifying data (destroys their data key); recorded as an event."""
    container = build_container(settings_from_env())
    try:
        destroyed = container.referrals.erase_person(
            person_id, reason, rule, requested_by, purge=False
        )
        purged = container.vault.purge_erased()
    except DomainError as error:
        console.print(f"[red]{error.code}[/red] {error.message_vi}")
        raise typer.Exit(code=2) from None
    finally:
        container.close()
    if not purged:
        _warn_not_purged()
    print(
        json.dumps(
            {"person_id": person_id, "key_destroyed": destroyed, "old_copies_purged": purged}
        )
    )


def _warn_not_purged() -> None:
    Console(stderr=True).print(
        "[yellow]Cảnh báo:[/yellow] một giao dịch cũ còn mở nên bản cũ của khoá chưa xoá khỏi "
        "tệp cơ sở dữ liệu; chạy lại `referrals purge-erased-keys` sau khi nó kết thúc. "
        "(Warning: an old open transaction kept the key's old row version in the database "
        "files; run `referrals purge-erased-keys` once it has ended.)"
    )


@app.command("purge-erased-keys")
def purge_erased_keys_command() -> None:
    """Removes old row versions of destroyed data keys from the key store's files."""
    container = build_container(settings_from_env())
    try:
        purged = container.vault.purge_erased()
    finally:
        container.close()
    if not purged:
        _warn_not_purged()
        raise typer.Exit(code=1)
    print(json.dumps({"old_copies_purged": True}))


@app.command("retention")
def retention_command(
    apply: bool = typer.Option(False, "--apply", help="erase what is due (default: dry run)"),
    requested_by: str = typer.Option("retention-job"),
) -> None:
    """Lists (and with --apply erases) persons whose retention period after closure is over."""
    from services.retention import due_for_erasure

    settings = settings_from_env()
    container = build_container(settings)
    try:
        due = due_for_erasure(container.referrals, settings.retention(), datetime.now(timezone.utc))
        table = Table(title="Dữ liệu cá nhân đến hạn xoá" + ("" if apply else " (chạy thử)"))
        for column in ("person_id", "case_id", "closed_at", "category", "due_at"):
            table.add_column(column)
        for item in due:
            table.add_row(
                item.person_id,
                item.case_id,
                item.closed_at.isoformat(),
                item.category or "—",
                item.due_at.isoformat(),
            )
            if apply:
                container.referrals.erase_person(
                    item.person_id, "RETENTION_EXPIRED", item.rule, requested_by, purge=False
                )
        if apply and due and not container.vault.purge_erased():  # one rewrite per run
            _warn_not_purged()
        Console().print(table)
        print(json.dumps({"due": len(due), "erased": len(due) if apply else 0}))
    finally:
        container.close()


@app.command("rotate-master-key")
def rotate_master_key_command() -> None:
    """Re-wraps every data key with the active master key (set the new one active first)."""
    container = build_container(settings_from_env())
    try:
        moved = container.vault.rotate()
    finally:
        container.close()
    print(json.dumps({"rewrapped": moved, "active": container.vault.master_keys.active_id}))


@app.command("new-master-key")
def new_master_key_command() -> None:
    """Prints a fresh base64 master key for REFERRALS_MASTER_KEYS."""
    from services.personal_data import new_master_key

    print(new_master_key())


def _register_area_commands() -> None:
    """Commands of the other areas (HTTP, projections, Kafka, transparency) register here."""
    from infra.cli import register_all

    register_all(app)


def main() -> None:
    """Entry point of the `referrals` console script."""
    from infra.deployment import DeploymentError, fail
    from infra.transparency.service import LogKeyError

    _register_area_commands()
    try:
        app(prog_name="referrals")
    except DeploymentError as error:  # said plainly, with what to do; no traceback
        raise SystemExit(fail(error).exit_code) from None
    except LogKeyError as error:
        print(
            f"Khoá ký nhật ký minh bạch không dùng được / log signing key: {error}", file=sys.stderr
        )
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
