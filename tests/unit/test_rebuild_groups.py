"""`referrals rebuild` shares the views between one process per core by their measured cost
(issue 16): each process decodes the log once for all its views."""

from __future__ import annotations

from infra.projection_runtime import rebuild_groups

VIEWS = ("case_index", "agency_counts", "compliance", "audit_trail")


def test_two_cores_pair_the_costliest_view_with_the_cheapest() -> None:
    groups = rebuild_groups(VIEWS, 2)
    assert sorted(map(sorted, groups)) == [
        ["agency_counts", "compliance"],
        ["audit_trail", "case_index"],
    ]


def test_never_more_groups_than_views_nor_fewer_than_one() -> None:
    assert len(rebuild_groups(VIEWS, 16)) == 4
    assert rebuild_groups(VIEWS, 0) == [
        ("audit_trail", "compliance", "agency_counts", "case_index")
    ]
    assert rebuild_groups(["compliance"], 2) == [("compliance",)]
    assert sorted(n for g in rebuild_groups([*VIEWS, "new_view"], 3) for n in g) == sorted(
        [*VIEWS, "new_view"]
    )
