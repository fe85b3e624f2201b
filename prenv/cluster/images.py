"""Container images without a registry: a static binary (and a few files) in, an OCI image archive out.

Nothing can be pulled on the machines prenv's embedded cluster runs on, so the node's sandbox ("pause") image and
the example app's image are built here and imported into containerd (``ctr -n k8s.io images import <archive>``).
The image is made by Debian's ``umoci`` (no daemon, no registry): ``init`` an OCI layout, ``new`` an empty image,
``insert`` one layer staged in a temporary root, ``config`` the entrypoint, env, ports and user. This module only
stages the files and packs the layout into one tar, so the OCI details (digests, manifest, config, index) come from
the tool, not from us.

Two things umoci does not do are done here, each for a reason:

- containerd names an imported OCI image after the index's ``io.containerd.image.name`` annotation (umoci writes only
  ``org.opencontainers.image.ref.name``, the tag); without it ``ctr`` would import ``import-<date>``. The index is
  not content-addressed, so annotating it changes no digest.
- File times, owners and the archive's own entries are fixed, so the same inputs give the same image digest and an
  unchanged app is not re-imported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from prenv.errors import ClusterError, ToolError

__all__ = [
    "CTR_INSTALL",
    "PAUSE_REPOSITORY",
    "UMOCI_INSTALL",
    "BuiltImage",
    "ImageConfig",
    "ImageSpec",
    "build_image",
    "import_archive",
    "pause_image",
    "read_image",
    "split_ref",
]

UMOCI_INSTALL = "apt-get install -y umoci"
CTR_INSTALL = "apt-get install -y containerd"

# The sandbox image's repository; its tag is the pause binary's version. A registry-like host part with a dot keeps
# containerd and the CRI from prefixing docker.io.
PAUSE_REPOSITORY = "prenv.local/pause"
# Kubernetes' own pause image runs as 65535; app images default to the distroless "nonroot" user.
PAUSE_USER = "65535:65535"
DEFAULT_USER = "65532:65532"

# 2000-01-01T00:00:00Z for every file time and the config's "created": same inputs, same digests.
EPOCH = 946684800
_CREATED = "2000-01-01T00:00:00Z"
_HISTORY = ("--history.created", _CREATED, "--history.created_by", "prenv.cluster.images")
_NAME_ANNOTATION = "io.containerd.image.name"
_REF_ANNOTATION = "org.opencontainers.image.ref.name"

# repository[:tag]: lower-case path components with an optional host[:port] first; tags as Docker defines them.
_REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ImageSpec:
    """What goes into an image.

    Args:
        ref: ``repository:tag``, e.g. ``prenv.local/example-app:pr-101``; what ``ctr images ls`` and pods name.
        entrypoint: the command, absolute path first (there is no shell in the image).
        files: in-image absolute path -> host file. Executables get mode 0755, other files 0644, owner root.
        env: environment baked into the image config.
        ports: exposed TCP ports (documentation for tools; Kubernetes does not need them).
        user: ``uid:gid`` the process runs as; numeric, since the image has no /etc/passwd.
        workdir: working directory.
        labels: OCI config labels.
    """

    ref: str
    entrypoint: tuple[str, ...]
    files: Mapping[str, Path]
    env: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[int, ...] = ()
    user: str = DEFAULT_USER
    workdir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        split_ref(self.ref)
        if not self.entrypoint or not self.entrypoint[0].startswith("/"):
            raise ValueError(f"entrypoint must start with an absolute path, got {self.entrypoint!r}")
        for target in self.files:
            if not target.startswith("/") or ".." in Path(target).parts or target == "/":
                raise ValueError(f"image path {target!r} must be absolute, below / and without '..'")
        if not re.fullmatch(r"\d+(:\d+)?", self.user):
            raise ValueError(f"user must be numeric uid[:gid], got {self.user!r}")
        for port in self.ports:
            if not 0 < port < 65536:
                raise ValueError(f"port {port} out of range")
        for key in self.env:
            if not key or "=" in key:
                raise ValueError(f"bad environment variable name {key!r}")

    @property
    def repository(self) -> str:
        return split_ref(self.ref)[0]

    @property
    def tag(self) -> str:
        return split_ref(self.ref)[1]


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image's OCI config that the node relies on."""

    entrypoint: tuple[str, ...]
    env: tuple[str, ...]
    user: str
    workdir: str
    ports: tuple[str, ...]
    labels: Mapping[str, str]


@dataclass(frozen=True)
class BuiltImage:
    """An image archive on disk: ``ctr -n k8s.io images import <archive>`` makes ``ref`` available to pods."""

    ref: str
    archive: Path
    manifest_digest: str  # sha256:…, what containerd lists as the image's digest
    config_digest: str  # sha256:…, the image ID the CRI reports
    config: ImageConfig


def split_ref(ref: str) -> tuple[str, str]:
    """``repository:tag`` -> (repository, tag); raises ValueError for anything else (digests included)."""
    repository, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag or not _TAG.match(tag) or not _REPOSITORY.match(repository):
        raise ValueError(f"{ref!r} is not an image reference of the form repository:tag")
    return repository, tag


def build_image(spec: ImageSpec, archive: Path, *, umoci: str | None = None, rootfs: Path | None = None) -> BuiltImage:
    """Build ``spec`` into an OCI image layout packed as one tar at ``archive`` (replaced if present).

    With ``rootfs`` (a prepared root filesystem, e.g. Debian's from mmdebstrap) its tree is the image's one layer,
    owners and modes as they are, and ``spec.files`` must be empty.

    Raises:
        ToolError: umoci is not installed (the message has the install line).
        ClusterError: umoci failed, or a source file is missing.
    """
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prenv-image-", dir=archive.parent) as tmp:
        layout = Path(tmp) / "layout"
        build_layout(spec, layout, umoci=umoci, rootfs=rootfs)
        return _finish(_umoci_tool(umoci), spec, layout, archive)


def build_layout(spec: ImageSpec, layout: Path, *, umoci: str | None = None, rootfs: Path | None = None) -> None:
    """``spec`` as an unpacked OCI image layout at ``layout`` (tag ``spec.tag``): the base a later
    :func:`extend_image` adds a layer to (e.g. a cached runtime under an image's changing code)."""
    tool = _umoci_tool(umoci)
    for target, source in spec.files.items():
        if not Path(source).is_file():
            raise ClusterError(f"image {spec.ref}: {source} (for {target}) is not a file")
    if rootfs is not None and spec.files:
        raise ValueError("an image from a prepared root filesystem takes no extra files")
    with tempfile.TemporaryDirectory(prefix="prenv-stage-", dir=layout.parent) as tmp:
        if rootfs is None:
            rootfs = Path(tmp) / "rootfs"
            _stage(spec, rootfs)
        image = f"{layout}:{spec.tag}"
        _umoci(tool, spec, "init", "--layout", str(layout))
        _umoci(tool, spec, "new", "--image", image)
        _umoci(tool, spec, "insert", *_rootless(), *_HISTORY, "--image", image, str(rootfs), "/")
    _configure(tool, spec, image)


def extend_image(
    base: Path, base_tag: str, spec: ImageSpec, layer: Path, archive: Path, *, umoci: str | None = None
) -> BuiltImage:
    """A copy of the layout ``base`` (image ``base_tag``, left as it is) with the tree ``layer`` as one more layer
    and ``spec``'s name and config, packed at ``archive``. Only the new layer is compressed: fast when the base is
    big and the layer small."""
    tool = _umoci_tool(umoci)
    if spec.files:
        raise ValueError("an extended image takes its files from the layer tree")
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="prenv-image-", dir=archive.parent) as tmp:
        layout = Path(tmp) / "layout"
        shutil.copytree(base, layout, symlinks=True)
        image = f"{layout}:{spec.tag}"
        _umoci(
            tool,
            spec,
            "insert",
            *_rootless(),
            *_HISTORY,
            "--image",
            f"{layout}:{base_tag}",
            "--tag",
            spec.tag,
            str(layer),
            "/",
        )
        _configure(tool, spec, image)
        return _finish(tool, spec, layout, archive)


def _umoci_tool(umoci: str | None) -> str:
    tool = umoci or shutil.which("umoci")
    if tool is None:
        raise ToolError(f"umoci builds the images of the embedded cluster's node; install it: {UMOCI_INSTALL}")
    return tool


def _rootless() -> list[str]:
    return ["--rootless"] if os.geteuid() != 0 else []


def _configure(tool: str, spec: ImageSpec, image: str) -> None:
    config = ["--image", image, "--created", _CREATED, *_HISTORY]
    config += ["--config.user", spec.user, "--config.workingdir", spec.workdir]
    config += [f"--config.entrypoint={arg}" for arg in spec.entrypoint]
    config += [f"--config.env={k}={v}" for k, v in sorted(spec.env.items())]
    config += [f"--config.exposedports={p}/tcp" for p in sorted(spec.ports)]
    config += [f"--config.label={k}={v}" for k, v in sorted(spec.labels.items())]
    _umoci(tool, spec, "config", *config)


def _finish(tool: str, spec: ImageSpec, layout: Path, archive: Path) -> BuiltImage:
    _umoci(tool, spec, "gc", "--layout", str(layout))
    _name_for_containerd(layout, spec)
    partial = layout.parent / "image.tar"
    _pack(layout, partial)
    os.replace(partial, archive)
    return read_image(archive)


def pause_image(binary: Path, archive: Path, version: str) -> BuiltImage:
    """The pod sandbox image ``prenv.local/pause:<version>`` around the static pause binary (``make tools`` builds
    it). Its entrypoint must keep running for the pod's life; containerd's CRI config names this ref as
    ``sandbox_image``."""
    spec = ImageSpec(
        ref=f"{PAUSE_REPOSITORY}:{version}",
        entrypoint=("/pause",),
        files={"/pause": binary},
        user=PAUSE_USER,
        labels={"org.opencontainers.image.title": "prenv pause", "org.opencontainers.image.version": version},
    )
    return build_image(spec, archive)


def read_image(archive: Path) -> BuiltImage:
    """Read back the name, digests and config of an archive written by ``build_image``."""
    with tarfile.open(archive) as tar:
        index = _json_member(tar, "index.json")
        (manifest_desc,) = index["manifests"]
        manifest = _json_member(tar, _blob_path(manifest_desc["digest"]))
        config_digest = manifest["config"]["digest"]
        config = _json_member(tar, _blob_path(config_digest)).get("config", {})
    return BuiltImage(
        ref=manifest_desc["annotations"][_NAME_ANNOTATION],
        archive=archive,
        manifest_digest=manifest_desc["digest"],
        config_digest=config_digest,
        config=ImageConfig(
            entrypoint=tuple(config.get("Entrypoint") or ()),
            env=tuple(config.get("Env") or ()),
            user=config.get("User", ""),
            workdir=config.get("WorkingDir", ""),
            ports=tuple(sorted(config.get("ExposedPorts") or {})),
            labels=dict(config.get("Labels") or {}),
        ),
    )


def import_archive(
    image: BuiltImage,
    address: Path,
    *,
    namespace: str = "k8s.io",
    also_as: tuple[str, ...] = (),
    ctr: str | None = None,
) -> None:
    """Import ``image`` into the containerd listening on ``address`` (namespace ``k8s.io`` is the CRI's, i.e. what
    pods see), then tag it under the extra references ``also_as`` (e.g. ``prenv.local/example-app:pr-101``, the tag
    the preview template asks for). Importing the same archive again is a no-op for containerd.

    Raises:
        ToolError: ``ctr`` is not installed.
        ClusterError: containerd refused the archive or a tag.
    """
    tool = ctr or shutil.which("ctr")
    if tool is None:
        raise ToolError(f"ctr (containerd's client) imports images into the node; install it: {CTR_INSTALL}")
    for ref in also_as:
        split_ref(ref)
    base = [tool, "--address", str(address), "--namespace", namespace]
    steps = [("import", [*base, "images", "import", str(image.archive)])]
    steps += [("tag", [*base, "images", "tag", "--force", image.ref, ref]) for ref in also_as]
    for what, argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ClusterError(f"image {image.ref}: ctr images {what} failed: {' / '.join(detail)}")


def _stage(spec: ImageSpec, rootfs: Path) -> None:
    """The layer's tree: the files with fixed modes and times, parents 0755, and a world-writable /tmp."""
    rootfs.mkdir(mode=0o755)
    (rootfs / "tmp").mkdir()
    for target, source in spec.files.items():
        dest = rootfs / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        dest.chmod(0o755 if os.access(source, os.X_OK) else 0o644)
    for path in sorted(rootfs.rglob("*"), reverse=True):
        if path.is_dir():
            path.chmod(0o755)
    (rootfs / "tmp").chmod(0o1777)
    rootfs.chmod(0o755)
    for path in [*rootfs.rglob("*"), rootfs]:
        os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)


def _umoci(tool: str, spec: ImageSpec, *args: str) -> None:
    proc = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise ClusterError(f"image {spec.ref}: umoci {args[0]} failed: {' / '.join(detail)}")


def _name_for_containerd(layout: Path, spec: ImageSpec) -> None:
    path = layout / "index.json"
    index = json.loads(path.read_text(encoding="utf-8"))
    manifests = [m for m in index["manifests"] if m.get("annotations", {}).get(_REF_ANNOTATION) == spec.tag]
    if len(manifests) != 1:
        raise ClusterError(f"image {spec.ref}: umoci's index has {len(manifests)} manifests tagged {spec.tag}")
    manifests[0]["annotations"][_NAME_ANNOTATION] = spec.ref
    index["manifests"] = manifests
    path.write_text(json.dumps(index, separators=(",", ":"), sort_keys=True), encoding="utf-8")


def _pack(layout: Path, archive: Path) -> None:
    """The layout as a tar with sorted, root-owned, time-fixed entries (``ctr images import`` reads it as oci.v1)."""

    def normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = EPOCH
        info.mode = 0o755 if info.isdir() else 0o644
        return info

    paths = sorted(p for p in layout.rglob("*"))
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in paths:
            tar.add(path, arcname=path.relative_to(layout).as_posix(), recursive=False, filter=normalise)


def _blob_path(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    return f"blobs/{algorithm}/{hexdigest}"


def _json_member(tar: tarfile.TarFile, name: str) -> dict:  # type: ignore[type-arg]
    member = tar.extractfile(name)
    if member is None:
        raise ClusterError(f"{name} missing from image archive {tar.name!r}")
    data: dict = json.loads(member.read())  # type: ignore[type-arg]
    return data
