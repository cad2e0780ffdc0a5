"""Collects the `referrals` sub-commands each area of the system contributes.

Each area keeps its commands in its own module exposing `register(app)`, so adding one never
touches another area's file.
"""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

import typer

AREA_COMMAND_MODULES = (
    "infra.http.commands",  # serve, token
    "projections.commands",  # project, rebuild, verify, report
    "infra.kafka.commands",  # ingest, relay
    "infra.transparency.commands",  # checkpoint, witness, verify-bundle, proofs
    "infra.web.commands",  # account
    "bench.commands",  # bench
    "infra.deployment",  # secrets init
    "infra.reference_commands",  # reference show, history, diff, publish (issue 14)
)


def register_all(app: typer.Typer) -> None:
    """Adds every present area's commands to the CLI (imports inside commands stay lazy)."""
    for name in AREA_COMMAND_MODULES:
        if find_spec(name) is not None:
            import_module(name).register(app)
