"""The Debian packages the real node runs on (containerd, runc, the CNI plugins, iptables, umoci, ipset, nftables)
and the ones the demo and the test suite start (PostgreSQL's server; Chromium and NSS's certutil for the browser
test).

These are not built from Go: Debian's containerd 1.6 and runc are known to work on this kind of machine
(cgroup v1 hybrid hierarchy), the CNI plugins and iptables are what the bridge network needs, umoci
builds the OCI images the node runs without a registry (prenv.cluster.node.images), and ``kube-proxy
--cleanup`` fails without ``ipset`` and ``nft`` (it clears its IPVS and nftables modes too). So
``make tools`` only checks that they are installed. As root it installs the missing ones itself
(``apt-get update``, then ``apt-get install -y``, non-interactive); otherwise it stops with the exact
command to run, since installing system packages is the user's decision.

The command runner and the "is it installed" query are parameters so the decision logic is tested
without touching the machine's packages.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from prenv.errors import ToolError

NODE_PACKAGES: tuple[str, ...] = (
    "containerd",
    "runc",
    "containernetworking-plugins",
    "iptables",
    "umoci",
    "ipset",
    "nftables",
)

# The demo and the suite: a throwaway PostgreSQL server (devtools.localdb); headless Chromium opening preview pages
# with the local CA trusted in an NSS database (certutil), in tests/e2e/test_real_node.py; mmdebstrap for the
# driver image (devtools/driverimage.py).
DEV_PACKAGES: tuple[str, ...] = ("postgresql", "chromium", "libnss3-tools", "mmdebstrap")
PACKAGES: tuple[str, ...] = NODE_PACKAGES + DEV_PACKAGES

# Debian's containernetworking-plugins install here, not in the usual /opt/cni/bin.
CNI_BIN_DIR = "/usr/lib/cni"


class StepRunner(Protocol):
    """What :class:`prenv.toolchain.runner.Runner` offers: run a step with a progress line and a log."""

    def run(self, label: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> object: ...

    def note(self, text: str) -> None: ...


def dpkg_installed(package: str) -> bool:
    """Whether dpkg records ``package`` as installed (not merely known, half-installed or removed)."""
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Status}", package],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except FileNotFoundError as e:
        raise ToolError("dpkg-query is not available: the real node needs a Debian-based machine") from e
    return proc.returncode == 0 and proc.stdout.strip() == "installed"


def missing(packages: Sequence[str], installed: Callable[[str], bool] = dpkg_installed) -> list[str]:
    """The packages of ``packages`` that are not installed, in the given order."""
    return [p for p in packages if not installed(p)]


def install_command(packages: Sequence[str]) -> str:
    """The line a user runs to install ``packages`` (what the error message quotes)."""
    return f"apt-get install -y {' '.join(packages)}"


def ensure(
    runner: StepRunner,
    packages: Sequence[str] = PACKAGES,
    *,
    installed: Callable[[str], bool] = dpkg_installed,
    is_root: bool | None = None,
) -> list[str]:
    """Make sure ``packages`` are installed; return the ones this call installed.

    As root, missing packages are installed with apt-get (index refreshed first, no prompts). Otherwise,
    or when apt-get leaves one missing, raises ToolError with the ``apt-get install -y ...`` line to run.
    """
    absent = missing(packages, installed)
    if not absent:
        runner.note(f"debian packages: {' '.join(packages)} installed")
        return []
    if is_root is None:
        is_root = os.geteuid() == 0
    if not is_root:
        raise ToolError(
            f"the real node needs Debian packages that are not installed: {' '.join(absent)}; "
            f"run as root: {install_command(absent)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    runner.run("apt-get update", ["apt-get", "update"], env=env)
    runner.run(f"apt-get install {' '.join(absent)}", ["apt-get", "install", "-y", *absent], env=env)
    still = missing(absent, installed)
    if still:
        raise ToolError(f"apt-get did not install {' '.join(still)}; run as root: {install_command(still)}")
    return absent
