"""Reading a DIY Pulumi backend (``file://`` or ``s3://``) directly, so an idle cycle starts no pulumi process.

Listing 200 stacks through the Automation API would start a ``pulumi`` process per stack to read its outputs; the
checkpoints are plain JSON in a known layout, so the gateway reads them itself:

    .pulumi/stacks/<project>/<stack>.json[.gz]          checkpoint: resources, stack outputs, pending operations
    .pulumi/locks/organization/<project>/<stack>/<lock id>.json   present while an operation holds the stack
    .pulumi/history/<project>/<stack>/<stack>-<ns>.history.json   one entry per update: kind, result, times

Only the plain-text outputs prenv itself exports (``sha``, ``configHash``, ``url``) are read; secret outputs stay
encrypted and untouched. Writes go through pulumi, except deleting a lock whose owner is gone (see ``remove_lock``)
and prenv's own record of why a stack's last run failed, which pulumi does not keep:

    .prenv/failures/<project>/<stack>.json      {"error": …, "kind": "update" | "destroy", "at": …}

written by the gateway when an up or destroy fails (the redacted, secret-free message), removed when one succeeds,
so that ``prenv list`` on any machine says why an environment is ``failed``.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlparse

from prenv import naming
from prenv.errors import ConfigError, StackOperationError
from prenv.model import StackState

logger = logging.getLogger(__name__)


class BlobStore(Protocol):
    def list(self, prefix: str) -> list[str]: ...
    def read(self, key: str) -> bytes | None: ...
    def write(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        if not base.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.iterdir() if p.is_file())

    def read(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_bytes(data)
        partial.replace(path)

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)


class S3Store:
    def __init__(self, bucket: str, prefix: str, client: Any) -> None:
        self.bucket, self.prefix, self.client = bucket, prefix.strip("/"), client

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        full = self._key(prefix).rstrip("/") + "/"
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=full, Delimiter="/"
        ):
            keys += [o["Key"][len(self._key("")) :].lstrip("/") for o in page.get("Contents", [])]
        return sorted(keys)

    def read(self, key: str) -> bytes | None:
        try:
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
            return body
        except self.client.exceptions.NoSuchKey:
            return None

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def store_for(backend_url: str, *, s3_client: Any = None) -> BlobStore | None:
    """A store for a DIY backend URL, or None for backends read through pulumi (Pulumi Cloud)."""
    url = urlparse(backend_url)
    if url.scheme == "file":
        path = unquote(url.netloc + url.path) if url.netloc not in ("", "localhost") else unquote(url.path)
        return FileStore(Path(os.path.expanduser(path)))
    if url.scheme == "s3":
        if s3_client is None:
            import boto3

            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            endpoint = q.get("endpoint")
            if endpoint and "://" not in endpoint:
                endpoint = ("http://" if q.get("disableSSL") == "true" else "https://") + endpoint
            s3_client = boto3.client("s3", region_name=q.get("region"), endpoint_url=endpoint)
        return S3Store(url.netloc, url.path, s3_client)
    if url.scheme in ("http", "https"):
        return None
    raise ConfigError("backend", f"unsupported backend URL scheme {url.scheme!r}: use file://, s3:// or https://")


@dataclass(frozen=True, slots=True)
class LockInfo:
    """A lock file's content as pulumi writes it (``pid``, ``username``, ``hostname``, ``timestamp``)."""

    key: str
    pid: int | None
    hostname: str | None
    timestamp: datetime | None
    username: str | None = None


class DiyBackend:
    """Read-only view of one project's stacks in a DIY backend (plus stale-lock removal)."""

    def __init__(self, store: BlobStore, project: str) -> None:
        self.store = store
        self.project = project

    def _checkpoint(self, stack: str) -> dict[str, Any] | None:
        base = f".pulumi/stacks/{self.project}/{stack}"
        raw = self.store.read(base + ".json")
        if raw is None:
            raw = self.store.read(base + ".json.gz")
            if raw is not None:
                raw = gzip.decompress(raw)
        if raw is None:
            return None
        try:
            doc: dict[str, Any] = json.loads(raw)
        except json.JSONDecodeError:
            raise StackOperationError(stack, "checkpoint is not valid JSON") from None
        return doc

    def stack_names(self) -> list[str]:
        names = set()
        for key in self.store.list(f".pulumi/stacks/{self.project}"):
            name = key.rsplit("/", 1)[-1]
            for suffix in (".json.gz", ".json"):
                if name.endswith(suffix) and ".bak" not in name:
                    names.add(name[: -len(suffix)])
        return sorted(names)

    def state(self, stack: str, *, with_result: bool = True) -> StackState | None:
        pr = naming.pr_of_stack(stack)
        if pr is None:
            return None
        doc = self._checkpoint(stack)
        outputs: dict[str, Any] = {}
        if doc is not None:
            latest = (doc.get("checkpoint") or {}).get("latest") or {}
            for res in latest.get("resources") or []:
                if res.get("type") == "pulumi:pulumi:Stack":
                    outputs = res.get("outputs") or {}
        result, kind = self.last_run(stack) if with_result else (None, None)
        if self.locks(stack):
            result = "in-progress"
        error = self.failure(stack) if result == "failed" else None
        return StackState(
            pr=pr,
            stack=stack,
            sha=_plain(outputs.get("sha")),
            config_hash=_plain(outputs.get("configHash")),
            url=_plain(outputs.get("url")),
            last_update=self._time_of(stack, -1),
            created_at=self._time_of(stack, 0),
            result=result,
            last_kind=kind,
            error=error,
        )

    def remove_broken_sidecars(self, stack: str) -> list[str]:
        """Remove the stack's metadata sidecars that do not decode; returns their keys.

        A ``file://`` backend is gocloud's fileblob, which keeps each object's metadata in a ``<key>.attrs`` file
        written by a plain create-then-write. A pulumi killed in between leaves it empty, and from then on every read
        of the object fails (``failed to load checkpoint: EOF``), so no later operation could recover the stack. The
        sidecar is optional (fileblob uses defaults without it). Other stores have no sidecars."""
        if not isinstance(self.store, FileStore):
            return []
        checkpoints = [
            k for k in self.store.list(f".pulumi/stacks/{self.project}") if k.rsplit("/", 1)[-1].startswith(f"{stack}.")
        ]
        per_stack = [
            *self.store.list(f".pulumi/locks/organization/{self.project}/{stack}"),
            *self.store.list(f".pulumi/history/{self.project}/{stack}"),
        ]
        removed = []
        for key in [k for k in checkpoints + per_stack if k.endswith(".attrs")]:
            try:
                json.loads(self.store.read(key) or b"")
            except ValueError:
                self.store.delete(key)
                removed.append(key)
        return removed

    def _failure_key(self, stack: str) -> str:
        return f".prenv/failures/{self.project}/{stack}.json"

    def failure(self, stack: str) -> str | None:
        """Why the stack's last run failed, as recorded by the gateway (None: no record)."""
        raw = self.store.read(self._failure_key(stack))
        if raw is None:
            return None
        try:
            error = json.loads(raw).get("error")
        except (json.JSONDecodeError, AttributeError):
            return None
        return str(error) if error else None

    def record_failure(self, stack: str, kind: str, error: str) -> None:
        """Keep ``error`` (already secret-free) as the reason the stack's last ``kind`` run failed."""
        document = {"error": error, "kind": kind, "at": datetime.now(UTC).isoformat()}
        self.store.write(self._failure_key(stack), json.dumps(document).encode())

    def clear_failure(self, stack: str) -> None:
        self.store.delete(self._failure_key(stack))

    def _drift_key(self, stack: str) -> str:
        return f".prenv/drift/{self.project}/{stack}.json"

    def drift(self, stack: str) -> dict[str, Any] | None:
        """The stack's last drift check as recorded (``changes``, ``healed``, ``at``), or None: never checked."""
        raw = self.store.read(self._drift_key(stack))
        if raw is None:
            return None
        try:
            document = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return document if isinstance(document, dict) else None

    def record_drift(self, stack: str, changes: dict[str, int], healed: bool, at: datetime) -> None:
        document = {"changes": changes, "healed": healed, "at": at.isoformat()}
        self.store.write(self._drift_key(stack), json.dumps(document).encode())

    def clear_drift(self, stack: str) -> None:
        self.store.delete(self._drift_key(stack))

    def stacks(self) -> list[StackState]:
        states = [self.state(name) for name in self.stack_names()]
        return [s for s in states if s is not None]

    def pending_operations(self, stack: str) -> int:
        doc = self._checkpoint(stack) or {}
        latest = (doc.get("checkpoint") or {}).get("latest") or {}
        return len(latest.get("pending_operations") or [])

    def _history(self, stack: str) -> list[str]:
        keys = self.store.list(f".pulumi/history/{self.project}/{stack}")
        return sorted(k for k in keys if k.endswith(".history.json"))

    def last_run(self, stack: str) -> tuple[str | None, str | None]:
        """The result (``succeeded``, ``failed``…) and kind (``update``, ``destroy``…) of the last recorded run."""
        history = self._history(stack)
        if not history:
            return None, None
        raw = self.store.read(history[-1])
        if raw is None:
            return None, None
        entry = json.loads(raw)
        result, kind = entry.get("result"), entry.get("kind")
        return (str(result) if result else None), (str(kind) if kind else None)

    def _time_of(self, stack: str, index: int) -> datetime | None:
        """Time of the first (0) or last (-1) update, from the history file name (``<stack>-<unix ns>``)."""
        history = self._history(stack)
        if not history:
            return None
        stamp = history[index].rsplit("-", 1)[-1].split(".", 1)[0]
        return datetime.fromtimestamp(int(stamp) / 1e9, tz=UTC) if stamp.isdigit() else None

    def locks(self, stack: str) -> list[LockInfo]:
        out = []
        keys = self.store.list(f".pulumi/locks/organization/{self.project}/{stack}")
        for key in (k for k in keys if k.endswith(".json")):
            raw = self.store.read(key)
            info: dict[str, Any] = {}
            if raw:
                try:
                    info = json.loads(raw)
                except json.JSONDecodeError:
                    info = {}
            ts = info.get("timestamp")
            out.append(
                LockInfo(
                    key=key,
                    pid=int(info["pid"]) if str(info.get("pid", "")).isdigit() else None,
                    hostname=info.get("hostname"),
                    timestamp=_parse_time(ts) if isinstance(ts, str) else None,
                    username=info.get("username") if isinstance(info.get("username"), str) else None,
                )
            )
        return out

    def remove_lock(self, lock: LockInfo) -> None:
        logger.warning("removing lock %s (pid %s on %s)", lock.key, lock.pid, lock.hostname)
        self.store.delete(lock.key)
        self.store.delete(lock.key + ".attrs")  # the file:// backend's metadata sidecar


def _plain(value: Any) -> str | None:
    return value if isinstance(value, str) else (str(value) if isinstance(value, int) else None)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        # Go's RFC3339Nano may carry 9 fractional digits, which fromisoformat before 3.11 rejects.
        head, _, tail = text.partition(".")
        try:
            return datetime.fromisoformat(head + ("+" + tail.split("+")[1] if "+" in tail else "+00:00"))
        except ValueError:
            return None
