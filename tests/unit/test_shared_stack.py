"""The shared stack under Pulumi mocks: in wildcard mode it takes the certificate as PEM values or as PEM files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pulumi.runtime
import pytest

from prenv.errors import ConfigError
from tests.fixtures.preview import write_project
from testsupport.pulumi_harness import run

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # how Pulumi marks a secret value in registered inputs
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project", tls={"mode": "wildcard"}, sharedStack="organization/prenv/shared")


@pytest.fixture
def stack_config() -> Iterator[dict[str, str]]:
    values: dict[str, str] = {}
    yield values
    pulumi.runtime.set_all_config({})


def _run_shared(project: Path, values: dict[str, str]) -> tuple[dict[str, object], dict[str, object]]:
    from stacks import shared

    pulumi.runtime.set_all_config({f"prenv:{k}": v for k, v in values.items()})
    registry, _ = run(lambda: shared.run(project))
    secret = registry.one("kubernetes:core/v1:Secret").inputs
    data = secret["stringData"]
    assert data.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270", "the key makes the Secret's data a secret"
    return secret["metadata"], data["value"]


def test_the_certificate_and_key_files_named_in_config_become_the_shared_tls_secret(
    project: Path, tmp_path: Path, stack_config: dict[str, str]
) -> None:
    (tmp_path / "wildcard.crt").write_text(CERT)
    (tmp_path / "wildcard.key").write_text(KEY)
    stack_config.update(wildcardCertFile=str(tmp_path / "wildcard.crt"), wildcardKeyFile=str(tmp_path / "wildcard.key"))
    metadata, data = _run_shared(project, stack_config)
    assert metadata["name"] == "wildcard-tls"
    assert data == {"tls.crt": CERT, "tls.key": KEY}


def test_pem_values_in_config_work_as_before(project: Path, stack_config: dict[str, str]) -> None:
    stack_config.update(wildcardCert=CERT, wildcardKey=KEY)
    _, data = _run_shared(project, stack_config)
    assert data == {"tls.crt": CERT, "tls.key": KEY}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "wildcardCertFile"),
        ({"wildcardCertFile": "/nonexistent/wildcard.crt"}, "set both"),
        ({"wildcardCertFile": "/nonexistent/a.crt", "wildcardKeyFile": "/nonexistent/a.key"}, "cannot read"),
    ],
    ids=["nothing-set", "only-the-certificate-file", "unreadable-files"],
)
def test_missing_or_unreadable_certificate_config_is_a_config_error(
    project: Path, stack_config: dict[str, str], values: dict[str, str], message: str
) -> None:
    stack_config.update(values)
    with pytest.raises(ConfigError, match=message):
        _run_shared(project, stack_config)
