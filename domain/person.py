"""The data subject's own record: erasure of a person's identifying data is itself an event.

Identifying data (name, date of birth, ID number, address, phone, guardian) never enters the
log in clear: it is stored as AES-GCM ciphertext under a per-person data key, and erasing a
person destroys that key (crypto-shredding, Decree 13/2023/NĐ-CP; PDPL 2025). This aggregate
records that the erasure happened — who asked, why, under which rule — without personal data.
"""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate

PERSON_NAMESPACE = uuid.UUID("0c7b1f1e-8e0a-5b7c-a0d9-5d2b9c4e6a21")
ERASURE_REASONS = ("REQUEST_OF_PERSON", "RETENTION_EXPIRED", "COURT_ORDER", "OTHER")


def person_record_id(person_id: str) -> uuid.UUID:
    """The record's aggregate id, derived from the pseudonymous person id."""
    return uuid.uuid5(PERSON_NAMESPACE, person_id)


class PersonRecord(Aggregate):
    """Lifecycle of one person's identifying data in the ledger."""

    TOPIC = "person.PersonRecord"

    class Event(Aggregate.Event):
        pass

    class Created(Event, Aggregate.Created):
        """The record was opened (first needed at erasure)."""

        TOPIC = "person.Created.v1"
        person_id: str

    class Erased(Event):
        """The person's data key was destroyed; every ciphertext of theirs is now unreadable."""

        TOPIC = "person.Erased.v1"
        reason: str
        rule: str
        requested_by: str

        def apply(self, aggregate: PersonRecord) -> None:
            aggregate.erased = True
            aggregate.erasure = {
                "reason": self.reason,
                "rule": self.rule,
                "requested_by": self.requested_by,
                "erased_at": self.timestamp.isoformat(),
            }

    def __init__(self, person_id: str) -> None:
        self.person_id = person_id
        self.erased = False
        self.erasure: dict[str, Any] | None = None

    @classmethod
    def create(cls, person_id: str) -> PersonRecord:
        """Opens the record with its derived id."""
        return cls._create(cls.Created, id=person_record_id(person_id), person_id=person_id)

    def erase(self, reason: str, rule: str, requested_by: str) -> None:
        """Records the erasure; erasing twice is a no-op (the key is already gone)."""
        if self.erased:
            return
        self.trigger_event(self.Erased, reason=reason, rule=rule, requested_by=requested_by)
