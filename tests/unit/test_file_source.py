"""The file source: the DESIGN.md contract, both formats, and bad input that never crashes a cycle."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from prenv.errors import SourceError, SourceUnavailable
from prenv.model import PullRequest
from prenv.sources import FileSource, PullRequestSource

SHA = "0123456789abcdef0123456789abcdef01234567"


def entry(number: object = 1, **overrides: object) -> dict[str, Any]:
    record: dict[str, Any] = {
        "number": number,
        "sha": SHA,
        "branch": f"feature-{number}",
        "author": "alice",
        "title": "Add a thing",
        "labels": ["preview"],
    }
    record.update(overrides)
    return record


def write_json(tmp_path: Path, records: object) -> FileSource:
    path = tmp_path / "prs.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return FileSource(path)


def test_a_file_source_is_a_pull_request_source(tmp_path: Path) -> None:
    assert isinstance(FileSource(tmp_path / "prs.yaml"), PullRequestSource)


def test_yaml_entries_become_pull_requests_with_contract_defaults(tmp_path: Path) -> None:
    path = tmp_path / "prs.yaml"
    path.write_text(
        f"""
- number: 12
  sha: "{SHA.upper()}"
  branch: feature/login
  author: alice
  title: Login page
  labels: [preview, team/web]
- number: 13
  sha: "{SHA}"
  branch: fix/typo
  base: develop
  draft: true
  fork: true
  updated_at: 2026-01-02T03:04:05Z
""",
        encoding="utf-8",
    )

    prs = FileSource(path).list_open()

    assert prs == [
        PullRequest(
            number=12,
            sha=SHA,
            branch="feature/login",
            base="main",
            author="alice",
            title="Login page",
            labels=frozenset({"preview", "team/web"}),
        ),
        PullRequest(
            number=13,
            sha=SHA,
            branch="fix/typo",
            base="develop",
            author="",
            title="",
            draft=True,
            fork=True,
            updated_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        ),
    ]


def test_json_files_are_read_as_json(tmp_path: Path) -> None:
    source = write_json(tmp_path, [entry(3), entry(4, labels=[])])

    assert [(p.number, p.labels) for p in source.list_open()] == [
        (3, frozenset({"preview"})),
        (4, frozenset()),
    ]


def test_removing_an_entry_closes_the_pr_on_the_next_listing(tmp_path: Path) -> None:
    source = write_json(tmp_path, [entry(1), entry(2)])
    assert [p.number for p in source.list_open()] == [1, 2]

    write_json(tmp_path, [entry(2)])

    assert [p.number for p in source.list_open()] == [2]


def test_an_empty_list_means_no_open_prs(tmp_path: Path) -> None:
    assert write_json(tmp_path, []).list_open() == []


MALFORMED = [
    ("missing sha", entry(5, sha=None), "sha is missing"),
    ("short sha", entry(5, sha="abc123"), "sha is not 40 hexadecimal characters"),
    ("non-hex sha", entry(5, sha="g" * 40), "sha is not 40 hexadecimal characters"),
    ("numeric sha", entry(5, sha=1234), "sha must be a string"),
    ("non-numeric number", entry("five"), "number is not an integer"),
    ("boolean number", entry(True), "number is not an integer"),
    ("zero number", entry(0), "number is not positive"),
    ("negative number", entry(-3), "number is not positive"),
    ("missing number", {k: v for k, v in entry().items() if k != "number"}, "number is missing"),
    ("huge title", entry(5, title="x" * 1025), "title is longer than 1024 characters"),
    ("huge branch", entry(5, branch="b" * 5000), "branch is longer than 1024 characters"),
    ("escape in title", entry(5, title="ok\x1b[2Jgone"), "title contains control characters"),
    ("newline in branch", entry(5, branch="a\nINFO forged log line"), "branch contains control characters"),
    ("missing branch", entry(5, branch=None), "branch is missing"),
    ("labels not a list", entry(5, labels="preview"), "labels must be a list of strings"),
    ("label not a string", entry(5, labels=["ok", 7]), "label 1 is not a string"),
    ("draft not a boolean", entry(5, draft="yes"), "draft is not a boolean"),
    ("bad timestamp", entry(5, updated_at="yesterday"), "updated_at is not an ISO 8601 timestamp"),
    ("not an object", ["number", 5], "record is not an object"),
]


@pytest.mark.parametrize(("record", "reason"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_entry_is_skipped_with_its_reason_and_the_rest_still_listed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, record: object, reason: str
) -> None:
    source = write_json(tmp_path, [entry(1), record, entry(2)])

    with caplog.at_level(logging.WARNING, logger="prenv.sources.records"):
        prs = source.list_open()

    assert [p.number for p in prs] == [1, 2]
    assert len(caplog.records) == 1
    assert reason in caplog.records[0].getMessage()


def test_the_skip_log_names_the_pr_number_and_never_echoes_the_bad_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_json(tmp_path, [entry(42, title="\x1b]0;pwned\x07 <b>evil</b>")])

    with caplog.at_level(logging.WARNING):
        assert source.list_open() == []

    message = caplog.records[0].getMessage()
    assert "PR #42" in message
    assert "evil" not in message
    assert "\x1b" not in message


def test_a_later_duplicate_number_is_skipped_and_the_first_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = write_json(tmp_path, [entry(7, branch="first"), entry(7, branch="second"), entry(8)])

    with caplog.at_level(logging.WARNING):
        prs = source.list_open()

    assert [(p.number, p.branch) for p in prs] == [(7, "first"), (8, "feature-8")]
    assert "PR #7: duplicate number" in caplog.records[0].getMessage()


def test_a_missing_file_is_a_permanent_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        FileSource(tmp_path / "absent.yaml").list_open()

    assert not isinstance(caught.value, SourceUnavailable)
    assert "file not found" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "text"),
    [("prs.json", '[{"number": 1,'), ("prs.yaml", "- number: 1\n  sha: [unclosed\n"), ("prs.yaml", "")],
    ids=["truncated JSON", "broken YAML", "empty file"],
)
def test_an_unparsable_or_empty_file_yields_no_desired_state_this_cycle(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")

    with pytest.raises(SourceUnavailable):
        FileSource(path).list_open()


def test_a_top_level_object_instead_of_a_list_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="expected a list"):
        write_json(tmp_path, {"pulls": []}).list_open()
