"""Reference documents as recorded, versioned facts (issue 14; docs/adr/0009).

A reference document — the calendar of one year (`holidays/<year>`), the agency register,
the categories, the time-limit table, each code list — is a `ReferenceDocument` aggregate whose
`Published` events are its versions. This module validates a publication, and answers which
version is in force for a day (`ReferenceSet`). Pure: stdlib and `eventsourcing.domain` only.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

from eventsourcing.domain import Aggregate

from domain.calendar import VIETNAM_TZ, WorkingCalendar, calendar_from_record
from domain.deadlines import (
    CaseFact,
    TimeLimitRule,
    TimeLimitVerdict,
    evaluate_time_limits,
    rules_from_records,
)
from domain.errors import DomainError
from domain.reference import ReferenceData, reference_from_records

NAMESPACE = uuid.UUID("5b0c1e7a-4d3f-4c59-9a51-2f1d0e6c7b14")
CALENDAR = "holidays"
"""The kind of the per-year calendar documents (key: the year)."""
NOT_CODE_LISTS = frozenset({CALENDAR, "time_limits", "report_deadlines"})
SHIPPED_BY = "system:shipped-files"
NOTE_HEADING = "legal-aid-ledger reference/v1"


class ReferenceRejectedError(DomainError):
    """Raised when a reference publication breaks a rule; carries a stable `REFERENCE_*` code."""


def canonical(content: Any) -> str:
    """The document's content as stored and hashed: JSON, sorted keys, no spaces, UTF-8."""
    return json.dumps(
        content, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
    )


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def ref_of(kind: str, key: str) -> str:
    """The document's name: `agencies`, `time_limits`, `holidays/2026`."""
    return f"{kind}/{key}" if key else kind


def split_ref(ref: str) -> tuple[str, str]:
    kind, _, key = ref.partition("/")
    return kind, key


def document_id(kind: str, key: str) -> uuid.UUID:
    """Deterministic: two processes recording version 1 of a document collide (one wins)."""
    return uuid.uuid5(NAMESPACE, ref_of(kind, key))


def note_text(
    kind: str,
    key: str,
    version: int,
    sha256: str,
    effective_from: str,
    effective_to: str,
    published_by: str,
    previous: str,
) -> str:
    """The header lines the log key signs (a c2sp signed note's text)."""
    return (
        f"{NOTE_HEADING}\nref {ref_of(kind, key)}\nversion {version}\nsha256 {sha256}\n"
        f"effective_from {effective_from or '-'}\neffective_to {effective_to or '-'}\n"
        f"published_by {published_by}\nprevious {previous or '-'}\n"
    )


class ReferenceDocument(Aggregate):
    """One reference document and its published versions (văn bản dữ liệu tham chiếu)."""

    TOPIC = "reference.ReferenceDocument"

    class Event(Aggregate.Event):
        TOPIC = "reference.Event"

    class Created(Event, Aggregate.Created):
        """Not used: a document is created by its first publication."""

        TOPIC = "reference.Created.v1"

    class Published(Event):
        """A version of the document: its content, hash, effective dates and legal source."""

        TOPIC = "reference.Published.v1"
        kind: str
        key: str
        version: int
        content: str
        sha256: str
        effective_from: str
        effective_to: str
        source: str
        published_by: str
        previous: str  # the previous version's record hash ('' for version 1)
        record_sha256: str
        signed_note: str

        def mutate(self, aggregate: Any) -> Any:
            if aggregate is None:
                aggregate = ReferenceDocument.__new__(ReferenceDocument)
                aggregate.__base_init__(
                    originator_id=self.originator_id,
                    originator_version=self.originator_version - 1,
                    timestamp=self.timestamp,
                )
                aggregate.versions = []
            return super().mutate(aggregate)

        def apply(self, aggregate: ReferenceDocument) -> None:
            aggregate.versions.append(self)

    versions: list[Any]

    @classmethod
    def first(cls, **fields: Any) -> ReferenceDocument:
        """Version 1 of a document (its first `Published` event creates it)."""
        event = cls.Published(
            originator_id=document_id(fields["kind"], fields["key"]),
            originator_version=1,
            timestamp=cls.Published.create_timestamp(),
            **fields,
        )
        aggregate: ReferenceDocument = event.mutate(None)
        aggregate._pending_events.append(event)
        return aggregate

    def publish(self, **fields: Any) -> None:
        self.trigger_event(self.Published, **fields)


# --------------------------------------------------------------------------------------------
# Records and the set in force
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReferenceRecord:
    """One published version, as read back."""

    kind: str
    key: str
    version: int
    content: Any
    content_json: str
    sha256: str
    effective_from: date | None
    effective_to: date | None
    source: str
    published_by: str
    published_at: datetime
    previous: str
    record_sha256: str
    signed_note: str
    sequence: int = 0  # position in the reference store (order of publication)

    @property
    def ref(self) -> str:
        return ref_of(self.kind, self.key)

    @property
    def label(self) -> str:
        return f"{self.ref}@{self.version}"

    def covers(self, day: date) -> bool:
        if self.effective_from is not None and day < self.effective_from:
            return False
        return not (self.effective_to is not None and day >= self.effective_to)

    def as_dict(self, content: bool = True) -> dict[str, Any]:
        out = {
            "ref": self.ref,
            "kind": self.kind,
            "key": self.key,
            "version": self.version,
            "sha256": self.sha256,
            "effective_from": self.effective_from.isoformat() if self.effective_from else None,
            "effective_to": self.effective_to.isoformat() if self.effective_to else None,
            "source": self.source,
            "published_by": self.published_by,
            "published_at": self.published_at.isoformat(),
            "previous": self.previous or None,
            "record_sha256": self.record_sha256,
            "signed_note": self.signed_note,
        }
        if content:
            out["content"] = self.content
        return out


def record_from_event(event: Any, sequence: int = 0) -> ReferenceRecord:
    return ReferenceRecord(
        kind=event.kind,
        key=event.key,
        version=event.version,
        content=json.loads(event.content),
        content_json=event.content,
        sha256=event.sha256,
        effective_from=_date_or_none(event.effective_from),
        effective_to=_date_or_none(event.effective_to),
        source=event.source,
        published_by=event.published_by,
        published_at=event.timestamp,
        previous=event.previous,
        record_sha256=event.record_sha256,
        signed_note=event.signed_note,
        sequence=sequence,
    )


def record_from_dict(value: Mapping[str, Any]) -> ReferenceRecord:
    """A record from its `as_dict()` form (a bundle's `reference` member); checks the hash."""
    content_json = canonical(value["content"])
    if sha256_hex(content_json) != value["sha256"]:
        raise ValueError(
            f"reference {value.get('ref')}@{value.get('version')}: the content "
            "does not hash to its sha256"
        )
    return ReferenceRecord(
        kind=value["kind"],
        key=value["key"],
        version=int(value["version"]),
        content=value["content"],
        content_json=content_json,
        sha256=value["sha256"],
        effective_from=_date_or_none(value.get("effective_from")),
        effective_to=_date_or_none(value.get("effective_to")),
        source=value.get("source", ""),
        published_by=value.get("published_by", ""),
        published_at=datetime.fromisoformat(value["published_at"]),
        previous=value.get("previous") or "",
        record_sha256=value.get("record_sha256", ""),
        signed_note=value.get("signed_note", ""),
    )


def _date_or_none(value: Any) -> date | None:
    return date.fromisoformat(value) if value else None


def record_hash(
    kind: str,
    key: str,
    version: int,
    sha256: str,
    effective_from: str,
    effective_to: str,
    source: str,
    published_by: str,
    previous: str,
) -> str:
    """SHA-256 of the record's fields, chained to the previous version's record hash."""
    return sha256_hex(
        canonical(
            [
                kind,
                key,
                version,
                sha256,
                effective_from,
                effective_to,
                source,
                published_by,
                previous,
            ]
        )
    )


@dataclass
class ReferenceSet:
    """Every recorded version of every document; which one is in force when."""

    records: Sequence[ReferenceRecord]
    fingerprint: int = 0  # the store's last position when read (reload when it moves)
    _by_ref: dict[str, list[ReferenceRecord]] = field(default_factory=dict, repr=False)
    _calendar: WorkingCalendar | None = field(default=None, repr=False)
    _rules: dict[str, tuple[TimeLimitRule, ...]] = field(default_factory=dict, repr=False)
    _windows: list[Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for record in sorted(self.records, key=lambda r: (r.ref, r.version)):
            self._by_ref.setdefault(record.ref, []).append(record)

    # -- lookups ------------------------------------------------------------------------------
    def refs(self) -> list[str]:
        return sorted(self._by_ref)

    def history(self, ref: str) -> list[ReferenceRecord]:
        return list(self._by_ref.get(ref, ()))

    def latest(self, ref: str) -> ReferenceRecord | None:
        versions = self._by_ref.get(ref)
        return versions[-1] if versions else None

    def version(self, ref: str, version: int) -> ReferenceRecord | None:
        for record in self._by_ref.get(ref, ()):
            if record.version == version:
                return record
        return None

    def by_label(self, label: str) -> ReferenceRecord | None:
        ref, _, version = label.rpartition("@")
        return self.version(ref, int(version)) if version.isdigit() else None

    def in_force(self, ref: str, day: date) -> ReferenceRecord | None:
        """The version in force on `day`: the latest published whose dates cover it. A
        calendar year's latest version governs its whole year (a correction applies to it)."""
        versions = self._by_ref.get(ref, ())
        if ref.startswith(CALENDAR + "/"):
            return versions[-1] if versions else None
        for record in reversed(versions):
            if record.covers(day):
                return record
        return None

    def current(self, day: date) -> list[ReferenceRecord]:
        """One version per document, the one in force on `day` (documents with none omitted)."""
        out = []
        for ref in self.refs():
            record = self.in_force(ref, day)
            if record is not None:
                out.append(record)
        return out

    def as_of(self, when: datetime) -> ReferenceSet:
        """The set as it was published up to `when` (what a past report was judged with)."""
        return ReferenceSet([r for r in self.records if r.published_at <= when])

    # -- what the ledger uses -----------------------------------------------------------------
    def reference_data(self, day: date) -> ReferenceData:
        files = {r.ref: r.content for r in self.current(day) if r.kind not in NOT_CODE_LISTS}
        return reference_from_records(files)

    def calendar(self) -> WorkingCalendar:
        """Every year's latest calendar, as one working calendar."""
        if self._calendar is None:
            record = self.calendar_record()
            # no year recorded (a bundle whose limits run in hours): weekends only
            self._calendar = (
                calendar_from_record(record) if record["years"] else WorkingCalendar(frozenset())
            )
        return self._calendar

    def calendar_record(self) -> dict[str, Any]:
        latest = {
            r.key: r
            for r in (self.latest(ref) for ref in self.refs() if ref.startswith(CALENDAR + "/"))
            if r
        }
        years = {key: r.content for key, r in latest.items()}
        return {
            "version": " ".join(f"{y}@{latest[y].version}" for y in sorted(years)) or "-",
            "source": "recorded reference versions",
            "years": years,
        }

    def rules_versions(self) -> list[ReferenceRecord]:
        return self.history("time_limits")

    def rules_of(self, record: ReferenceRecord) -> tuple[TimeLimitRule, ...]:
        if record.label not in self._rules:
            self._rules[record.label] = rules_from_records(record.content["rules"])
        return self._rules[record.label]

    def rules(self, day: date) -> tuple[TimeLimitRule, ...]:
        record = self.in_force("time_limits", day)
        return self.rules_of(record) if record is not None else ()

    def rule_windows(self) -> list[tuple[ReferenceRecord, date | None, date | None]]:
        """Which time-limit table judges which trigger days (computed once per set)."""
        if self._windows is None:
            self._windows = _rule_windows(self)
        return self._windows

    def documents(self, labels: Iterable[str]) -> list[ReferenceRecord]:
        out = []
        for label in sorted(set(labels)):
            record = self.by_label(label)
            if record is not None:
                out.append(record)
        return out


# --------------------------------------------------------------------------------------------
# Judging with the versions in force, naming the basis
# --------------------------------------------------------------------------------------------


def judge_with_basis(
    facts: Sequence[CaseFact],
    refs: ReferenceSet,
    at: datetime,
) -> list[tuple[TimeLimitVerdict, tuple[str, ...]]]:
    """Each verdict with the reference versions it used: the time-limit table in force on its
    trigger's Vietnam-local day, and (working-day limits only) the calendar of every year its
    limit spans. A limit triggered before a table's effective date keeps the older table."""
    if not facts:
        return []
    calendar = refs.calendar()
    windows = refs.rule_windows()
    out: list[tuple[TimeLimitVerdict, tuple[str, ...]]] = []
    for record, start, end in windows:
        rules = refs.rules_of(record)
        by_id = {rule.rule_id: rule for rule in rules}
        for verdict in evaluate_time_limits(facts, rules, calendar, at):
            day = verdict.trigger_at.astimezone(VIETNAM_TZ).date()
            if (start is not None and day < start) or (end is not None and day >= end):
                continue
            basis = [record.label]
            rule = by_id.get(verdict.rule_id)
            if rule is not None and rule.clock == "working_days":
                until = max(verdict.met_at or verdict.deadline, verdict.deadline)
                last = until.astimezone(VIETNAM_TZ).date()
                for year in range(day.year, last.year + 1):
                    record_y = refs.latest(f"{CALENDAR}/{year}")
                    if record_y is not None:
                        basis.append(record_y.label)
            out.append((verdict, tuple(basis)))
    out.sort(key=lambda item: (item[0].trigger_version, item[0].rule_id))
    return out


def _rule_windows(refs: ReferenceSet) -> list[tuple[ReferenceRecord, date | None, date | None]]:
    """Which table judges which trigger days: each version from its effective_from until the
    next later-published version that takes over (later publications win on overlaps)."""
    versions = refs.rules_versions()
    if not versions:
        return []
    # split the timeline at every boundary; each piece goes to the latest version covering it
    bounds = sorted({d for r in versions for d in (r.effective_from, r.effective_to) if d})
    pieces: list[tuple[date | None, date | None]] = []
    edges: list[date | None] = [None, *bounds, None]
    for lo, hi in pairwise(edges):
        pieces.append((lo, hi))
    out: list[tuple[ReferenceRecord, date | None, date | None]] = []
    for lo, hi in pieces:
        probe = lo if lo is not None else (hi - timedelta(days=1) if hi else date(2000, 1, 1))
        record = refs.in_force("time_limits", probe)
        if record is None:
            continue
        if out and out[-1][0] is record and out[-1][2] == lo:
            out[-1] = (record, out[-1][1], hi)
        else:
            out.append((record, lo, hi))
    return out


# --------------------------------------------------------------------------------------------
# Validation of a publication
# --------------------------------------------------------------------------------------------


def known_kind(kind: str, known: Iterable[str]) -> bool:
    return kind == CALENDAR or kind in set(known)


def validate_publication(
    kind: str,
    key: str,
    content: Any,
    effective_from: date | None,
    effective_to: date | None,
    source: str,
    refs: ReferenceSet,
    today: date,
    held_agencies: Iterable[str] = (),
) -> None:
    """Refuses a publication the ledger could not use or that would rewrite history: unknown
    kind, content that does not parse, bad dates, no legal source, an agency still holding an
    open case removed, a category removed or retired retroactively, nothing changed."""
    ref = ref_of(kind, key)
    known = {r.kind for r in refs.records}
    if not known_kind(kind, known):
        raise ReferenceRejectedError(
            "REFERENCE_KIND_UNKNOWN",
            "kind",
            value=kind,
            known=", ".join(sorted(known | {CALENDAR})),
        )
    if kind == CALENDAR:
        if not (key.isdigit() and len(key) == 4):
            raise ReferenceRejectedError("REFERENCE_KEY_INVALID", "key", value=key)
    elif key:
        raise ReferenceRejectedError("REFERENCE_KEY_INVALID", "key", value=key)
    if not isinstance(source, str) or not source.strip():
        raise ReferenceRejectedError("REFERENCE_SOURCE_REQUIRED", "source")
    if effective_from and effective_to and effective_to <= effective_from:
        raise ReferenceRejectedError(
            "REFERENCE_DATES_INVALID",
            "effective_to",
            rule_vi="phải sau ngày bắt đầu hiệu lực",
            rule_en="must be after effective_from",
        )
    if kind == CALENDAR:
        year = int(key)
        for name, day in (("effective_from", effective_from), ("effective_to", effective_to)):
            if (
                day is not None
                and day.year != year
                and not (name == "effective_to" and day == date(year + 1, 1, 1))
            ):
                raise ReferenceRejectedError(
                    "REFERENCE_DATES_INVALID",
                    name,
                    rule_vi=f"lịch của năm {year} chỉ có hiệu lực trong năm {year}",
                    rule_en=f"the calendar of {year} is in force in {year} only",
                )
    _check_schema(kind, key, content, refs, today)
    latest = refs.latest(ref)
    if (
        latest is not None
        and latest.sha256 == sha256_hex(canonical(content))
        and (latest.effective_from == effective_from and latest.effective_to == effective_to)
    ):
        raise ReferenceRejectedError(
            "REFERENCE_UNCHANGED", "content", ref=ref, version=latest.version
        )
    current = refs.in_force(ref, today) or latest
    if kind == "agencies" and current is not None:
        kept = {a.get("agency_id") for a in content.get("items", [])}
        gone = sorted(
            set(held_agencies) & ({a["agency_id"] for a in current.content["items"]} - kept)
        )
        if gone:
            raise ReferenceRejectedError(
                "REFERENCE_AGENCY_STILL_HELD", "items", value=", ".join(gone)
            )
    if kind == "categories" and current is not None:
        new = {c.get("code"): c for c in content.get("items", [])}
        for old in current.content["items"]:
            code = old["code"]
            if code not in new:
                raise ReferenceRejectedError("REFERENCE_CATEGORY_REMOVED", "items", value=code)
            old_to = _date_or_none(old.get("valid_to"))
            new_to = _date_or_none(new[code].get("valid_to"))
            if new_to is not None and new_to < today and (old_to is None or new_to < old_to):
                raise ReferenceRejectedError(
                    "REFERENCE_CATEGORY_RETROACTIVE",
                    "valid_to",
                    value=code,
                    date=new_to.isoformat(),
                )


def _check_schema(kind: str, key: str, content: Any, refs: ReferenceSet, today: date) -> None:
    def bad(error: Exception) -> ReferenceRejectedError:
        return ReferenceRejectedError(
            "REFERENCE_CONTENT_INVALID", "content", ref=ref_of(kind, key), detail=str(error)
        )

    if not isinstance(content, Mapping):
        raise bad(ValueError("the content must be a JSON object"))
    try:
        canonical(content)
        if kind == CALENDAR:
            calendar_from_record({"version": "check", "source": "check", "years": {key: content}})
        elif kind == "time_limits":
            rules_from_records(content["rules"])
        elif kind == "report_deadlines":
            if not isinstance(content.get("provinces"), Mapping):
                raise ValueError("field 'provinces' must be an object")
        else:
            files = {r.ref: r.content for r in refs.current(today) if r.kind not in NOT_CODE_LISTS}
            files[kind] = content
            reference_from_records(files)
    except (KeyError, TypeError, ValueError) as error:
        raise bad(error) from None
