"""The image gate against moto's ECR: a pushed tag is ready, a missing one waits, registry trouble is an error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from prenv.errors import SourceError, SourceUnavailable
from prenv.sources.imagegate import EcrImageGate, NoImageGate

REGION = "eu-west-1"
REPOSITORY = "team/web"
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7023,
            "digest": "sha256:" + "b" * 64,
        },
        "layers": [],
    }
)


@pytest.fixture
def ecr(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        client = boto3.client("ecr", region_name=REGION)
        client.create_repository(repositoryName=REPOSITORY)
        client.put_image(repositoryName=REPOSITORY, imageManifest=MANIFEST, imageTag="abc123")
        yield client


def test_a_pushed_tag_is_ready(ecr: Any) -> None:
    assert EcrImageGate(REPOSITORY, REGION).is_ready("abc123") is True


def test_a_tag_not_pushed_yet_is_not_ready(ecr: Any) -> None:
    assert EcrImageGate(REPOSITORY, REGION).is_ready("def456") is False


def test_an_injected_client_is_used(ecr: Any) -> None:
    assert EcrImageGate(REPOSITORY, REGION, client=ecr).is_ready("abc123") is True


def test_a_missing_repository_is_a_permanent_error(ecr: Any) -> None:
    with pytest.raises(SourceError) as caught:
        EcrImageGate("team/absent", REGION).is_ready("abc123")

    assert not isinstance(caught.value, SourceUnavailable)
    assert "repository not found" in str(caught.value)


def test_an_invalid_tag_is_never_ready_and_never_sent(ecr: Any) -> None:
    client = mock.Mock()
    assert EcrImageGate(REPOSITORY, REGION, client=client).is_ready("bad tag/../x") is False
    client.describe_images.assert_not_called()


def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "nope"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "DescribeImages",
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_client_error("ThrottlingException", 400), SourceUnavailable),
        (_client_error("ServerException", 500), SourceUnavailable),
        (EndpointConnectionError(endpoint_url="https://ecr.example"), SourceUnavailable),
        (_client_error("AccessDeniedException", 403), SourceError),
    ],
    ids=["throttled is temporary", "5xx is temporary", "unreachable is temporary", "access denied is permanent"],
)
def test_registry_failures_map_onto_source_errors(error: Exception, expected: type[SourceError]) -> None:
    client = mock.Mock()
    client.describe_images.side_effect = error

    with pytest.raises(SourceError) as caught:
        EcrImageGate(REPOSITORY, REGION, client=client).is_ready("abc123")

    assert type(caught.value) is expected


def test_no_gate_says_every_image_is_ready() -> None:
    assert NoImageGate().is_ready("anything") is True
