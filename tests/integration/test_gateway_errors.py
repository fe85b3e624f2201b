"""The retry decision crosses the pulumi process boundary as data, with the real engine and the real provider.

A project with nothing but the database branch (no cluster needed) is deployed through the driver's gateway. The
provider runs in pulumi's dynamic-provider process, so its DatabaseError reaches the gateway only as text in pulumi's
diagnostics: ``temporary`` must survive that trip, and a permanent error must stay permanent whatever its words.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from devtools.localdb import LocalPostgres
from prenv.errors import StackOperationError
from prenv.gateway import gateway_for
from prenv.model import DesiredEnvironment, PullRequest
from prenv.procs import free_port
from tests.fixtures.preview import ROOT, unique_pr

pytestmark = pytest.mark.integration

PROGRAM = """\
import os

from components.database import PreviewDatabase, PreviewDatabaseArgs

PreviewDatabase(
    "env-database",
    PreviewDatabaseArgs(
        admin_dsn=os.environ["PRENV_DATABASE_ADMIN_DSN"],
        database=os.environ["PRENV_TEST_DATABASE"],
        template=os.environ.get("PRENV_TEST_TEMPLATE") or None,
    ),
)
"""


def up(tmp_path: Path, admin_dsn: str, template: str = "") -> StackOperationError:
    """Deploy the database-only project for a new PR; the error it fails with."""
    from prenv.toolchain import cache_dir, pulumi_env

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "__main__.py").write_text(PROGRAM)
    state = tmp_path / "state"
    n = unique_pr()
    env = {
        **os.environ,
        **pulumi_env(),
        "PRENV_DATABASE_ADMIN_DSN": admin_dsn,
        "PRENV_TEST_DATABASE": f"pr_{n}",
        "PRENV_TEST_TEMPLATE": template,
    }
    gateway = gateway_for(project, f"file://{state}", env, pulumi_root=cache_dir())
    pr = PullRequest(number=n, sha="a" * 40, branch="b", base="main", author="a", title="t")
    with pytest.raises(StackOperationError) as e:
        gateway.up(DesiredEnvironment(pr=pr, config_hash="h"))
    return e.value


def test_a_postgresql_outage_inside_the_provider_is_a_temporary_stack_error(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: the server is down
    err = up(tmp_path, f"postgresql://admin:hunter2@127.0.0.1:{port}/postgres")
    assert err.temporary is True
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{port}" in str(err)
    assert "[prenv:" not in str(err), "the marker is for the gateway, not for people"
    assert "hunter2" not in str(err)


def test_a_permanent_provider_error_stays_permanent_even_when_its_message_says_timeout(
    tmp_path: Path, postgres: LocalPostgres
) -> None:
    err = up(tmp_path, postgres.dsn, template="seed_with_a_timeout")
    assert "template database 'seed_with_a_timeout' does not exist" in str(err)
    assert err.temporary is False
    assert "[prenv:" not in str(err)
