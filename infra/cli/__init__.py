"""Collects the `referrals` sub-commands each area of the system contributes.

Each area keeps its commands in its own module exposing `register(app)`, so adding one never
touches another area's file.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

import typer

from infra.cli.core import main  # noqa: F401 - re-exported: the console script is `infra.cli:main`

AREA_COMMAND_MODULES = (
    "infra.cli.api",  # serve, token
    "infra.cli.projections",  # project, rebuild, verify, report
    "infra.cli.kafka",  # ingest, relay
    "infra.cli.transparency",  # checkpoint, witness, verify-bundle, proofs
    "infra.cli.web",  # account
    "infra.cli.bench",  # bench
    "infra.cli.secrets",  # secrets init
    "infra.cli.reference",  # reference show, history, diff, publish (issue 14)
)


def register_all(app: typer.Typer) -> None:
    """Adds every present area's commands to the CLI (imports inside commands stay lazy)."""
    for name in AREA_COMMAND_MODULES:
        if find_spec(name) is not None:
            import_module(name).register(app)
