"""The embedded cluster's lifecycle: ``up``, ``down`` and ``status`` for one named cluster.

It strings the other modules together: ``kwokctl`` starts etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and the KWOK controller; ``bootstrap`` creates the fake nodes and the ingress footprint and
waits for readiness; ``pki`` makes the local CA; ``traefik`` configures the ingress controller we run next to
it; ``processes`` proves that everything stopped. With ``node_kinds`` naming real nodes, ``prenv.cluster.node``
starts a kubelet on containerd (plus kube-proxy and CoreDNS) next to the control plane, under the cluster's dir.
The CLI and the pytest fixture both use this class, so tests exercise exactly what developers run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml
from kubernetes import client

from prenv import procs
from prenv.cluster import bootstrap, images, kwokctl, pki, processes, traefik
from prenv.cluster.bootstrap import NodeSpec
from prenv.cluster.layout import DEFAULT_NAME, ClusterLayout
from prenv.cluster.node import routes
from prenv.cluster.node.layout import NodeLayout, NodeNetwork
from prenv.cluster.node.node import RealNode
from prenv.cluster.records import ClusterInfo, ClusterState, ClusterStatus, IngressPorts, NodeCounts, NodeKinds
from prenv.errors import ClusterError, ConfigError

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
"""Called after each step of ``up``/``down`` with a short description and seconds since the start."""

READY_TIMEOUT = 120.0
STOP_GRACE = 10.0
REAL_NODE_NETWORK = NodeNetwork(name="prenv", bridge="prenv0", subnet="10.245.0.0/24")
"""The real node's pod network: outside KWOK's fake pod range (``bootstrap.FAKE_POD_RANGE``) and the Services'."""
REAL_NODE_PROCESSES = ("containerd", "kubelet", "kube-proxy", "coredns")


def _log_progress(step: str, elapsed: float) -> None:
    logger.info("[%5.1fs] %s", elapsed, step)


class EmbeddedCluster:
    """One embedded cluster, identified by ``name`` inside ``state_dir``.

    Args:
        name: DNS-label-like name; clusters with different names run side by side on different ports.
        state_dir: defaults to ``$PRENV_STATE_DIR`` or ``<checkout>/.state``.
        nodes: the fake nodes to create.
        ingress_class: the IngressClass created and served by Traefik.
        ingress_ip: the address Traefik publishes in ``status.loadBalancer``.
        tool_path: how to find a binary by name; defaults to ``prenv.toolchain.tool_path``.
        node_kinds: ``kwok`` (the default: fake nodes only), ``real`` (one real node, no fake ones) or ``both``.
            Recorded when the cluster is created; an existing cluster keeps the kinds it was created with.
        node_network: the real node's bridge and pod subnet (default ``REAL_NODE_NETWORK``).
    """

    def __init__(
        self,
        name: str = DEFAULT_NAME,
        state_dir: Path | None = None,
        *,
        nodes: NodeSpec | None = None,
        ingress_class: str = "nginx",
        ingress_ip: str = "127.0.0.1",
        tool_path: kwokctl.ToolPath | None = None,
        node_kinds: NodeKinds | str = NodeKinds.KWOK,
        node_network: NodeNetwork | None = None,
    ) -> None:
        self.layout = ClusterLayout.of(name, state_dir)
        self.nodes = nodes or NodeSpec()
        self.ingress_class = ingress_class
        self.ingress_ip = ingress_ip
        self._tool_path = tool_path
        self.node_kinds = NodeKinds(node_kinds)
        self.node_network = node_network or REAL_NODE_NETWORK
        self._apply_recorded_kinds()

    # ------------------------------------------------------------------------------------------- node kinds

    def _apply_recorded_kinds(self) -> None:
        """An existing cluster's node kinds, fake node count and node network win over the constructor's."""
        try:
            recorded = json.loads(self.layout.nodes_file.read_text())
            kinds = NodeKinds(recorded["kinds"])
            kwok = int(recorded["kwok"])
            network = NodeNetwork(**recorded["network"]) if recorded.get("network") else None
        except (OSError, ValueError, KeyError, TypeError):
            return
        self.node_kinds = kinds
        self.nodes = NodeSpec(
            count=kwok, cpu=self.nodes.cpu, memory=self.nodes.memory, pods=self.nodes.pods, prefix=self.nodes.prefix
        )
        if network is not None:
            self.node_network = network

    def _record_kinds(self) -> None:
        if not self.node_kinds.kwok:
            self.nodes = NodeSpec(
                count=0, cpu=self.nodes.cpu, memory=self.nodes.memory, pods=self.nodes.pods, prefix=self.nodes.prefix
            )
        network = self.node_network
        document = {
            "kinds": self.node_kinds.value,
            "kwok": self.nodes.count,
            "network": {"name": network.name, "bridge": network.bridge, "subnet": network.subnet}
            if self.node_kinds.real
            else None,
        }
        self.layout.nodes_file.write_text(json.dumps(document) + "\n")

    @property
    def real_node_name(self) -> str:
        return f"{self.name}-node"

    def real_node(self) -> RealNode | None:
        """The cluster's real node, if it has one (its processes may or may not run)."""
        if not self.node_kinds.real:
            return None
        return RealNode(
            self.layout.node_dir,
            name=self.real_node_name,
            network=self.node_network,
            tool_path=self._tool_path,
        )

    def load_image(self, image: images.BuiltImage, also_as: tuple[str, ...] = ()) -> None:
        """Import an image archive into the real node's containerd, also tagged ``also_as`` (e.g.
        ``prenv.local/example-app:pr-101``): there is no registry, so pods run only what was loaded this way.

        Raises:
            ClusterError: the cluster has no real node, its containerd is not running, or ctr refused the archive.
        """
        node = self.real_node()
        if node is None:
            raise ClusterError(f"cluster {self.name} has no real node to load images into (up --nodes real|both)")
        if not node.containerd.socket.exists():
            raise ClusterError(f"the real node of cluster {self.name} is not running (prenv cluster up)")
        images.import_archive(image, node.containerd.socket, also_as=also_as)

    @property
    def name(self) -> str:
        return self.layout.name

    # ----------------------------------------------------------------------------------------------- status

    def status(self) -> ClusterStatus:
        """Running, stopped or broken; never raises for a missing or half-removed cluster."""
        layout = self.layout
        server = self._server()

        def result(state: ClusterState, detail: str = "", missing: tuple[str, ...] = ()) -> ClusterStatus:
            return ClusterStatus(
                state,
                layout.kubeconfig,
                server,
                detail,
                missing,
                ca=layout.ca_cert if layout.ca_cert.exists() else None,
                ingress=traefik.read_ports(layout.traefik_config),
                nodes=self._node_counts(),
            )

        try:
            record = kwokctl.read_record(layout)
        except ClusterError as e:
            return result(ClusterState.BROKEN, str(e))
        if record is None:
            return result(ClusterState.STOPPED)
        alive: list[str] = []
        dead: list[str] = []
        for name, pidfile, marker in self._expected_processes(record):
            pid = processes.read_pidfile(pidfile)
            (alive if pid is not None and processes.is_alive(pid, marker) else dead).append(name)
        if not alive:
            return result(ClusterState.STOPPED)
        if dead:
            return result(ClusterState.BROKEN, f"not running: {', '.join(dead)}", tuple(dead))
        try:
            with contextlib.closing(bootstrap.api_client(layout.kubeconfig)) as api:
                ok = bootstrap.readyz(api)
        except Exception as e:  # any failure to reach /readyz means "broken"; the detail says which
            return result(ClusterState.BROKEN, f"apiserver unreachable: {type(e).__name__}")
        if not ok:
            return result(ClusterState.BROKEN, "apiserver /readyz is not ok")
        return result(ClusterState.RUNNING)

    def _expected_processes(self, record: kwokctl.KwokRecord | None) -> list[tuple[str, Path, str]]:
        """``(name, pidfile, command-line marker)`` of every process the cluster runs, in start order."""
        expected = [(c.name, c.pidfile, str(c.binary)) for c in (record.components if record else ())]
        expected.append(("traefik", self.layout.traefik_pidfile, traefik.marker(self.layout.traefik_config)))
        if self.node_kinds.real:
            try:
                node = NodeLayout(self.layout.node_dir)
            except ConfigError:  # a state dir too deep for containerd's socket: up refuses it before starting
                return expected
            expected += [
                (REAL_NODE_PROCESSES[0], node.containerd_pidfile, str(node.containerd_config)),
                (REAL_NODE_PROCESSES[1], node.kubelet_pidfile, str(node.kubelet_config)),
                (REAL_NODE_PROCESSES[2], node.proxy_pidfile, str(node.proxy_config)),
                (REAL_NODE_PROCESSES[3], node.dns_pidfile, str(node.corefile)),
            ]
        return expected

    def _node_counts(self) -> NodeCounts:
        return NodeCounts(real=1 if self.node_kinds.real else 0, kwok=self.nodes.count)

    def _server(self) -> str | None:
        try:
            config = yaml.safe_load(self.layout.kubeconfig.read_text())
            return str(config["clusters"][0]["cluster"]["server"])
        except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
            return None

    def info(self) -> ClusterInfo:
        record = kwokctl.read_record(self.layout)
        server = self._server()
        if record is None or server is None:
            raise ClusterError(f"cluster {self.name} does not exist (no {self.layout.kwok_config})")
        ingress = traefik.read_ports(self.layout.traefik_config)
        if ingress is None:
            raise ClusterError(f"cluster {self.name} has no ingress controller (no {self.layout.traefik_config})")
        return ClusterInfo(
            name=self.name,
            kubeconfig=self.layout.kubeconfig,
            server=server,
            context=self.layout.context,
            state_dir=self.layout.root,
            ports=tuple(sorted({*record.ports.values(), ingress.http, ingress.https})),
            nodes=(*self.nodes.names(), *((self.real_node_name,) if self.node_kinds.real else ())),
            ingress_class=self.ingress_class,
            ingress_ip=self.ingress_ip,
            ingress=ingress,
            ca=self.layout.ca_cert,
        )

    def pids(self) -> dict[str, int]:
        """Live pid of every process of the cluster, by component name."""
        found: dict[str, int] = {}
        for name, pidfile, marker in self._expected_processes(kwokctl.read_record(self.layout)):
            pid = processes.read_pidfile(pidfile)
            if pid is not None and processes.is_alive(pid, marker):
                found[name] = pid
        return found

    def rss_bytes(self) -> int:
        """Resident memory of the whole cluster: the sum over its processes."""
        return sum(procs.rss_bytes(pid) for pid in self.pids().values())

    # ------------------------------------------------------------------------------------------------- up

    def up(self, progress: Progress | None = None) -> ClusterInfo:
        """Start the cluster and return once it is usable; a running cluster is left as it is.

        A stopped cluster (processes gone, data kept) is started again with its data; so are the missing
        processes of a broken one. A broken cluster whose processes all run (apiserver unhealthy) is removed and
        created afresh. Raises ToolError if a binary is missing, ClusterError if it does not become ready.
        """
        report = progress or _log_progress
        started = time.monotonic()

        def step(text: str) -> None:
            report(text, time.monotonic() - started)

        if self.node_kinds.real:
            NodeLayout(self.layout.node_dir)  # ConfigError now, before anything starts, if the dir is too deep
        with self._locked():
            status = self.status()
            if status.state is ClusterState.RUNNING:
                step(f"cluster {self.name} is already running")
                return self.info()
            tools = kwokctl.resolve_toolset(self._tool_path)
            step(f"toolchain: Kubernetes {tools.kube_version}, {len(tools.stage_configs)} KWOK stage file(s)")
            if status.state is ClusterState.BROKEN and status.missing:
                step(f"cluster {self.name} is broken ({status.detail}); starting what is missing")
            elif status.state is ClusterState.BROKEN:
                # Everything runs yet the apiserver is not healthy: nothing to restart, start over.
                step(f"cluster {self.name} is broken ({status.detail}); recreating it")
                self._down(step)
            if kwokctl.read_record(self.layout) is not None:
                self._restart(tools, step)
            else:
                self._create(tools, step)
                self._record_kinds()
            try:
                self._bootstrap(tools, step)
            except ClusterError as e:
                logger.error("component logs:\n%s", kwokctl.component_logs(self.layout))
                raise ClusterError(
                    f"cluster {self.name} did not become ready: {e}\nLogs are in {self.layout.logs_dir}; "
                    f"`prenv cluster down --name {self.name}` removes what was started."
                ) from e
            step(f"cluster {self.name} ready; kubeconfig {self.layout.kubeconfig}")
            return self.info()

    def _create(self, tools: kwokctl.Toolset, step: Callable[[str], None]) -> None:
        for attempt in (1, 2):
            self.layout.root.mkdir(parents=True, exist_ok=True)
            ports = dict(zip(kwokctl.PORT_OPTIONS, procs.free_ports(len(kwokctl.PORT_OPTIONS)), strict=True))
            advertise = self.node_network.gateway if self.node_kinds.real else None
            self.layout.kwokctl_options.write_text(
                kwokctl.options_document(ports, self.layout.pki_dir, advertise_address=advertise)
            )
            command = kwokctl.create_command(self.layout, tools)
            try:
                kwokctl.run(command, self.layout.kwokctl_log, timeout=240, what="kwokctl create cluster")
            except ClusterError:
                # Ports are free when chosen and taken a few seconds later; another process may have won one.
                if attempt == 1 and processes.port_in_use_error(kwokctl.component_logs(self.layout, 50)):
                    step("a port was taken meanwhile; retrying with new ports")
                    self._down(step)
                    continue
                raise
            step("control plane started (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok)")
            return

    def _restart(self, tools: kwokctl.Toolset, step: Callable[[str], None]) -> None:
        # kwokctl skips a component whose recorded pid answers signal 0, which a killed but not yet reaped
        # process (a zombie) still does; drop the pidfiles of everything we know to be dead.
        record = kwokctl.read_record(self.layout)
        for component in record.components if record else ():
            pid = processes.read_pidfile(component.pidfile)
            if pid is not None and not processes.is_alive(pid, str(component.binary)):
                component.pidfile.unlink(missing_ok=True)
        kwokctl.run(
            kwokctl.start_command(self.layout, tools),
            self.layout.kwokctl_log,
            timeout=240,
            what="kwokctl start cluster",
        )
        step("control plane (re)started with its existing data")

    def _bootstrap(self, tools: kwokctl.Toolset, step: Callable[[str], None]) -> None:
        with contextlib.closing(bootstrap.api_client(self.layout.kubeconfig)) as api:
            bootstrap.wait_until("apiserver /readyz", lambda: bootstrap.readyz(api), timeout=READY_TIMEOUT)
            step("apiserver ready")
            bootstrap.create_objects(api, self.nodes, self.ingress_class, tools.kube_version)
            pki.ensure_ca(self.layout.tls_dir, f"prenv local CA ({self.name})")
            if self.node_kinds.real:
                # First: its bridge address is where Traefik relays the pods' API traffic from.
                self._start_real_node(api, step)
            ports = self._start_traefik(tools)
            step(
                f"{self.nodes.count} fake nodes and IngressClass {self.ingress_class} in place; Traefik on "
                f"http://127.0.0.1:{ports.http} and https://127.0.0.1:{ports.https}"
            )
            names = self.nodes.names()
            if names:
                bootstrap.wait_until(
                    "nodes Ready and schedulable", lambda: bootstrap.nodes_ready(api, names), timeout=READY_TIMEOUT
                )
                step(f"nodes Ready and schedulable: {', '.join(names)}")
            bootstrap.wait_until(
                "ServiceAccount default/default",
                lambda: bootstrap.default_service_account(api),
                timeout=READY_TIMEOUT,
            )
            step("ServiceAccount default/default exists")

            bootstrap.wait_until(
                "Traefik listening on its entryPoints",
                lambda: self._traefik_listening(ports),
                timeout=READY_TIMEOUT,
            )
            step("Traefik serving")

    def _start_real_node(self, api: client.ApiClient, step: Callable[[str], None]) -> None:
        """containerd, the kubelet, kube-proxy and CoreDNS; with fake nodes too, KWOK's pod range blackholed first
        (before kube-proxy programs DNAT rules to made-up pod addresses)."""
        node = self.real_node()
        assert node is not None
        if self.node_kinds.kwok:
            routes.add_blackhole(bootstrap.FAKE_POD_RANGE)
            step(f"KWOK's pod range {bootstrap.FAKE_POD_RANGE} routed to a blackhole")
        kubeconfig = self.layout.kubeconfig
        started = node.up(kubeconfig=kubeconfig, client_ca=_cluster_ca(kubeconfig))
        node.start_proxy(kubeconfig=kubeconfig)
        node.start_dns(kubeconfig=kubeconfig)
        step(f"real node {node.name}: containerd, kubelet, kube-proxy and CoreDNS on {started.node_ip}")
        try:
            bootstrap.wait_until(
                f"real node {node.name} Ready",
                lambda: bootstrap.nodes_ready(api, (node.name,)),
                timeout=READY_TIMEOUT,
                interval=0.5,
            )
            bootstrap.wait_until("CoreDNS ready", node.dns_ready, timeout=READY_TIMEOUT, interval=0.5)
        except ClusterError as e:
            raise ClusterError(f"{e}; see {node.layout.kubelet_log} and {node.layout.dns_log}") from e
        step(f"real node {node.name} Ready, CoreDNS serving on {started.node_ip}:53")

    def _start_traefik(self, tools: kwokctl.Toolset) -> IngressPorts:
        """Start Traefik unless it runs; its ports are chosen on the first start and kept in its config file."""
        layout = self.layout
        ports = traefik.read_ports(layout.traefik_config)
        marker = traefik.marker(layout.traefik_config)
        pid = processes.read_pidfile(layout.traefik_pidfile)
        if ports is not None and pid is not None and processes.is_alive(pid, marker):
            return ports
        if ports is None or procs.listening_ports([ports.http, ports.https]):
            # First start, or someone else took a port while the cluster was stopped: choose afresh.
            http, https = procs.free_ports(2)
            ports = IngressPorts(http=http, https=https)
        relay = None
        record = kwokctl.read_record(layout)
        if self.node_kinds.real and record is not None and "kubeApiserverPort" in record.ports:
            apiserver_port = int(record.ports["kubeApiserverPort"])
            relay_file = layout.traefik_config.with_name("traefik-relay.yaml")
            traefik.write_config(relay_file, traefik.relay_config(apiserver_port))
            relay = (self.node_network.gateway, apiserver_port, relay_file)
        config = traefik.static_config(
            ingress_class=self.ingress_class,
            ingress_ip=self.ingress_ip,
            ports=ports,
            log=layout.traefik_log,
            relay=relay,
        )
        traefik.write_config(layout.traefik_config, config)
        pid = processes.spawn_detached(
            traefik.command(tools.traefik, layout.traefik_config),
            log=layout.traefik_log,
            pidfile=layout.traefik_pidfile,
            cwd=layout.root,
            env=traefik.environment(layout.kubeconfig),
        )
        logger.debug("traefik started as pid %d", pid)
        return ports

    def _traefik_listening(self, ports: IngressPorts) -> bool:
        pid = processes.read_pidfile(self.layout.traefik_pidfile)
        if pid is None or not processes.is_alive(pid, traefik.marker(self.layout.traefik_config)):
            raise ClusterError(
                f"traefik exited; see {self.layout.traefik_log}:\n{kwokctl.tail(self._traefik_log_text())}"
            )
        return procs.listening_ports([ports.http, ports.https]) == {ports.http, ports.https}

    def _traefik_log_text(self) -> str:
        try:
            return self.layout.traefik_log.read_text(errors="replace")
        except OSError:
            return ""

    def wildcard_certificate(self, base_domain: str) -> pki.KeyPair:
        """The ``*.<base_domain>`` certificate and key (PEM files) signed by this cluster's CA, made once and
        reused; hand them to the shared stack (``prenv:wildcardCertFile`` / ``prenv:wildcardKeyFile``)."""
        with self._locked():
            ca = pki.ensure_ca(self.layout.tls_dir, f"prenv local CA ({self.name})")
            return pki.ensure_wildcard(self.layout.tls_dir, ca, base_domain)

    # ----------------------------------------------------------------------------------------------- down

    def down(self, progress: Progress | None = None) -> None:
        """Stop every process, check that no port is left listening, and remove the cluster's directory."""
        report = progress or _log_progress
        started = time.monotonic()

        def step(text: str) -> None:
            report(text, time.monotonic() - started)

        with self._locked(remove=True):
            self._down(step)

    def _down(self, step: Callable[[str], None]) -> None:
        layout = self.layout
        if not layout.root.exists():
            step(f"cluster {self.name} does not exist")
            return
        record = kwokctl.read_record(layout)
        ports = set(record.ports.values()) if record else set()
        ingress = traefik.read_ports(layout.traefik_config)
        if ingress is not None:
            ports |= {ingress.http, ingress.https}
        # The real node's processes are the node teardown's to stop (below), not a bare kill's.
        targets = [
            (pidfile, marker)
            for name, pidfile, marker in self._expected_processes(record)
            if name not in REAL_NODE_PROCESSES
        ]
        # A cluster started before Traefik served it may still run the ingress status publisher Traefik replaced.
        targets.append((layout.root / "ingress-publisher.pid", "prenv.cluster.ingress_publisher"))
        pids = [(pid, marker) for pidfile, marker in targets if (pid := processes.read_pidfile(pidfile)) is not None]
        # One at a time, in reverse start order (kwokctl's own order): clients before the apiserver, the
        # apiserver before etcd, or the apiserver's graceful shutdown hangs on a vanished etcd. No kwokctl
        # needed, so down works even when the toolchain is gone.
        node = self.real_node() if layout.node_dir.exists() else None
        if node is not None:
            # Before the control plane: the node's teardown stops what talks to the apiserver first, and it
            # removes what a bare kill would leave (shims, mounts, bridge, iptables chains).
            node.down()
            step(f"real node {node.name} torn down")
        if self.node_kinds.real and self.node_kinds.kwok:
            routes.remove_blackhole(bootstrap.FAKE_POD_RANGE)
        killed = [pid for target in reversed(pids) for pid in processes.terminate([target], grace=STOP_GRACE)]
        step(f"stopped {len(pids)} process(es)" + (f" ({len(killed)} needed SIGKILL)" if killed else ""))
        busy = procs.wait_port_released(ports, timeout=STOP_GRACE)
        if busy:
            raise ClusterError(f"ports still listening after stopping cluster {self.name}: {sorted(busy)}")
        shutil.rmtree(layout.root, ignore_errors=False)
        step(f"removed {layout.root}")

    @contextlib.contextmanager
    def _locked(self, *, remove: bool = False) -> Iterator[None]:
        """Hold the cluster's lock file; with ``remove``, delete it before releasing (used by ``down``).

        A waiter may have opened the file just before it was deleted, so after locking we check that the
        path still names the file we hold, and start over if not.
        """
        path = self.layout.lock_file
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            f = path.open("a")
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                current = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            f.close()
        try:
            yield
        finally:
            if remove:
                path.unlink(missing_ok=True)
            f.close()


def _cluster_ca(kubeconfig: Path) -> Path:
    """The CA file the cluster's kubeconfig trusts: the kubelet trusts it for clients too (kwokctl writes a path,
    relative to the kubeconfig or not)."""
    conf = yaml.safe_load(kubeconfig.read_text())
    path = Path(conf["clusters"][0]["cluster"]["certificate-authority"])
    return path if path.is_absolute() else kubeconfig.parent / path
