"""Two writers racing on the same case, over HTTP against a `referrals serve` subprocess.

ROUNDS cases are brought to the Centre (version 3). In each round two threads, released by a
barrier, post at the same instant with `expected_version: 3`: the Centre accepts the request
(REQUEST_ACCEPTED) while the police, still the holder, close the case (CASE_CLOSED). Either
order would be lawful without `expected_version`; with it, exactly one may win.

Proves: exactly one 201 and one 409 (VERSION_CONFLICT when the loser read the new version,
CONCURRENT_WRITE when both decided on version 3 and met at the store's key), in the error
shape; the loser's repost is judged against the case as it now is (VERSION_CONFLICT); the case
then holds the winner's event at version 4 and nothing of the loser's.
The same race with one event sent twice at once (a client's retry overtaking its first try)
stores it exactly once: 201 and 200 duplicate, or a 409 CONCURRENT_WRITE whose retry with the
same `event_id` answers 200.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import (
    LiveServer,
    auth,
    live_server,
    mint_token,
    new_case_id,
    now,
    opening,
    request_aid,
    transfer,
)
from tests.fault.support import assert_error_body, copies, stored_events

pytestmark = [pytest.mark.fault, pytest.mark.postgres, pytest.mark.slow]

ROUNDS = 20
POLICE = "lsn-police-investigation"
CENTRE = "lsn-centre"


@pytest.fixture(scope="module")
def server(pg_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(pg_database, tmp_path_factory.mktemp("race")) as running:
        yield running


def _race(clients: list[httpx.Client], bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Posts bodies[i] with clients[i], all threads released by one barrier."""
    barrier = threading.Barrier(len(clients), timeout=10)
    answers: list[httpx.Response | BaseException | None] = [None] * len(clients)

    def post(index: int) -> None:
        try:
            barrier.wait()
            answers[index] = clients[index].post("/v1/events", json=bodies[index])
        except BaseException as error:  # noqa: BLE001 - reported below
            answers[index] = error

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    for answer in answers:
        if isinstance(answer, BaseException):
            raise answer
    return answers  # type: ignore[return-value]


def _cases_at_the_centre(http: httpx.Client, count: int) -> list[tuple[str, Any]]:
    """`count` new cases, each opened, requested and transferred to the Centre (version 3)."""
    cases, events = [], []
    for _ in range(count):
        case_id = new_case_id()
        t = now() - timedelta(hours=3)
        cases.append((case_id, t))
        events += [
            opening(case_id, t),
            request_aid(case_id, t + timedelta(minutes=5)),
            transfer(case_id, t + timedelta(minutes=10)),
        ]
    answer = http.post("/v1/events/batch", json={"events": events})
    assert answer.status_code == 200 and answer.json()["recorded"] == len(events), answer.text
    return cases


def test_exactly_one_of_two_agencies_wins_a_race_on_the_same_case_version(
    server: LiveServer,
) -> None:
    police = mint_token(server.settings, "agency", agency_id=POLICE)
    centre = mint_token(server.settings, "agency", agency_id=CENTRE)
    inspector = mint_token(server.settings, "inspector", provinces=["LSN"])
    with (
        httpx.Client(base_url=server.base_url, headers=auth(police), timeout=15) as as_police,
        httpx.Client(base_url=server.base_url, headers=auth(centre), timeout=15) as as_centre,
        httpx.Client(base_url=server.base_url, headers=auth(inspector), timeout=15) as as_inspector,
    ):
        cases = _cases_at_the_centre(as_police, ROUNDS)
        before = len(stored_events(server.settings))
        for client in (as_police, as_centre):  # warm connections: the barrier is the start
            assert client.get("/health").status_code == 200
        winners: Counter[str] = Counter()
        losing_codes: Counter[str] = Counter()
        for case_id, t in cases:
            accept = {
                "event_id": f"{case_id}-accept",
                "case_id": case_id,
                "type": "REQUEST_ACCEPTED",
                "agency_id": CENTRE,
                "occurred_at": (t + timedelta(minutes=20)).isoformat(),
                "data": {"immediate": False},
                "expected_version": 3,
            }
            close = {
                "event_id": f"{case_id}-close",
                "case_id": case_id,
                "type": "CASE_CLOSED",
                "agency_id": POLICE,
                "occurred_at": (t + timedelta(minutes=20)).isoformat(),
                "data": {"close_reason": "PROCEEDINGS_ENDED"},
                "expected_version": 3,
            }
            answers = _race([as_centre, as_police], [accept, close])
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [201, 409], [(a.status_code, a.text) for a in answers]
            won, lost = sorted(
                zip(answers, (accept, close), strict=True), key=lambda pair: pair[0].status_code
            )
            assert won[0].json()["version"] == 4
            code = assert_error_body(lost[0])["code"]
            assert code in ("VERSION_CONFLICT", "CONCURRENT_WRITE"), lost[0].text
            losing_codes[code] += 1
            winners[won[1]["type"]] += 1
            # the loser tries again as it was: judged against the case as it now is (version
            # 4), whatever any cache held when it lost
            again = (as_centre if lost[1] is accept else as_police).post("/v1/events", json=lost[1])
            assert again.status_code == 409, again.text
            assert assert_error_body(again)["code"] == "VERSION_CONFLICT", again.text
            history = as_inspector.get(f"/v1/cases/{case_id}/history").json()["events"]
            assert [e["version"] for e in history] == [1, 2, 3, 4]
            assert history[-1]["event_id"] == won[1]["event_id"]
            assert lost[1]["event_id"] not in {e["event_id"] for e in history}
        events = stored_events(server.settings)
        assert len(events) == before + ROUNDS
        assert {k: n for k, n in copies(events).items() if n != 1} == {}
        print(f"\nwinners {dict(winners)}; losers got {dict(losing_codes)}")


def test_the_same_event_posted_twice_at_once_is_stored_exactly_once(server: LiveServer) -> None:
    police = mint_token(server.settings, "agency", agency_id=POLICE)
    with (
        httpx.Client(base_url=server.base_url, headers=auth(police), timeout=15) as first,
        httpx.Client(base_url=server.base_url, headers=auth(police), timeout=15) as second,
    ):
        cases = _cases_at_the_centre(first, ROUNDS)
        for client in (first, second):
            assert client.get("/health").status_code == 200
        before = len(stored_events(server.settings))
        outcomes: Counter[tuple[int, ...]] = Counter()
        for case_id, t in cases:
            close = {
                "event_id": f"{case_id}-close",
                "case_id": case_id,
                "type": "CASE_CLOSED",
                "agency_id": POLICE,
                "occurred_at": (t + timedelta(minutes=20)).isoformat(),
                "data": {"close_reason": "PROCEEDINGS_ENDED"},
            }
            answers = _race([first, second], [close, close])
            statuses = tuple(sorted(a.status_code for a in answers))
            outcomes[statuses] += 1
            assert statuses in ((200, 201), (201, 409)), [a.text for a in answers]
            for answer in answers:
                if answer.status_code == 409:
                    assert assert_error_body(answer)["code"] == "CONCURRENT_WRITE"
                    retry = first.post("/v1/events", json=close)
                    assert retry.status_code == 200 and retry.json()["duplicate"], retry.text
                    assert retry.json()["version"] == 4
                else:
                    assert answer.json()["version"] == 4
        events = stored_events(server.settings)
        assert len(events) == before + ROUNDS
        assert {k: n for k, n in copies(events).items() if n != 1} == {}
        print(f"\noutcomes {dict(outcomes)}")
