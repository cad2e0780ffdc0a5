"""The layout's rules, checked by the suite (so by .ci/run): dependencies point one way
(domain <- services <- projections <- infra) and only infra/ touches FastAPI, typer/click, Kafka
and psycopg (`[tool.importlinter]`); ruff's lint and format check (`[tool.ruff]`); mypy, strict
on domain/ and services/ (`[tool.mypy]`). All configured in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> subprocess.CompletedProcess[str]:
    executable = shutil.which("lint-imports")
    command = [executable] if executable else [sys.executable, "-m", "importlinter.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this tree's packages, not an installed copy
    return subprocess.run(
        [*command, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )


def test_imports_follow_the_layers_and_edges_stay_in_infra() -> None:
    done = _lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def _run(*command: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_ruff_finds_nothing_to_say() -> None:
    done = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_the_tree_is_ruff_formatted() -> None:
    done = _run("ruff", "format", "--no-cache", "--check", ".")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


@pytest.mark.slow
def test_mypy_passes_strict_on_domain_and_services(tmp_path: Path) -> None:
    done = _run("mypy", "--cache-dir", str(tmp_path / "mypy-cache"), timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
