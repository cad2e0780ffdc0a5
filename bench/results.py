"""bench/RESULTS.md: the machine, the run, and one table of figures beside their baselines.

The file has two parts: what the benchmark writes (between the markers, replaced on every
run) and the analysis (missed targets: by how much and why; what was optimised), kept as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.measure import Figure, fmt

BEGIN = "<!-- bench:begin (written by `referrals bench`; edit outside these markers) -->"
END = "<!-- bench:end -->"


def _met(figure: Figure) -> str:
    if figure.met is None:
        return "—"
    return "met" if figure.met else "**missed**"


def _ratio(figure: Figure) -> str:
    ratio = figure.ratio
    if ratio is None:
        return "—"
    if figure.unit == "ms":
        return f"{ratio:,.1f}× the read"
    return f"{ratio:,.2f}×"


def table(figures: Sequence[Figure]) -> str:
    lines = [
        "| row | store | what was measured | figure | baseline (same run) | ratio | target | |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        baseline = (
            f"{fmt(f.baseline, f.unit)} — {f.baseline_what}" if f.baseline is not None else "—"
        )
        what = f.what + (f" ({f.note})" if f.note else "")
        lines.append(
            f"| {f.row} | {f.store} | {what} | **{fmt(f.value, f.unit)}** | {baseline} "
            f"| {_ratio(f)} | {f.target or '—'} | {_met(f)} |"
        )
    return "\n".join(lines)


def _run_line(info: dict[str, Any]) -> str:
    return (
        f"run of {info.get('date', '?')}, commit `{info.get('commit', '?')}`"
        + (" (with uncommitted changes)" if info.get("dirty") else "")
        + f", `{info.get('command', '?')}`, {info.get('seconds', '?')} s, load average at "
        f"start {info.get('load_average_at_start', '?')}, at end "
        f"{info.get('load_average_at_end', '?')}"
    )


def generated_section(
    figures: Sequence[Figure],
    info: dict[str, Any],
    dataset: Any,
    failures: Sequence[str],
    options: Any,
    earlier_runs: Sequence[dict[str, Any]] = (),
) -> str:
    pg = info.get("postgres_settings", {})
    lines = [
        BEGIN,
        "",
        f"Run of {info['date']}, commit `{info['commit']}`"
        + (" (with uncommitted changes)" if info.get("dirty") else "")
        + f", `{info['command']}`, {info.get('seconds', '?')} s.",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB; Python "
        f"{info['python']}; PostgreSQL {info.get('postgres', '?')} on 127.0.0.1 "
        f"({', '.join(f'{k} {v}' for k, v in sorted(pg.items()))}). Load average at start "
        f"{info['load_average_at_start']}, at end {info.get('load_average_at_end', '?')} "
        "(the machine is shared: other test suites may run beside the benchmark).",
        "",
    ]
    if earlier_runs:
        lines += [
            'Figures marked "from the run of …" were measured by an earlier run: '
            + "; ".join(_run_line(r) for r in earlier_runs)
            + ".",
            "",
        ]
    if dataset is not None:
        lines += [
            f"Dataset: {dataset.loaded_events:,} events of {dataset.cases:,} generated cases "
            f"(seed {dataset.seed}; two provinces, 2019-01 to 2026-06, half the cases with an "
            f"identity block) in database `referrals_bench`, schema "
            f"`{info.get('dataset_schema', 'dataset')}`"
            + (" — reused from an earlier run." if dataset.reused else ", loaded by this run.")
            + (
                f" {dataset.rejected} events rejected while loading."
                if dataset.rejected
                else " Every event passed every rule."
            ),
            "",
        ]
    lines += [table(figures), ""]
    if failures:
        lines += ["Rows that failed in this run:", ""]
        lines += [f"- {f}" for f in failures]
        lines.append("")
    lines += [
        "Details of each figure (latencies, counts, per-view rates) are in `bench/RESULTS.json`.",
        "",
        END,
    ]
    return "\n".join(lines)


def write_results(
    path: Path,
    figures: Sequence[Figure],
    info: dict[str, Any],
    dataset: Any,
    failures: Sequence[str],
    options: Any,
    earlier_runs: Sequence[dict[str, Any]] = (),
) -> Path:
    section = generated_section(figures, info, dataset, failures, options, earlier_runs)
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if BEGIN in text and END in text:
            head, _, rest = text.partition(BEGIN)
            _, _, tail = rest.partition(END)
            path.write_text(head + section + tail, encoding="utf-8")
            return path
    path.write_text("# Benchmark results (issue 7)\n\n" + section + "\n", encoding="utf-8")
    return path


def summary(figures: Sequence[Figure]) -> str:
    """One line per figure, for the console."""
    return "\n".join(
        f"{f.store:8} {f.row[:40]:40} {fmt(f.value, f.unit):>16}  baseline "
        f"{fmt(f.baseline, f.unit):>14}  ratio {_ratio(f):>12}  {_met(f)}"
        for f in figures
    )
