"""The API contract items of issue 15 that the deployment owns: 405 names the allowed methods,
`at` is read one way on every route, enum errors are in one language each, `/docs` works
without internet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infra.bootstrap import Container
from infra.http.app import create_app


@pytest.fixture
def client(sqlite_container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_container)) as test_client:
        yield test_client


@pytest.fixture
def inspector(sqlite_container: Container) -> dict[str, str]:
    secret, _ = sqlite_container.tokens.create(  # type: ignore[union-attr]
        "inspector", "Thanh tra", provinces=["LSN"], reference=sqlite_container.reference
    )
    return {"Authorization": f"Bearer {secret}"}


def test_405_carries_an_allow_header_naming_the_methods_of_the_path(client: TestClient) -> None:
    response = client.delete("/v1/events")
    assert response.status_code == 405
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert "POST" in allowed and "DELETE" not in allowed
    health = client.post("/health")
    assert health.status_code == 405
    assert health.headers["allow"] == "GET"
    assert client.head("/health").status_code == 405  # so HEAD is rightly not in Allow


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-01-05T09:30:00"])
def test_at_is_read_the_same_way_by_bundle_and_as_of(
    client: TestClient, inspector: dict[str, str], value: str
) -> None:
    answers: list[dict[str, Any]] = []
    for route in ("as-of", "bundle"):
        response = client.get(
            f"/v1/cases/LSN-2026-000001/{route}", params={"at": value}, headers=inspector
        )
        assert response.status_code == 422, (route, response.text)
        body = response.json()
        assert body["field"] == "at"
        answers.append({k: body[k] for k in ("code", "field", "message", "message_en")})
    assert answers[0] == answers[1]


def test_an_enum_error_is_vietnamese_in_message_and_english_in_message_en(
    client: TestClient, inspector: dict[str, str]
) -> None:
    response = client.get("/v1/cases", params={"status": "NOPE"}, headers=inspector)
    assert response.status_code == 422
    body = response.json()
    assert body["field"] == "status"
    assert " or " not in body["message"], body["message"]
    assert "hoặc" not in body["message_en"] and "phải" not in body["message_en"]
    assert "'" not in body["message"].split(":", 1)[1].replace("«", "").replace("»", "")
    for value in ("OPEN", "CLOSED"):
        if value in body["message_en"]:
            assert value in body["message"]


def test_docs_are_served_without_any_external_url(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url:\s*["']([^"']+)["']""", page.text)
    referenced = [a or b for a, b in urls]
    assert referenced, page.text
    for url in referenced:
        assert url.startswith("/"), f"/docs loads {url} from outside the app"
        assert client.get(url).status_code == 200, url
    assert client.get("/redoc").status_code == 404  # no CDN-only ReDoc page
