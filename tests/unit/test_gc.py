"""The orphan sweep's decision: what has no stack, and which stacks have no open PR."""

from __future__ import annotations

from prenv.gc import Inventory, find_orphans


def test_namespaces_databases_and_roles_without_a_stack_are_orphans() -> None:
    inv = Inventory(
        stacks=frozenset({1, 2}),
        namespaces={"pr-1": 1, "pr-3": 3, "prenv-system": None},
        databases=("pr_1", "pr_3", "app_seed", "pr_x"),
        roles=("pr_2", "pr_4"),
        open_prs=frozenset({1, 2}),
    )
    orphans = find_orphans(inv, "pr_")
    assert orphans.namespaces == ("pr-3",)
    assert orphans.databases == ("pr_3",)
    assert orphans.roles == ("pr_4",)
    assert orphans.stale_stacks == ()


def test_stacks_without_an_open_pr_are_stale_only_when_the_source_answered() -> None:
    assert find_orphans(Inventory(stacks=frozenset({1, 2}), open_prs=frozenset({2})), "pr_").stale_stacks == (1,)
    assert find_orphans(Inventory(stacks=frozenset({1, 2}), open_prs=None), "pr_").stale_stacks == ()


def test_nothing_is_an_orphan_when_everything_has_its_stack() -> None:
    inv = Inventory(stacks=frozenset({5}), namespaces={"pr-5": 5}, databases=("pr_5",), roles=("pr_5",))
    assert find_orphans(inv, "pr_").empty()


def test_the_database_prefix_is_respected() -> None:
    inv = Inventory(stacks=frozenset(), databases=("preview_7", "pr_7"), roles=())
    assert find_orphans(inv, "preview_").databases == ("preview_7",)


def test_gc_expired_lists_the_environments_of_open_prs_past_their_ttl() -> None:
    from datetime import UTC, datetime, timedelta

    from prenv.gc import find_expired
    from prenv.model import PullRequest, StackState
    from prenv.ttl import TtlPolicy

    now = datetime(2024, 6, 1, tzinfo=UTC)

    def pr(n: int, *labels: str) -> PullRequest:
        return PullRequest(n, "a" * 40, "b", "main", "u", "t", labels=frozenset(labels), updated_at=now)

    def stack(n: int, hours_ago: int) -> StackState:
        return StackState(n, f"pr-{n}", "a" * 40, "h", created_at=now - timedelta(hours=hours_ago))

    stacks = [stack(1, 49), stack(2, 1), stack(3, 100), stack(5, 100)]  # 5: its PR is closed (plain gc's business)
    expired = find_expired([pr(1), pr(2), pr(3, "preview/keep"), pr(4)], stacks, now, TtlPolicy())
    assert [(e.pr, e.reason) for e in expired] == [(1, "no push for 2d")]
