"""Images for the real node without a registry: built locally with umoci, imported into containerd with ``ctr``.

Nothing can be pulled on these machines, so every image a pod runs, starting with the sandbox ("pause")
image, is an OCI layout made by Debian's umoci (``init``, ``new``, ``insert``, ``config``), packed into a tar
and imported with ``ctr images import``. A single static binary is all our images hold: the sandbox process
(built by ``make tools``) and, later, the example app.

The OCI layout tags the image with its tag only (umoci takes no repository name); ``--base-name`` at import
turns that tag into the full reference, e.g. ``prenv.local/pause:1.0``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prenv.cluster.node.containerd import K8S_NAMESPACE, Containerd
from prenv.errors import ClusterError
from prenv.toolchain.recipes import pause

logger = logging.getLogger(__name__)

# The sandbox image containerd's CRI plugin uses for every pod. "prenv.local" is not a registry anyone could
# pull from, which is the point: it can only be there because we imported it.
SANDBOX_IMAGE = f"prenv.local/pause:{pause.VERSION}"

# The official pause image runs as nobody too; the sandbox needs no privilege beyond holding namespaces.
NOBODY = "65535:65535"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """``repository:tag``, split where containerd's ``--base-name`` needs it."""

    repository: str
    tag: str

    @classmethod
    def parse(cls, ref: str) -> ImageRef:
        repository, sep, tag = ref.rpartition(":")
        if not sep or not repository or not tag or "/" in tag or "@" in ref:
            raise ClusterError(f"image reference {ref!r} must be <repository>:<tag>")
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
    ``user`` with ``args``; return ``dest``. Needs umoci on PATH (a Debian package ``make tools`` installs)."""
    image = ImageRef.parse(ref)
    if shutil.which("umoci") is None:
        raise ClusterError("umoci is not installed; run `make tools` (it installs the node's Debian packages)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prenv-image-", dir=dest.parent) as tmp:
        layout = Path(tmp) / "oci"
        target = f"{layout}:{image.tag}"
        _umoci("init", "--layout", str(layout))
        _umoci("new", "--image", target)
        _umoci("insert", "--image", target, "--history.created_by", f"prenv: {binary.name}", str(binary), path_in_image)
        config = ["config", "--image", target, "--config.user", user, "--config.entrypoint", path_in_image]
        for arg in args:
            config += ["--config.cmd", arg]
        for pair in env:
            config += ["--config.env", pair]
        _umoci(*config)
        partial = dest.with_name(f".{dest.name}.tmp")
        with tarfile.open(partial, "w") as archive:
            for entry in sorted(layout.iterdir()):
                archive.add(entry, arcname=entry.name)
        partial.replace(dest)
    logger.info("built image %s at %s", image, dest)
    return dest


def build_sandbox_image(pause_binary: Path, dest: Path) -> Path:
    """The sandbox image archive around the pause process ``make tools`` built (``tool_path("pause")``)."""
    return build_binary_image(pause_binary, SANDBOX_IMAGE, dest, path_in_image="/pause")


def import_image(containerd: Containerd, archive: Path, ref: str, *, namespace: str = K8S_NAMESPACE) -> None:
    """Import the archive into ``namespace`` (the CRI plugin's by default) and check ``ref`` is now there."""
    image = ImageRef.parse(ref)
    containerd.ctr("images", "import", "--base-name", image.repository, str(archive), namespace=namespace)
    if ref not in images(containerd, namespace=namespace):
        raise ClusterError(f"importing {archive} did not produce {ref}; containerd has {images(containerd)}")


def images(containerd: Containerd, *, namespace: str = K8S_NAMESPACE) -> list[str]:
    """The image references containerd has in ``namespace``."""
    return [line for line in containerd.ctr("images", "ls", "-q", namespace=namespace).splitlines() if line]


def _umoci(*args: str) -> None:
    proc = subprocess.run(["umoci", *args], capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise ClusterError(f"`umoci {args[0]}` failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
