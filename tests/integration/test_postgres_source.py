"""PostgresTableSource against a real PostgreSQL: the CI write helpers, the reader, bad rows and outages."""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from devtools.localdb import LocalPostgres
from prenv.errors import ConfigError, SourceError, SourceUnavailable
from prenv.model import PullRequest
from prenv.procs import free_port
from prenv.sources import PostgresTableSource, PullRequestSource

SHA1 = "1" * 40
SHA2 = "2" * 40


def pr(number: int, sha: str = SHA1, **kwargs: object) -> PullRequest:
    fields: dict[str, object] = {
        "branch": f"feature-{number}",
        "base": "main",
        "author": "alice",
        "title": f"Change {number}",
        "labels": frozenset({"preview"}),
        "updated_at": datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC),
    }
    fields.update(kwargs)
    return PullRequest(number=number, sha=sha, **fields)  # type: ignore[arg-type]


@pytest.fixture
def table(postgres_database: str) -> PostgresTableSource:
    source = PostgresTableSource(postgres_database)
    source.ensure_table()
    return source


def test_a_postgres_table_source_is_a_pull_request_source(postgres_database: str) -> None:
    assert isinstance(PostgresTableSource(postgres_database), PullRequestSource)


def test_upserted_prs_are_listed_by_number(table: PostgresTableSource) -> None:
    table.upsert(pr(12, labels=frozenset({"preview", "team/web"}), draft=True, fork=True))
    table.upsert(pr(3))

    assert table.list_open() == [pr(3), pr(12, labels=frozenset({"preview", "team/web"}), draft=True, fork=True)]


def test_an_upsert_of_a_known_pr_replaces_its_row(table: PostgresTableSource) -> None:
    table.upsert(pr(5))
    table.upsert(pr(5, sha=SHA2, title="Change 5, take two", labels=frozenset()))

    assert table.list_open() == [pr(5, sha=SHA2, title="Change 5, take two", labels=frozenset())]


def test_a_deactivated_pr_is_no_longer_listed_and_reopening_brings_it_back(table: PostgresTableSource) -> None:
    table.upsert(pr(1))
    table.upsert(pr(2))

    assert table.deactivate(1) is True
    assert table.deactivate(1) is False
    assert [p.number for p in table.list_open()] == [2]

    table.upsert(pr(1, sha=SHA2))
    assert [(p.number, p.sha) for p in table.list_open()] == [(1, SHA2), (2, SHA1)]


def test_a_deleted_pr_is_no_longer_listed(table: PostgresTableSource) -> None:
    table.upsert(pr(1))
    table.upsert(pr(2))

    assert table.delete(2) is True
    assert table.delete(2) is False
    assert [p.number for p in table.list_open()] == [1]


def test_ensure_table_is_idempotent(table: PostgresTableSource) -> None:
    table.upsert(pr(1))
    table.ensure_table()

    assert [p.number for p in table.list_open()] == [1]


def test_an_upsert_without_a_timestamp_records_now(table: PostgresTableSource) -> None:
    table.upsert(pr(1, updated_at=None))

    [listed] = table.list_open()
    assert listed.updated_at is not None
    assert abs((datetime.now(UTC) - listed.updated_at).total_seconds()) < 60


def test_an_invalid_pr_is_refused_before_it_is_written(table: PostgresTableSource) -> None:
    with pytest.raises(ValueError, match="PR #4 is not a valid record: sha is not 40 hexadecimal"):
        table.upsert(pr(4, sha="abc"))

    assert table.list_open() == []


BAD_ROWS = [
    ("short sha", "sha", "'abc'", "sha is not 40 hexadecimal characters"),
    ("control characters in the title", "title", "E'evil\\x1b[2J'", "title contains control characters"),
    ("huge branch", "branch", "repeat('b', 2000)", "branch is longer than 1024 characters"),
    ("empty branch", "branch", "''", "branch is empty"),
    ("a NULL label", "labels", "ARRAY['ok', NULL]::text[]", "label 1 is missing"),
]


@pytest.mark.parametrize(("column", "value", "reason"), [b[1:] for b in BAD_ROWS], ids=[b[0] for b in BAD_ROWS])
def test_a_malformed_row_is_skipped_with_its_reason(
    table: PostgresTableSource,
    postgres_database: str,
    caplog: pytest.LogCaptureFixture,
    column: str,
    value: str,
    reason: str,
) -> None:
    table.upsert(pr(1))
    table.upsert(pr(2))
    table.upsert(pr(3))
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        conn.execute(f"UPDATE prenv_pull_requests SET {column} = {value} WHERE number = 2")

    with caplog.at_level(logging.WARNING, logger="prenv.sources.records"):
        prs = table.list_open()

    assert [p.number for p in prs] == [1, 3]
    [record] = caplog.records
    assert f"PR #2: {reason}" in record.getMessage()
    assert "evil" not in record.getMessage()


def test_a_custom_table_name_is_used(postgres_database: str) -> None:
    source = PostgresTableSource(postgres_database, table="public.previews")
    source.ensure_table()
    source.upsert(pr(9))

    with psycopg.connect(postgres_database) as conn:
        assert conn.execute("SELECT number FROM public.previews").fetchall() == [(9,)]
    assert [p.number for p in source.list_open()] == [9]


@pytest.mark.parametrize(
    "name",
    ["prs; DROP TABLE x", 'a"b', "Upper", "a.b.c", "x" * 64, ""],
    ids=["injection", "quote", "uppercase", "three parts", "too long", "empty"],
)
def test_a_table_name_that_is_not_a_plain_identifier_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PostgresTableSource("postgresql://unused", table=name)

    assert caught.value.key == "postgres.table"


def test_a_missing_table_is_a_permanent_error_with_a_hint(postgres_database: str) -> None:
    with pytest.raises(SourceError) as caught:
        PostgresTableSource(postgres_database).list_open()

    assert not isinstance(caught.value, SourceUnavailable)
    assert "42P01" in str(caught.value)
    assert "ensure_table" in str(caught.value)


def test_a_server_that_is_down_is_temporary(postgres_database: str) -> None:
    dsn = f"postgresql://postgres:secret-pw@127.0.0.1:{free_port()}/postgres"

    with pytest.raises(SourceUnavailable) as caught:
        PostgresTableSource(dsn, connect_timeout=2).list_open()

    assert "secret-pw" not in str(caught.value)


def test_a_wrong_password_is_permanent_and_not_echoed(postgres_database: str) -> None:
    rest = postgres_database.split("@", 1)[1]
    dsn = f"postgresql://postgres:wrong-secret@{rest}"

    with pytest.raises(SourceError) as caught:
        PostgresTableSource(dsn).list_open()

    assert not isinstance(caught.value, SourceUnavailable)
    assert "28P01" in str(caught.value)
    assert "wrong-secret" not in str(caught.value)
    assert "wrong-secret" not in repr(PostgresTableSource(dsn))


def test_the_source_recovers_when_the_server_comes_back() -> None:
    # A server of its own: stopping the shared one would cut other tests' connections.
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="prenv-pg-restart-")))
    server.start()
    try:
        source = PostgresTableSource(server.dsn)
        source.ensure_table()
        source.upsert(pr(1))
        server.stop()

        with pytest.raises(SourceUnavailable):
            source.list_open()

        server.start()
        assert [p.number for p in source.list_open()] == [1]
    finally:
        server.remove()
