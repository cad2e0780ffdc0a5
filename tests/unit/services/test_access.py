"""The access policy: who posts, who reads which case, who sees clear identity."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from domain.errors import NotAuthorisedError
from infra.reference_data import load_reference
from services.access import (
    CaseScope,
    Principal,
    access_log_visible,
    case_scope,
    may_post,
    may_read_access_log,
    may_read_case,
    may_see_identity,
)

POLICE = Principal("p", "agency", "CSĐT", "lsn-police-investigation", frozenset({"LSN"}))
CENTRE = Principal("c", "agency", "TT", "lsn-centre", frozenset({"LSN"}))
COURT = Principal("t", "agency", "TA", "lsn-court", frozenset({"LSN"}))
INSPECTOR = Principal("i", "inspector", "TT LSN", None, frozenset({"LSN"}))
INSPECTOR_VLG = Principal("v", "inspector", "TT VLG", None, frozenset({"VLG"}))
COUNCIL = Principal("h", "council", "HĐ LSN", "lsn-council", frozenset({"LSN"}))
ADMIN = Principal("a", "admin", "QT")


def _event(agency: str, data: dict | None = None, identity: bool = False) -> SimpleNamespace:
    return SimpleNamespace(
        agency_id=agency, data=data or {}, identity_ciphertext="x" if identity else None
    )


@pytest.fixture(scope="module")
def scope() -> CaseScope:
    history = [
        _event("lsn-police-investigation", identity=True),
        _event("lsn-police-investigation", {"centre_id": "lsn-centre"}),
        _event("lsn-police-investigation", {"to_agency_id": "lsn-court"}),
    ]
    return case_scope("LSN-1", history, load_reference(None))


def test_case_scope_takes_the_province_of_the_opening_agency(scope: CaseScope) -> None:
    assert scope.province == "LSN"
    assert scope.touched_by == {"lsn-police-investigation", "lsn-centre", "lsn-court"}
    assert scope.identity_by == {"lsn-police-investigation"}


def test_agency_posts_only_as_itself() -> None:
    may_post(POLICE, "lsn-police-investigation")
    with pytest.raises(NotAuthorisedError) as caught:
        may_post(POLICE, "lsn-centre")
    assert caught.value.field == "agency_id"
    for principal in (INSPECTOR, COUNCIL, ADMIN):
        with pytest.raises(NotAuthorisedError):
            may_post(principal, "lsn-police-investigation")


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (POLICE, True),
        (CENTRE, True),
        (COURT, True),
        (INSPECTOR, True),
        (COUNCIL, True),
        (INSPECTOR_VLG, False),
        (ADMIN, False),
        (Principal("d", "agency", "VKS", "lsn-procuracy", frozenset({"LSN"})), False),
    ],
)
def test_read_case_when_touched_or_in_province(
    scope: CaseScope, principal: Principal, allowed: bool
) -> None:
    if allowed:
        may_read_case(principal, scope)
    else:
        with pytest.raises(NotAuthorisedError):
            may_read_case(principal, scope)


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (COURT, True),
        (CENTRE, True),
        (INSPECTOR, True),
        (POLICE, False),
        (COUNCIL, False),
        (INSPECTOR_VLG, False),
        (ADMIN, False),
    ],
)
def test_identity_for_the_holder_the_addressed_centre_and_province_inspectors(
    scope: CaseScope, principal: Principal, allowed: bool
) -> None:
    # the police recorded the identity but no longer holds the case (it went to the court):
    # recording a block grants nothing; the law's roles on the case decide
    if allowed:
        may_see_identity(principal, scope)
    else:
        with pytest.raises(NotAuthorisedError):
            may_see_identity(principal, scope)


def test_identity_for_former_holders_only_when_configured(scope: CaseScope) -> None:
    assert scope.holder == "lsn-court" and scope.centre == "lsn-centre"
    assert scope.former_holders == {"lsn-police-investigation"}
    may_see_identity(POLICE, scope, former_holders=True)
    with pytest.raises(NotAuthorisedError):
        may_see_identity(COUNCIL, scope, former_holders=True)


def test_access_log_for_inspectors_of_the_province_and_admins() -> None:
    may_read_access_log(INSPECTOR)
    may_read_access_log(ADMIN)
    for principal in (POLICE, COUNCIL):
        with pytest.raises(NotAuthorisedError):
            may_read_access_log(principal)
    assert access_log_visible(ADMIN, None)
    assert access_log_visible(INSPECTOR, "LSN") and not access_log_visible(INSPECTOR, "VLG")


def test_principal_binding_is_checked() -> None:
    with pytest.raises(ValueError, match="agency_id"):
        Principal("x", "agency", "x")
    with pytest.raises(ValueError, match="province"):
        Principal("x", "inspector", "x")
    with pytest.raises(ValueError, match="exactly one"):
        Principal("x", "council", "x", provinces=frozenset({"LSN", "VLG"}))
    with pytest.raises(ValueError, match="role"):
        Principal("x", "root", "x")
