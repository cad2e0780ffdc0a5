"""`referrals ingest` (agencies' inbound topics → event store) and `referrals relay`
(event store → outbound topic). Both stop gracefully on SIGTERM or SIGINT.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Callable
from typing import Any

import typer


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    logging.getLogger("kafka").setLevel(logging.WARNING)


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, _frame: Any) -> None:
        logging.getLogger(__name__).info(
            "received %s: finishing the batch in hand", signal.Signals(signum).name
        )
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def register(app: typer.Typer) -> None:
    """Adds the Kafka area's commands to the `referrals` CLI."""

    @app.command("ingest")
    def ingest(
        max_seconds: float | None = typer.Option(None, min=0.1, help="stop after this long"),
    ) -> None:
        """Records agencies' events from their inbound Kafka topics (REFERRALS_KAFKA_*)."""
        from infra.bootstrap import build_container
        from infra.cli.core import settings_from_env
        from infra.kafka.clients import ensure_ledger_topics
        from infra.kafka.ingest import IngestWorker
        from infra.process_tuning import tune_for_throughput

        _configure_logging()
        settings = settings_from_env()
        if "service" not in settings.model_fields_set:
            settings = settings.model_copy(update={"service": "ingest"})
        container = build_container(settings)
        tune_for_throughput()
        try:
            ensure_ledger_topics(settings, container.reference)
            from infra.transparency.service import receipts_for

            worker = IngestWorker.connect(
                settings,
                container.referrals,
                # receipt/v1 each (ADR 0011 addendum): with crc32c installed batch receipts
                # gained nothing measurable here, and a re-sent event keeps its very receipt
                receipts=lambda results: receipts_for(container, results, one_signature=False),
            )
            _stop_on_signals(worker.stop)
            try:
                stats = worker.run(max_seconds=max_seconds)
            finally:
                worker.close()
        finally:
            container.close()
        print(json.dumps({"ingest": {**stats.as_dict(), **worker.watch.as_dict()}}), flush=True)

    @app.command("relay")
    def relay(
        max_seconds: float | None = typer.Option(None, min=0.1, help="stop after this long"),
        until_caught_up: bool = typer.Option(False, help="stop once every event is published"),
    ) -> None:
        """Publishes every recorded event, in log order, to the outbound Kafka topic."""
        from infra.bootstrap import build_container
        from infra.cli.core import settings_from_env
        from infra.kafka.clients import ensure_ledger_topics
        from infra.kafka.relay import Relay
        from infra.process_tuning import tune_for_throughput

        _configure_logging()
        settings = settings_from_env()
        if "service" not in settings.model_fields_set:
            settings = settings.model_copy(update={"service": "relay"})
        container = build_container(settings)
        tune_for_throughput()
        try:
            ensure_ledger_topics(settings, container.reference)
            worker = Relay.connect(settings, container.referrals)
            _stop_on_signals(worker.stop)
            try:
                stats = worker.run(max_seconds=max_seconds, until_caught_up=until_caught_up)
            finally:
                worker.close()
        finally:
            container.close()
        print(json.dumps({"relay": {**stats.as_dict(), **worker.watch.as_dict()}}), flush=True)
