"""Use cases of the reference versions (issue 14; docs/adr/0009): record the shipped files as
version 1, publish a validated version, read every version back as a `ReferenceSet`.

A separate eventsourcing application (its own events table), so the case log, its Merkle leaves
and its projections are untouched. Signing is injected (`sign`: note text -> signed note), so
this layer needs no key handling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

from domain.calendar import VIETNAM_TZ
from domain.reference_versions import (
    CALENDAR,
    SHIPPED_BY,
    ReferenceDocument,
    ReferenceRecord,
    ReferenceRejectedError,
    ReferenceSet,
    canonical,
    document_id,
    note_text,
    record_from_event,
    record_hash,
    ref_of,
    sha256_hex,
    validate_publication,
)

Signer = Callable[[str], str]


def _no_signature(text: str) -> str:
    return text


class ReferenceVersions(Application[Any]):
    """The recorded versions of every reference document."""

    name = "ReferenceVersions"

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        sign: Signer = _no_signature,
    ) -> None:
        super().__init__(env=env)
        self.sign = sign

    def position(self) -> int:
        """The store's last notification id (0: nothing recorded)."""
        return self.recorder.max_notification_id() or 0

    def load(self) -> ReferenceSet:
        """Every version, in publication order."""
        records: list[ReferenceRecord] = []
        start = 1
        while True:
            page = self.recorder.select_notifications(start=start, limit=500)
            for notification in page:
                event = self.mapper.to_domain_event(notification)
                if isinstance(event, ReferenceDocument.Published):
                    records.append(record_from_event(event, notification.id))
            if len(page) < 500:
                break
            start = page[-1].id + 1
        return ReferenceSet(records, fingerprint=records[-1].sequence if records else 0)

    def record_shipped(self, documents: Mapping[str, Any], source: str) -> int:
        """Records each shipped document as version 1 unless it has a version already (two
        processes starting together: one wins on (id, version 1), the other skips). Returns
        how many were recorded by this call."""
        recorded = 0
        have = set(self.load().refs())
        for ref, content in sorted(documents.items()):
            if ref in have:
                continue
            kind, _, key = ref.partition("/")
            doc_source = (content.get("source") if isinstance(content, Mapping) else None) or source
            try:
                self._append(kind, key, content, None, None, str(doc_source), SHIPPED_BY, None)
                recorded += 1
            except IntegrityError:
                continue
        return recorded

    def publish(
        self,
        kind: str,
        key: str,
        content: Any,
        *,
        effective_from: date | None,
        effective_to: date | None,
        source: str,
        published_by: str,
        today: date,
        held_agencies: Iterable[str] = (),
    ) -> ReferenceRecord:
        """Validates and records a new version (REFERENCE_* errors name the field and rule)."""
        refs = self.load()
        if kind == CALENDAR and effective_from is None and key.isdigit():
            effective_from = date(int(key), 1, 1)
        validate_publication(
            kind, key, content, effective_from, effective_to, source, refs, today, held_agencies
        )
        latest = refs.latest(ref_of(kind, key))
        try:
            return self._append(
                kind, key, content, effective_from, effective_to, source, published_by, latest
            )
        except IntegrityError:
            raise ReferenceRejectedError(
                "REFERENCE_CONTENT_INVALID",
                "version",
                ref=ref_of(kind, key),
                detail="another version was published at the same time; read it and retry",
            ) from None

    def _append(
        self,
        kind: str,
        key: str,
        content: Any,
        effective_from: date | None,
        effective_to: date | None,
        source: str,
        published_by: str,
        latest: ReferenceRecord | None,
    ) -> ReferenceRecord:
        content_json = canonical(content)
        digest = sha256_hex(content_json)
        version = 1 if latest is None else latest.version + 1
        previous = latest.record_sha256 if latest is not None else ""
        eff_from = effective_from.isoformat() if effective_from else ""
        eff_to = effective_to.isoformat() if effective_to else ""
        fields = dict(
            kind=kind,
            key=key,
            version=version,
            content=content_json,
            sha256=digest,
            effective_from=eff_from,
            effective_to=eff_to,
            source=source,
            published_by=published_by,
            previous=previous,
            record_sha256=record_hash(
                kind, key, version, digest, eff_from, eff_to, source, published_by, previous
            ),
            signed_note=self.sign(
                note_text(kind, key, version, digest, eff_from, eff_to, published_by, previous)
            ),
        )
        if latest is None:
            document = ReferenceDocument.first(**fields)
        else:
            document = self.repository.get(document_id(kind, key))
            document.publish(**fields)
        self.save(document)
        return record_from_event(document.versions[-1], 0)


def today_in_vietnam(now: datetime) -> date:
    return now.astimezone(VIETNAM_TZ).date()
