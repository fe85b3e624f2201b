"""The node's Debian packages: installed as root when missing (index refreshed first), else the exact line to run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from prenv.errors import ToolError
from prenv.toolchain import debian


class Machine:
    """A dpkg database and an apt-get that installs what it is asked for, except the ``unavailable`` ones.

    ``run`` has the signature of ``Runner.run``; every call is recorded with the environment it got.
    """

    def __init__(self, installed: set[str], unavailable: frozenset[str] = frozenset()) -> None:
        self.packages = set(installed)
        self.unavailable = unavailable
        self.commands: list[list[str]] = []
        self.envs: list[Mapping[str, str]] = []
        self.notes: list[str] = []
        self.index_fresh = False

    def installed(self, package: str) -> bool:
        return package in self.packages

    def note(self, text: str) -> None:
        self.notes.append(text)

    def run(self, label: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
        self.commands.append(list(argv))
        self.envs.append(dict(env or {}))
        if list(argv[:2]) == ["apt-get", "update"]:
            self.index_fresh = True
        elif list(argv[:3]) == ["apt-get", "install", "-y"]:
            assert self.index_fresh, "apt-get install before apt-get update"
            self.packages |= {p for p in argv[3:] if p not in self.unavailable}


def test_nothing_is_run_when_every_package_is_installed() -> None:
    machine = Machine(set(debian.PACKAGES))
    assert debian.ensure(machine, installed=machine.installed, is_root=True) == []
    assert machine.commands == []
    assert machine.notes == [f"debian packages: {' '.join(debian.PACKAGES)} installed"]
    assert {"containerd", "runc", "containernetworking-plugins", "iptables"} <= set(debian.PACKAGES)


def test_root_refreshes_the_index_then_installs_only_the_missing_packages_without_prompts() -> None:
    machine = Machine({"iptables", "umoci", "ipset", "nftables", *debian.DEV_PACKAGES})
    installed = debian.ensure(machine, installed=machine.installed, is_root=True)
    assert installed == ["containerd", "runc", "containernetworking-plugins"]
    assert machine.commands == [
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "containerd", "runc", "containernetworking-plugins"],
    ]
    assert all(env["DEBIAN_FRONTEND"] == "noninteractive" for env in machine.envs)
    assert set(debian.PACKAGES) <= machine.packages


def test_without_root_nothing_is_run_and_the_error_is_the_exact_apt_get_line() -> None:
    machine = Machine({"runc", "iptables", "umoci", "ipset", "nftables", *debian.DEV_PACKAGES})
    with pytest.raises(ToolError) as e:
        debian.ensure(machine, installed=machine.installed, is_root=False)
    assert machine.commands == []
    assert "run as root: apt-get install -y containerd containernetworking-plugins" in str(e.value)
    assert str(e.value).endswith("apt-get install -y containerd containernetworking-plugins")


def test_a_package_apt_get_could_not_install_is_named_with_its_line() -> None:
    machine = Machine(set(), unavailable=frozenset({"runc"}))
    with pytest.raises(ToolError, match=r"apt-get did not install runc; run as root: apt-get install -y runc$"):
        debian.ensure(machine, installed=machine.installed, is_root=True)


def test_the_demo_and_suite_packages_are_checked_with_the_node_packages() -> None:
    machine = Machine(set(debian.NODE_PACKAGES))
    installed = debian.ensure(machine, installed=machine.installed, is_root=True)
    assert installed == ["postgresql", "chromium", "libnss3-tools", "mmdebstrap"]


def test_dpkg_knows_an_installed_package_from_an_unknown_one() -> None:
    assert debian.dpkg_installed("dpkg")
    assert not debian.dpkg_installed("prenv-no-such-package")
    assert debian.missing(["dpkg", "prenv-no-such-package", "bash"]) == ["prenv-no-such-package"]
