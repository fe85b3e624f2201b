"""Every version the toolchain builds, and where each one comes from.

The Pulumi engine and the Kubernetes provider must match the Python SDKs the programs import, so their
versions are read from the ``pulumi`` / ``pulumi-kubernetes`` pins in requirements.txt: bumping a pin
there is the only step needed to move the toolchain. Everything that has no Python counterpart
(Kubernetes control plane and node, etcd, KWOK, CoreDNS, Traefik, crictl) is pinned in :data:`UPSTREAM`, the single
constant for them.

Go module coordinates live here too, because the Go module proxy we can reach is a filtered mirror:
some modules have no tags and only one pseudo-version served, and some release zips are missing. Each
such workaround is written next to the pin it concerns (details in docs/toolchain.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from prenv.errors import ToolError

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"

# Pins for tools with no Python SDK counterpart. Kubernetes 1.33 is the lowest minor served by the
# proxy that is within kubectl's +/-1 skew of Debian bookworm's kubectl (1.32) and supported by KWOK.
# CoreDNS 1.14.7: the newest 1.14 release; its whole dependency graph is served (`go list -e -deps` reports no
# error). 1.15.0 is served too but builds against client-go 0.37, four minors past our API server. Traefik
# 3.6.25: the 3.7 line does not resolve on the proxy (docs/toolchain.md).
UPSTREAM: dict[str, str] = {
    "kubernetes": "1.33.13",
    "etcd": "3.5.35",
    "kwok": "0.8.0",
    "coredns": "1.14.7",
    "traefik": "3.6.25",
    "cri-tools": "1.34.0",
}

# github.com/pulumi/pulumi/pkg/v3@v3.260.0: .info and .mod are served but the source .zip is 403
# ("This module version is not available"), so that engine cannot be built here. Maps a pulumi pin to
# the nearest release whose source is served; `status` reports the substitution. Remove an entry when
# requirements.txt moves to a pin that builds. pkg/v3@v3.272.0 (the newest SDK on PyPI) is 403 too;
# pkg/v3 and sdk/v3 v3.274.1 are served, and an engine a little ahead of its SDK is supported (the SDK
# negotiates features with the engine), so the 3.272.0 SDK runs on the 3.274.1 engine.
ENGINE_SOURCE_FALLBACK: dict[str, str] = {"3.260.0": "3.259.0", "3.272.0": "3.274.1"}

# github.com/pulumi/pulumi-kubernetes/provider/v4 has no tags; this pseudo-version (commit f47bc2d6,
# 2026-01-15) is the only one served. Its go.mod requires sdk/v4 v4.24.0 and it precedes the
# sdk/v4.25.0 tag (commit 144dd813, 2026-01-16) by a day: it is the 4.25.0 release line.
KUBERNETES_PROVIDER_MODULE = "github.com/pulumi/pulumi-kubernetes/provider/v4"
KUBERNETES_PROVIDER_PSEUDO_VERSIONS: dict[str, str] = {
    "4.25.0": "v4.0.0-20260115033456-f47bc2d6f199",
}

_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+?)\s*==\s*([^\s;#]+)")


@dataclass(frozen=True)
class Pins:
    """The versions one toolchain build is made of (no leading ``v``)."""

    pulumi: str
    pulumi_kubernetes: str
    kubernetes: str
    etcd: str
    kwok: str
    coredns: str = UPSTREAM["coredns"]
    traefik: str = UPSTREAM["traefik"]
    cri_tools: str = UPSTREAM["cri-tools"]

    @property
    def engine(self) -> str:
        """The pulumi engine actually built: the SDK pin unless its source is not served."""
        return ENGINE_SOURCE_FALLBACK.get(self.pulumi, self.pulumi)


def read_requirement_pins(path: Path = REQUIREMENTS) -> dict[str, str]:
    """Return ``{normalised name: version}`` for every ``name==version`` line of a requirements file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ToolError(f"cannot read {path}: {e.strerror}") from e
    pins: dict[str, str] = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            name = re.sub(r"\[.*\]", "", match.group(1))
            pins[_normalise(name)] = match.group(2)
    return pins


def load_pins(path: Path = REQUIREMENTS) -> Pins:
    """Read the SDK pins from requirements.txt and combine them with :data:`UPSTREAM`."""
    pins = read_requirement_pins(path)
    missing = [name for name in ("pulumi", "pulumi-kubernetes") if name not in pins]
    if missing:
        raise ToolError(f"{path} must pin {' and '.join(f'{m}==<version>' for m in missing)}")
    return Pins(
        pulumi=pins["pulumi"],
        pulumi_kubernetes=pins["pulumi-kubernetes"],
        kubernetes=UPSTREAM["kubernetes"],
        etcd=UPSTREAM["etcd"],
        kwok=UPSTREAM["kwok"],
        coredns=UPSTREAM["coredns"],
        traefik=UPSTREAM["traefik"],
        cri_tools=UPSTREAM["cri-tools"],
    )


def provider_pseudo_version(version: str) -> str:
    """The served pseudo-version of the kubernetes provider module for a pulumi-kubernetes pin."""
    try:
        return KUBERNETES_PROVIDER_PSEUDO_VERSIONS[version]
    except KeyError:
        raise ToolError(
            f"no served source known for pulumi-resource-kubernetes {version} (pulumi-kubernetes pin); "
            f"known: {', '.join(sorted(KUBERNETES_PROVIDER_PSEUDO_VERSIONS))}. Add its pseudo-version "
            "to KUBERNETES_PROVIDER_PSEUDO_VERSIONS in prenv/toolchain/versions.py"
        ) from None


def check_plugin_version(plugin: str, built: str, sdk: str, pin: str) -> None:
    """Raise :class:`ToolError` naming ``plugin`` when its built version is not its SDK's pin."""
    if built.lstrip("v") != pin.lstrip("v"):
        raise ToolError(f"{plugin} is {built.lstrip('v')} but requirements.txt pins {sdk}=={pin}; run `make tools`")


def check_installed_sdks(pins: Pins) -> list[str]:
    """Return one message per SDK whose installed distribution differs from its pin."""
    problems = []
    for dist, pin in (("pulumi", pins.pulumi), ("pulumi-kubernetes", pins.pulumi_kubernetes)):
        try:
            installed = metadata.version(dist)
        except metadata.PackageNotFoundError:
            problems.append(f"{dist} is not installed in this environment (pin {pin}); run `make venv`")
            continue
        if installed != pin:
            problems.append(f"{dist} {installed} is installed but requirements.txt pins {pin}; run `make venv`")
    return problems


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
