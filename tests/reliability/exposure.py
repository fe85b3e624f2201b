"""Everything the reliability suite captured that a human or GitHub could see, and the secrets it must not contain.

One collector per test process. Tests and fixtures ``expose()`` what they capture (CLI stdout and stderr, error
messages, PR comments and deployment statuses from the fake GitHub); a logging handler adds every log record of
prenv, components and libraries. Secrets are ``register()``-ed as they become known: the PostgreSQL superuser
password, PR role passwords, the GitHub token, the Pulumi passphrase and the webhook secret.

``scan()`` looks for each secret verbatim and URL-quoted (as it appears inside a DSN) in every captured text.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass, field
from urllib.parse import quote

MIN_SECRET_LENGTH = 8  # shorter values would match by accident ("pw", "t")


@dataclass(frozen=True, slots=True)
class Leak:
    secret: str  # the label of the secret, never its value
    where: str


@dataclass
class Collector:
    texts: list[tuple[str, str]] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    scanned_texts: int = 0
    scanned_chars: int = 0
    leaks: list[Leak] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def expose(self, where: str, text: str | bytes | None) -> None:
        """Record text that a user, a log reader or a PR reviewer could see."""
        if not text:
            return
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        with self._lock:
            self.texts.append((where, text))

    def register(self, label: str, value: str | bytes | None) -> None:
        """A secret that must never appear in what is exposed."""
        if not value:
            return
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if len(value) >= MIN_SECRET_LENGTH:
            with self._lock:
                self.secrets[label] = value

    def scan(self) -> list[Leak]:
        """Scan what was exposed since the last scan; returns (and remembers) the leaks found."""
        with self._lock:
            texts, self.texts = self.texts, []
            secrets = dict(self.secrets)
        found: list[Leak] = []
        forms = {label: _forms(value) for label, value in secrets.items()}
        for where, text in texts:
            self.scanned_texts += 1
            self.scanned_chars += len(text)
            for label, variants in forms.items():
                if any(v in text for v in variants):
                    found.append(Leak(label, where))
        self.leaks += found
        return found


def _forms(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys([value, quote(value, safe=""), quote(value), base64.b64encode(value.encode()).decode()]))


COLLECTOR = Collector()


class CollectingHandler(logging.Handler):
    """Feeds every log record (message, and the traceback if any) to the collector."""

    def __init__(self, collector: Collector, where: str) -> None:
        super().__init__(logging.DEBUG)
        self.collector = collector
        self.where = where

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record must not break the test that logged it
            text = str(record.msg)
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.collector.expose(f"{self.where} log {record.name}", text)
