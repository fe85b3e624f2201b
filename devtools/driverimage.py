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

from prenv.cluster.images import BuiltImage, ImageSpec, build_layout, extend_image
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


def build(state_dir: Path, recipe: Recipe = RECIPE, ref: str = REF, project: Path = ROOT) -> BuiltImage:
    """Build the image here (root only: mmdebstrap and chroot) into ``<state_dir>/images/prenv-driver.tar``.

    ``project`` is the directory whose ``recipe.project_files`` (Pulumi.yaml, the template Pulumi.preview.yaml,
    __main__.py) the driver deploys from: this checkout by default, a team's own repository in practice.

    Two layers, as a Containerfile's cache would have them: the runtime (Debian, the virtualenv with the runtime
    requirements, the toolchain), kept as an OCI layout in the tool cache under a key of what it is made of, and
    prenv's code with the project on top, made at every build (seconds).

    Raises:
        ToolError: not root, or mmdebstrap / umoci / the toolchain is missing (with what to run).
    """
    if os.geteuid() != 0:
        raise ToolError("building the driver image needs root (mmdebstrap, chroot); run as root")
    if shutil.which("mmdebstrap") is None:
        raise ToolError(f"mmdebstrap builds the driver image's Debian root; install it: {MMDEBSTRAP_INSTALL}")
    images = state_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    runtime, python = _runtime_layout(recipe)
    spec = ImageSpec(
        ref=ref,
        entrypoint=recipe.entrypoint,
        files={},
        env=recipe.env,
        user=f"{recipe.uid}:{recipe.uid}",
        workdir=recipe.home,
        labels={"org.opencontainers.image.title": "prenv driver"},
    )
    with tempfile.TemporaryDirectory(prefix="prenv-driver-", dir=images) as tmp:
        layer = _code_layer(Path(tmp), recipe, python, project)
        return extend_image(runtime, RUNTIME_TAG, spec, layer, images / ARCHIVE)


RUNTIME_TAG = "runtime"


def _runtime_layout(recipe: Recipe) -> tuple[Path, str]:
    """The runtime layer as an OCI layout in the tool cache (outside the checkout: a clean clone reuses it), and
    the virtualenv's ``lib/pythonX.Y`` directory name; built when what it is made of changed."""
    from prenv.toolchain import cache_dir

    cache = cache_dir() / "driver-image"
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(repr((recipe, (ROOT / "requirements.txt").read_bytes(), _tool_stamps())).encode())
    layout = cache / f"runtime-{key.hexdigest()[:12]}"
    meta = layout.with_suffix(".python")
    if layout.is_dir() and meta.exists():
        return layout, meta.read_text().strip()
    for stale in [*cache.glob("runtime-*")]:
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink()
    base = _base_rootfs(cache, recipe)
    with tempfile.TemporaryDirectory(prefix="prenv-runtime-", dir=cache) as tmp:
        work = Path(tmp)
        rootfs = work / "rootfs"
        rootfs.mkdir()
        _run(["tar", "-xf", str(base), "-C", str(rootfs)], "unpack the base root")
        _install_requirements(rootfs, _wheels(work / "wheels"), recipe)
        _copy_tools(rootfs, recipe)
        (python,) = [p.name for p in (rootfs / recipe.venv.lstrip("/") / "lib").glob("python3.*")]
        spec = ImageSpec(ref=f"prenv.local/prenv-runtime:{RUNTIME_TAG}", entrypoint=("/bin/true",), files={})
        partial = work / "layout"
        build_layout(spec, partial, rootfs=rootfs)
        partial.rename(layout)
    meta.write_text(python + "\n")
    return layout, python


def _tool_stamps() -> list[tuple[str, int, int]]:
    """What identifies the toolchain pieces the image copies: path, size and mtime of each file."""
    from prenv.toolchain import cache_dir

    cache = cache_dir()
    files = [(cache / "bin" / name).resolve() for name in _TOOL_BINARIES]
    for plugin in _plugins(cache):
        files += sorted(p for p in plugin.rglob("*") if p.is_file())
    return [(str(f), f.stat().st_size, int(f.stat().st_mtime)) for f in files if f.exists()]


def _code_layer(work: Path, recipe: Recipe, python: str, project_dir: Path = ROOT) -> Path:
    """prenv installed into the virtualenv's site-packages (its wheel, built here), its launcher, the project."""
    layer = work / "layer"
    src = work / "src"
    for name in recipe.src_files:
        _copy(ROOT / name, src / name)
    wheels = work / "wheels"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(src), "-w", str(wheels)],
        "build prenv's wheel",
        timeout=600,
    )
    (wheel,) = wheels.glob("prenv-*.whl")
    site = layer / recipe.venv.lstrip("/") / "lib" / python / "site-packages"
    _run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(site), str(wheel)],
        "install prenv's wheel into the layer",
    )
    shutil.rmtree(site / "bin", ignore_errors=True)  # pip's launcher names this machine's Python; ours is below
    launcher = layer / recipe.venv.lstrip("/") / "bin" / "prenv"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(f"#!{recipe.venv}/bin/python3\nimport sys\nfrom prenv.cli import main\nsys.exit(main())\n")
    launcher.chmod(0o755)
    project = layer / recipe.project.lstrip("/")
    for name in recipe.project_files:
        if not (project_dir / name).is_file():
            raise ToolError(f"driver image: the project {project_dir} has no {name}")
        _copy(project_dir / name, project / name)
    _chown(project, recipe.uid)
    return layer


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


def _wheels(dest: Path) -> Path:
    """Wheels of the runtime requirements, made on this machine (Debian's Python 3.11 in the image matches the
    tool's own; the image never reaches an index)."""
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "-r", str(ROOT / "requirements.txt"), "-w", str(dest)],
        "pip wheel the runtime requirements",
        timeout=900,
    )
    return dest


def _install_requirements(rootfs: Path, wheels: Path, recipe: Recipe) -> None:
    staged = rootfs / "opt" / "prenv" / "wheels"  # removed again below
    shutil.copytree(wheels, staged)
    shutil.copy2(ROOT / "requirements.txt", staged / "requirements.txt")
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
                "/opt/prenv/wheels/requirements.txt",
            ],
            "install the runtime requirements",
        )
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    for cache in rootfs.glob("root/.cache/pip"):
        shutil.rmtree(cache, ignore_errors=True)


_TOOL_BINARIES = ("pulumi", "pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python")


def _plugins(cache: Path) -> list[Path]:
    plugins = cache / "pulumi-home" / "plugins"
    if not plugins.is_dir():
        return []
    return [
        p
        for p in sorted(plugins.iterdir())
        if p.is_dir() and p.name.startswith(("resource-kubernetes-", "resource-random-"))
    ]


def _copy_tools(rootfs: Path, recipe: Recipe) -> None:
    """The toolchain pieces a driver runs, from the tool cache, at ``recipe.tools`` (symlinks made real files)."""
    from prenv.toolchain import cache_dir

    cache = cache_dir()
    dest = rootfs / recipe.tools.lstrip("/")
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    for name in _TOOL_BINARIES:
        source = cache / "bin" / name
        if not source.exists():
            raise ToolError(f"{source} is missing; run `make tools`")
        shutil.copy2(source.resolve(), dest / "bin" / name)
    plugins = _plugins(cache)
    if len(plugins) != 2:
        raise ToolError(
            f"the kubernetes and random plugins are not in {cache / 'pulumi-home' / 'plugins'}; run `make tools`"
        )
    for plugin in plugins:
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
    parser.add_argument("--project", type=Path, default=ROOT, help="the project (template) baked in; default: here")
    args = parser.parse_args(argv)
    if args.command == "containerfile":
        sys.stdout.write(containerfile())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        image = build(args.state_dir, project=args.project)
        print(f"{image.ref} {image.archive} ({image.archive.stat().st_size // 2**20} MiB)")
        return 0
    return 130


if __name__ == "__main__":
    sys.exit(main())
