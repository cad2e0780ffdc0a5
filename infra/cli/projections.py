"""`referrals project | rebuild | projections status | report` (the projections area's CLI)."""

from __future__ import annotations

import json
import signal
import threading
from datetime import date, datetime
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Adds this area's commands to the `referrals` CLI."""
    app.command("project")(project_command)
    app.command("rebuild")(rebuild_command)
    report_app = typer.Typer(help="Báo cáo của Hội đồng: lập, công bố, lập lại.")
    report_app.callback(invoke_without_command=True)(report_command)
    report_app.command("regenerate")(regenerate_command)
    app.add_typer(report_app, name="report")
    app.command("held")(held_command)
    status_app = typer.Typer(help="Các bảng tổng hợp (projections): trạng thái.")
    status_app.command("status")(status_command)
    status_app.command("quarantine")(quarantine_command)
    status_app.command("retry-quarantined")(retry_quarantined_command)
    app.add_typer(status_app, name="projections")


def _container():  # type: ignore[no-untyped-def]
    from infra.bootstrap import build_container
    from infra.cli.core import settings_from_env

    settings = settings_from_env()
    # the worker and the CLI run projections themselves: never a second in-process runner
    return build_container(settings.model_copy(update={"projections_in_process": False}))


def held_command(
    agency: str | None = typer.Option(None, "--agency", help="only this agency's held events"),
    limit: int = typer.Option(1000, min=1, max=100_000),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Lists the held events (recorded, awaiting an earlier fact; ADR 0008), oldest first, with
    their age and ANOMALY once held longer than REFERRALS_HELD_ANOMALY_AFTER_HOURS (72 h).
    Exits 1 when one is an anomaly. Read from the case index: run `referrals project` first."""
    from infra.cli.core import console
    from services.held import held_listing

    container = _container()
    try:
        container.projections.process_pending()
        rows = container.projections.case_index.held(agency_id=agency, limit=limit)
        after = container.settings.held_anomaly_after_hours
        listed = held_listing(rows, container.referrals.clock(), after)
    finally:
        container.close()
    for row in listed:
        if as_json:
            typer.echo(json.dumps(row, default=str, ensure_ascii=False))
            continue
        flag = "ANOMALY " if row["anomaly"] else ""
        console.print(
            f"{flag}{row['case_id']} {row['event_type']} v{row['version']} "
            f"agency={row['agency_id']} occurred={row['occurred_at'].isoformat()} "
            f"age={row['age_hours']} h reason={row['reason']} "
            f"awaiting={'|'.join(row['awaiting'])}",
            markup=False,
            highlight=False,
        )
    anomalies = sum(1 for r in listed if r["anomaly"])
    summary = {"held": len(listed), "anomalies": anomalies, "anomaly_after_hours": after}
    typer.echo(json.dumps(summary))
    raise typer.Exit(1 if anomalies else 0)


def project_command(
    batch_size: int = typer.Option(2000, min=1, max=100_000, help="events per transaction"),
    until_caught_up: bool = typer.Option(
        False, "--until-caught-up", help="exit once every view has reached the log's end"
    ),
    pause: float = typer.Option(0.0, hidden=True, help="seconds between pages (tests)"),
) -> None:
    """Runs the projection worker: follows the log (LISTEN/NOTIFY on PostgreSQL, polling on
    SQLite) and applies each page to every view, until SIGTERM/SIGINT."""
    import os

    from infra.cli.core import console

    os.environ.setdefault("REFERRALS_SERVICE", "project")  # its pools and application_name
    container = _container()
    from infra.process_tuning import tune_for_throughput
    from infra.transparency.service import start_checkpointer

    tune_for_throughput()
    # publishes signed checkpoints as the audit trail grows (its status file beside ours)
    start_checkpointer(container, status_file=True)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    projections = container.projections
    try:
        console.print(
            f"[green]Projections[/green]: {', '.join(projections.projections)} "
            f"(store {container.settings.store}, batch {batch_size})"
        )
        projections.run_forever(
            stop, batch_size=batch_size, pause=pause, until_caught_up=until_caught_up
        )
    finally:
        status = [s.as_dict() for s in projections.status()]
        container.close()
    print(json.dumps({"status": status}, ensure_ascii=False))


def rebuild_command(
    only: list[str] = typer.Option(None, "--only", help="rebuild only these projections"),
    batch_size: int = typer.Option(5000, min=1, max=100_000),
    processes: bool = typer.Option(
        True,
        "--processes/--in-process",
        help=(
            "PostgreSQL: one process per core, views shared between them (every core works); "
            "--in-process: one process"
        ),
    ),
) -> None:
    """Drops the views and rebuilds them from event zero (stop the worker first)."""
    from infra.cli.core import _progress
    from infra.process_tuning import tune_for_throughput

    container = _container()
    tune_for_throughput()
    try:
        total = container.projections.max_notification_id()
        with _progress() as progress:
            task = progress.add_task("Đang dựng lại các bảng tổng hợp", total=total)

            def advance(done: int, of: int) -> None:
                progress.update(task, completed=done, total=of)

            result = container.projections.rebuild(
                advance, names=only or None, batch_size=batch_size, processes=processes
            )
    finally:
        container.close()
    print(json.dumps(result, ensure_ascii=False))


def status_command() -> None:
    """Position, log head, lag, last error and quarantined events of every projection."""
    from rich.console import Console
    from rich.table import Table

    from infra.cli.core import settings_from_env
    from infra.projection_runtime import offline_status
    from services.worker_health import is_connection_error

    settings = settings_from_env()
    try:
        if settings.store == "postgres":  # a quick answer when the database is down
            import psycopg

            psycopg.connect(settings.pg_conninfo(), connect_timeout=3).close()
        container = _container()
    except Exception as error:
        if not is_connection_error(error):
            raise
        status = offline_status(settings, error)  # the database is unreachable
        rows: list[dict] = []
    else:
        try:
            status = container.projections.status()
            rows = container.projections.quarantine(limit=50)
        finally:
            container.close()
    table = Table(title="Trạng thái các bảng tổng hợp")
    for column in (
        "projection",
        "position",
        "max id",
        "lag",
        "quarantined",
        "held",
        "connection",
        "error",
    ):
        table.add_column(
            column, justify="left" if column in ("projection", "connection", "error") else "right"
        )
    for s in status:
        error = (
            f"{s.error_at.isoformat(timespec='seconds')} {s.error}"
            if s.error_at
            else (s.error or "")
        )
        table.add_row(
            s.name,
            str(s.position),
            str(s.max_notification_id),
            str(s.lag),
            str(s.quarantined),
            str(s.held),
            s.connection,
            error,
        )
    console = Console(stderr=True)
    console.print(table)
    if rows:
        console.print(_quarantine_table(rows))
        console.print(
            "Sửa lỗi rồi chạy `referrals projections retry-quarantined` để áp dụng lại "
            "(fix, then re-apply with `referrals projections retry-quarantined`)."
        )
    print(json.dumps([s.as_dict() for s in status], ensure_ascii=False))


def _quarantine_table(rows: list[dict]) -> object:
    from rich.table import Table

    table = Table(title="Sự kiện bị cách ly (quarantined events)")
    for column in ("projection", "position", "case", "type", "reason", "attempts", "error"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["view_name"],
            str(r["position"]),
            r["case_id"] or r["originator_id"],
            r["event_type"] or "",
            r["reason"] + (" ✓" if r["resolved_at"] else ""),
            str(r["attempts"]),
            f"{r['error_code'] or ''} {r['message'] or ''}".strip(),
        )
    return table


def _row_json(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}


def quarantine_command(
    only: list[str] = typer.Option(None, "--only", help="only these projections"),
    include_resolved: bool = typer.Option(False, "--all", help="resolved ones too (history)"),
) -> None:
    """Lists the events the projections could not apply (one JSON object a line)."""
    from rich.console import Console

    container = _container()
    try:
        rows = container.projections.quarantine(only or None, include_resolved)
    finally:
        container.close()
    Console(stderr=True).print(_quarantine_table(rows))
    for row in rows:
        print(json.dumps(_row_json(row), ensure_ascii=False))


def retry_quarantined_command(
    only: list[str] = typer.Option(None, "--only", help="only these projections"),
) -> None:
    """Re-applies quarantined events (after a fix); those that apply are marked resolved."""
    container = _container()
    try:
        result = container.projections.retry_quarantined(only or None)
    finally:
        container.close()
    print(json.dumps(result, ensure_ascii=False))
    if any(r["open"] for r in result.values()):
        raise typer.Exit(3)


def report_command(
    ctx: typer.Context,
    province: str = typer.Option(None, help="province code, e.g. LSN"),
    year: int = typer.Option(None, help="year of a statutory period"),
    period: str = typer.Option("full-year", help="jan-oct | full-year"),
    date_from: str = typer.Option(None, "--from", help="custom period start (YYYY-MM-DD)"),
    date_to: str = typer.Option(None, "--to", help="custom period end, inclusive (YYYY-MM-DD)"),
    fmt: list[str] = typer.Option(["xlsx"], "--format", help="xlsx | csv | png (repeatable)"),
    output: Path = typer.Option(Path("reports"), "--output", file_okay=False),
    publish: bool = typer.Option(
        False,
        "--publish",
        help=(
            "record it as published: its checkpoint, reference versions and the sha256 of each "
            "output, so that `referrals report regenerate` rebuilds it byte for byte"
        ),
    ),
    published_by: str = typer.Option("cli", "--by", help="who publishes (recorded)"),
) -> None:
    """Writes the council report of a province for a period (XLSX, CSV, PNG charts)."""
    if ctx.invoked_subcommand is not None:
        return
    if province is None:
        raise typer.BadParameter("--province is required")
    from infra.cli.core import _progress, console
    from projections.reports import build_report, period_dates, write_report

    if date_from or date_to:
        if not (date_from and date_to):
            raise typer.BadParameter("--from and --to go together")
        start, end = date.fromisoformat(date_from), date.fromisoformat(date_to)
    else:
        if year is None:
            raise typer.BadParameter("give --year (with --period) or --from/--to")
        try:
            start, end = period_dates(year, period)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    formats = [f for item in fmt for f in item.split(",") if f]
    container = _container()
    try:
        with _progress() as progress:
            task = progress.add_task("Cập nhật bảng tổng hợp", total=None)
            container.projections.process_pending(progress=lambda n: progress.advance(task, n))
            progress.update(
                task,
                total=progress.tasks[task].completed or 1,
                completed=progress.tasks[task].completed or 1,
            )
            step = progress.add_task("Lập báo cáo", total=1 + len(formats))
            try:
                report = build_report(container, province.upper(), start, end)
            except ValueError as error:
                raise typer.BadParameter(str(error)) from None
            progress.advance(step)
            written = []
            for item in formats:
                written += write_report(report, [item], output)
                progress.advance(step)
            record = None
            if publish:
                from infra.published_reports import publish as publish_report

                record = publish_report(container, report, published_by)
    finally:
        container.close()
    for path in written:
        console.print(f"[green]✓[/green] {path}")
    answer: dict = {
        "files": [str(p) for p in written],
        "generated_at": datetime.now().astimezone().isoformat(),
    }
    if record is not None:
        answer["published"] = record
    print(json.dumps(answer, ensure_ascii=False))


def regenerate_command(
    province: str = typer.Option(..., help="province code, e.g. LSN"),
    report_id: str = typer.Option(None, "--id", help="the published report's id"),
    checkpoint: int = typer.Option(
        None, "--checkpoint", help="or: the checkpoint size it names (latest published)"
    ),
    as_: str = typer.Option("published", "--as", help="published | corrected"),
    judge_at: str = typer.Option(
        "published",
        "--judge-at",
        help=("corrected only: judge open limits at the published instant or at now"),
    ),
    output: Path = typer.Option(Path("reports"), "--output", file_okay=False),
) -> None:
    """Regenerates a published report from the checkpoint it names, byte for byte (checked
    against the recorded sha256; exit 4 if an output differs), or `--as corrected` from
    today's views, with the figures that moved and the late entries and reference
    publications that moved them."""
    from infra import published_reports as pr
    from infra.cli.core import console

    if (report_id is None) == (checkpoint is None):
        raise typer.BadParameter("give --id or --checkpoint")
    if as_ not in ("published", "corrected") or judge_at not in ("published", "now"):
        raise typer.BadParameter("--as published|corrected, --judge-at published|now")
    container = _container()
    try:
        record = pr.find_published(container, province.upper(), report_id, checkpoint)
        published, outputs, same = pr.regenerated_outputs(container, record)
        answer: dict = {
            "id": record["id"],
            "as": as_,
            "reproduced": all(same.values()),
            "outputs": {},
        }
        if as_ == "corrected":
            container.projections.process_pending()
            now_report = pr.corrected(container, record, judge_at)
            answer["difference"] = pr.difference(container, record, published, now_report)
            outputs = pr.outputs_of(now_report)
            published = now_report
        output.mkdir(parents=True, exist_ok=True)
        suffix = "" if as_ == "published" else "-corrected"
        for name, data in outputs.items():
            filename = pr.output_filename(published, name)
            stem, dot, ext = filename.rpartition(".")
            path = output / f"{stem}{suffix}{dot}{ext}"
            path.write_bytes(data)
            answer["outputs"][name] = {
                "file": str(path),
                "sha256": pr.sha256(data),
                "published_sha256": record["sha256"].get(name),
                "identical": pr.sha256(data) == record["sha256"].get(name),
            }
    finally:
        container.close()
    if not answer["reproduced"]:
        console.print("[red]✗[/red] the regenerated report differs from the published one")
    print(json.dumps(answer, ensure_ascii=False, default=str))
    if not answer["reproduced"]:
        raise typer.Exit(4)
