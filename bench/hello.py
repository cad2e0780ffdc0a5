"""The baseline of the single-post row: a FastAPI hello-world POST.

It parses a JSON body of the same size as the ledger's events (a sync route, as ours are) and
answers a small JSON object; served by uvicorn with the same workers and options as the
ledger. `uvicorn bench.hello:app`.
"""

from __future__ import annotations

from typing import Any

from fastapi import Body, FastAPI

app = FastAPI()


@app.post("/hello", status_code=201)
def hello(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI idiom
    return {"hello": "world", "fields": len(body)}
