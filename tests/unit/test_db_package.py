"""prenv.db's public surface: what the provider, `prenv gc` and the bench use, and nothing else."""

from __future__ import annotations

import pytest

import prenv.db
from prenv.errors import DatabaseError, PrenvError


def test_the_package_exports_exactly_its_public_names() -> None:
    assert sorted(prenv.db.__all__) == [
        "Branch",
        "create_branch",
        "database_exists",
        "drop_branch",
        "list_branches",
        "role_exists",
        "server_of",
    ]


def test_a_database_failure_is_a_prenv_error_that_carries_its_retry_decision() -> None:
    assert issubclass(DatabaseError, PrenvError)
    assert DatabaseError("down", temporary=True, delay=3).delay == 3
    assert DatabaseError("refused").temporary is False


def test_an_unreachable_server_is_a_temporary_database_error_naming_only_host_and_port() -> None:
    with pytest.raises(DatabaseError) as e:
        prenv.db.list_branches("postgresql://admin:hunter2@127.0.0.1:1/postgres?connect_timeout=2", "pr_")
    assert e.value.temporary
    assert "127.0.0.1:1" in str(e.value) and "hunter2" not in str(e.value)
