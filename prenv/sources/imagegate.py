"""The image gate: deploy a PR only once CI has pushed its image, instead of crash-looping on a missing tag.

Optional. ``NoImageGate`` says every image is ready (the label gate ``!build/image-ready`` in the filters is the
alternative that needs no registry access). ``EcrImageGate`` asks Amazon ECR whether a tag exists.

A missing tag means "not yet" (the PR waits); any other failure is the registry's, and says so with our source
errors: throttling, 5xx and network trouble are temporary (``SourceUnavailable``), a missing repository or
denied access is permanent (``SourceError``). boto3's retries and timeouts are bounded so one slow call cannot
stall a cycle.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError

from prenv.errors import SourceError, SourceUnavailable
from prenv.sources.base import ImageGate

logger = logging.getLogger(__name__)

# ECR's own tag syntax; anything else cannot exist there.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_TEMPORARY_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class NoImageGate:
    """No gate: every image is ready."""

    def is_ready(self, tag: str) -> bool:
        return True


class EcrImageGate:
    """Checks tags in one ECR repository with ``describe_images``.

    Args:
        repository: ECR repository name (``team/app``).
        region: AWS region.
        endpoint_url: alternative endpoint (LocalStack, moto server, VPC endpoint).
        client: a ready boto3 ECR client (tests); the other connection arguments are then ignored.
        registry_id: the AWS account of the registry when it is not the caller's.
    """

    def __init__(
        self,
        repository: str,
        region: str,
        endpoint_url: str | None = None,
        client: Any | None = None,
        *,
        registry_id: str | None = None,
    ) -> None:
        self.repository = repository
        self.region = region
        self._registry_id = registry_id
        if client is None:
            config = Config(
                connect_timeout=5,
                read_timeout=10,
                retries={"max_attempts": 3, "mode": "standard"},
            )
            client = boto3.client("ecr", region_name=region, endpoint_url=endpoint_url, config=config)
        self._client = client

    def __repr__(self) -> str:
        return f"EcrImageGate({self.repository!r}, region={self.region!r})"

    def is_ready(self, tag: str) -> bool:
        if not _TAG.fullmatch(tag):
            logger.warning("ecr %s: not a valid image tag; treating the image as not ready", self.repository)
            return False
        kwargs: dict[str, Any] = {"repositoryName": self.repository, "imageIds": [{"imageTag": tag}]}
        if self._registry_id is not None:
            kwargs["registryId"] = self._registry_id
        where = f"ecr {self.repository}"
        try:
            response = self._client.describe_images(**kwargs)
        except ClientError as e:
            error = e.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code == "ImageNotFoundException":
                logger.debug("%s: image %s not pushed yet", where, tag)
                return False
            if code in _TEMPORARY_CODES or status >= 500 or status == 429:
                raise SourceUnavailable(f"{where}: registry unavailable ({code or status})") from e
            if code == "RepositoryNotFoundException":
                raise SourceError(f"{where}: repository not found") from e
            raise SourceError(f"{where}: describe_images refused ({code or status})") from e
        except (ConnectionError, ReadTimeoutError) as e:
            raise SourceUnavailable(f"{where}: cannot reach the registry ({type(e).__name__})") from e
        except BotoCoreError as e:
            # Missing credentials or region, bad endpoint: configuration, not weather.
            raise SourceError(f"{where}: cannot call the registry ({type(e).__name__})") from e
        images = response.get("imageDetails", [])
        return any(tag in image.get("imageTags", []) for image in images)


# Both implement the protocol the reconciler reads (a compile-time check, as Argo CD does for its providers).
_IMPLEMENTS: tuple[type[ImageGate], ...] = (NoImageGate, EcrImageGate)
