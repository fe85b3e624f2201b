"""Path filters (``filters.paths_include`` / ``paths_exclude``), approved forks and the implied off label, table-driven.

Changed files come from a dict standing in for the source's ``changed_files``; the GitHub source's own listing and
its cache are tested against the fake GitHub server in tests/integration/test_github_changed_files.py.
"""

from __future__ import annotations

import dataclasses

import pytest

from prenv.errors import ConfigError, SourceUnavailable
from prenv.filters import DropReason, FilterSettings, compile_filters
from prenv.model import PullRequest


def pr(n: int = 1, **kw: object) -> PullRequest:
    return PullRequest(number=n, sha="a" * 40, branch=f"b{n}", base="main", author="dev", title="t", **kw)  # type: ignore[arg-type]


def verdict(files: list[str], **settings: object) -> DropReason | None:
    f = compile_filters(FilterSettings(**settings), changed_files=lambda _pr: files)  # type: ignore[arg-type]
    result = f.apply([pr()])
    return result.dropped[0].reason if result.dropped else None


@pytest.mark.parametrize(
    ("files", "include", "exclude", "expected"),
    [
        (["docs/intro.md"], (), ("docs/**",), DropReason.PATHS_EXCLUDED),
        (["docs/intro.md", "README.md"], (), ("docs/**", "*.md"), DropReason.PATHS_EXCLUDED),
        (["docs/intro.md", "app/main.py"], (), ("docs/**",), None),
        (["a/b/c/notes.md"], (), ("**/*.md",), DropReason.PATHS_EXCLUDED),
        (["notes.md"], (), ("**/*.md",), DropReason.PATHS_EXCLUDED),
        (["a/notes.md"], (), ("*.md",), None),
        (["app/main.py"], ("app/**",), (), None),
        (["docs/intro.md"], ("app/**",), (), DropReason.PATHS_NOT_INCLUDED),
        (["app/main.py"], ("app/*.py",), (), None),
        (["app/sub/main.py"], ("app/*.py",), (), DropReason.PATHS_NOT_INCLUDED),
        (["app/v1.py"], ("app/v?.py",), (), None),
        (["app/v1.py"], ("app/v[0-9].py",), (), None),
        (["app/vx.py"], ("app/v[!0-9].py",), (), None),
        (["app.py"], ("app/**",), (), DropReason.PATHS_NOT_INCLUDED),
        (["app/x.py", "docs/a.md"], ("app/**",), ("docs/**",), None),
        ([], ("app/**",), (), DropReason.PATHS_NOT_INCLUDED),
        ([], (), ("docs/**",), None),
        (["a+b/(x).py"], ("a+b/(x).py",), (), None),
    ],
    ids=lambda v: repr(v)[:40],
)
def test_path_globs_decide_from_the_changed_files(
    files: list[str], include: tuple[str, ...], exclude: tuple[str, ...], expected: DropReason | None
) -> None:
    assert verdict(files, paths_include=include, paths_exclude=exclude) is expected


def test_changed_files_are_asked_only_for_prs_that_passed_every_other_rule() -> None:
    asked: list[int] = []

    def files(p: PullRequest) -> list[str]:
        asked.append(p.number)
        return ["docs/a.md"]

    f = compile_filters(FilterSettings(labels=("preview",), paths_exclude=("docs/**",)), changed_files=files)
    result = f.apply([pr(1), pr(2, labels=frozenset({"preview"})), pr(3, draft=True)])
    assert asked == [2]
    assert [(d.pr.number, d.reason) for d in result.dropped] == [
        (1, DropReason.MISSING_LABEL),
        (2, DropReason.PATHS_EXCLUDED),
        (3, DropReason.DRAFT),
    ]


def test_a_source_failure_while_reading_changed_files_reaches_the_caller() -> None:
    def files(_pr: PullRequest) -> list[str]:
        raise SourceUnavailable("github: timed out")

    f = compile_filters(FilterSettings(paths_include=("app/**",)), changed_files=files)
    with pytest.raises(SourceUnavailable):
        f.apply([pr()])


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"paths_include": ("",)}, "filters.paths_include[0]"),
        ({"paths_exclude": ("docs/**", "/etc/*")}, "filters.paths_exclude[1]"),
        ({"paths_include": ("app/[abc",)}, "filters.paths_include[0]"),
    ],
    ids=["empty", "absolute", "unclosed-class"],
)
def test_a_bad_glob_stops_start_up_naming_its_key(settings: dict[str, tuple[str, ...]], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        compile_filters(FilterSettings(**settings), changed_files=lambda _pr: [])  # type: ignore[arg-type]
    assert e.value.key == key


def test_path_globs_need_a_source_that_lists_changed_files() -> None:
    with pytest.raises(ConfigError) as e:
        compile_filters(FilterSettings(paths_exclude=("docs/**",)))
    assert e.value.key == "filters.paths_exclude"


def test_a_fork_is_kept_only_when_a_maintainer_approved_its_commit() -> None:
    f = compile_filters(FilterSettings())
    fork = pr(1, fork=True)
    assert [d.reason for d in f.apply([fork]).dropped] == [DropReason.FORK]
    assert f.apply([dataclasses.replace(fork, approved=True)]).kept == (dataclasses.replace(fork, approved=True),)


def test_the_off_label_of_commands_skips_a_pr() -> None:
    f = compile_filters(FilterSettings(), extra_skip_labels=("preview/off",))
    result = f.apply([pr(1, labels=frozenset({"preview/off"})), pr(2)])
    assert [p.number for p in result.kept] == [2]
    assert result.dropped[0].reason is DropReason.SKIP_LABEL
