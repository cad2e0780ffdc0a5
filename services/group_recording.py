"""Group commit for single posts: events posted at the same moment are recorded together.

Each HTTP post is one event, and recording one event costs several database round trips and a
commit (read the case, read or write the person's key, insert). When posts arrive together,
one of the waiting threads (the leader) records every event queued so far with
`Referrals.record_batch` — one read of all their cases, one insert, one commit — while the
others wait for their own answer. A post that finds nobody recording records itself at once
with `record_event`, so a lone post is exactly what it was.

Every caller still gets its own event's answer, only after that event is committed: the
recorded event (a duplicate with the original's recording time, as `record_event` answers) or
the `DomainError` that refused it. Events are judged in arrival order, each on its own. If a
group fails for any other reason (a bug, the store), every event of it is recorded again on its
own, so one bad event cannot fail its neighbours' posts.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from domain.referral import Recorded
from services.referrals import Referrals, Rejected

MAX_GROUP = 200


class _Slot:
    __slots__ = ("done", "error", "lead", "result", "wire")

    def __init__(self, wire: Mapping[str, Any]) -> None:
        self.wire = wire
        self.done = threading.Event()
        self.lead = False
        self.result: Recorded | None = None
        self.error: BaseException | None = None


class GroupRecorder:
    """`record(wire)` with the answers of `Referrals.record_event`, recorded in groups."""

    def __init__(self, referrals: Referrals, max_group: int = MAX_GROUP) -> None:
        self.referrals = referrals
        self.max_group = max_group
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._recording = False
        self.groups = 0
        self.grouped_events = 0

    def record(self, wire: Mapping[str, Any]) -> Recorded:
        """Records one wire event (or recognises its retry); raises DomainError otherwise."""
        slot = _Slot(wire)
        with self._lock:
            lead = not self._recording
            if lead:
                self._recording = True
            else:
                self._queue.append(slot)
        if not lead:
            slot.done.wait()
            lead = slot.lead  # handed the lead: record the queue, this event first
        if lead:
            self._lead(slot)
        if slot.error is not None:
            raise slot.error
        assert slot.result is not None
        return slot.result

    def _lead(self, own: _Slot) -> None:
        """Records this thread's event with everything queued behind it (one group), then
        hands the lead to the first event queued meanwhile, or stops recording."""
        with self._lock:
            take = self.max_group - 1
            group = [own, *self._queue[:take]]
            del self._queue[:take]
        try:
            self._record(group, own)
        finally:
            for slot in group[1:]:  # never leave a caller waiting (even on BaseException)
                if not slot.done.is_set():
                    if slot.result is None and slot.error is None:
                        slot.error = RuntimeError("the group recording this event stopped")
                    slot.done.set()
            successor: _Slot | None
            with self._lock:
                if self._queue:
                    successor = self._queue.pop(0)
                    successor.lead = True
                else:
                    successor = None
                    self._recording = False
            if successor is not None:
                successor.done.set()

    def _record(self, group: list[_Slot], own: _Slot) -> None:
        if len(group) == 1:
            self._record_alone(own)
            return
        try:
            results = self.referrals.record_batch([s.wire for s in group])
        except Exception:  # noqa: BLE001 - each event again on its own (its own error)
            for slot in group:
                self._record_alone(slot)
                if slot is not own:
                    slot.done.set()
            return
        self.groups += 1
        self.grouped_events += len(group)
        for slot, result in zip(group, results, strict=True):
            if isinstance(result, Rejected):
                slot.error = result.error
            elif result.duplicate:  # answered with the original's recording time
                try:
                    slot.result = self.referrals._with_original_time(result)
                except Exception as error:  # noqa: BLE001 - handed to its caller
                    slot.error = error
            else:
                slot.result = result
            if slot is not own:
                slot.done.set()

    def _record_alone(self, slot: _Slot) -> None:
        try:
            slot.result = self.referrals.record_event(slot.wire)
        except Exception as error:  # noqa: BLE001 - handed to its caller
            slot.error = error
