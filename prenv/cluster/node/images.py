"""Images for the real node without a registry: archives built by prenv.cluster.images, imported into the node's
containerd with ``ctr``.

Nothing can be pulled on these machines, so every image a pod runs, starting with the sandbox ("pause") image, is
an OCI archive made locally (prenv.cluster.images, over Debian's umoci) and imported with ``ctr images import``. A
single static binary is all our images hold: the sandbox process and the probe (built by ``make tools``), the
example app (``make images``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prenv.cluster.images import PAUSE_REPOSITORY, ImageSpec, build_image, pause_image, split_ref
from prenv.cluster.node.containerd import K8S_NAMESPACE, Containerd
from prenv.errors import ClusterError, ToolError
from prenv.toolchain.recipes import pause

logger = logging.getLogger(__name__)

# The sandbox image containerd's CRI plugin uses for every pod. "prenv.local" is not a registry anyone could
# pull from, which is the point: it can only be there because we imported it.
SANDBOX_IMAGE = f"{PAUSE_REPOSITORY}:{pause.VERSION}"

# The official pause image runs as nobody too; the sandbox needs no privilege beyond holding namespaces.
NOBODY = "65535:65535"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """``repository:tag``, split where containerd's ``--base-name`` needs it."""

    repository: str
    tag: str

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        try:
            repository, tag = split_ref(ref)
        except ValueError:
            raise ClusterError(f"image reference {ref!r} must be <repository>:<tag>") from None
        return cls(repository, tag)

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"


def build_binary_image(
    binary: Path,
    ref: str,
    dest: Path,
    *,
    path_in_image: str = "/app",
    args: Sequence[str] = (),
    user: str = NOBODY,
    env: Sequence[str] = (),
) -> Path:
    """Write an OCI image archive at ``dest`` whose only file is ``binary`` (at ``path_in_image``), run as
    ``user`` with ``args``; return ``dest``. The build is prenv.cluster.images' (umoci, reproducible digests)."""
    ImageRef.parse(ref)
    spec = ImageSpec(
        ref=ref,
        entrypoint=(path_in_image, *args),
        files={path_in_image: binary},
        env=dict(pair.split("=", 1) for pair in env),
        user=user,
    )
    try:
        build_image(spec, dest)
    except ToolError as e:
        raise ClusterError(str(e)) from e
    logger.info("built image %s at %s", ref, dest)
    return dest


def build_sandbox_image(pause_binary: Path, dest: Path) -> Path:
    """The sandbox image archive around the pause process ``make tools`` built (``tool_path("pause")``)."""
    try:
        pause_image(pause_binary, dest, pause.VERSION)
    except ToolError as e:
        raise ClusterError(str(e)) from e
    return dest


def import_image(containerd: Containerd, archive: Path, ref: str, *, namespace: str = K8S_NAMESPACE) -> None:
    """Import the archive into ``namespace`` (the CRI plugin's by default) and check ``ref`` is now there."""
    image = ImageRef.parse(ref)
    containerd.ctr("images", "import", "--base-name", image.repository, str(archive), namespace=namespace)
    if ref not in images(containerd, namespace=namespace):
        raise ClusterError(f"importing {archive} did not produce {ref}; containerd has {images(containerd)}")


def images(containerd: Containerd, *, namespace: str = K8S_NAMESPACE) -> list[str]:
    """The image references containerd has in ``namespace``."""
    return [line for line in containerd.ctr("images", "ls", "-q", namespace=namespace).splitlines() if line]
