"""Leader election against the embedded cluster: one leader, takeover after kill -9, never two at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prenv.cluster import ClusterInfo

pytestmark = pytest.mark.integration

LEASE_SECONDS = 6


def leaders(log: Path) -> list[tuple[float, str]]:
    out = []
    for line in log.read_text().splitlines():
        ts, who, role = line.split()
        if role == "leader":
            out.append((float(ts), who))
    return out


def lines_after(log: Path, since: float) -> list[str]:
    return [line for line in log.read_text().splitlines() if float(line.split()[0]) > since]


def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_the_follower_takes_over_after_the_leader_is_killed_and_there_is_never_two_leaders(
    cluster: ClusterInfo, tmp_path: Path
) -> None:
    logs = {who: tmp_path / f"{who}.log" for who in ("a", "b")}
    procs = {}
    for who, log in logs.items():
        log.touch()
        procs[who] = subprocess.Popen(
            [sys.executable, "-m", "prenv.leader", str(cluster.kubeconfig), who, str(log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        assert wait_for(lambda: any(leaders(p) for p in logs.values()), 20), "nobody became leader"
        first = next(w for w, p in logs.items() if leaders(p))
        other = "b" if first == "a" else "a"
        since = leaders(logs[first])[0][0]
        # Positive control: the other replica keeps running its election (a line every 0.2 s) for several renewal
        # periods after the first one led; only then does "it never led" mean something.
        assert wait_for(lambda: len(lines_after(logs[other], since)) >= 10, 20), "the other replica stopped logging"
        assert not leaders(logs[other]), "both became leader"
        os.kill(procs[first].pid, signal.SIGKILL)
        procs[first].wait()
        killed_at = time.time()
        assert wait_for(lambda: bool(leaders(logs[other])), LEASE_SECONDS + 6), "no takeover"
        took_over = leaders(logs[other])[0][0]
        assert took_over - killed_at <= LEASE_SECONDS + 3
        last_of_first = leaders(logs[first])[-1][0]
        assert took_over > last_of_first, "two leaders acted at the same time"
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
