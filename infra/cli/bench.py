"""`referrals bench` (and `python -m bench`): the benchmarks of issue 7, results in
bench/RESULTS.md. Not part of the test suite."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.runner import ROWS


def register(app: typer.Typer) -> None:
    """Adds `bench` to the `referrals` CLI."""
    app.command("bench")(bench_command)


def bench_command(
    scale: float = typer.Option(
        1.0,
        min=0.001,
        max=4.0,
        help=(
            "fraction of the 5-million-event dataset (0.02: every row on 100,000 events, a few "
            "minutes)"
        ),
    ),
    reuse: bool = typer.Option(
        False,
        "--reuse",
        help=("reuse the dataset already loaded in referrals_bench if it has this size and seed"),
    ),
    only: list[str] = typer.Option([], "--only", help=f"run only these rows: {', '.join(ROWS)}"),  # noqa: B008 - help text built once
    workers: int = typer.Option(2, min=1, max=16, help="uvicorn workers of the HTTP rows"),
    seconds: float = typer.Option(20.0, min=2, max=300, help="length of each wrk run"),
    load_processes: int = typer.Option(2, min=1, max=16, help="processes loading the dataset"),
    seed: int = typer.Option(2026, help="data generator seed"),
    output: Path = typer.Option(None, help="results file (default bench/RESULTS.md)"),
    pg_host: str = typer.Option("127.0.0.1", help="PostgreSQL host (loopback)"),
    pg_port: int = typer.Option(5432),
    pg_user: str = typer.Option("postgres"),
    database: str = typer.Option("referrals_bench", help="created if missing; never another"),
) -> None:
    """Runs the benchmarks (PostgreSQL, and SQLite where it applies) and writes RESULTS.md."""
    from bench.results import summary
    from bench.runner import Options, run
    from bench.store import Target

    unknown = [r for r in only if r not in ROWS]
    if unknown:
        raise typer.BadParameter(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")
    if database in ("postgres", "referrals", "template0", "template1"):
        raise typer.BadParameter("the benchmark uses its own database")
    options = Options(
        scale=scale,
        reuse=reuse,
        seed=seed,
        only=tuple(only),
        workers=workers,
        seconds=seconds,
        load_processes=load_processes,
        target=Target(host=pg_host, port=pg_port, user=pg_user, database=database),
    )
    if output is not None:
        options.output = output
    figures, path = run(options, log=lambda line: typer.echo(line, err=True))
    typer.echo(summary(figures))
    typer.echo(f"written: {path}")


def main() -> None:
    """`python -m bench`."""
    app = typer.Typer(add_completion=False)
    app.command()(bench_command)
    app(prog_name="python -m bench")
