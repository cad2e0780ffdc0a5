"""The derived case a read model folds (ADR 0008): facts recorded first, the lifecycle derived
in occurred order, held facts not in effect. Projections keep each case's domain state
(`domain.referral.Referral`, folded by its own events) next to their rows, so a held event is
counted only once it takes effect and a late event re-derives its case as a whole.

A case's derived state before an event depends only on the log (every earlier version of the
case), never on a view: the views of one process share one fold (`PageDerivation`), done once
per page by the follower before the views apply it, each event giving a `Step` (simple or
not, held or not and, when not simple, the case as it stood). A view applying an event the
shared fold did not prepare (a retry, an event applied outside the follower) folds it itself
(`DerivedCases`).

On a miss (a case first seen by this process after version 1) the case is read once from the
event store (`ProjectionContext.history`), up to the event being applied. A state is used only
when its version is the one just before the event's, so a state folded ahead of a view (or
left by a failed transaction) is never used for an earlier event: it is read again instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, NamedTuple

from domain.catalogue import AMENDMENT_TYPES
from domain.referral import Referral, amended_facts

DERIVED_CASES = 100_000
"""Cases whose derived state a process keeps (the most recently applied ones; ≈ 6 KB each at
≈ 8 events a case). A rebuild reads the log in time order, so the cases still receiving
events are the recent ones (≈ 25,000 at any moment of the 5M-event bench dataset's history);
a case evicted and seen again is read once from the event store."""


class DerivedCases:
    """Per-case derived state for one projection.

    Kept in a plain dict in order of last use: a case applied again is moved to the end, and
    when the dict is full the least recently used quarter is dropped at once (a rebuild of
    millions of cases never empties the whole cache, which sent every later event of every
    running case to the event store)."""

    def __init__(self, context: Any, max_size: int = DERIVED_CASES) -> None:
        self.max_size = max(1, max_size)
        self._states: dict[str, Referral] = {}
        self.history: Callable[[str], Sequence[Any]] | None = getattr(context, "history", None)
        self.reads = 0  # cases read from the event store (misses)

    def forget(self) -> None:
        self._states.clear()

    def __len__(self) -> int:
        return len(self._states)

    def before(self, event: Any) -> Referral | None:
        """The case as derived from its events before `event` (None: none yet)."""
        version = event.originator_version
        referral = self._states.get(event.case_id)
        if referral is not None and referral._version == version - 1:
            return referral
        if version == 1 or self.history is None:
            return None
        self.reads += 1
        referral = None
        for earlier in self.history(event.case_id):
            if earlier.originator_version >= version:
                break
            referral = _folded(referral, earlier)
        return referral

    def apply(self, referral: Referral | None, event: Any) -> Referral:
        """`referral` (what `before` gave) with `event` applied, kept for the case's next event."""
        referral = _folded(referral, event)
        states = self._states
        case_id = event.case_id
        if states.pop(case_id, None) is None and len(states) >= self.max_size:
            self._evict()
            states = self._states
        states[case_id] = referral
        return referral

    def _evict(self) -> None:
        drop = len(self._states) - (self.max_size - self.max_size // 4)
        self._states = dict(islice(self._states.items(), max(0, drop), None))

    def step(self, event: Any) -> Step:
        """Folds `event` into its case; what a view needs to apply it (the case's state is
        the one kept here: valid until the case's next event)."""
        before = self.before(event)
        simple = is_simple(before, event)
        facts = None if simple else effective_facts_of(before)
        state = self.apply(before, event)
        return Step(simple, bool(state.held), state, facts)


class Step(NamedTuple):
    """One event of a case as the derivation saw it."""

    simple: bool
    """The next fact at the end of its case, nothing held before it (`is_simple`)."""
    held: bool
    """Whether the case has held facts after the event (the event itself, or earlier ones)."""
    state: Referral | None
    """The case after the event (None on a simple step with nothing held: not needed)."""
    before_facts: list[dict[str, Any]] | None
    """The facts in effect before the event (`effective_facts_of`), on a step not simple."""


_SIMPLE = Step(True, False, None, None)


class PageDerivation:
    """The derived cases of one process, folded once per page for all its views.

    The follower hands it every page before the views apply it (`Projection.prepare`); each
    referral event of the page newer than what it folded so far gives a `Step`, kept for this
    page and the previous one (a page applied again after a failed transaction finds them).
    A view looks its events up by log position (`step`); None: not prepared here, the view
    folds the event itself."""

    def __init__(self, context: Any, max_size: int = DERIVED_CASES) -> None:
        self.cases = DerivedCases(context, max_size)
        self.position = 0
        self._steps: dict[int, Step] = {}
        self._previous: dict[int, Step] = {}
        self._kept_from = 0  # the first position whose step is kept
        self._lock = threading.Lock()

    @classmethod
    def of(cls, context: Any) -> PageDerivation | None:
        """The context's shared derivation (None without a context to share it in)."""
        shared = getattr(context, "shared", None)
        if shared is None:
            return None
        with _SHARING:
            found = shared.get("derived_cases")
            if found is None:
                found = shared["derived_cases"] = cls(context)
            return found  # type: ignore[no-any-return]

    def forget(self) -> None:
        """Drops every state and step (the next page is folded from its start)."""
        with self._lock:
            self.cases.forget()
            self._steps, self._previous = {}, {}
            self.position = self._kept_from = 0

    def prepare(self, items: Sequence[Any]) -> None:
        with self._lock:
            if not items:
                return
            first, last = items[0].position, items[-1].position
            if last <= self.position:
                if first >= self._kept_from:
                    return  # this page was prepared already (one call per view of the process)
                # the log is read again from further back (a rebuild, a view behind the others):
                # fold again from there (the states are ahead of its events)
                self.cases.forget()
                self._steps, self._previous = {}, {}
                self.position = 0
            self._previous, self._steps = self._steps, {}
            self._kept_from = min(self._previous, default=first)
            steps = self._steps
            cases = self.cases
            position = self.position
            for item in items:
                if item.position <= position:
                    continue
                event = item.event
                if not getattr(event, "WIRE_TYPE", ""):  # not a referral event
                    continue
                try:
                    step = cases.step(event)
                except Exception:  # noqa: BLE001 - the view applying it meets (and reports) it
                    cases.forget()
                    break
                if step.simple and not step.held:
                    steps[item.position] = _SIMPLE
                else:  # the state moves on with the case's later events: the view gets a copy
                    steps[item.position] = step._replace(state=_copy(step.state))
            self.position = items[-1].position

    def step(self, position: int) -> Step | None:
        found = self._steps.get(position)
        return found if found is not None else self._previous.get(position)

    def case(self, case_id: str) -> Referral | None:
        """The case as derived from its events folded so far (None: not kept). Read it only
        between pages (the follower prepares the next page after every view applied this
        one); the caller checks its version."""
        return self.cases._states.get(case_id)


_SHARING = threading.Lock()


def _copy(referral: Referral | None) -> Referral | None:
    """A copy of a derived case that later folds leave as it is (what they change in place:
    the person's attributes, the touched agencies, the facts, the held facts)."""
    if referral is None:
        return None
    copy = Referral.__new__(Referral)
    values = dict(referral.__dict__)
    for name in ("person", "held", "event_ids"):
        if isinstance(values.get(name), dict):
            values[name] = dict(values[name])
    for name in ("touched", "facts"):
        if isinstance(values.get(name), list):
            values[name] = list(values[name])
    copy.__dict__.update(values)
    return copy


def _folded(referral: Referral | None, event: Any) -> Referral:
    """The aggregate's own fold (`Referral._apply`), without the library's per-event checks:
    `before` gives a state whose version is the one before `event`'s, and the history read
    is in version order."""
    if referral is None:
        referral = Referral.__new__(Referral)
        referral._id = event.originator_id
        referral._initial_state(event.case_id)
    referral._apply(event)
    referral._version = event.originator_version
    return referral


def is_simple(before: Referral | None, event: Any) -> bool:
    """Whether `event` can only be the next fact at the end of its case, with nothing held
    before it: then the facts already in effect stay as they were (the fast path)."""
    if event.WIRE_TYPE in AMENDMENT_TYPES:  # a correction or withdrawal: derived as a whole
        return False
    if before is None:
        return True
    if getattr(before, "facts", None) is None or before.held:
        return False
    return before.last_occurred_at is None or event.occurred_at >= before.last_occurred_at


def effective_versions(referral: Referral | None) -> set[int]:
    if referral is None or referral.facts is None:
        return set()
    held = {int(h["version"]) for h in (referral.held or {}).values()}
    return {int(f["version"]) for f in amended_facts(referral.facts)} - held


def effective_facts_of(referral: Referral | None) -> list[dict[str, Any]]:
    """The facts in effect, in occurred order (ties: version), as plain dicts: corrected ones
    as their corrections make them, withdrawn ones and the amendments themselves left out."""
    if referral is None or referral.facts is None:
        return []
    held = {int(h["version"]) for h in (referral.held or {}).values()}
    return sorted(
        (f for f in amended_facts(referral.facts) if int(f["version"]) not in held),
        key=lambda f: (f["occurred_at"], f["version"]),
    )
