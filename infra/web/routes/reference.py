"""The reference versions page (issue 14): every recorded version of every reference document,
with who published it, its effective dates, its legal source and its SHA-256."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from infra.web.deps import PREFIX, ContainerDep, SessionDep, renderer

router = APIRouter(prefix=PREFIX, include_in_schema=False)


@router.get("/reference")
def reference_page(
    request: Request,
    session: SessionDep,
    container: ContainerDep,
    ref: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Versions, newest first per document; the ones in force today marked."""
    state = container.reference_state
    state.maybe_refresh()
    refs = state.refs
    today = state._today()
    in_force = {r.label for r in refs.current(today)}
    names = [ref] if ref and ref in refs.refs() else refs.refs()
    documents = [(name, list(reversed(refs.history(name)))) for name in names]
    return renderer(request).page(
        request, "reference.html", session, documents=documents, in_force=in_force, today=today
    )
