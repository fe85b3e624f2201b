"""``prenv serve`` as a separate process, as in production: started from a prenv.yaml, fed signed webhooks.

The benchmark talks to it over HTTP only, so what is measured (time to ready, memory) is the real service and
not an in-process shortcut.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from prenv.service.webhooks import sign

PRENV = Path(__file__).resolve().parents[1] / ".venv" / "bin" / "prenv"


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (pulumi, its language host, plugins, the program)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


class ServeProcess:
    """One ``prenv serve`` process on 127.0.0.1."""

    def __init__(self, config: Path, env: dict[str, str], port: int, log: Path, secret: str) -> None:
        self.config, self.env, self.port, self.log, self.secret = config, env, port, log, secret.encode()
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

    def start(self, ready_timeout: float = 900.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(PRENV), "serve", "-c", str(self.config), "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prenv serve exited with {self.proc.returncode}; see {self.log}")
            with contextlib.suppress(httpx.HTTPError):
                if self.http.get("/readyz").status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"prenv serve not ready after {ready_timeout:.0f}s; see {self.log}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def webhook(self, event: str, payload: dict[str, Any]) -> int:
        body = json.dumps(payload).encode()
        response = self.http.post(
            "/webhooks/github",
            content=body,
            headers={
                "X-GitHub-Event": event,
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": sign(self.secret, body),
                "Content-Type": "application/json",
            },
        )
        return response.status_code

    def metrics(self) -> str:
        return self.http.get("/metrics").text

    def stop(self) -> None:
        self.http.close()
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
