"""Redaction of pulumi's output: connection URLs, passwords and tokens never reach a log line or an error."""

from __future__ import annotations

import pytest

from prenv.gateway.redact import redact


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("dial postgresql://admin:hunter2@db:5432/postgres failed", "hunter2"),
        ("using postgres://u:s3cret@h/db", "s3cret"),
        ("password=hunter2 host=db", "hunter2"),
        ("Password: hunter2", "hunter2"),
        ("token=ghp_abcdef123456", "ghp_abcdef123456"),
    ],
    ids=["postgresql url", "postgres url", "password=", "Password:", "token="],
)
def test_a_secret_in_a_line_is_replaced_by_a_mark(line: str, secret: str) -> None:
    out = redact(line)
    assert secret not in out
    assert "[redacted]" in out


def test_a_line_without_secrets_is_left_as_it_is() -> None:
    line = "kubernetes:core/v1:Namespace (env-namespace-ns): error: connection refused"
    assert redact(line) == line
