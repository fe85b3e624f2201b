"""The image archives prenv builds are accepted by the containerd the real node runs (Debian's 1.6).

Each test module run starts a throwaway containerd with its own root, state, socket and config under a fresh /tmp
directory (short enough for a unix socket path), with the CRI plugin off: importing needs only the content store,
the image store and the overlayfs snapshotter. Teardown stops it and checks that nothing is left: no process naming
its directory, no mount below it, no file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.images import build_example_app, example_app_spec
from prenv import procs
from prenv.cluster.images import BuiltImage, build_image, import_archive, pause_image

pytestmark = pytest.mark.integration

INSTALL = "apt-get install -y containerd runc umoci"
NAMESPACE = "k8s.io"  # the CRI's namespace: what pods on the node see

CONFIG = """version = 2
root = "{dir}/root"
state = "{dir}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{dir}/containerd.sock"

[ttrpc]
  address = "{dir}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{dir}/opt"
"""


@dataclass(frozen=True)
class Containerd:
    dir: Path
    socket: Path

    def ctr(self, *args: str) -> str:
        argv = ["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=120).stdout


def _mounts_below(path: Path) -> list[str]:
    mountpoints = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    return [m for m in mountpoints if m == str(path) or m.startswith(f"{path}/")]


def _processes_naming(path: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline and procs.process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def containerd() -> Iterator[Containerd]:
    missing = [tool for tool in ("containerd", "ctr", "umoci") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed; run: {INSTALL}", pytrace=False)
    work = Path(tempfile.mkdtemp(prefix="prenv-ctrd-", dir="/tmp"))
    config = work / "config.toml"
    config.write_text(CONFIG.format(dir=work))
    daemon = Containerd(dir=work, socket=work / "containerd.sock")
    with (work / "containerd.log").open("wb") as log:
        proc = subprocess.Popen(
            ["containerd", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        procs.wait_until(
            "containerd's socket",
            lambda: (
                proc.poll() is None
                and subprocess.run(
                    ["ctr", "--address", str(daemon.socket), "version"], capture_output=True, check=False
                ).returncode
                == 0
            ),
            timeout=30,
            interval=0.2,
        )
        yield daemon
    finally:
        log_tail = (work / "containerd.log").read_text(errors="replace").splitlines()[-20:]
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        left = {"processes": _processes_naming(work), "mounts": _mounts_below(work)}
        shutil.rmtree(work, ignore_errors=True)
        assert left == {"processes": [], "mounts": []}, "\n".join(log_tail)
        assert not work.exists()


@pytest.fixture(scope="module")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    return build_example_app(tmp_path_factory.mktemp("state"))


def _listed(daemon: Containerd) -> dict[str, str]:
    """``ctr images ls``: ref -> manifest digest."""
    lines = daemon.ctr("images", "ls").splitlines()[1:]
    return {line.split()[0]: line.split()[2] for line in lines if line.strip()}


def test_containerd_imports_the_example_app_under_its_ref_and_the_template_tag(
    containerd: Containerd, app_image: BuiltImage
) -> None:
    import_archive(app_image, containerd.socket, also_as=("prenv.local/example-app:pr-101",))

    listed = _listed(containerd)
    assert listed["prenv.local/example-app:dev"] == app_image.manifest_digest
    assert listed["prenv.local/example-app:pr-101"] == app_image.manifest_digest
    # Unpacked into the overlayfs snapshotter: the layer (with its "/" entry) applied cleanly.
    assert containerd.ctr("snapshots", "ls").count("Committed") >= 1


def test_the_imported_config_has_the_entrypoint_port_and_non_root_user(
    containerd: Containerd, app_image: BuiltImage
) -> None:
    import_archive(app_image, containerd.socket)

    config = json.loads(containerd.ctr("content", "get", app_image.config_digest))["config"]
    assert config["Entrypoint"] == ["/app"]
    assert config["User"] == "65532:65532"
    assert config["Env"] == ["PORT=8080"]
    assert config["ExposedPorts"] == {"8080/tcp": {}}


def test_importing_the_same_archive_again_changes_nothing(containerd: Containerd, app_image: BuiltImage) -> None:
    import_archive(app_image, containerd.socket)
    before = _listed(containerd)
    import_archive(app_image, containerd.socket)

    assert _listed(containerd) == before


def test_containerd_imports_the_pause_image(containerd: Containerd, app_image: BuiltImage, tmp_path: Path) -> None:
    # Any static binary stands in for the pause program here: this is about the archive, not the process.
    binary = app_image.archive.parent / "example-app"
    pause = pause_image(binary, tmp_path / "pause.tar", "test")

    import_archive(pause, containerd.socket)

    assert _listed(containerd)["prenv.local/pause:test"] == pause.manifest_digest
    config = json.loads(containerd.ctr("content", "get", pause.config_digest))["config"]
    assert (config["Entrypoint"], config["User"]) == (["/pause"], "65535:65535")


def test_an_import_with_base_name_as_the_node_does_gives_the_same_ref(
    containerd: Containerd, tmp_path: Path, app_image: BuiltImage
) -> None:
    # prenv.cluster.node.images imports with --base-name <repository>; the archive's full-name annotation matches it.
    spec = example_app_spec(app_image.archive.parent / "example-app", tag="base-name")
    built = build_image(spec, tmp_path / "app.tar")

    containerd.ctr("images", "import", "--base-name", "prenv.local/example-app", str(built.archive))

    assert _listed(containerd)["prenv.local/example-app:base-name"] == built.manifest_digest


def _get(url: str) -> tuple[int, str]:
    """Status and the page's <h1> text (or the whole body when it has none)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 (a local http URL)
            status, body = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
    heading = body.split("<h1>", 1)[1].split("</h1>", 1)[0] if "<h1>" in body else body.strip()
    return status, heading


def test_the_app_image_runs_in_a_runc_container_as_its_non_root_user(
    containerd: Containerd, app_image: BuiltImage
) -> None:
    if shutil.which("runc") is None:
        pytest.fail(f"runc not installed; run: {INSTALL}", pytrace=False)
    import_archive(app_image, containerd.socket)
    name = f"prenv-test-{uuid.uuid4().hex[:12]}"
    port = procs.free_port()
    # Host network so the test can reach it, on 127.0.0.1 only; its own cgroup, which runc removes on delete.
    containerd.ctr(
        "run", "--detach", "--net-host", "--cgroup", f"/{name}",
        "--env", "HOST=127.0.0.1", "--env", f"PORT={port}", "--env", "PRENV_PR=5",
        app_image.ref, name,
    )  # fmt: skip
    try:
        procs.wait_until("the app in its container", lambda: port in procs.listening_ports([port]), timeout=20)
        (pid,) = [line.split()[1] for line in containerd.ctr("task", "ls").splitlines() if line.startswith(name)]
        status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        assert status["Uid"].split()[:2] == ["65532", "65532"]
        # No DATABASE_URL: the page says so and both answer 503, which is the app working as designed.
        assert _get(f"http://127.0.0.1:{port}/") == (503, "Preview of PR 5")
        assert _get(f"http://127.0.0.1:{port}/healthz") == (503, "database unreachable")
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            containerd.ctr("task", "kill", "--signal", "SIGTERM", name)
        procs.wait_until(
            "the app to stop", lambda: "RUNNING" not in containerd.ctr("task", "ls"), timeout=20, interval=0.2
        )
        containerd.ctr("task", "delete", name)
        containerd.ctr("containers", "delete", name)
    assert list(Path("/sys/fs/cgroup").glob(f"*/{name}")) == []
    assert name not in containerd.ctr("containers", "ls")
