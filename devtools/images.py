"""Build the example app (examples/app) into a static binary and an image archive under the state dir.

``make images`` (or ``python -m devtools.images``) runs it; the demo and the tests import the archive into the real
node's containerd with ``prenv.cluster.images.import_archive``. The binary is built with the same Go environment as
the toolchain (``prenv.toolchain.goenv``: static, no checksum database, local toolchain only), and with -trimpath
and no VCS stamp, so unchanged sources give the same binary, the same image digest, and nothing new to import.

Layout under ``<state dir>/images/`` (kept out of git with the rest of .state/):
``example-app`` (the binary) and ``example-app.tar`` (the OCI archive, ref ``prenv.local/example-app:<tag>``).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

from prenv.cluster.images import BuiltImage, ImageSpec, build_image
from prenv.cluster.layout import default_state_dir
from prenv.errors import PrenvError, ToolError
from prenv.toolchain.goenv import go_binary, go_env

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_APP_DIR = ROOT / "examples" / "app"
EXAMPLE_APP_REPOSITORY = "prenv.local/example-app"
# Not "latest": Kubernetes would default such an image to pull-always, and nothing can be pulled here.
EXAMPLE_APP_TAG = "dev"
EXAMPLE_APP_PORT = 8080  # the preview template's service port (Pulumi.preview.yaml, prenv:services[0].port)


def images_dir(state_dir: Path | None = None) -> Path:
    return (state_dir or default_state_dir()) / "images"


def source_version(app_dir: Path = EXAMPLE_APP_DIR) -> str:
    """A short hash of the app's Go sources and module files: the binary's ``-v`` output and image label."""
    digest = hashlib.sha256()
    for path in sorted(app_dir.glob("*")):
        if path.suffix == ".go" or path.name in ("go.mod", "go.sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def build_example_binary(out: Path, app_dir: Path = EXAMPLE_APP_DIR) -> Path:
    """``go build`` the example app into ``out`` as a static, stripped binary.

    Raises:
        ToolError: go is missing or the build failed (the message has the compiler's last lines).
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [go_binary(), "build", "-trimpath", "-ldflags", f"-s -w -X main.version={source_version(app_dir)}"]
    argv += ["-o", str(out), "."]
    proc = subprocess.run(argv, cwd=app_dir, env=go_env(), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ToolError(f"building {app_dir} failed:\n{tail}")
    return out


def example_app_spec(binary: Path, tag: str = EXAMPLE_APP_TAG) -> ImageSpec:
    """The example app's image: the binary as /app, listening on the template's port, as a non-root user."""
    return ImageSpec(
        ref=f"{EXAMPLE_APP_REPOSITORY}:{tag}",
        entrypoint=("/app",),
        files={"/app": binary},
        env={"PORT": str(EXAMPLE_APP_PORT)},
        ports=(EXAMPLE_APP_PORT,),
        labels={
            "org.opencontainers.image.title": "prenv example app",
            "org.opencontainers.image.version": source_version(),
        },
    )


def build_example_app(state_dir: Path | None = None, tag: str = EXAMPLE_APP_TAG) -> BuiltImage:
    """Build the binary and its image archive into ``<state dir>/images/``; returns the built image."""
    out = images_dir(state_dir)
    binary = build_example_binary(out / "example-app")
    return build_image(example_app_spec(binary, tag), out / "example-app.tar")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.images", description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=None, help="default: $PRENV_STATE_DIR or .state")
    parser.add_argument("--tag", default=EXAMPLE_APP_TAG)
    args = parser.parse_args(argv)
    try:
        image = build_example_app(args.state_dir, args.tag)
    except PrenvError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{image.ref} {image.manifest_digest}\n{image.archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
