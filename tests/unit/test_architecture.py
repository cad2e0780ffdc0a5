"""The layout's rules, checked: dependencies point one way (domain <- services <- projections
<- infra) and only infra/ touches FastAPI, typer/click, Kafka and psycopg (the contracts in
pyproject.toml, `[tool.importlinter]`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports() -> subprocess.CompletedProcess[str]:
    executable = shutil.which("lint-imports")
    command = [executable] if executable else [sys.executable, "-m", "importlinter.cli"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this tree's packages, not an installed copy
    return subprocess.run([*command, "--no-cache"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=240)


def test_imports_follow_the_layers_and_edges_stay_in_infra() -> None:
    done = _lint_imports()
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout
