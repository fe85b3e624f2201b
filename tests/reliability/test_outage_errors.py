"""Whether a failed pulumi run is worth retrying, decided from what pulumi really prints.

Found by the database-outage check: pulumi prints a resource's error in the diagnostics on stdout, and stderr only
says ``error: update failed``. Judging by stderr alone made "PostgreSQL is down" a permanent error, reported once
and never retried, so the environment never came back after the outage. The database provider now writes its retry
decision into its failure (``[prenv:temporary]``, prenv.errors.encode), so "the connection is closed" when the server
goes away mid-create is temporary because the provider says so, and "refused" is permanent whatever its words.
"""

from __future__ import annotations

import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from prenv.gateway.classify import classify, summarize

pytestmark = pytest.mark.reliability

_DB_DOWN = """Updating (pr-7):
 +  pulumi-python:dynamic:Resource env-database-branch creating (0s) error: Exception calling application: \
cannot connect to PostgreSQL at 127.0.0.1:54157: connection failed: Connection refused
Diagnostics:
  pulumi-python:dynamic:Resource (env-database-branch):
    error: Exception calling application: cannot connect to PostgreSQL at 127.0.0.1:54157: Connection refused \
[prenv:temporary]
"""
_CLUSTER_DOWN = """Destroying (pr-7):
Diagnostics:
  kubernetes:core/v1:Namespace (env-namespace-ns):
    error: configured Kubernetes cluster is unreachable: dial tcp 127.0.0.1:6443: connect: connection refused
"""
_DB_LOST_MID_CREATE = """Updating (pr-7):
Diagnostics:
  pulumi-python:dynamic:Resource (env-database-branch):
    error: Exception calling application: PostgreSQL at 127.0.0.1:50019 failed: the connection is closed \
[prenv:temporary]
"""
_DB_REFUSED = """Updating (pr-7):
Diagnostics:
  pulumi-python:dynamic:Resource (env-database-branch):
    error: Exception calling application: PostgreSQL at 127.0.0.1:50019 refused: permission denied (42501) \
[prenv:permanent]
"""
_DB_REFUSED_TIMEOUT = """Updating (pr-7):
Diagnostics:
  pulumi-python:dynamic:Resource (env-database-branch):
    error: Exception calling application: PostgreSQL at 127.0.0.1:50019 refused: invalid value for parameter \
"statement_timeout": "soon" (22023) [prenv:permanent]
"""
_BAD_CONFIG = """Updating (pr-7):
 ~  kubernetes:apps/v1:Deployment env-app-web updating (0s) [1/2] Waiting for app ReplicaSet to be available \
(0/1 Pods unavailable, timeoutSeconds 600)
Diagnostics:
  pulumi:pulumi:Stack (prenv-pr-7):
    error: invalid configuration: prenv:quota.cpu: 'lots' does not have the expected form
"""


def _error(stdout: str, stderr: str = "error: update failed\n") -> auto.CommandError:
    return auto.CommandError(CommandResult(stdout=stdout, stderr=stderr, code=255))


@pytest.mark.parametrize(
    ("stdout", "temporary"),
    [
        (_DB_DOWN, True),
        (_DB_LOST_MID_CREATE, True),
        (_CLUSTER_DOWN, True),
        (_DB_REFUSED, False),
        (_DB_REFUSED_TIMEOUT, False),
        (_BAD_CONFIG, False),
    ],
    ids=[
        "database down",
        "database lost mid-create",
        "cluster unreachable",
        "database refused",
        "database refused, with 'timeout' in its words",
        "bad configuration with progress text",
    ],
)
def test_an_outage_reported_in_the_diagnostics_on_stdout_is_temporary_and_bad_config_is_not(
    stdout: str, temporary: bool
) -> None:
    assert classify(_error(stdout)).temporary is temporary


def test_the_summary_of_a_database_outage_names_the_server_and_nothing_secret() -> None:
    text = summarize(_error(_DB_DOWN.replace("127.0.0.1:54157", "postgresql://admin:hunter2@db:5432/postgres")))
    assert "hunter2" not in text
    assert "cannot connect to PostgreSQL" in text
    assert "[prenv:" not in text
