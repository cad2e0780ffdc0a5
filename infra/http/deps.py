"""Typed dependencies of the routes: the container's parts and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from infra.bootstrap import Container
from services.access import Principal
from services.referrals import Referrals

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    description="Mã truy cập do quản trị cấp (`referrals token create`), gắn với một chủ thể.",
)


async def get_container(request: Request) -> Container:
    """The process's container (set by `create_app`)."""
    container: Container = request.app.state.container
    return container


async def get_referrals(request: Request) -> Referrals:
    """The ledger application."""
    referrals: Referrals = request.app.state.container.referrals
    return referrals


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal of the request's bearer token; 401 when there is none valid.

    A recently seen token is answered from memory on the event loop; otherwise the token store
    is queried in the thread pool (it blocks)."""
    token = credentials.credentials if credentials is not None else None
    store = request.app.state.container.tokens
    principal = store.authenticate_cached(token)
    if principal is None:
        principal = await run_in_threadpool(store.authenticate, token)
    request.scope.setdefault("state", {})["principal_id"] = principal.principal_id
    return principal


ContainerDep = Annotated[Container, Depends(get_container)]
ReferralsDep = Annotated[Referrals, Depends(get_referrals)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
