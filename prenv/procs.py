"""Process checks shared by everything that adopts processes it did not start (PostgreSQL, pulumi locks)."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process. A zombie (exited, not yet reaped by a parent that never will in some
    containers) counts as dead: it holds no port, socket or data directory."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return True
    # The state follows the parenthesised command name, which may itself contain spaces or parentheses.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
