"""The real node's generated files and teardown decisions, checked without starting anything.

These are plain functions over text (config files, ``iptables-save`` output, ``/proc/self/mountinfo``); the
node tests next to this file run the same code against containerd, runc, the CNI plugins and iptables.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

from prenv.cluster.node import config, containerd, images, kubelet, teardown
from prenv.cluster.node.layout import NodeLayout, NodeNetwork
from prenv.errors import ClusterError, ConfigError

LAYOUT = NodeLayout(Path("/srv/state/cluster/prenv/node"))
NETWORK = NodeNetwork()


def test_containerd_keeps_every_path_under_the_node_and_restricts_oom_score_adj() -> None:
    conf = tomllib.loads(containerd.render_config(LAYOUT, "prenv.local/pause:1.0"))
    assert conf["version"] == 2
    assert conf["root"] == "/srv/state/cluster/prenv/node/containerd/root"
    assert conf["state"] == "/srv/state/cluster/prenv/node/containerd/state"
    assert conf["grpc"]["address"] == "/srv/state/cluster/prenv/node/containerd/containerd.sock"
    assert conf["plugins"]["io.containerd.internal.v1.opt"]["path"].startswith(str(LAYOUT.root))
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "prenv.local/pause:1.0"
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["stream_server_address"] == "127.0.0.1"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"] == {"SystemdCgroup": False, "Root": str(LAYOUT.runc_root)}
    assert cri["containerd"]["default_runtime_name"] == "runc"
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": str(LAYOUT.cni_conf_dir), "max_conf_num": 1}


def test_kubelet_uses_cgroupfs_tolerates_swap_and_cgroup_v1_and_never_collects_images() -> None:
    settings = config.KubeletSettings(client_ca_file=Path("/pki/ca.crt"), cluster_dns=("10.96.0.10",))
    conf = config.kubelet_config(LAYOUT, NETWORK, settings)
    assert conf["kind"] == "KubeletConfiguration"
    assert (conf["cgroupDriver"], conf["failSwapOn"], conf["failCgroupV1"]) == ("cgroupfs", False, False)
    assert conf["containerRuntimeEndpoint"] == f"unix://{LAYOUT.containerd_socket}"
    assert conf["imageGCHighThresholdPercent"] == 100
    assert conf["address"] == NETWORK.gateway == "10.244.0.1"  # the node IP, on our own bridge
    assert conf["healthzBindAddress"] == "127.0.0.1"
    assert conf["cgroupRoot"] == "/prenv-node"
    assert conf["podLogsDir"].startswith(str(LAYOUT.root))
    assert conf["volumePluginDir"].startswith(str(LAYOUT.root))
    assert conf["readOnlyPort"] == 0
    assert conf["clusterDNS"] == ["10.96.0.10"]
    assert conf["podCIDR"] == NETWORK.subnet


def test_kubelet_config_file_is_yaml_that_reads_back_the_same(tmp_path: Path) -> None:
    layout = NodeLayout(tmp_path / "node")
    settings = config.KubeletSettings(client_ca_file=Path("/pki/ca.crt"), cluster_dns=("10.96.0.10",))
    path = config.write_kubelet_config(layout, NETWORK, settings)
    assert yaml.safe_load(path.read_text()) == config.kubelet_config(layout, NETWORK, settings)


def test_cni_list_is_a_bridge_with_host_local_ipam_in_the_node_dir_then_portmap(tmp_path: Path) -> None:
    layout = NodeLayout(tmp_path / "node")
    (layout.cni_conf_dir).mkdir(parents=True)
    (layout.cni_conf_dir / "05-old.conflist").write_text("{}")
    path = config.write_cni_conflist(layout, NodeNetwork(name="prenv-a", bridge="pra0", subnet="10.245.3.0/24"))
    assert sorted(p.name for p in layout.cni_conf_dir.iterdir()) == [config.CONFLIST_NAME]
    conf = json.loads(path.read_text())
    assert conf["name"] == "prenv-a"
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap"]
    bridge = conf["plugins"][0]
    assert (bridge["bridge"], bridge["isGateway"], bridge["ipMasq"], bridge["hairpinMode"]) == (
        "pra0",
        True,
        True,
        True,
    )
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.245.3.0/24", "gateway": "10.245.3.1"}]]
    assert bridge["ipam"]["dataDir"] == str(layout.cni_ipam_dir)
    assert conf["plugins"][1]["capabilities"] == {"portMappings": True}


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"bridge": "a-bridge-name-too-long"}, "node bridge"),
        ({"bridge": "Br0"}, "node bridge"),
        ({"subnet": "10.244.0.0/30"}, "node subnet"),
        ({"subnet": "8.8.8.0/24"}, "node subnet"),
        ({"subnet": "fd00::/64"}, "node subnet"),
        ({"name": "Not A Name"}, "node network name"),
    ],
    ids=["bridge-over-15-chars", "bridge-uppercase", "subnet-too-small", "subnet-public", "subnet-ipv6", "bad-name"],
)
def test_a_node_network_that_cannot_work_is_refused_naming_the_setting(kwargs: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        NodeNetwork(**kwargs)


def test_a_node_dir_too_deep_for_containerds_socket_is_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="too deep"):
        NodeLayout(Path("/" + "d" * 90))
    assert NodeLayout(Path("/" + "d" * 60)).containerd_socket.name == "containerd.sock"


@pytest.mark.parametrize(
    ("ref", "repository", "tag"),
    [("prenv.local/pause:1.0", "prenv.local/pause", "1.0"), ("localhost:5000/app:pr-7", "localhost:5000/app", "pr-7")],
)
def test_image_references_split_into_base_name_and_tag(ref: str, repository: str, tag: str) -> None:
    parsed = images.ImageRef.parse(ref)
    assert (parsed.repository, parsed.tag, str(parsed)) == (repository, tag, ref)


@pytest.mark.parametrize("ref", ["pause", "prenv.local/pause", "localhost:5000/app", "app@sha256:abc"])
def test_an_image_reference_without_a_tag_is_refused(ref: str) -> None:
    with pytest.raises(ClusterError):
        images.ImageRef.parse(ref)


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
101 22 0:52 / /srv/state/cluster/prenv/node/containerd/state/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw - overlay overlay rw
102 22 0:53 / /srv/state/cluster/prenv/node/containerd/state/netns/cni-1 rw - nsfs nsfs rw
103 22 0:54 / /srv/state/cluster/prenv/node/kubelet/pods/u1/volumes/my\\040vol rw - tmpfs tmpfs rw
104 22 0:55 / /srv/state/cluster/prenv/node-other/x rw - tmpfs tmpfs rw
"""  # noqa: E501


def test_mounts_below_the_node_are_found_deepest_first_with_escapes_decoded() -> None:
    points = teardown.mounts_below(LAYOUT.mount_roots(), MOUNTINFO)
    assert points == [
        LAYOUT.containerd_state / "io.containerd.runtime.v2.task/k8s.io/abc/rootfs",
        LAYOUT.kubelet_dir / "pods/u1/volumes/my vol",
        LAYOUT.containerd_state / "netns/cni-1",
    ]


# iptables-save on this machine (nf_tables backend) with one pod sandbox of network "prenv" (bridge with ipMasq,
# portmap with hostPort 18080 on 127.0.0.1), as captured from the CNI plugins, plus one sandbox of another
# network "other" added by hand; ids shortened.
IPTABLES_NAT = """\
# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:CNI-0aa8d5c6d3b4ba1cee3ac6b6 - [0:0]
:CNI-1bb2c5e6f7a8b9c0d1e2f3a4 - [0:0]
:CNI-DN-0aa8d5c6d3b4ba1cee3ac - [0:0]
:CNI-HOSTPORT-DNAT - [0:0]
:CNI-HOSTPORT-MASQ - [0:0]
:CNI-HOSTPORT-SETMARK - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
-A POSTROUTING -s 10.244.0.2/32 -m comment --comment "name: \\"prenv\\" id: \\"d2c1\\"" -j CNI-0aa8d5c6d3b4ba1cee3ac6b6
-A POSTROUTING -s 10.245.0.2/32 -m comment --comment "name: \\"other\\" id: \\"e3f4\\"" -j CNI-1bb2c5e6f7a8b9c0d1e2f3a4
-A CNI-0aa8d5c6d3b4ba1cee3ac6b6 -d 10.244.0.0/24 -m comment --comment "name: \\"prenv\\" id: \\"d2c1\\"" -j ACCEPT
-A CNI-0aa8d5c6d3b4ba1cee3ac6b6 ! -d 224.0.0.0/4 -m comment --comment "name: \\"prenv\\" id: \\"d2c1\\"" -j MASQUERADE
-A CNI-1bb2c5e6f7a8b9c0d1e2f3a4 -d 10.245.0.0/24 -m comment --comment "name: \\"other\\" id: \\"e3f4\\"" -j ACCEPT
-A CNI-DN-0aa8d5c6d3b4ba1cee3ac -s 10.244.0.0/24 -d 127.0.0.1/32 -p tcp -m tcp --dport 18080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-0aa8d5c6d3b4ba1cee3ac -s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp -m tcp --dport 18080 -j CNI-HOSTPORT-SETMARK
-A CNI-DN-0aa8d5c6d3b4ba1cee3ac -d 127.0.0.1/32 -p tcp -m tcp --dport 18080 -j DNAT --to-destination 10.244.0.2:80
-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"prenv\\" id: \\"d2c1\\"" -m multiport --dports 18080 -j CNI-DN-0aa8d5c6d3b4ba1cee3ac
-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE
-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
COMMIT
"""  # noqa: E501


def test_only_our_networks_rules_and_chains_are_removed_while_another_network_remains() -> None:
    (nat,) = teardown.parse_iptables_save(IPTABLES_NAT)
    commands = [" ".join(c) for c in teardown.cleanup_commands(nat, "prenv")]
    assert commands == [
        '-t nat -D POSTROUTING -s 10.244.0.2/32 -m comment --comment name: "prenv" id: "d2c1" '
        "-j CNI-0aa8d5c6d3b4ba1cee3ac6b6",
        '-t nat -D CNI-HOSTPORT-DNAT -p tcp -m comment --comment dnat name: "prenv" id: "d2c1" '
        "-m multiport --dports 18080 -j CNI-DN-0aa8d5c6d3b4ba1cee3ac",
        "-t nat -F CNI-0aa8d5c6d3b4ba1cee3ac6b6",
        "-t nat -F CNI-DN-0aa8d5c6d3b4ba1cee3ac",
        "-t nat -X CNI-0aa8d5c6d3b4ba1cee3ac6b6",
        "-t nat -X CNI-DN-0aa8d5c6d3b4ba1cee3ac",
    ]  # portmap's shared chains stay: "other" still has rules


def test_portmaps_shared_chains_go_once_no_other_network_is_left() -> None:
    alone = "\n".join(line for line in IPTABLES_NAT.splitlines() if "other" not in line and "1bb2" not in line)
    (nat,) = teardown.parse_iptables_save(alone + "\n")
    commands = [" ".join(c) for c in teardown.cleanup_commands(nat, "prenv")]
    assert commands[-9:] == [
        "-t nat -D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-t nat -D OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT",
        "-t nat -D POSTROUTING -m comment --comment CNI portfwd requiring masquerade -j CNI-HOSTPORT-MASQ",
        "-t nat -F CNI-HOSTPORT-DNAT",
        "-t nat -F CNI-HOSTPORT-SETMARK",
        "-t nat -F CNI-HOSTPORT-MASQ",
        "-t nat -X CNI-HOSTPORT-DNAT",
        "-t nat -X CNI-HOSTPORT-SETMARK",
        "-t nat -X CNI-HOSTPORT-MASQ",
    ]
    assert teardown.cleanup_commands(nat, "nobody") == []  # prenv's rules are still there: nothing shared goes


def test_a_network_whose_name_is_a_prefix_of_ours_is_not_ours() -> None:
    (nat,) = teardown.parse_iptables_save(IPTABLES_NAT.replace('\\"other\\"', '\\"prenv-2\\"'))
    touched = " ".join(" ".join(c) for c in teardown.cleanup_commands(nat, "prenv"))
    assert "1bb2c5e6f7a8b9c0d1e2f3a4" not in touched


def test_cgroup_hierarchies_are_every_cgroup_v1_and_v2_mount() -> None:
    mountinfo = (
        "30 22 0:26 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n"
        "31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
        "32 30 0:28 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
        "33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    )
    assert kubelet.cgroup_hierarchies(mountinfo) == [
        Path("/sys/fs/cgroup/cpu,cpuacct"),
        Path("/sys/fs/cgroup/memory"),
        Path("/sys/fs/cgroup/systemd"),
        Path("/sys/fs/cgroup/unified"),
    ]


def test_kernel_settings_are_recorded_once_and_written_back(tmp_path: Path) -> None:
    proc_sys = tmp_path / "sys"
    for key, value in {"kernel/panic": "1", "vm/overcommit_memory": "0", "net/ipv4/ip_forward": "0"}.items():
        (proc_sys / key).parent.mkdir(parents=True, exist_ok=True)
        (proc_sys / key).write_text(f"{value}\n")
    layout = NodeLayout(tmp_path / "node")
    kubelet.record_kernel_settings(layout, proc_sys)
    (proc_sys / "kernel/panic").write_text("10\n")  # what the kubelet does
    (proc_sys / "net/ipv4/ip_forward").write_text("1\n")  # what the bridge plugin does
    assert kubelet.record_kernel_settings(layout, proc_sys)["kernel/panic"] == "1"  # a second start keeps the first
    assert kubelet.restore_kernel_settings(layout, proc_sys) == []
    assert (proc_sys / "kernel/panic").read_text().strip() == "1"
    assert (proc_sys / "net/ipv4/ip_forward").read_text().strip() == "0"
    assert (proc_sys / "vm/overcommit_memory").read_text().strip() == "0"
