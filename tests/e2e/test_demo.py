"""``make demo`` and ``make demo-down`` as a user runs them: three HTTPS pages, then nothing left behind.

The demo runs in a state dir of the test's own (``PRENV_STATE_DIR``) under the machine-wide real-node lock. It
uses the default cluster name and node network, so it refuses to start when a real node already runs on the
machine (a developer's own demo): two would fight over the same bridge and iptables chains.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.localdb import LocalPostgres
from prenv.cluster.node import teardown
from prenv.cluster.runtime import REAL_NODE_NETWORK
from tests.fixtures.node import one_node_at_a_time
from tests.integration.test_node_kubelet import k8s_and_cni_rules

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def demo(command: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRENV_STATE_DIR": str(state), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "devtools.demo", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )


def ours(state: Path) -> list[str]:
    """Processes whose command line names the state dir (cluster parts, PostgreSQL's data dir is elsewhere)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(state) in text and "pytest" not in text:
            found.append(text)
    return found


def test_the_demo_serves_three_https_pages_and_demo_down_leaves_nothing(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    state = tmp_path_factory.mktemp("demo")
    with one_node_at_a_time():
        assert not teardown.link_exists(REAL_NODE_NETWORK.bridge), "a real node (a demo?) already runs here"
        rules_before = k8s_and_cni_rules()
        try:
            up = demo("up", state)
            assert up.returncode == 0, (up.stdout + up.stderr)[-4000:]
            out = up.stdout
            for n in (101, 102, 103):
                assert f"Preview of PR {n}" in out
            assert "Deployed commit: d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4" in out  # the push to PR 102, served
            assert "Upstream http://worker: 200 OK" in out
            # The curl line the demo prints works as printed.
            line = next(ln.strip() for ln in out.splitlines() if ln.strip().startswith("curl --cacert"))
            assert re.fullmatch(
                r"curl --cacert \S+ --resolve web-\d+\.preview\.localtest\.me:\d+:127\.0\.0\.1 https://\S+/", line
            )
            fetched = subprocess.run([*shlex.split(line), "-sS", "--max-time", "20"], capture_output=True, text=True)
            assert fetched.returncode == 0, fetched.stderr
            assert "<h1>Preview of PR 10" in fetched.stdout
        finally:
            down = demo("down", state)
        assert down.returncode == 0, (down.stdout + down.stderr)[-4000:]
        assert ours(state) == []
        assert not teardown.link_exists(REAL_NODE_NETWORK.bridge)
        assert teardown.network_rules(REAL_NODE_NETWORK.name) == []
        assert k8s_and_cni_rules() == rules_before
        assert not any(str(state) in line for line in Path("/proc/self/mountinfo").read_text().splitlines())
        assert not state.exists() or list(state.iterdir()) == []
        assert not LocalPostgres(state / "postgres").home.exists()  # relocated out of pytest's 0700 dir, and gone
