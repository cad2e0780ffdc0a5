"""Use cases of the referral ledger: record events (one or a batch), read cases and their
history, replay a case as it stood at an instant, judge its legal time limits, and manage the
personal data of the persons it names.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
)
from eventsourcing.persistence import IntegrityError, Recording

from domain.calendar import VIETNAM_TZ, WorkingCalendar
from domain.catalogue import AMENDMENT_TYPES, InstantRange
from domain.deadlines import CaseFact, TimeLimitRule, TimeLimitVerdict, evaluate_time_limits
from domain.errors import (
    ConflictError,
    DomainError,
    InvalidEventError,
    NotFoundError,
    RuleViolationError,
    UnexpectedItemError,
)
from domain.person import ERASURE_REASONS, PersonRecord, person_record_id
from domain.reference import ReferenceData
from domain.reference_versions import judge_with_basis
from domain.referral import (
    EARLIEST_OCCURRENCE,
    Recorded,
    Referral,
    derive_case,
    effective_facts,
    occurred_as_corrected,
    referral_id,
)
from services.personal_data import (
    KeySession,
    PersonalDataVault,
    age_band_on,
    validate_identity,
)
from services.wire import WireEvent, is_identifier, parse_wire

Clock = Callable[[], datetime]
log = logging.getLogger("referrals.ledger")
# what judging one item may raise when a bug meets a hostile value: answered for that item
# (UnexpectedItemError), never for the batch. Store errors are not among them: they propagate
# (the edge answers 503 or retries).
UNEXPECTED_ITEM_ERRORS: tuple[type[Exception], ...] = (
    ArithmeticError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    RecursionError,
)
# reads the stored events of many aggregates at once: (recorder, ids) -> {id: [stored events]}
# `after` (keyword): only the events above these versions, for aggregates held in memory
BulkReader = Callable[..., Mapping[UUID, Sequence[Any]] | None]


def system_clock() -> datetime:
    """Now, timezone-aware (UTC)."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Rejected:
    """A batch item or load line that was not recorded, with the error that says why."""

    event_id: str | None
    error: DomainError


class CaseCache:
    """The cases this process saved last, so that recording into them again reads only the
    events stored since (another process may have added some), not the whole history.

    A recorder takes a case out (it owns it while it decides and saves) and puts it back only
    once its events are stored, so a failed save never leaves a case in the cache that the
    store does not hold. Least recently used cases are dropped beyond `maxsize`.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._cases: OrderedDict[UUID, Referral] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, ids: Iterable[UUID]) -> dict[UUID, Referral]:
        if not self.maxsize:
            return {}
        with self._lock:
            return {i: c for i in ids if (c := self._cases.pop(i, None)) is not None}

    def put(self, referral: Referral) -> None:
        self.put_many((referral,))

    def put_many(self, referrals: Iterable[Referral]) -> None:
        if not self.maxsize:
            return
        with self._lock:
            for referral in referrals:
                if referral.pending_events:  # not saved: never cached
                    continue
                known = self._cases.get(referral.id)
                if known is None or known.version <= referral.version:
                    self._cases[referral.id] = referral
                    self._cases.move_to_end(referral.id)
            while len(self._cases) > self.maxsize:
                self._cases.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._cases.clear()


class Referrals(Application[UUID]):
    """The referral ledger application (event store of cases and person records)."""

    name = "Referrals"
    snapshotting_intervals = {Referral: 100}  # noqa: RUF012 (library class variable)

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        reference: ReferenceData,
        vault: PersonalDataVault,
        rules: Sequence[TimeLimitRule] = (),
        calendar: WorkingCalendar | None = None,
        clock: Clock = system_clock,
        future_tolerance: timedelta = timedelta(minutes=5),
        earliest: datetime = EARLIEST_OCCURRENCE,
        bulk_reader: BulkReader | None = None,
        case_cache_size: int = 10_000,
    ) -> None:
        super().__init__(env=dict(env or {}))
        self.bulk_reader = bulk_reader
        self.case_cache = CaseCache(case_cache_size)
        self.reference = reference
        self.vault = vault
        self.rules = tuple(rules)
        self.calendar = calendar or WorkingCalendar(frozenset())
        self.clock = clock
        self.future_tolerance = future_tolerance
        self.earliest = earliest
        # issue 14: the recorded reference versions (a `ReferenceSet`) when the ledger reads
        # them from the store, and a hook that reloads them when a new version was published
        self.reference_set: Any = None
        self.before_use: Callable[[], None] | None = None

    def instant_range(self) -> InstantRange:
        """The instants the wire accepts now (settings: earliest_occurrence, future tolerance)."""
        return InstantRange(self.earliest, self.clock() + self.future_tolerance)

    # ---------------------------------------------------------------------------- writing
    def record_event(self, wire: Mapping[str, Any]) -> Recorded:
        """Records one wire event, or recognises its retry; raises DomainError otherwise."""
        if self.before_use is not None:
            self.before_use()
        event = parse_wire(wire, self.reference, self.instant_range())
        referral = self._load_cases([event.case_id])[event.case_id]
        try:
            outcome, pending = self._decide(event, referral, self.vault.session())
        except DomainError:
            if referral is not None:  # refused before any change: still the stored case
                self.case_cache.put(referral)
            raise
        if pending is None:
            if referral is not None:
                self.case_cache.put(referral)
            return self._with_original_time(outcome)
        try:
            recordings = self._save_cases([pending])
        except IntegrityError:
            raise ConflictError("CONCURRENT_WRITE", "case_id") from None
        self.case_cache.put(pending)
        return _recorded(
            outcome,
            cast(Referral.Event, recordings[-1].domain_event).timestamp,
            recordings[-1].notification.id,
            recordings[-1].notification,
        )

    def record_batch(self, wires: Sequence[Any]) -> list[Recorded | Rejected]:
        """Judges every item on its own and records the accepted ones in one transaction.

        Items of the same case are applied in the given order; a rejected item does not stop
        the items after it. If the atomic save meets a concurrent writer, the batch falls back
        to one transaction per case so that one contended case cannot sink the others.
        """
        if self.before_use is not None:
            self.before_use()
        results: list[Recorded | Rejected | None] = [None] * len(wires)
        cases = self._load_cases(  # well-formed ids only: the others are refused when judged
            [
                w["case_id"]
                for w in wires
                if isinstance(w, Mapping) and is_identifier(w.get("case_id"))
            ]
        )
        keys = self.vault.session(defer_new_keys=True)
        keys.prefetch(_identity_person_ids(wires))
        touched: dict[str, list[int]] = {}
        case_of: dict[int, str] = {}
        self._judge(range(len(wires)), wires, cases, results, touched, case_of, keys)
        lost = keys.flush()
        if lost:  # another writer stored a first key for one of these persons meanwhile
            self._judge_again(lost, wires, cases, results, touched, case_of)
        dirty = [cases[c] for c in touched]
        try:
            self._save_stamped(dirty, touched, results)
        except IntegrityError:
            for case_id, indexes in touched.items():
                try:
                    self._save_stamped([cases[case_id]], {case_id: indexes}, results)
                except IntegrityError:
                    for i in indexes:
                        results[i] = Rejected(
                            _event_id_of(wires[i]), ConflictError("CONCURRENT_WRITE", "case_id")
                        )
        else:
            self.case_cache.put_many(c for c in cases.values() if c is not None)
        return [r for r in results if r is not None]

    def _judge(
        self,
        indexes: Iterable[int],
        wires: Sequence[Any],
        cases: dict[str, Referral | None],
        results: list[Any],
        touched: dict[str, list[int]],
        case_of: dict[int, str],
        keys: KeySession,
    ) -> None:
        """Decides the given items in order against `cases` (updated as they are accepted).

        Every item is answered on its own: a domain error refuses it, and so does an
        unexpected error (UnexpectedItemError, INTERNAL_ERROR; logged), the others go on."""
        allowed = self.instant_range()
        for index in indexes:
            wire = wires[index]
            try:
                event = parse_wire(wire, self.reference, allowed)
                case_of[index] = event.case_id
                if event.case_id not in cases:
                    cases.update(self._load_cases([event.case_id]))
                outcome, pending = self._decide(event, cases[event.case_id], keys)
                results[index] = outcome
                if pending is not None:
                    cases[event.case_id] = pending
                    touched.setdefault(event.case_id, []).append(index)
            except DomainError as error:
                results[index] = Rejected(_event_id_of(wire), error)
            except UNEXPECTED_ITEM_ERRORS as error:
                log.exception(
                    "item %d of a batch could not be judged (%s)", index, type(error).__name__
                )
                results[index] = Rejected(_event_id_of(wire), UnexpectedItemError("INTERNAL_ERROR"))
                self._forget_case(case_of.get(index), cases, touched)

    def _forget_case(
        self,
        case_id: str | None,
        cases: dict[str, Referral | None],
        touched: dict[str, list[int]],
    ) -> None:
        """After an unexpected error part-way through deciding, a case with nothing accepted
        yet in this batch is read again from the store by its next item (rather than trust
        what is in hand). A case with accepted items keeps them: the rules check before they
        change anything, so the refused item left no trace on it."""
        if case_id is not None and case_id not in touched:
            cases.pop(case_id, None)

    def _judge_again(
        self,
        lost: set[str],
        wires: Sequence[Any],
        cases: dict[str, Referral | None],
        results: list[Any],
        touched: dict[str, list[int]],
        case_of: dict[int, str],
    ) -> None:
        """Judges again, from the stored case, every item of the cases whose events were
        sealed under a first key that lost the race to another writer's."""
        affected = {
            case_id
            for case_id in touched
            if (case := cases[case_id]) is not None and case.person.get("person_id") in lost
        }
        again = sorted(i for i, case_id in case_of.items() if case_id in affected)
        for case_id in affected:
            touched.pop(case_id, None)
            cases.pop(case_id, None)
        for index in again:
            results[index] = None
        cases.update(self._load_cases(sorted(affected), cached=False))
        keys = self.vault.session()  # keys written at once from here on
        self._judge(again, wires, cases, results, touched, case_of, keys)

    def _with_original_time(self, duplicate: Recorded) -> Recorded:
        """A duplicate's answer carries the time the original was recorded."""
        original: Any = next(
            iter(
                self.events.get(
                    referral_id(duplicate.case_id), gt=duplicate.version - 1, lte=duplicate.version
                )
            ),
            None,
        )
        if original is None:
            return duplicate
        return _recorded(duplicate, original.timestamp)

    def _save_stamped(
        self,
        aggregates: list[Referral | None],
        touched: Mapping[str, list[int]],
        results: list[Any],
    ) -> None:
        if not aggregates:
            return
        pending = {a.case_id: list(a.pending_events) for a in aggregates if a is not None}
        try:
            recordings = self._save_cases([a for a in aggregates if a is not None])
        except IntegrityError:
            for aggregate in aggregates:  # put the events back for the per-case retry
                if aggregate is not None and not aggregate.pending_events:
                    aggregate.pending_events.extend(pending[aggregate.case_id])
            raise
        stored = {
            (r.domain_event.originator_id, r.domain_event.originator_version): r.notification
            for r in recordings
        }
        for case_id, indexes in touched.items():
            if case_id not in pending:
                continue
            for index, event in zip(indexes, pending[case_id], strict=True):
                notification = stored.get((event.originator_id, event.originator_version))
                results[index] = _recorded(
                    results[index],
                    event.timestamp,
                    notification.id if notification is not None else None,
                    notification,
                )

    def _save_cases(self, aggregates: Sequence[Referral]) -> list[Recording[UUID]]:
        """`Application.save` for cases: the same steps (record, snapshots, notify), without
        the library's runtime protocol checks of every saved object (≈ 10 µs an aggregate,
        a tenth of a batch's time): every object here is a `Referral`."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in aggregates:
            processing_event.events.extend(aggregate.collect_events())
            processing_event.aggregates[aggregate.id] = aggregate
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)
        return recordings

    def _decide(
        self, event: WireEvent, referral: Referral | None, keys: KeySession | None = None
    ) -> tuple[Recorded, Referral | None]:
        """Judges an event against its case: (outcome, aggregate with the pending event)."""
        # scope first: a poster with no part in an existing case learns nothing of it (not its
        # version, status, last occurred_at, event ids, nor whether its person was erased)
        prospective = False
        scope_only = False  # the poster has no part in the case: answered without its state
        amendment = event.wire_type in AMENDMENT_TYPES
        if (
            amendment
            and referral is not None
            and referral.recorded_by(event.data["target_event_id"]) == event.agency_id
        ):
            # a poster amends its own fact (held ones too: they give no scope, and then the
            # answer tells it nothing of the case either)
            scope_only = event.agency_id not in referral.posters_in_scope()
        elif referral is not None:
            try:
                referral.check_poster_in_scope(event.agency_id, self.reference, event.wire_type)
            except RuleViolationError as error:
                # ADR 0008: an agency a late fact could bring into the case has its fact held,
                # judged without the case's state; what would need that state (a version to
                # expect, an identity block) is refused with the same scope answer
                known = referral.recorded_event(event.event_id) is not None
                if (
                    known
                    and referral.recorded_by(event.event_id) == event.agency_id
                    and event.identity is None  # an identity block would look the person up
                ):
                    scope_only = True  # a retry of its own held fact: answered as any retry
                    # is, below, but still with nothing of the case
                elif (
                    amendment
                    or not referral.may_hold_for(event.agency_id, error, self.reference)
                    or event.expected_version is not None
                    or event.identity is not None
                    or known
                ):
                    raise
                else:
                    prospective = scope_only = True
        keys = keys or self.vault.session()
        data = dict(event.data)
        if amendment and referral is not None and "target_version" not in data:
            target = referral.recorded_event(data["target_event_id"])
            if target is not None:  # stored with the correction (and in its content digest)
                data["target_version"] = target[0]
        person_id = data.get("person_id") or (
            referral.person.get("person_id") if referral else None
        )
        identity = None
        identity_digest = None
        if event.identity is not None:
            if not person_id:
                raise InvalidEventError("FIELD_REQUIRED", "data.person_id")
            occurred_on = event.occurred_at.astimezone(VIETNAM_TZ).date()
            identity = validate_identity(event.identity, occurred_on)
            if "date_of_birth" in identity:
                band = age_band_on(
                    datetime.fromisoformat(identity["date_of_birth"]).date(), occurred_on
                )
                if data.get("age_band", band) != band:
                    raise InvalidEventError(
                        "FIELD_INVALID",
                        "data.age_band",
                        rule_vi=f"không khớp với ngày sinh (nhóm tuổi đúng: {band})",
                        rule_en=f"does not match the date of birth (expected {band})",
                    )
                data["age_band"] = band
            if keys.is_erased(person_id):
                retry = self._retry_after_erasure(event, data, referral)
                if retry is not None:
                    return retry, None
                raise RuleViolationError("PERSON_ERASED", "identity", value=person_id)
            identity_digest = keys.identity_digest(person_id, identity)
        event = WireEvent(
            event.event_id,
            event.case_id,
            event.wire_type,
            event.agency_id,
            event.occurred_at,
            data,
            event.identity,
            event.expected_version,
        )
        digest = None  # the content digest under the identity digest known before sealing
        if referral is not None:
            digest = event.content_digest(identity_digest)
            duplicate = referral.check_not_conflicting(event.event_id, digest)
            if duplicate is not None:
                return replace(duplicate, scope_only=scope_only), None
        current = referral.version if referral is not None else 0
        if event.expected_version is not None and event.expected_version != current:
            raise ConflictError(
                "VERSION_CONFLICT",
                "expected_version",
                expected=event.expected_version,
                actual=current,
            )

        def seal() -> tuple[str | None, str]:
            if identity is None:
                return None, digest if digest is not None else event.content_digest(None)
            ciphertext, sealed = keys.seal(
                cast(str, person_id), identity, event.case_id, event.event_id
            )
            if digest is not None and sealed == identity_digest:
                return ciphertext, digest
            return ciphertext, event.content_digest(sealed)

        common: dict[str, Any] = {
            "wire_type": event.wire_type,
            "event_id": event.event_id,
            "agency_id": event.agency_id,
            "occurred_at": event.occurred_at,
            "data": data,
            "seal": seal,
            "reference": self.reference,
            "now": self.clock(),
            "future_tolerance": self.future_tolerance,
            "earliest": self.earliest,
        }
        if referral is None:
            referral = Referral.open(case_id=event.case_id, **common)
        else:
            referral.record(**common, prospective=prospective)
        return Recorded(
            event.case_id,
            event.event_id,
            referral.version,
            duplicate=False,
            awaiting=referral.standing(event.event_id),
            scope_only=scope_only,
        ), referral

    def _retry_after_erasure(
        self, event: WireEvent, data: dict[str, Any], referral: Referral | None
    ) -> Recorded | None:
        """A re-sent event with an identity block whose person has since been erased.

        Its recorded content digest covers the identity through a keyed digest that died with
        the key, so it cannot be recomputed. The retry is recognised instead by its event id
        and its non-identity content (type, agency, instant, data), compared with the stored
        event, which must itself carry an identity block: a duplicate answers as before the
        erasure (nothing is recorded, nothing about the identity is revealed), different
        content is EVENT_ID_CONFLICT. None: not a recorded event id (the caller refuses it).
        """
        known = referral.recorded_event(event.event_id) if referral is not None else None
        if known is None or referral is None:
            return None
        version = known[0]
        stored: Any = next(iter(self.events.get(referral.id, gt=version - 1, lte=version)), None)
        retried = WireEvent(
            event.event_id,
            event.case_id,
            event.wire_type,
            event.agency_id,
            event.occurred_at,
            data,
            None,
            event.expected_version,
        )
        if stored is not None and stored.identity_ciphertext:
            original = WireEvent(
                stored.event_id,
                stored.case_id,
                stored.WIRE_TYPE,
                stored.agency_id,
                stored.occurred_at,
                dict(stored.data),
                None,
                None,
            )
            if original.content_digest(None) == retried.content_digest(None):
                return Recorded(event.case_id, event.event_id, version, duplicate=True)
        raise ConflictError("EVENT_ID_CONFLICT", "event_id", value=event.event_id)

    # ---------------------------------------------------------------------------- reading
    def _get_or_none(self, case_id: str) -> Referral | None:
        try:
            return self.repository.get(referral_id(case_id))
        except AggregateNotFoundError:
            return None

    def _load_cases(
        self, case_ids: Sequence[str], cached: bool = True
    ) -> dict[str, Referral | None]:
        """The cases to record into, each owned by the caller until it puts it back.

        A case this process saved last is taken from the case cache and brought up to date
        with the events stored after it (another process may have written); the others are
        read whole. All in one query with a bulk reader; without one, one read per case.
        """
        unique = list(dict.fromkeys(case_ids))
        if not unique:
            return {}
        by_id = {referral_id(c): c for c in unique}
        held = self.case_cache.take(by_id) if cached else {}
        stored = None
        if self.bulk_reader is not None:
            stored = self.bulk_reader(
                self.recorder, list(by_id), after={i: a.version for i, a in held.items()}
            )
        out: dict[str, Referral | None] = {}
        for aggregate_id, case_id in by_id.items():
            referral = held.get(aggregate_id)
            if stored is not None:
                events: Iterable[Any] = map(
                    self.mapper.to_domain_event, stored.get(aggregate_id, ())
                )
            elif referral is not None:
                events = self.events.get(aggregate_id, gt=referral.version)
            else:  # no bulk reader for this store: the repository (with snapshots)
                out[case_id] = self._get_or_none(case_id)
                continue
            for event in events:
                referral = event.mutate(referral)
            out[case_id] = referral
        return out

    def get_case(self, case_id: str, version: int | None = None) -> Referral:
        """The case as of its latest (or a given) version."""
        try:
            return self.repository.get(referral_id(case_id), version=version)
        except AggregateNotFoundError:
            raise NotFoundError("CASE_NOT_FOUND", "case_id", case_id=case_id) from None

    def case_history(self, case_id: str) -> list[Referral.Event]:
        """Every recorded event of the case, in order."""
        events = list(self.events.get(referral_id(case_id)))
        if not events:
            raise NotFoundError("CASE_NOT_FOUND", "case_id", case_id=case_id)
        return events  # type: ignore[return-value]

    def case_as_of(self, case_id: str, as_of: datetime) -> tuple[Referral | None, list[Any]]:
        """The case as the ledger knew it at `as_of` (events recorded at or before it)."""
        history = [e for e in self.case_history(case_id) if e.timestamp <= as_of]
        if not history:
            return None, []
        referral = None
        for event in history:  # the events just read: no second read of the store
            referral = event.mutate(referral)
        return referral, history

    def case_as_happened(self, case_id: str, at: datetime) -> tuple[Referral | None, list[Any]]:
        """The case as it happened by `at` on the law's clock: every fact known now whose
        occurred_at is at or before `at`, derived (ADR 0008); the facts in occurred order."""
        known = self.case_history(case_id)
        instants = occurred_as_corrected(known)  # corrections known now apply (issue 13)
        kept = {v for v, occurred in instants.items() if occurred <= at}
        history = [
            e
            for e in known
            if int(e.originator_version) in kept
            or (e.WIRE_TYPE in AMENDMENT_TYPES and e.data.get("target_version") in kept)
        ]
        if not history:
            return None, []
        referral = derive_case(case_id, history)
        return referral, sorted(history, key=lambda e: (e.occurred_at, e.originator_version))

    def time_limits(
        self, case_id: str, at: datetime | None = None, clock: str = "recorded"
    ) -> list[TimeLimitVerdict]:
        """The case's legal time limits judged at `at` (default now): met, missed or running,
        on the facts known at `at` that are in effect, in occurred order (ADR 0008);
        `clock="occurred"`: on every fact known now that occurred by `at` (as it happened)."""
        return [verdict for verdict, _ in self.time_limits_with_basis(case_id, at, clock)]

    def time_limits_with_basis(
        self,
        case_id: str,
        at: datetime | None = None,
        clock: str = "recorded",
    ) -> list[tuple[TimeLimitVerdict, tuple[str, ...]]]:
        """Each time-limit verdict with the reference versions it was judged with
        (`time_limits@1`, `holidays/2026@2`; issue 14): the table in force on its trigger day
        and the calendar of every year a working-day limit spans. `clock`: which facts count,
        those recorded by `at` (as known) or, `"occurred"`, those that occurred by it."""
        if self.before_use is not None:
            self.before_use()
        at = at or self.clock()
        history = effective_history(
            [
                e
                for e in self.case_history(case_id)
                if (e.occurred_at if clock == "occurred" else e.timestamp) <= at
            ]
        )
        if self.reference_set is not None:
            return judge_with_basis(case_facts(history), self.reference_set, at)
        return [
            (v, ())
            for v in evaluate_time_limits(case_facts(history), self.rules, self.calendar, at)
        ]

    # ---------------------------------------------------------------------- personal data
    def reveal_identity(self, case_id: str) -> dict[str, Any]:
        """The clear identity of a case's person, merged field by field with each field's author,
        or the erased marker.

        A field belongs to the agency that first recorded it; that agency's later blocks update
        it. A block by another agency never overwrites it: a different value is kept as that
        agency's version (`other_versions`, the latest per field and agency), with its author.
        Callers decide who may see it and log the read (`services.access`).
        """
        referral = self.get_case(case_id)
        person_id = referral.person.get("person_id")
        erased = {"person_id": person_id, "erased": True, "identity": None}
        if not person_id:
            return {**erased, "erased": False}
        if self.vault.is_erased(person_id):
            return erased
        merged: dict[str, Any] = {}
        authors: dict[str, dict[str, Any]] = {}
        others: dict[tuple[str, str], dict[str, Any]] = {}
        for event in self.case_history(case_id):
            if event.identity_ciphertext:
                clear = self.vault.open(
                    person_id, event.identity_ciphertext, event.case_id, event.event_id
                )
                if clear is None:
                    return erased
                for name, value in clear.items():
                    author = {"agency_id": event.agency_id, "version": event.originator_version}
                    owner = authors.get(name)
                    if owner is None or owner["agency_id"] == event.agency_id:
                        merged[name] = value
                        authors[name] = author
                    elif value != merged[name]:
                        others[(name, event.agency_id)] = {"field": name, "value": value, **author}
                    else:
                        others.pop((name, event.agency_id), None)  # agrees again with the owner
        return {
            "person_id": person_id,
            "erased": False,
            "identity": merged or None,
            "authors": authors,
            "other_versions": list(others.values()),
        }

    def erase_person(
        self,
        person_id: str,
        reason: str,
        rule: str,
        requested_by: str,
        purge: bool = True,
    ) -> bool:
        """Records the erasure as an event, then destroys the person's data key (and, with
        `purge`, its old copies in the key store's files; a batch purges once at its end)."""
        if reason not in ERASURE_REASONS:
            raise InvalidEventError(
                "FIELD_INVALID",
                "reason",
                rule_vi="phải là một trong " + ", ".join(ERASURE_REASONS),
                rule_en="must be one of " + ", ".join(ERASURE_REASONS),
            )
        try:
            record: PersonRecord = self.repository.get(person_record_id(person_id))
        except AggregateNotFoundError:
            record = PersonRecord.create(person_id)
        record.erase(reason=reason, rule=rule, requested_by=requested_by)
        if record.pending_events:
            self.save(record)
        return self.vault.destroy_key(person_id, self.clock(), purge=purge)

    def person_record(self, person_id: str) -> PersonRecord | None:
        """The person's erasure record, if any."""
        try:
            return self.repository.get(person_record_id(person_id))
        except AggregateNotFoundError:
            return None

    def closed_cases(self, batch: int = 1000) -> Iterable[tuple[str, datetime, str | None]]:
        """(case id, closed at, eligible category) of every closed case, in log order."""
        topic = Referral.CaseClosed.TOPIC
        start = 1
        while True:
            notifications = self.recorder.select_notifications(
                start=start, limit=batch, topics=[topic]
            )
            if not notifications:
                return
            for notification in notifications:
                event: Any = self.mapper.to_domain_event(notification)
                referral = self.get_case(event.case_id)
                yield event.case_id, event.occurred_at, referral.person.get("eligible_category")
            start = notifications[-1].id + 1


def effective_history(history: Sequence[Any]) -> list[Any]:
    """The events of a case (in version order) that are in effect once all of them are known,
    in occurred order, ties by version: what the time limits and the figures judge (ADR 0008)."""
    return effective_facts(history, history[0].case_id if history else "")


def case_facts(history: Iterable[Referral.Event]) -> list[CaseFact]:
    """The case's events as the facts the time-limit rules judge (state folded along)."""
    facts = []
    holder = None
    centre = None
    role = stage = category = None
    kind = "criminal"
    for event in history:
        data = event.data
        if holder is None:
            holder = event.agency_id
        category = data.get("eligible_category", category)
        if event.WIRE_TYPE == "NOT_ELIGIBLE_DETERMINED":
            category = None
        role = data.get("procedural_role", role)
        stage = data.get("stage", stage)
        kind = data.get("proceedings_kind", kind)
        if event.WIRE_TYPE in ("REQUEST_TRANSFERRED", "APPOINTMENT_REQUESTED"):
            centre = data["centre_id"]
        if event.WIRE_TYPE in ("CASE_TRANSFERRED", "REQUEST_FORWARDED"):
            holder = data.get("to_agency_id", holder)
            stage = data.get("to_stage", stage)
        facts.append(
            CaseFact(
                version=event.originator_version,
                type=event.WIRE_TYPE,
                occurred_at=event.occurred_at,
                agency_id=event.agency_id,
                holder_agency_id=holder,
                centre_id=centre,
                procedural_role=role,
                stage=stage,
                proceedings_kind=kind,
                data=data,
                eligible_category=category,
            )
        )
    return facts


def _recorded(
    outcome: Any, recorded_at: datetime, position: int | None = None, stored: Any = None
) -> Recorded:
    return Recorded(
        outcome.case_id,
        outcome.event_id,
        outcome.version,
        outcome.duplicate,
        recorded_at,
        position,
        awaiting=outcome.awaiting,
        stored=stored,
        scope_only=outcome.scope_only,
    )


_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _identity_person_ids(wires: Sequence[Any]) -> list[str]:
    """The person ids that items carrying an identity block name in their data (a prefetch:
    the items are checked properly when they are judged)."""
    out = []
    for wire in wires:
        if isinstance(wire, Mapping) and wire.get("identity") is not None:
            data = wire.get("data")
            person_id = data.get("person_id") if isinstance(data, Mapping) else None
            if isinstance(person_id, str) and _UUID_TEXT.fullmatch(person_id):
                out.append(person_id)  # anything else is refused when judged, unread
    return out


def _event_id_of(wire: Any) -> str | None:
    if isinstance(wire, Mapping) and isinstance(wire.get("event_id"), str):
        return str(wire["event_id"])[:128]
    return None
