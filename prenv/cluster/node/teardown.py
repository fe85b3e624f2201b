"""Remove everything a real node leaves behind, whether it stopped cleanly or was killed.

Killing the kubelet (or containerd) stops nothing else: containerd shims and the containers they hold keep
running, their root filesystems and network namespaces stay mounted, and since no CNI DEL ever ran, the
bridge, its veths, host-local's allocations and the bridge/portmap plugins' iptables rules stay too. Teardown
works from what is on the machine, not from what we remember starting, in this order:

0. the kubelet, so that nothing restarts what follows, CoreDNS, and kube-proxy (``kube-proxy --cleanup``
   removes its KUBE-* rules);
1. pod sandboxes through CRI (``crictl stopp``/``rmp``) while containerd still answers, so the CNI plugins
   get their DEL and remove their own rules; then every task and container left in every namespace;
2. containerd itself;
3. containers runc still knows under our runc root (``runc delete --force``), then the shims that served
   our socket (matched by their ``-address`` argument);
4. every mount below the node's directories, deepest first (overlay root filesystems, shm, netns);
5. the bridge and any veth still attached to it, and the kubelet's cgroup root with every pod cgroup below it;
6. iptables rules whose comment names our CNI network, the ``CNI-…`` chains they jump to, and portmap's
   shared ``CNI-HOSTPORT-…`` chains once no other network uses them; then, when the kubelet ran here, every
   ``KUBE-…`` chain left in iptables and ip6tables: the kubelet creates ``KUBE-FIREWALL`` (which drops traffic
   to 127.0.0.0/8 from other addresses), ``KUBE-KUBELET-CANARY`` and ``KUBE-IPTABLES-HINT`` and never removes
   them, and ``kube-proxy --cleanup`` leaves its canaries and ``KUBE-MARK-MASQ``. Those chains are
   machine-wide, like kube-proxy's cleanup: one real node per machine;
7. the kernel settings the kubelet and the bridge plugin changed, back to what ``RealNode.up`` recorded;
8. the node's directory, only once nothing is mounted below it (a recursive delete through a bind mount would
   delete the mounted files).

Each step tolerates "already gone", so teardown can run again after a partial one; what it could not remove is
returned (and raised by :func:`teardown`) rather than silently left.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prenv.cluster import processes
from prenv.cluster.node import dns, kubelet, proxy
from prenv.cluster.node.containerd import Containerd
from prenv.cluster.node.layout import NodeLayout, NodeNetwork
from prenv.errors import ClusterError

logger = logging.getLogger(__name__)

SHIM_MARKER = "containerd-shim"
IPTABLES_TABLES = ("nat", "filter", "mangle")
# portmap's chains, shared by every CNI network on the machine that maps host ports.
SHARED_PORTMAP_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")


@dataclass
class Report:
    """What teardown removed, and what it could not (empty ``left`` means the machine is clean)."""

    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def teardown(
    layout: NodeLayout,
    network: NodeNetwork,
    *,
    crictl: Path | None = None,
    cgroup_root: str | None = None,
    kube_proxy: Path | None = None,
    remove_files: bool = True,
) -> Report:
    """Remove every process, mount, link, rule, cgroup (below ``cgroup_root``, the kubelet's) and (with
    ``remove_files``) file of the node; raise ClusterError naming what is left if anything could not be removed."""
    report = Report()
    kubelet_ran = layout.kubelet_config.exists()
    _stop_kubelet(layout, report)
    try:
        if dns.stop(layout):
            report.removed.append("coredns")
    except ClusterError as e:
        report.left.append(str(e))
    try:
        if proxy.stop_and_clean(layout, kube_proxy):
            report.removed.append("kube-proxy and its rules")
    except ClusterError as e:
        report.left.append(str(e))
    containerd = Containerd(layout, sandbox_image="")
    if containerd.pid() is not None:
        if crictl is not None:
            _stop_sandboxes(crictl, layout, report)
        _remove_containers(containerd, report)
    containerd.stop()
    _delete_runc_containers(layout, report)
    _kill_shims(layout, report)
    _unmount_below(layout.mount_roots(), report)
    _delete_bridge(network.bridge, report)
    if cgroup_root:
        report.left += [f"cgroup {c}" for c in kubelet.remove_cgroup_root(cgroup_root)]
    _delete_iptables_rules(network.name, report)
    if kubelet_ran:
        _delete_kube_chains(report)
    report.left += [f"kernel setting {k}" for k in kubelet.restore_kernel_settings(layout)]
    left_mounts = mounts_below(layout.mount_roots())
    if left_mounts:
        report.left += [f"mount {m}" for m in left_mounts]
    elif remove_files and layout.root.exists():
        shutil.rmtree(layout.root, ignore_errors=True)
        report.removed.append(f"directory {layout.root}")
    if report.left:
        raise ClusterError("node teardown left: " + "; ".join(report.left))
    logger.info("node teardown removed: %s", "; ".join(report.removed) or "nothing")
    return report


# -- 0. the kubelet --------------------------------------------------------------------------------------------------


def _stop_kubelet(layout: NodeLayout, report: Report) -> None:
    pid = processes.read_pidfile(layout.kubelet_pidfile)
    if pid is not None and processes.is_alive(pid, str(layout.kubelet_config)):
        processes.terminate([(pid, str(layout.kubelet_config))], grace=10)
        report.removed.append(f"kubelet pid {pid}")
    layout.kubelet_pidfile.unlink(missing_ok=True)


# -- 1. sandboxes, tasks and containers through containerd ---------------------------------------------------------


def _stop_sandboxes(crictl: Path, layout: NodeLayout, report: Report) -> None:
    base = [str(crictl), "--runtime-endpoint", f"unix://{layout.containerd_socket}", "--timeout", "20s"]
    _, out = _run([*base, "pods", "-q"])
    for pod in out.split():
        _run([*base, "stopp", pod])
        _run([*base, "rmp", "--force", pod])
        report.removed.append(f"pod sandbox {pod[:12]}")


def _remove_containers(containerd: Containerd, report: Report) -> None:
    try:
        spaces = [n for n in containerd.ctr("namespaces", "ls", "-q").split() if n]
    except ClusterError as e:
        logger.warning("cannot list containerd namespaces: %s", e)
        return
    for ns in spaces:
        with contextlib.suppress(ClusterError):
            for line in containerd.ctr("tasks", "ls", namespace=ns).splitlines()[1:]:
                task = line.split()[0]
                with contextlib.suppress(ClusterError):
                    containerd.ctr("tasks", "kill", "--signal", "SIGKILL", task, namespace=ns)
                _wait(functools.partial(_task_stopped, containerd, ns, task), timeout=10)
                with contextlib.suppress(ClusterError):
                    containerd.ctr("tasks", "delete", "--force", task, namespace=ns)
                report.removed.append(f"task {ns}/{task}")
        with contextlib.suppress(ClusterError):
            for container in containerd.ctr("containers", "ls", "-q", namespace=ns).split():
                with contextlib.suppress(ClusterError):
                    containerd.ctr("containers", "delete", container, namespace=ns)
                report.removed.append(f"container {ns}/{container}")


def _task_stopped(containerd: Containerd, ns: str, task: str) -> bool:
    for line in containerd.ctr("tasks", "ls", namespace=ns).splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == task:
            return parts[-1] == "STOPPED"
    return True


# -- 3. runc containers and shims -----------------------------------------------------------------------------------


def _delete_runc_containers(layout: NodeLayout, report: Report) -> None:
    if not layout.runc_root.is_dir():
        return
    for root in sorted(p for p in layout.runc_root.iterdir() if p.is_dir()):
        for container in sorted(p.name for p in root.iterdir() if p.is_dir()):
            _run(["runc", "--root", str(root), "delete", "--force", container])
            if (root / container).exists():
                report.left.append(f"runc container {root.name}/{container}")
            else:
                report.removed.append(f"runc container {root.name}/{container}")


def shim_pids(socket: Path) -> list[int]:
    """Pids of the containerd shims started for the containerd listening on ``socket``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = processes.cmdline(int(entry.name))
        if args and SHIM_MARKER in Path(args[0]).name and _arg_after(args, "-address") == str(socket):
            found.append(int(entry.name))
    return found


def _kill_shims(layout: NodeLayout, report: Report) -> None:
    pids = shim_pids(layout.containerd_socket)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _wait(lambda: not any(processes.is_alive(pid, SHIM_MARKER) for pid in pids), timeout=10)
    for pid in pids:
        if processes.is_alive(pid, SHIM_MARKER):
            report.left.append(f"shim pid {pid}")
        else:
            report.removed.append(f"shim pid {pid}")


def _arg_after(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args[:-1]):
        if arg in (flag, f"-{flag}"):
            return args[i + 1]
    return None


# -- 4. mounts -------------------------------------------------------------------------------------------------------


def mounts_below(roots: Iterable[Path], mountinfo: str | None = None) -> list[Path]:
    """Mount points at or below any of ``roots``, deepest first (the order to unmount them in)."""
    text = mountinfo if mountinfo is not None else Path("/proc/self/mountinfo").read_text()
    prefixes = [str(r).rstrip("/") for r in roots]
    points = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = _unescape_mount(fields[4])
        if any(point == p or point.startswith(p + "/") for p in prefixes):
            points.append(Path(point))
    return sorted(set(points), key=lambda p: (-len(p.parts), str(p)))


def _unescape_mount(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _unmount_below(roots: Sequence[Path], report: Report) -> None:
    for _ in range(3):  # a mount can hide another at the same point; look again
        points = mounts_below(roots)
        if not points:
            return
        for point in points:
            if _run(["umount", "--lazy", str(point)])[0] == 0:
                report.removed.append(f"mount {point}")


# -- 5. bridge -------------------------------------------------------------------------------------------------------


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def _delete_bridge(bridge: str, report: Report) -> None:
    if not link_exists(bridge):
        return
    brif = Path("/sys/class/net", bridge, "brif")
    for port in sorted(p.name for p in brif.iterdir()) if brif.is_dir() else []:
        _run(["ip", "link", "delete", port])
        report.removed.append(f"link {port}")
    _run(["ip", "link", "delete", bridge])
    if link_exists(bridge):
        report.left.append(f"bridge {bridge}")
    else:
        report.removed.append(f"bridge {bridge}")


# -- 6. iptables -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    chain: str
    args: tuple[str, ...]  # after "-A <chain>"

    @property
    def target(self) -> str | None:
        return _arg_after(self.args, "-j") or _arg_after(self.args, "--jump")

    @property
    def comment(self) -> str:
        return _arg_after(self.args, "--comment") or ""


@dataclass(frozen=True, slots=True)
class Table:
    """One table of ``iptables-save`` output: chain names (in order) and rules."""

    name: str
    chains: tuple[str, ...]
    rules: tuple[Rule, ...]


def parse_iptables_save(text: str) -> list[Table]:
    tables: list[Table] = []
    name, chains, rules = "", [], []  # type: ignore[var-annotated]
    for line in text.splitlines():
        if line.startswith("*"):
            name, chains, rules = line[1:].strip(), [], []
        elif line.startswith(":"):
            chains.append(line[1:].split()[0])
        elif line.startswith("-A "):
            parts = shlex.split(line)
            rules.append(Rule(parts[1], tuple(parts[2:])))
        elif line.strip() == "COMMIT" and name:
            tables.append(Table(name, tuple(chains), tuple(rules)))
            name = ""
    return tables


def cleanup_commands(table: Table, network: str) -> list[list[str]]:
    """``iptables`` argv lists that remove ``network``'s rules and chains from ``table``, in a safe order.

    Ours: every rule whose comment names the network (the bridge plugin's ``name: "<net>" id: "…"``, portmap's
    ``dnat name: "<net>" …``), and every ``CNI-…`` chain such a rule jumps to (other than portmap's shared ones)
    with all that is in it. portmap's shared chains go too once nothing but portmap's own fixed rules is left in
    them and no other network has rules in the table.
    """
    mine = re.compile(rf'(^|\s)name: "{re.escape(network)}"( |$)')
    ours = [r for r in table.rules if mine.search(r.comment)]
    chains = {
        r.target for r in ours if r.target and r.target.startswith("CNI-") and r.target not in SHARED_PORTMAP_CHAINS
    }
    # Rules that merely jump into one of our chains are ours as well, whatever their comment.
    ours += [r for r in table.rules if r.target in chains and r not in ours]
    commands = [["-t", table.name, "-D", r.chain, *r.args] for r in ours if r.chain not in chains]
    for chain in sorted(chains & set(table.chains)):
        commands.append(["-t", table.name, "-F", chain])
    for chain in sorted(chains & set(table.chains)):
        commands.append(["-t", table.name, "-X", chain])

    removed = set(ours) | {r for r in table.rules if r.chain in chains}
    remaining = [r for r in table.rules if r not in removed]
    others = [r for r in remaining if "name: " in r.comment or (r.target or "").startswith("CNI-DN-")]
    shared = [c for c in SHARED_PORTMAP_CHAINS if c in table.chains]
    if shared and not others:
        commands += [
            ["-t", table.name, "-D", r.chain, *r.args]
            for r in remaining
            if r.target in shared and r.chain not in SHARED_PORTMAP_CHAINS
        ]
        commands += [["-t", table.name, "-F", c] for c in shared]
        commands += [["-t", table.name, "-X", c] for c in shared]
    return commands


def network_rules(network: str) -> list[str]:
    """Every rule and chain of ``network`` still in iptables, as ``table: rule`` lines (empty when clean)."""
    found = []
    for table in parse_iptables_save(_run(["iptables-save"])[1]):
        for command in cleanup_commands(table, network):
            found.append(f"{table.name}: {' '.join(command[2:])}")
    return found


def _delete_iptables_rules(network: str, report: Report) -> None:
    if shutil.which("iptables-save") is None:
        return
    for table in parse_iptables_save(_run(["iptables-save"])[1]):
        if table.name not in IPTABLES_TABLES:
            continue
        for command in cleanup_commands(table, network):
            if _run(["iptables", "-w", "5", *command])[0] == 0:
                report.removed.append(f"iptables {' '.join(command)}")
    leftover = network_rules(network)
    report.left += [f"iptables {line}" for line in leftover]


def chain_cleanup_commands(table: Table, chains: frozenset[str]) -> list[list[str]]:
    """Remove ``chains`` from ``table``: first every rule elsewhere that jumps to one, then flush, then delete."""
    present = sorted(chains & set(table.chains))
    jumps = [r for r in table.rules if r.target in chains and r.chain not in chains]
    commands = [["-t", table.name, "-D", r.chain, *r.args] for r in jumps]
    commands += [["-t", table.name, "-F", c] for c in present]
    commands += [["-t", table.name, "-X", c] for c in present]
    return commands


def kube_chains(table: Table) -> frozenset[str]:
    return frozenset(c for c in table.chains if c.startswith("KUBE-"))


def _delete_kube_chains(report: Report) -> None:
    for save, tool in (("iptables-save", "iptables"), ("ip6tables-save", "ip6tables")):
        if shutil.which(save) is None:
            continue
        for table in parse_iptables_save(_run([save])[1]):
            for command in chain_cleanup_commands(table, kube_chains(table)):
                if _run([tool, "-w", "5", *command])[0] == 0:
                    report.removed.append(f"{tool} {' '.join(command)}")
        for table in parse_iptables_save(_run([save])[1]):
            report.left += [f"{tool} -t {table.name} chain {c}" for c in sorted(kube_chains(table))]


# -- helpers ---------------------------------------------------------------------------------------------------------


def _run(argv: Sequence[str], *, timeout: float = 60) -> tuple[int, str]:
    """``(exit code, stdout)``; -1 when the command could not run at all. Failures are logged, not raised:
    teardown goes on and judges the outcome by what is left."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        logger.debug("%s could not run: %s", argv, e)
        return -1, ""
    if proc.returncode != 0:
        logger.debug("%s exited %d: %s", argv, proc.returncode, proc.stderr.strip()[-300:])
    return proc.returncode, proc.stdout


def _wait(check: Callable[[], bool], *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return True
        except ClusterError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
