"""``gateway_for`` picks the stack gateway by backend: DIY backends are read directly, services through pulumi."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from prenv.errors import ConfigError
from prenv.gateway import StackGateway, gateway_for
from prenv.gateway.backend import S3Store
from prenv.gateway.cloud import CloudGateway
from prenv.gateway.diy import DiyGateway


@pytest.fixture
def pulumi_root(tmp_path: Path) -> Path:
    """A stand-in pulumi CLI that answers ``pulumi version`` and logs every call."""
    root = tmp_path / "pulumi"
    (root / "bin").mkdir(parents=True)
    exe = root / "bin" / "pulumi"
    exe.write_text(f'#!/bin/sh\necho "$@" >> {root}/calls\necho v{version("pulumi")}\n')
    exe.chmod(0o755)
    return root


def calls(pulumi_root: Path) -> list[str]:
    return (pulumi_root / "calls").read_text().splitlines()


def test_a_file_backend_gets_the_diy_gateway_and_its_directory(tmp_path: Path, pulumi_root: Path) -> None:
    state = tmp_path / "state"
    gw = gateway_for(tmp_path, f"file://{state}", {}, pulumi_root=pulumi_root, stale_lock_seconds=60)
    assert isinstance(gw, DiyGateway)
    assert gw.stale_lock_seconds == 60
    assert state.is_dir(), "pulumi refuses a file:// backend that does not exist"
    assert gw.env["PULUMI_BACKEND_URL"] == f"file://{state}"


def test_an_s3_backend_gets_the_diy_gateway_over_the_bucket(tmp_path: Path, pulumi_root: Path) -> None:
    gw = gateway_for(tmp_path, "s3://bucket/prenv", {}, pulumi_root=pulumi_root, s3_client=object())
    assert isinstance(gw, DiyGateway)
    assert isinstance(gw.backend.store, S3Store)


def test_a_pulumi_cloud_backend_gets_the_automation_api_gateway(tmp_path: Path, pulumi_root: Path) -> None:
    gw: StackGateway = gateway_for(tmp_path, "https://api.pulumi.com", {}, pulumi_root=pulumi_root)
    assert isinstance(gw, CloudGateway)


def test_an_unknown_backend_scheme_is_a_config_error(tmp_path: Path, pulumi_root: Path) -> None:
    with pytest.raises(ConfigError, match="backend"):
        gateway_for(tmp_path, "ftp://somewhere", {}, pulumi_root=pulumi_root)


def test_the_diy_gateway_lists_stacks_from_their_checkpoints_without_a_pulumi_process(
    tmp_path: Path, pulumi_root: Path
) -> None:
    state = tmp_path / "state"
    checkpoint = state / ".pulumi" / "stacks" / "prenv" / "pr-3.json"
    checkpoint.parent.mkdir(parents=True)
    outputs = {"sha": "a" * 40, "configHash": "h", "url": "http://web-3.preview.test", "secret": {"ciphertext": "x"}}
    resources = [{"type": "pulumi:pulumi:Stack", "outputs": outputs}]
    checkpoint.write_text(json.dumps({"checkpoint": {"latest": {"resources": resources}}}))
    (state / ".pulumi" / "stacks" / "prenv" / "shared.json").write_text("{}")
    gw = gateway_for(tmp_path, f"file://{state}", {}, pulumi_root=pulumi_root)

    [only] = gw.list_stacks()
    assert (only.pr, only.sha, only.config_hash, only.url) == (3, "a" * 40, "h", "http://web-3.preview.test")
    assert calls(pulumi_root) == ["version"], "constructing checks the CLI once; listing starts nothing"
