"""Filters: a table of settings and PRs, each kept or dropped with a reason."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from prenv.errors import ConfigError
from prenv.filters import DropReason, FilterSettings, compile_filters
from prenv.model import PullRequest


def pr(number: int = 1, **overrides: Any) -> PullRequest:
    base = PullRequest(
        number=number,
        sha="a" * 40,
        branch="feature/login",
        base="main",
        author="alice",
        title="Add login page",
        labels=frozenset({"preview"}),
    )
    return replace(base, **overrides)


CASES: list[tuple[str, dict[str, Any], PullRequest, DropReason | None]] = [
    ("no settings keep a plain PR", {}, pr(), None),
    ("drafts are skipped by default", {}, pr(draft=True), DropReason.DRAFT),
    ("drafts are kept when allowed", {"allow_drafts": True}, pr(draft=True), None),
    ("forks are skipped by default", {}, pr(fork=True), DropReason.FORK),
    ("forks are kept when allowed", {"allow_forks": True}, pr(fork=True), None),
    ("a required label that is present keeps", {"labels": ("preview",)}, pr(), None),
    ("a required label that is absent drops", {"labels": ("deploy",)}, pr(), DropReason.MISSING_LABEL),
    (
        "all required labels must be present",
        {"labels": ("preview", "deploy")},
        pr(labels=frozenset({"preview"})),
        DropReason.MISSING_LABEL,
    ),
    (
        "all required labels present keep",
        {"labels": ("preview", "deploy")},
        pr(labels=frozenset({"preview", "deploy", "other"})),
        None,
    ),
    (
        "a skip label that is present drops",
        {"skip_labels": ("no-preview",)},
        pr(labels=frozenset({"no-preview"})),
        DropReason.SKIP_LABEL,
    ),
    ("a skip label that is absent keeps", {"skip_labels": ("no-preview",)}, pr(), None),
    (
        "a negated skip label drops while the gate label is absent",
        {"skip_labels": ("!build/image-ready",)},
        pr(),
        DropReason.GATE_LABEL_ABSENT,
    ),
    (
        "a negated skip label keeps once the gate label is present",
        {"skip_labels": ("!build/image-ready",)},
        pr(labels=frozenset({"build/image-ready"})),
        None,
    ),
    ("a matching branch include keeps", {"branch_include": r"^feature/"}, pr(), None),
    ("a non-matching branch include drops", {"branch_include": r"^release/"}, pr(), DropReason.BRANCH_NOT_INCLUDED),
    (
        "a matching branch exclude drops",
        {"branch_exclude": r"^dependabot/"},
        pr(branch="dependabot/npm/lodash"),
        DropReason.BRANCH_EXCLUDED,
    ),
    ("a non-matching branch exclude keeps", {"branch_exclude": r"^dependabot/"}, pr(), None),
    ("a matching target branch keeps", {"base_include": r"^(main|develop)$"}, pr(base="develop"), None),
    (
        "a non-matching target branch drops",
        {"base_include": r"^main$"},
        pr(base="release-1"),
        DropReason.BASE_NOT_INCLUDED,
    ),
    ("a WIP title drops", {"title_exclude": r"^WIP"}, pr(title="WIP: login"), DropReason.TITLE_EXCLUDED),
    ("a finished title keeps", {"title_exclude": r"^WIP"}, pr(title="Login, done"), None),
    ("regexes search rather than match whole names", {"branch_include": "login"}, pr(), None),
    (
        "the draft rule is reported before label rules",
        {"labels": ("deploy",)},
        pr(draft=True),
        DropReason.DRAFT,
    ),
]


@pytest.mark.parametrize(("settings", "pull", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_pr_is_kept_or_dropped_for_the_first_failing_rule(
    settings: dict[str, Any], pull: PullRequest, expected: DropReason | None
) -> None:
    result = compile_filters(FilterSettings(**settings)).apply([pull])

    if expected is None:
        assert result.kept == (pull,)
        assert result.dropped == ()
    else:
        assert result.kept == ()
        assert [(d.pr, d.reason) for d in result.dropped] == [(pull, expected)]
        assert result.dropped[0].detail


BAD_REGEXES = [
    ("branch_include", "filters.branch_include"),
    ("branch_exclude", "filters.branch_exclude"),
    ("base_include", "filters.base_include"),
    ("title_exclude", "filters.title_exclude"),
]


@pytest.mark.parametrize(("field", "key"), BAD_REGEXES, ids=[f for f, _ in BAD_REGEXES])
def test_a_bad_regex_fails_compilation_naming_its_key(field: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_filters(FilterSettings(**{field: "feature/(unclosed"}))

    assert caught.value.key == key
    assert key in str(caught.value)


def test_the_key_prefix_names_where_the_settings_live() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_filters(FilterSettings(title_exclude="["), key_prefix="repos[0].filters")

    assert caught.value.key == "repos[0].filters.title_exclude"


def test_an_empty_negated_skip_label_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        compile_filters(FilterSettings(skip_labels=("ok", "!")))

    assert caught.value.key == "filters.skip_labels[1]"


def test_the_limit_keeps_the_lowest_pr_numbers_whatever_the_input_order() -> None:
    prs = [pr(7), pr(3), pr(12), pr(5)]
    result = compile_filters(FilterSettings(max_environments=2)).apply(prs)

    assert [p.number for p in result.kept] == [3, 5]
    assert [(d.pr.number, d.reason) for d in result.dropped] == [
        (7, DropReason.OVER_LIMIT),
        (12, DropReason.OVER_LIMIT),
    ]
    assert "filters.max_environments is 2" in result.dropped[0].detail


def test_the_limit_counts_only_prs_that_passed_the_other_rules() -> None:
    prs = [pr(1, draft=True), pr(2), pr(3), pr(4)]
    result = compile_filters(FilterSettings(max_environments=2)).apply(prs)

    assert [p.number for p in result.kept] == [2, 3]
    assert {d.pr.number: d.reason for d in result.dropped} == {
        1: DropReason.DRAFT,
        4: DropReason.OVER_LIMIT,
    }


def test_a_limit_of_zero_drops_everything() -> None:
    result = compile_filters(FilterSettings(max_environments=0)).apply([pr(1), pr(2)])

    assert result.kept == ()
    assert [d.reason for d in result.dropped] == [DropReason.OVER_LIMIT, DropReason.OVER_LIMIT]


def test_results_are_sorted_by_pr_number() -> None:
    result = compile_filters(FilterSettings()).apply([pr(9), pr(2, draft=True), pr(4), pr(1, fork=True)])

    assert [p.number for p in result.kept] == [4, 9]
    assert [d.pr.number for d in result.dropped] == [1, 2]


def test_drop_details_never_quote_pr_text() -> None:
    hostile = pr(title="WIP <script>alert(1)</script>", branch="x/<img src=x>")
    result = compile_filters(FilterSettings(title_exclude="^WIP")).apply([hostile])

    assert result.dropped[0].reason is DropReason.TITLE_EXCLUDED
    assert "<" not in result.dropped[0].detail


def test_settings_reject_unknown_keys_and_negative_limits() -> None:
    with pytest.raises(ValueError, match="branch_includes"):
        FilterSettings(**{"branch_includes": "x"})
    with pytest.raises(ValueError, match="max_environments"):
        FilterSettings(max_environments=-1)
