"""The README's as-of example works when copied: after its own POST example, its as-of command
(with the `at` its shell expression gives) returns the case; an instant before the POST
returns none (as-of is recording time)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Api, auth

pytestmark = pytest.mark.postgres
README = Path(__file__).resolve().parents[2] / "README.md"


def _command(fragment: str) -> str:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if fragment in b]
    assert len(found) == 1, f"one README block with {fragment!r}"
    return found[0].replace("\\\n", " ")


def _shell(word: str) -> str:
    """What bash makes of one quoted word of the README (its $(date ...) included)."""
    done = subprocess.run(
        ["bash", "-c", f"printf %s {word}"], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout


def test_readme_as_of_example_returns_the_case_it_just_posted(api: Api) -> None:
    post = _command("-X POST http://127.0.0.1:8000/v1/events ")
    body = json.loads(shlex.split(post)[shlex.split(post).index("-d") + 1])
    police = auth(api.token("agency", agency_id=body["agency_id"]))
    inspector = auth(api.token("inspector", provinces=["LSN"]))
    recorded = api.client.post("/v1/events", json=body, headers=police)
    assert recorded.status_code == 201, recorded.text
    time.sleep(1.05)  # the example's `at` has whole seconds; a person types it later still

    as_of = _command("/as-of")
    url = re.search(r"http://127\.0\.0\.1:8000(/v1/cases/\S+/as-of)", as_of).group(1)  # type: ignore[union-attr]
    quoted = re.search(r"--data-urlencode (\"[^\"]+\"|'[^']+')", as_of).group(1)  # type: ignore[union-attr]
    assert "$(date" in quoted, "the example's instant must follow the clock, not a fixed day"
    at = _shell(quoted).removeprefix("at=")
    answer = api.client.get(url, params={"at": at}, headers=inspector)
    assert answer.status_code == 200, answer.text
    assert answer.json()["case"] is not None
    assert [e["event_id"] for e in answer.json()["events"]] == [body["event_id"]]

    earlier = _shell(quoted.replace("date -u", "date -u -d '1 hour ago'")).removeprefix("at=")
    before = api.client.get(url, params={"at": earlier}, headers=inspector)
    assert before.status_code == 200 and before.json()["case"] is None
