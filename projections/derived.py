"""The derived case a read model folds (ADR 0008): facts recorded first, the lifecycle derived
in occurred order, held facts not in effect. Projections keep each case's domain state
(`domain.referral.Referral`, folded by its own events) next to their rows, so a held event is
counted only once it takes effect and a late event re-derives its case as a whole.

On a miss (a case first seen by this process after version 1) the case is read once from the
event store (`ProjectionContext.history`), up to the event being applied. States are mutated in
place: a projection calls `forget()` when its transaction fails, so what it keeps is always
what it committed (or is re-read).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from domain.catalogue import AMENDMENT_TYPES
from domain.referral import Referral, amended_facts
from projections.framework import StateCache


class DerivedCases:
    """Per-case derived state for one projection."""

    def __init__(self, context: Any) -> None:
        self.cache = StateCache(max_size=100_000)
        self.history: Callable[[str], Sequence[Any]] | None = getattr(context, "history", None)

    def forget(self) -> None:
        self.cache.clear()

    def before(self, event: Any) -> Referral | None:
        """The case as derived from its events before `event` (None: none yet)."""
        case_id = event.case_id
        found, _ = self.cache.split([case_id])
        referral = found.get(case_id)
        if referral is not None and referral.version == event.originator_version - 1:
            return referral
        if event.originator_version == 1 or self.history is None:
            return None
        referral = None
        for earlier in self.history(case_id):
            if earlier.originator_version >= event.originator_version:
                break
            referral = earlier.mutate(referral)
        return referral

    def apply(self, referral: Referral | None, event: Any) -> Referral:
        if referral is None:
            referral = event.mutate(None)
        else:  # `before` checked the version follows on: the library's checks are not repeated
            referral._apply(event)
            referral._version = event.originator_version
        self.cache.update({event.case_id: referral})
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
