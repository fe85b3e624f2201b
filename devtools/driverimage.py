"""The prenv driver image: one recipe, two builds.

The recipe (:data:`RECIPE`) says what the image holds: Debian bookworm with Debian's Python, a virtualenv with the
runtime requirements only (requirements.txt; tests and lint are in requirements-dev.txt) and prenv installed into
it, the pinned pulumi toolchain (engine, language host, the kubernetes and random providers) that ``make tools``
builds from Go source, the project files the driver deploys, and a non-root user (uid 10001) that owns the two
places pulumi writes to: the project directory (``Pulumi.pr-<n>.yaml``) and ``PULUMI_HOME``.

- :func:`containerfile` renders it as the Containerfile at the top of the checkout, for users with a registry
  (``podman build -f Containerfile .``); a unit test keeps that file equal to the rendering.
- :func:`build` makes it here, without a registry or a container runtime: ``mmdebstrap`` builds the Debian root
  filesystem from Debian's packages, pip installs wheels made on this machine into it (offline, in a chroot), the
  toolchain is copied from the tool cache, and umoci packs it as an OCI archive that ``prenv cluster load-image``
  imports into the embedded cluster's real node.

    python -m devtools.driverimage build         # .state/images/prenv-driver.tar, ref prenv.local/prenv:dev
    python -m devtools.driverimage containerfile # print the Containerfile
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from prenv.cluster.images import BuiltImage, ImageSpec, build_image
from prenv.errors import ToolError

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
REF = "prenv.local/prenv:dev"
ARCHIVE = "prenv-driver.tar"
MMDEBSTRAP_INSTALL = "apt-get install -y mmdebstrap"


@dataclass(frozen=True)
class Recipe:
    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    packages: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates")
    uid: int = 10001
    user: str = "prenv"
    venv: str = "/opt/prenv/venv"
    src: str = "/opt/prenv/src"  # the checkout's product code, installed into the venv (no deps) from here
    project: str = "/opt/prenv/project"  # the project the driver deploys: writable by the user
    tools: str = "/opt/prenv/tools"  # PRENV_TOOLS_CACHE: bin/, the engine, pulumi-home/plugins
    home: str = "/var/lib/prenv"  # HOME and PRENV_STATE_DIR; the driver stack mounts an emptyDir here
    # What pip installs from: the product's packages and its build description.
    src_files: tuple[str, ...] = ("pyproject.toml", "requirements.txt", "prenv", "components", "stacks")
    project_files: tuple[str, ...] = ("Pulumi.yaml", "Pulumi.preview.yaml", "__main__.py")
    # The toolchain pieces a driver runs: `make tools` names (python -m prenv.toolchain build <names>).
    tool_names: tuple[str, ...] = (
        "pulumi",
        "pulumi-language-python",
        "pulumi-resource-kubernetes",
        "pulumi-resource-random",
    )

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PRENV_TOOLS_CACHE": self.tools,
            "PRENV_STATE_DIR": self.home,
            "HOME": self.home,
            "PYTHONUNBUFFERED": "1",
        }

    @property
    def entrypoint(self) -> tuple[str, ...]:
        return (f"{self.venv}/bin/prenv",)

    @property
    def cmd(self) -> tuple[str, ...]:
        return ("serve", "--config", "/etc/prenv/prenv.yaml")


RECIPE = Recipe()


def containerfile(recipe: Recipe = RECIPE) -> str:
    """The Containerfile for ``recipe``: the same image, built by podman/docker with network access."""
    r = recipe
    env = " \\\n    ".join(f"{k}={v}" for k, v in r.env.items())
    tools = " ".join(r.tool_names)
    src = "\n".join(f"COPY {name} {r.src}/{name}" for name in r.src_files)
    project = "\n".join(f"COPY {name} {r.project}/{name}" for name in r.project_files)
    return f"""\
# The prenv driver image (`prenv serve`), for users with a registry:
#   podman build -t registry.example.com/prenv:0.1.0 -f Containerfile .
# Generated from devtools/driverimage.py (`python -m devtools.driverimage containerfile`), which also builds the
# same image here without a registry for the embedded cluster; a unit test keeps this file equal to it.

# The pinned pulumi toolchain, built from Go source by prenv's own recipes (nothing is downloaded at runtime).
FROM golang:1.26-bookworm AS tools
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.txt pyproject.toml ./
COPY prenv ./prenv
COPY tools ./tools
RUN python3 -m venv /venv && /venv/bin/pip install -q -r requirements.txt && /venv/bin/pip install -q --no-deps . && \\
    PRENV_TOOLS_CACHE={r.tools} /venv/bin/python -m prenv.toolchain build {tools}

FROM debian:{r.suite}-slim
RUN apt-get update && apt-get install -y --no-install-recommends {" ".join(r.packages)} && \\
    rm -rf /var/lib/apt/lists/* && \\
    useradd --uid {r.uid} --user-group --home-dir {r.home} --create-home --shell /usr/sbin/nologin {r.user}
{src}
RUN python3 -m venv {r.venv} && {r.venv}/bin/pip install --no-cache-dir -r {r.src}/requirements.txt && \\
    {r.venv}/bin/pip install --no-cache-dir --no-deps {r.src}
{project}
COPY --from=tools {r.tools} {r.tools}
RUN chown -R {r.uid}:{r.uid} {r.project} {r.tools}/pulumi-home
ENV {env}
USER {r.uid}:{r.uid}
WORKDIR {r.home}
ENTRYPOINT {_json(r.entrypoint)}
CMD {_json(r.cmd)}
"""


def _json(argv: tuple[str, ...]) -> str:
    import json

    return json.dumps(list(argv))


# ----------------------------------------------------------------------------------------------- local build


def build(state_dir: Path, recipe: Recipe = RECIPE, ref: str = REF) -> BuiltImage:
    """Build the image here (root only: mmdebstrap and chroot) into ``<state_dir>/images/prenv-driver.tar``.

    Raises:
        ToolError: not root, or mmdebstrap / umoci / the toolchain is missing (with what to run).
    """
    if os.geteuid() != 0:
        raise ToolError("building the driver image needs root (mmdebstrap, chroot); run as root")
    if shutil.which("mmdebstrap") is None:
        raise ToolError(f"mmdebstrap builds the driver image's Debian root; install it: {MMDEBSTRAP_INSTALL}")
    images = state_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    from prenv.toolchain import cache_dir

    bases = cache_dir() / "driver-image"  # outside the checkout: a clean clone reuses it
    bases.mkdir(parents=True, exist_ok=True)
    base = _base_rootfs(bases, recipe)
    with tempfile.TemporaryDirectory(prefix="prenv-driver-", dir=images) as tmp:
        work = Path(tmp)
        rootfs = work / "rootfs"
        rootfs.mkdir()
        _run(["tar", "-xf", str(base), "-C", str(rootfs)], "unpack the base root")
        wheels = _wheels(work / "wheels", recipe)
        _install(rootfs, wheels, recipe)
        _copy_tools(rootfs, recipe)
        spec = ImageSpec(
            ref=ref,
            entrypoint=recipe.entrypoint,
            files={},
            env=recipe.env,
            user=f"{recipe.uid}:{recipe.uid}",
            workdir=recipe.home,
            labels={"org.opencontainers.image.title": "prenv driver"},
        )
        return build_image(spec, images / ARCHIVE, rootfs=rootfs)


def _base_rootfs(cache: Path, recipe: Recipe) -> Path:
    """Debian's minimal root with the recipe's packages and the user, as a tarball cached by its description."""
    key = hashlib.sha256(repr((recipe.suite, recipe.mirror, recipe.packages, recipe.uid, recipe.user)).encode())
    tarball = cache / f"driver-base-{key.hexdigest()[:12]}.tar"
    if tarball.exists():
        return tarball
    for stale in cache.glob("driver-base-*.tar"):
        stale.unlink()
    partial = tarball.with_suffix(".partial")
    hook = (
        f'chroot "$1" useradd --uid {recipe.uid} --user-group --home-dir {recipe.home} --create-home '
        f"--shell /usr/sbin/nologin {recipe.user}"
    )
    _run(
        [
            "mmdebstrap",
            "--variant=minbase",
            "--mode=root",
            f"--include={','.join(recipe.packages)}",
            f"--customize-hook={hook}",
            "--format=tar",
            recipe.suite,
            str(partial),
            recipe.mirror,
        ],
        "mmdebstrap the base root",
        timeout=900,
    )
    partial.replace(tarball)
    return tarball


def _wheels(dest: Path, recipe: Recipe) -> Path:
    """Wheels of the runtime requirements, made on this machine (Debian's Python 3.11 in the image matches the
    tool's own; the image never reaches an index)."""
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "-r", str(ROOT / "requirements.txt"), "-w", str(dest)],
        "pip wheel the runtime requirements",
        timeout=900,
    )
    return dest


def _install(rootfs: Path, wheels: Path, recipe: Recipe) -> None:
    src = rootfs / recipe.src.lstrip("/")
    for name in recipe.src_files:
        _copy(ROOT / name, src / name)
    project = rootfs / recipe.project.lstrip("/")
    for name in recipe.project_files:
        _copy(ROOT / name, project / name)
    staged = rootfs / "opt" / "prenv" / "wheels"  # removed again below
    shutil.copytree(wheels, staged)
    pip = f"{recipe.venv}/bin/pip"
    try:
        _chroot(rootfs, ["python3", "-m", "venv", recipe.venv], "create the virtualenv")
        _chroot(
            rootfs,
            [
                pip,
                "install",
                "-q",
                "--no-index",
                "--find-links",
                "/opt/prenv/wheels",
                "-r",
                f"{recipe.src}/requirements.txt",
            ],
            "install the runtime requirements",
        )
        # prenv's own wheel is built here from the staged sources (Debian's setuptools in the venv is too old for
        # the build-system pin), then installed like the others.
        _run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(staged)],
            "build prenv's wheel",
            timeout=600,
        )
        (wheel,) = staged.glob("prenv-*.whl")
        _chroot(
            rootfs,
            [pip, "install", "-q", "--no-deps", "--no-index", f"/opt/prenv/wheels/{wheel.name}"],
            "install prenv",
        )
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    for cache in rootfs.glob("root/.cache/pip"):
        shutil.rmtree(cache, ignore_errors=True)
    _chown(project, recipe.uid)


def _copy_tools(rootfs: Path, recipe: Recipe) -> None:
    """The toolchain pieces a driver runs, from the tool cache, at ``recipe.tools`` (symlinks made real files)."""
    from prenv.toolchain import cache_dir

    cache = cache_dir()
    dest = rootfs / recipe.tools.lstrip("/")
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    for name in ("pulumi", "pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python"):
        source = cache / "bin" / name
        if not source.exists():
            raise ToolError(f"{source} is missing; run `make tools`")
        shutil.copy2(source.resolve(), dest / "bin" / name)
    plugins = cache / "pulumi-home" / "plugins"
    if not plugins.is_dir():
        raise ToolError(f"no pulumi plugins in {plugins}; run `make tools`")
    for plugin in sorted(plugins.iterdir()):
        if plugin.is_dir() and plugin.name.startswith(("resource-kubernetes-", "resource-random-")):
            shutil.copytree(plugin, dest / "pulumi-home" / "plugins" / plugin.name, symlinks=False)
    _chown(dest / "pulumi-home", recipe.uid)


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copy2(source, dest)


def _chown(path: Path, uid: int) -> None:
    for root, dirs, files in os.walk(path):
        for name in [root, *(os.path.join(root, d) for d in dirs), *(os.path.join(root, f) for f in files)]:
            os.chown(name, uid, uid, follow_symlinks=False)


def _chroot(rootfs: Path, argv: list[str], what: str) -> None:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root", "PIP_NO_CACHE_DIR": "1"}
    _run([shutil.which("chroot") or "/usr/sbin/chroot", str(rootfs), *argv], what, env=env)


def _run(argv: list[str], what: str, *, env: dict[str, str] | None = None, timeout: float = 600) -> None:
    logger.info("driver image: %s", what)
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ToolError(f"driver image: could not {what}: {' / '.join(tail)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.driverimage", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "containerfile"])
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".state")
    args = parser.parse_args(argv)
    if args.command == "containerfile":
        sys.stdout.write(containerfile())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        image = build(args.state_dir)
        print(f"{image.ref} {image.archive} ({image.archive.stat().st_size // 2**20} MiB)")
        return 0
    return 130


if __name__ == "__main__":
    sys.exit(main())
