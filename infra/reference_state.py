"""The reference data a process runs with, read from the recorded versions (issue 14;
docs/adr/0009): recorded from the shipped files at first start, reloaded when a new version is
published (at once in the publishing process, within `REFERRALS_REFERENCE_POLL_SECONDS` in the
others), and published here: validation, signature, re-judging of the compliance view.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder

from domain.calendar import VIETNAM_TZ
from domain.reference_versions import ReferenceRecord, ReferenceSet, split_ref
from infra.reference_data import shipped_documents
from services.reference_versions import ReferenceVersions

SHIPPED_SOURCE = "Files shipped with the ledger (infra/reference_data), recorded at first start"


class ReferenceVersionsRecorder(PostgresApplicationRecorder):
    """The library's recorder without its insert function (see open_reference_versions)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements = [
            s
            for s in self.sql_create_statements
            if s is not self.sql_create_pg_function_insert_events
        ]


def open_reference_versions(settings: Any) -> ReferenceVersions:
    """The reference-versions application on the same store as the ledger, signing with the
    transparency log's key (loaded when the first version is signed)."""
    signer: list[Any] = []

    def sign(text: str) -> str:
        from infra.transparency.service import load_log_signer
        from services.transparency.note import sign_note

        if not signer:
            signer.append(load_log_signer(settings))
        return sign_note(text, signer[0])

    env = dict(settings.eventsourcing_env())
    if "POSTGRES_DBNAME" in env:  # one connection: read at start, polled, rarely written
        env["POSTGRES_POOL_SIZE"] = "1"  # (Settings.pool_budget()["reference"], docs/cluster.md)
        env["POSTGRES_MAX_OVERFLOW"] = "0"
    if "APPLICATION_RECORDER_TOPIC" in env:
        # The insert functions are named per schema, not per table (the ledger's
        # `referrals_insert_event_v1_*`, the library's `es_insert_events_*`, created with
        # CREATE OR REPLACE): a second application creating them would redirect the case
        # log's inserts into its own table. The reference store creates none and inserts
        # with plain statements.
        env["APPLICATION_RECORDER_TOPIC"] = "infra.reference_state:ReferenceVersionsRecorder"
        env["POSTGRES_ENABLE_DB_FUNCTIONS"] = "n"
    if "SQLITE_DBNAME" in env:  # SQLite names one events table per file: a file of its own
        from infra.private_files import private_file

        path = Path(env["SQLITE_DBNAME"]).with_name("reference-versions.sqlite")
        private_file(path)
        env["SQLITE_DBNAME"] = str(path)
    return ReferenceVersions(env, sign=sign)


@dataclass
class Publication:
    """What a publication did: the new version and the verdicts it moved."""

    record: ReferenceRecord
    moved: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "published": self.record.as_dict(content=False),
            "moved": self.moved,
            "moved_count": len(self.moved),
        }


class ReferenceState:
    """The recorded versions this process uses, and the objects built from them."""

    def __init__(self, container: Any, app: ReferenceVersions, poll_seconds: float = 5.0) -> None:
        self.container = container
        self.app = app
        self.poll_seconds = poll_seconds
        self.refs: ReferenceSet = ReferenceSet([])
        self._checked = 0.0
        self._lock = threading.Lock()

    # -- loading ------------------------------------------------------------------------------
    def record_shipped(self) -> int:
        """Version 1 of every shipped document not recorded yet (idempotent across processes)."""
        folder = self.container.settings.reference_data_dir
        return self.app.record_shipped(shipped_documents(folder), SHIPPED_SOURCE)

    def refresh(self, force: bool = False) -> bool:
        """Reloads when the store moved (checked at most every `poll_seconds` unless forced);
        True when the reference data changed."""
        now = time.monotonic()
        if not force and now - self._checked < self.poll_seconds:
            return False
        with self._lock:
            self._checked = now
            if not force and self.app.position() == self.refs.fingerprint:
                return False
            refs = self.app.load()
            if not refs.records:
                return False
            changed = refs.fingerprint != self.refs.fingerprint
            self.apply(refs)
            return changed

    def maybe_refresh(self) -> None:
        self.refresh(force=False)

    def apply(self, refs: ReferenceSet) -> None:
        """Makes `refs` the process's reference data (container, ledger, projections)."""
        today = self._today()
        container = self.container
        reference = refs.reference_data(today)
        calendar = refs.calendar()
        rules = refs.rules(today)
        container.reference, container.calendar, container.rules = reference, calendar, rules
        referrals = container.referrals
        referrals.reference, referrals.calendar, referrals.rules = reference, calendar, rules
        referrals.reference_set = refs
        self.refs = refs

    def _today(self) -> date:
        return self.container.referrals.clock().astimezone(VIETNAM_TZ).date()

    # -- what verdicts and bundles name -------------------------------------------------------
    def describe(self, labels: Any) -> list[dict[str, Any]]:
        """`{ref, version, sha256}` of each label (`holidays/2026@2`)."""
        out = []
        for label in sorted(set(labels or ())):
            record = self.refs.by_label(label)
            if record is not None:
                out.append({"ref": record.ref, "version": record.version, "sha256": record.sha256})
        return out

    def documents(self, labels: Any) -> list[dict[str, Any]]:
        """The full documents (content, hash, signed note) of each label, for bundles."""
        return [r.as_dict() for r in self.refs.documents(labels or ())]

    def versions_map(self) -> dict[str, str]:
        """ref -> "version N, sha256 …" of the versions in force today (reports, /health)."""
        self.maybe_refresh()
        return {
            r.ref: f"v{r.version} sha256:{r.sha256[:16]}" for r in self.refs.current(self._today())
        }

    # -- publishing ---------------------------------------------------------------------------
    def publish(
        self,
        ref: str,
        content: Any,
        *,
        effective_from: date | None,
        effective_to: date | None,
        source: str,
        published_by: str,
    ) -> Publication:
        """Validates, signs and records a version, reloads, and re-judges what it touches."""
        kind, key = split_ref(ref)
        self.refresh(force=True)
        before = self.refs
        record = self.app.publish(
            kind,
            key,
            content,
            effective_from=effective_from,
            effective_to=effective_to,
            source=source,
            published_by=published_by,
            today=self._today(),
            held_agencies=self._held_agencies(),
        )
        self.refresh(force=True)
        record = self.refs.latest(record.ref) or record
        moved: list[dict[str, Any]] = []
        projections = getattr(self.container, "projections", None)
        if projections is not None and "compliance" in projections:
            compliance = projections.projections["compliance"]
            moved = compliance.rejudge_after(record, before, self.refs)
        return Publication(record, moved)

    def _held_agencies(self) -> set[str]:
        projections = getattr(self.container, "projections", None)
        if projections is None or "case_index" not in projections:
            return set()
        view = projections.case_index
        with view.read() as tx:
            rows = tx.execute(
                f"SELECT DISTINCT holder_agency_id AS a FROM {view.t('case_index')} "
                "WHERE closed_at IS NULL UNION SELECT DISTINCT centre_id AS a FROM "
                f"{view.t('case_index')} WHERE closed_at IS NULL"
            )
        return {r["a"] for r in rows if r["a"]}


def parse_publication(document: Mapping[str, Any]) -> dict[str, Any]:
    """A publication file or body: `{"ref", "content", "source", "effective_from"?,
    "effective_to"?}` (dates ISO); errors name the field (REFERENCE_* / FIELD_* codes)."""
    from domain.errors import InvalidEventError

    if not isinstance(document, Mapping):
        raise InvalidEventError(
            "FIELD_INVALID",
            "body",
            rule_vi="phải là một đối tượng JSON",
            rule_en="must be a JSON object",
        )
    for name in ("ref", "content", "source"):
        if name not in document:
            raise InvalidEventError("FIELD_REQUIRED", name)
    if not isinstance(document["ref"], str):
        raise InvalidEventError(
            "FIELD_INVALID", "ref", rule_vi="phải là chuỗi", rule_en="must be a string"
        )
    dates: dict[str, date | None] = {}
    for name in ("effective_from", "effective_to"):
        value = document.get(name)
        try:
            dates[name] = date.fromisoformat(value) if value else None
        except (TypeError, ValueError):
            raise InvalidEventError(
                "FIELD_INVALID",
                name,
                rule_vi="phải là ngày dạng YYYY-MM-DD",
                rule_en="must be a date YYYY-MM-DD",
            ) from None
    return {
        "ref": document["ref"],
        "content": document["content"],
        "source": document["source"],
        **dates,
    }


def now_utc() -> datetime:
    return datetime.now(UTC)
