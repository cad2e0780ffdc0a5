"""Legal time limits as data, and the pure functions that judge a case history against them.

The legal reasoning of each limit (its article, its number, its clock, whether the basis is
verified) lives in `infra/reference_data/time_limits.json`; this module only knows how to
validate such a table, how to run each clock (`domain.calendar`) and how to pair the fact that
starts a limit with the fact that meets it. Pure stdlib; no I/O.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from domain.calendar import WorkingCalendar

PROCEEDINGS_KINDS = ("criminal", "civil", "administrative")
PROCEDURAL_ROLES = frozenset(
    {
        "DENOUNCED",
        "RECOMMENDED_FOR_PROSECUTION",
        "EMERGENCY_HELD",
        "ARRESTED",
        "TEMPORARILY_DETAINED",
        "SUSPECT",
        "DEFENDANT",
        "VICTIM",
        "WITNESS",
        "DIVERSION",
        "PRISONER",
        "LITIGANT",
    }
)
CLOCKS = ("hours", "working_days", "calendar_days")
RESPONSIBLE = ("holder", "centre")
STATUSES = ("met", "missed", "running", "cancelled")

APPOINTMENT_TYPE = "APPOINTMENT_REQUESTED"
ACCEPTANCE_TYPE = "REQUEST_ACCEPTED"

_TYPE_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFact:
    """One recorded event of a case, reduced to what the time limits need."""

    version: int
    type: str
    occurred_at: datetime
    agency_id: str
    holder_agency_id: str | None
    centre_id: str | None
    procedural_role: str | None
    stage: str | None
    proceedings_kind: str
    data: Mapping[str, Any] = field(default_factory=dict)
    # the person's eligible category as known at this fact (folded along the history; None
    # when none is recorded, UNDETERMINED_CATEGORY when a contact said "not known yet")
    eligible_category: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"CaseFact.version must be an int >= 1, got {self.version!r}")
        if not isinstance(self.type, str) or not self.type:
            raise ValueError("CaseFact.type must be a non-empty string")
        if (
            not isinstance(self.occurred_at, datetime)
            or self.occurred_at.tzinfo is None
            or self.occurred_at.utcoffset() is None
        ):
            raise ValueError(
                f"CaseFact.occurred_at must be a timezone-aware datetime "
                f"(fact version {self.version})"
            )
        if self.proceedings_kind not in PROCEEDINGS_KINDS:
            raise ValueError(
                f"CaseFact.proceedings_kind must be one of {PROCEEDINGS_KINDS}, "
                f"got {self.proceedings_kind!r}"
            )
        if not isinstance(self.data, Mapping):
            raise ValueError("CaseFact.data must be a mapping")


@dataclass(frozen=True)
class TimeLimitRule:
    """One legal time limit: what starts it, what meets it, how long, on which clock."""

    rule_id: str
    title_vi: str
    title_en: str
    legal_basis: str
    trigger_types: tuple[str, ...]
    trigger_field: str | None
    target_types: tuple[str, ...]
    limit: int
    clock: str
    conditions: Mapping[str, Any]
    cancelled_by: tuple[str, ...]
    responsible: str
    verified: bool
    note: str = ""
    source: str = ""  # where a verified rule was checked (issue 20)
    # the clock starts at a later fact when one is recorded (e.g. the Centre's receipt of the
    # notice): the first fact of `start_from.types` after the trigger (up to the fact that ends
    # it), at its data[`start_from.field`] (or its occurred_at when field is null); else at the
    # trigger's occurred_at
    start_from: StartFrom | None = None
    # facts that make a trigger "thụ lý ngay" (immediate) by their type, kind and role
    immediate_grounds: tuple[ImmediateGround, ...] = ()
    # a cancelling fact closes the limit as cancelled even after the deadline: it shows the
    # duty never existed (e.g. rule C2: the person was not eligible), not that it was met late
    cancels_any_time: bool = False


@dataclass(frozen=True)
class StartFrom:
    """Where a limit's clock starts when a later fact records the real start."""

    types: tuple[str, ...]
    field: str | None


@dataclass(frozen=True)
class ImmediateGround:
    """A kind of notice the law makes immediate (thụ lý ngay) by itself, e.g. LAL 2017
    Art. 31(3): a criminal notice about an arrested or temporarily held person, a suspect, a
    defendant or a victim."""

    trigger_types: tuple[str, ...]
    proceedings_kind_in: frozenset[str]
    procedural_role_in: frozenset[str]
    legal_basis: str

    def covers(self, trigger: CaseFact) -> bool:
        return (
            trigger.type in self.trigger_types
            and trigger.proceedings_kind in self.proceedings_kind_in
            and trigger.procedural_role in self.procedural_role_in
        )


@dataclass(frozen=True)
class TimeLimitVerdict:
    """How one trigger of one rule stands at the evaluation instant."""

    rule_id: str
    trigger_version: int
    trigger_at: datetime
    deadline: datetime
    status: str  # met | missed | running | cancelled
    target_version: int | None
    met_at: datetime | None
    outstanding: bool  # missed with no target nor cancellation yet: overdue now
    responsible_agency_id: str | None
    legal_basis: str


# --------------------------------------------------------------------------------------------
# The rules table
# --------------------------------------------------------------------------------------------

_REQUIRED = (
    "rule_id",
    "title_vi",
    "title_en",
    "legal_basis",
    "trigger_types",
    "target_types",
    "limit",
    "clock",
    "responsible",
    "verified",
)
_OPTIONAL = (
    "trigger_field",
    "conditions",
    "cancelled_by",
    "note",
    "start_from",
    "immediate_grounds",
    "source",
    "cancels_any_time",
)
_CONDITION_KEYS = (
    "procedural_role_in",
    "proceedings_kind_in",
    "immediate",
    "eligible_category_known",
)
UNDETERMINED_CATEGORY = "UNDETERMINED"  # as domain.reference says


def _bad(rule: str, field_name: str, problem: str) -> ValueError:
    return ValueError(f"time-limit rule {rule}: field {field_name!r} {problem}")


def _text(rec: Mapping[str, Any], rule: str, name: str) -> str:
    value = rec[name]
    if not isinstance(value, str) or not value.strip():
        raise _bad(rule, name, "must be a non-empty string")
    return value


def _types(
    rec: Mapping[str, Any],
    rule: str,
    name: str,
    known: Collection[str] | None,
    *,
    allow_empty: bool,
) -> tuple[str, ...]:
    value = rec.get(name, [])
    if not isinstance(value, (list, tuple)):
        raise _bad(rule, name, "must be a list of event type names")
    if not value and not allow_empty:
        raise _bad(rule, name, "must not be empty")
    for item in value:
        if not isinstance(item, str) or not _TYPE_NAME.match(item):
            raise _bad(rule, name, f"has {item!r}, not an event type name (e.g. AID_ASSIGNED)")
        if known is not None and item not in known:
            raise _bad(rule, name, f"has {item!r}, which is not a known event type")
    if len(set(value)) != len(value):
        raise _bad(rule, name, "lists a type twice")
    return tuple(value)


def _conditions(
    rec: Mapping[str, Any], rule: str, known_roles: Collection[str]
) -> Mapping[str, Any]:
    value = rec.get("conditions", {})
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise _bad(rule, "conditions", "must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        path = f"conditions.{key}"
        if key not in _CONDITION_KEYS:
            raise _bad(rule, path, f"is not a supported condition {list(_CONDITION_KEYS)}")
        if key in ("immediate", "eligible_category_known"):
            if not isinstance(item, bool):
                raise _bad(rule, path, "must be true or false")
            out[key] = item
            continue
        allowed = known_roles if key == "procedural_role_in" else PROCEEDINGS_KINDS
        if not isinstance(item, (list, tuple)) or not item:
            raise _bad(rule, path, "must be a non-empty list")
        for code in item:
            if code not in allowed:
                raise _bad(rule, path, f"has unknown value {code!r}")
        out[key] = frozenset(item)
    return MappingProxyType(out)


def _start_from(
    rec: Mapping[str, Any], rule: str, known: Collection[str] | None
) -> StartFrom | None:
    value = rec.get("start_from")
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - {"types", "field"}:
        raise _bad(rule, "start_from", "must be an object with 'types' and 'field'")
    if rec.get("trigger_field") is not None:
        raise _bad(rule, "start_from", "must not be set together with trigger_field")
    types = _types(
        {"start_from.types": value.get("types")}, rule, "start_from.types", known, allow_empty=False
    )
    bad = set(types) & (set(rec.get("trigger_types") or ()) | set(rec.get("target_types") or ()))
    if bad:
        raise _bad(rule, "start_from.types", "must not overlap trigger_types or target_types")
    name = value.get("field")
    if name is not None and (not isinstance(name, str) or not _FIELD_NAME.match(name)):
        raise _bad(rule, "start_from.field", "must be null or a data field name")
    return StartFrom(types, name)


def _immediate_grounds(
    rec: Mapping[str, Any],
    rule: str,
    known: Collection[str] | None,
    known_roles: Collection[str],
) -> tuple[ImmediateGround, ...]:
    value = rec.get("immediate_grounds", [])
    if not isinstance(value, (list, tuple)):
        raise _bad(rule, "immediate_grounds", "must be a list of objects")
    out = []
    for n, item in enumerate(value):
        path = f"immediate_grounds[{n}]"
        keys = {"trigger_types", "proceedings_kind_in", "procedural_role_in", "legal_basis"}
        if not isinstance(item, Mapping) or set(item) != keys:
            raise _bad(rule, path, f"must be an object with exactly {sorted(keys)}")
        name = f"{path}.trigger_types"
        types = _types({name: item["trigger_types"]}, rule, name, known, allow_empty=False)
        sets = {}
        for key, allowed in (
            ("proceedings_kind_in", PROCEEDINGS_KINDS),
            ("procedural_role_in", known_roles),
        ):
            codes = item[key]
            if not isinstance(codes, (list, tuple)) or not codes:
                raise _bad(rule, f"{path}.{key}", "must be a non-empty list")
            for code in codes:
                if code not in allowed:
                    raise _bad(rule, f"{path}.{key}", f"has unknown value {code!r}")
            sets[key] = frozenset(codes)
        basis = item["legal_basis"]
        if not isinstance(basis, str) or not basis.strip():
            raise _bad(rule, f"{path}.legal_basis", "must be a non-empty string")
        out.append(
            ImmediateGround(types, sets["proceedings_kind_in"], sets["procedural_role_in"], basis)
        )
    return tuple(out)


def rule_from_record(
    rec: Any,
    index: int = 0,
    *,
    known_types: Collection[str] | None = None,
    known_roles: Collection[str] = PROCEDURAL_ROLES,
) -> TimeLimitRule:
    """One validated rule; every error names the rule id (or its position) and the field."""
    label = f"#{index}"
    if not isinstance(rec, Mapping):
        raise ValueError(f"time-limit rule {label}: must be an object")
    raw_id = rec.get("rule_id")
    if isinstance(raw_id, str) and raw_id.strip():
        label = repr(raw_id)
    for name in _REQUIRED:
        if name not in rec:
            raise _bad(label, name, "is required")
    unknown = set(rec) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise _bad(label, sorted(unknown)[0], "is not a rule field")
    rule_id = _text(rec, label, "rule_id")
    if not re.match(r"^[A-Z][A-Z0-9_]*$", rule_id):
        raise _bad(label, "rule_id", "must be upper-case letters, digits and '_'")
    trigger_types = _types(rec, label, "trigger_types", known_types, allow_empty=False)
    target_types = _types(rec, label, "target_types", known_types, allow_empty=False)
    cancelled_by = _types(rec, label, "cancelled_by", known_types, allow_empty=True)
    trigger_field = rec.get("trigger_field")
    if trigger_field is not None:
        if not isinstance(trigger_field, str) or not _FIELD_NAME.match(trigger_field):
            raise _bad(label, "trigger_field", "must be null or a data field name")
        if set(trigger_types) != set(target_types):
            raise _bad(
                label,
                "trigger_types",
                "must equal target_types when trigger_field is set (the target fact "
                "carries its own trigger instant)",
            )
        if cancelled_by:
            raise _bad(
                label,
                "cancelled_by",
                "must be empty when trigger_field is set (such a limit is met or missed)",
            )
    elif set(trigger_types) & set(target_types):
        raise _bad(label, "target_types", "must not overlap trigger_types")
    if set(cancelled_by) & (set(trigger_types) | set(target_types)):
        raise _bad(label, "cancelled_by", "must not overlap trigger_types or target_types")
    limit = rec["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise _bad(label, "limit", f"must be an integer >= 0, got {limit!r}")
    clock = rec["clock"]
    if clock not in CLOCKS:
        raise _bad(label, "clock", f"must be one of {list(CLOCKS)}, got {clock!r}")
    responsible = rec["responsible"]
    if responsible not in RESPONSIBLE:
        raise _bad(label, "responsible", f"must be one of {list(RESPONSIBLE)}, got {responsible!r}")
    verified = rec["verified"]
    if not isinstance(verified, bool):
        raise _bad(label, "verified", "must be true or false")
    note = rec.get("note", "")
    if not isinstance(note, str):
        raise _bad(label, "note", "must be a string")
    source = rec.get("source", "")
    if not isinstance(source, str):
        raise _bad(label, "source", "must be a string")
    if verified and not source.strip() and "source" in rec:
        raise _bad(label, "source", "must name where the rule was checked when verified")
    cancels_any_time = rec.get("cancels_any_time", False)
    if not isinstance(cancels_any_time, bool):
        raise _bad(label, "cancels_any_time", "must be true or false")
    if cancels_any_time and not cancelled_by:
        raise _bad(label, "cancels_any_time", "needs a non-empty cancelled_by")
    return TimeLimitRule(
        rule_id=rule_id,
        title_vi=_text(rec, label, "title_vi"),
        title_en=_text(rec, label, "title_en"),
        legal_basis=_text(rec, label, "legal_basis"),
        trigger_types=trigger_types,
        trigger_field=trigger_field,
        target_types=target_types,
        limit=limit,
        clock=clock,
        conditions=_conditions(rec, label, known_roles),
        cancelled_by=cancelled_by,
        responsible=responsible,
        verified=verified,
        note=note,
        source=source,
        start_from=_start_from(rec, label, known_types),
        immediate_grounds=_immediate_grounds(rec, label, known_types, known_roles),
        cancels_any_time=cancels_any_time,
    )


def rules_from_records(
    records: list[dict[str, Any]],
    *,
    known_types: Collection[str] | None = None,
    known_roles: Collection[str] = PROCEDURAL_ROLES,
) -> tuple[TimeLimitRule, ...]:
    """Validates the `rules` list of the time-limits file and returns it as rule values.

    Raises ValueError naming the rule id and the field on any bad data; rule ids are unique.
    Pass `known_types` (e.g. the event catalogue's wire types) to also check type names.
    """
    if not isinstance(records, (list, tuple)):
        raise ValueError("time-limit rules: must be a list of objects")
    rules = []
    seen: set[str] = set()
    for index, rec in enumerate(records):
        rule = rule_from_record(rec, index, known_types=known_types, known_roles=known_roles)
        if rule.rule_id in seen:
            raise _bad(repr(rule.rule_id), "rule_id", "is used by two rules")
        seen.add(rule.rule_id)
        rules.append(rule)
    return tuple(rules)


# --------------------------------------------------------------------------------------------
# Judging a case history
# --------------------------------------------------------------------------------------------


def compute_deadline(rule: TimeLimitRule, start: datetime, calendar: WorkingCalendar) -> datetime:
    """End of `rule`'s limit started at `start`, on the rule's clock (CPC 2015 Art. 134)."""
    if rule.clock == "hours":
        return calendar.deadline_in_hours(start, rule.limit)
    if rule.clock == "working_days":
        return calendar.deadline_in_working_days(start, rule.limit)
    return calendar.deadline_in_calendar_days(start, rule.limit)


def is_immediate(
    trigger: CaseFact,
    between: Sequence[CaseFact],
    grounds: Sequence[ImmediateGround] = (),
) -> bool:
    """Whether the Centre must act "ngay" (immediately) on this trigger.

    Thụ lý ngay: a mandatory appointment (CPC 2015 Art. 76, so every APPOINTMENT_REQUESTED),
    a notice one of the rules table's `immediate_grounds` covers (LAL 2017 Art. 31(3): a
    criminal notice about an arrested or temporarily held person, a suspect, a defendant or a
    victim), a notice flagged immediate, or the Centre's acceptance recorded as immediate
    (TT 12/2018 Art. 6) among the facts after the trigger and before its target.
    """
    if trigger.type == APPOINTMENT_TYPE or trigger.data.get("immediate") is True:
        return True
    if any(ground.covers(trigger) for ground in grounds):
        return True
    return any(f.type == ACCEPTANCE_TYPE and f.data.get("immediate") is True for f in between)


def category_known(category: str | None) -> bool:
    """Whether an eligible category is established (recorded and not UNDETERMINED)."""
    return category is not None and category != UNDETERMINED_CATEGORY


def category_settled(trigger: CaseFact, later: Sequence[CaseFact], cancel: CaseFact | None) -> bool:
    """Whether the trigger's person has (or, for an UNDETERMINED contact, later got) a known
    eligible category, or was determined not eligible (`cancel`): the condition
    `eligible_category_known` of rule C2 (JC 10/2018 Art. 7(1); CPC 2015 Art. 71).

    An UNDETERMINED contact is judged once the category becomes known, from the contact's own
    instant: the duty to explain arises at the arrest, holding or charge, not when the papers
    proving the category arrive (assumption A22). Until then it is not judged.
    """
    if cancel is not None or category_known(trigger.eligible_category):
        return True
    return any(category_known(f.eligible_category) for f in later)


def _applies(rule: TimeLimitRule, trigger: CaseFact, immediate: bool, settled: bool = True) -> bool:
    cond = rule.conditions
    wanted_known = cond.get("eligible_category_known")
    if wanted_known is not None and wanted_known != settled:
        return False
    roles = cond.get("procedural_role_in")
    if roles is not None and trigger.procedural_role not in roles:
        return False
    kinds = cond.get("proceedings_kind_in")
    if kinds is not None and trigger.proceedings_kind not in kinds:
        return False
    wanted = cond.get("immediate")
    return wanted is None or wanted == immediate


def _instant(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not an ISO-8601 instant") from None
    else:
        raise ValueError(f"{where}: missing or not a datetime")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"{where}: must carry a UTC offset")
    return parsed


def _start(rule: TimeLimitRule, trigger: CaseFact, after: Sequence[CaseFact]) -> datetime:
    """Where the rule's clock starts for `trigger`: the first later fact of the rule's
    `start_from` types (at its recorded instant), else the trigger's occurred_at."""
    spec = rule.start_from
    if spec is None:
        return trigger.occurred_at
    for fact in after:
        if fact.type not in spec.types:
            continue
        if spec.field is None:
            return fact.occurred_at
        value = fact.data.get(spec.field)
        if value is None:
            return trigger.occurred_at  # recorded without the instant: the fallback
        return _instant(value, f"fact version {fact.version} ({fact.type}) data.{spec.field}")
    return trigger.occurred_at


def _responsible_at(
    rule: TimeLimitRule, facts: Sequence[CaseFact], cutoff: datetime, fallback: CaseFact
) -> str | None:
    """The holder (or addressed Centre) as of the last fact at or before `cutoff`."""
    chosen = None
    for fact in facts:  # in occurred order (ties: version)
        if fact.occurred_at <= cutoff:
            chosen = fact
    source = chosen if chosen is not None else fallback
    return source.centre_id if rule.responsible == "centre" else source.holder_agency_id


def _verdict(
    rule: TimeLimitRule,
    facts: Sequence[CaseFact],
    trigger_version: int,
    trigger_at: datetime,
    deadline: datetime,
    target: CaseFact | None,
    cancel: CaseFact | None,
    at: datetime,
    fallback: CaseFact,
) -> TimeLimitVerdict:
    outstanding = False
    if target is not None:
        status = "met" if target.occurred_at <= deadline else "missed"
    elif cancel is not None:
        in_time = cancel.occurred_at <= deadline or rule.cancels_any_time
        status = "cancelled" if in_time else "missed"
    elif at <= deadline:
        status = "running"
    else:
        status, outstanding = "missed", True
    if status == "met":
        responsible = target.agency_id  # type: ignore[union-attr]
    else:
        responsible = _responsible_at(rule, facts, min(deadline, at), fallback)
    return TimeLimitVerdict(
        rule_id=rule.rule_id,
        trigger_version=trigger_version,
        trigger_at=trigger_at,
        deadline=deadline,
        status=status,
        target_version=target.version if target is not None else None,
        met_at=target.occurred_at if target is not None else None,
        outstanding=outstanding,
        responsible_agency_id=responsible,
        legal_basis=rule.legal_basis,
    )


def _pair(
    rule: TimeLimitRule, facts: Sequence[CaseFact]
) -> list[tuple[CaseFact, CaseFact | None, CaseFact | None]]:
    """(trigger, target, cancellation) for every trigger of the rule's types, FIFO.

    Each target answers the earliest trigger still open before it, whatever the trigger's
    conditions (the same notice is answered once, whichever limit then applies); a
    cancelling fact closes every trigger still open. A rule with the `eligible_category_known`
    condition (C2) is the one rule for its trigger type, so its role and kind conditions
    decide which triggers open at all: a contact in a role the rule does not cover (e.g. a
    witness) does not take the notification owed for a later arrest.
    """
    cond = rule.conditions
    only_covered = "eligible_category_known" in cond
    roles = cond.get("procedural_role_in")
    kinds = cond.get("proceedings_kind_in")
    open_triggers: deque[CaseFact] = deque()
    closed: dict[int, tuple[CaseFact | None, CaseFact | None]] = {}
    triggers: list[CaseFact] = []
    for fact in facts:
        if fact.type in rule.target_types and open_triggers:
            closed[open_triggers.popleft().version] = (fact, None)
        if fact.type in rule.cancelled_by:
            while open_triggers:
                closed[open_triggers.popleft().version] = (None, fact)
        if fact.type in rule.trigger_types:
            if only_covered and (
                (roles is not None and fact.procedural_role not in roles)
                or (kinds is not None and fact.proceedings_kind not in kinds)
            ):
                continue
            open_triggers.append(fact)
            triggers.append(fact)
    return [(t, *closed.get(t.version, (None, None))) for t in triggers]


def evaluate_time_limits(
    facts: Sequence[CaseFact],
    rules: Sequence[TimeLimitRule],
    calendar: WorkingCalendar,
    at: datetime,
) -> list[TimeLimitVerdict]:
    """Judges one case history against every rule, as it stood at the instant `at`.

    Only facts with occurred_at <= at count. A trigger is met when its target comes on or
    before the deadline, missed when it comes later (or never, once the deadline has passed:
    then it is outstanding), cancelled when a cancelling fact comes first and in time, and
    running otherwise. The responsible agency is the target's recorder when met, else the
    holder (or the addressed Centre) as of the last fact at or before min(deadline, at).
    Sorted by (trigger_version, rule_id). Clocks: CPC 2015 Art. 134; limits: the rules table.
    """
    if not isinstance(at, datetime) or at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("at must be a timezone-aware datetime")
    # the law's clock: facts in occurred order, ties by recording order (ADR 0008); a late
    # fact takes its place by when it happened, not by when the ledger learned it
    known = sorted(
        (f for f in facts if f.occurred_at <= at), key=lambda f: (f.occurred_at, f.version)
    )
    rank = {id(f): i for i, f in enumerate(known)}
    grounds = tuple(g for rule in rules for g in rule.immediate_grounds)
    verdicts: list[TimeLimitVerdict] = []
    for rule in rules:
        if rule.trigger_field is not None:
            for fact in known:
                if fact.type not in rule.target_types:
                    continue
                settled = "eligible_category_known" not in rule.conditions or category_known(
                    fact.eligible_category
                )
                if not _applies(rule, fact, is_immediate(fact, (), grounds), settled):
                    continue
                start = _instant(
                    fact.data.get(rule.trigger_field),
                    f"fact version {fact.version} ({fact.type}) data.{rule.trigger_field}",
                )
                deadline = compute_deadline(rule, start, calendar)
                verdicts.append(
                    _verdict(rule, known, fact.version, start, deadline, fact, None, at, fact)
                )
            continue
        for trigger, target, cancel in _pair(rule, known):
            end = target or cancel
            between = [
                f
                for f in known
                if rank[id(trigger)] < rank[id(f)] and (end is None or rank[id(f)] < rank[id(end)])
            ]
            settled = True
            if "eligible_category_known" in rule.conditions:
                settled = category_settled(
                    trigger, [f for f in known if rank[id(f)] > rank[id(trigger)]], cancel
                )
            if not _applies(rule, trigger, is_immediate(trigger, between, grounds), settled):
                continue
            start = _start(rule, trigger, [*between, *([end] if end is not None else [])])
            deadline = compute_deadline(rule, start, calendar)
            verdicts.append(
                _verdict(rule, known, trigger.version, start, deadline, target, cancel, at, trigger)
            )
    verdicts.sort(key=lambda v: (v.trigger_version, v.rule_id))
    return verdicts
