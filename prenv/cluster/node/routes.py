"""A blackhole route for KWOK's made-up pod addresses, so that nothing addressed to them ever leaves the machine.

With real and fake nodes in one cluster, kube-proxy also programs DNAT rules to the fake pods' addresses (KWOK
gives them addresses from each fake node's podCIDR). Without a route of their own, a connection to such a
Service's ClusterIP would follow the default route off this machine. ``ip route add blackhole`` drops them here.
"""

from __future__ import annotations

import ipaddress
import subprocess

from prenv.errors import ClusterError

_IP = "ip"


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([_IP, *args], capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ClusterError(f"`ip {' '.join(args)}` could not run: {e}") from e


def overlapping_routes(cidr: str, table: str) -> list[str]:
    """The routes of ``ip -4 route show`` output (``table``) that overlap ``cidr``, blackholes for it excepted."""
    wanted = ipaddress.ip_network(cidr)
    found = []
    for line in table.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "blackhole" and len(words) > 1 and words[1] == cidr:
            continue
        destination = words[1] if words[0] in ("blackhole", "unreachable", "prohibit") else words[0]
        if destination == "default":
            continue
        try:
            network = ipaddress.ip_network(destination, strict=False)
        except ValueError:
            continue
        if network.overlaps(wanted):
            found.append(line.strip())
    return found


def is_blackholed(cidr: str) -> bool:
    return bool(_ip("-4", "route", "show", "type", "blackhole", "exact", cidr).stdout.strip())


def add_blackhole(cidr: str) -> None:
    """Route ``cidr`` to a blackhole; refuses (ClusterError) if the machine already routes part of it somewhere."""
    if is_blackholed(cidr):
        return
    clash = overlapping_routes(cidr, _ip("-4", "route", "show").stdout)
    if clash:
        raise ClusterError(f"cannot blackhole KWOK's pod range {cidr}: this machine routes {clash[0]!r}")
    out = _ip("-4", "route", "add", "blackhole", cidr)
    if out.returncode != 0:
        raise ClusterError(f"`ip route add blackhole {cidr}` failed: {out.stderr.strip()}")


def remove_blackhole(cidr: str) -> None:
    """Remove the blackhole route for ``cidr`` if there is one; ClusterError if it stays."""
    if not is_blackholed(cidr):
        return
    _ip("-4", "route", "del", "blackhole", cidr)
    if is_blackholed(cidr):
        raise ClusterError(f"the blackhole route for {cidr} is still there")
