"""A PR source read from a YAML or JSON file: the embedded default, for demos, CI without GitHub, and tests.

The contract (DESIGN.md, "File source") is a list of objects with ``number``, ``sha``, ``branch``, ``base``
(default ``main``), ``author``, ``title``, ``labels``, ``draft`` and ``fork``; removing an entry closes the PR.
The file is re-read on every listing, so editing it is how a demo opens, updates and closes PRs.

A file that cannot be parsed, or is empty, yields no desired state at all (``SourceUnavailable``): it is most likely
being written, and an empty or partial list would destroy environments that are still wanted. No PRs is ``[]``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import yaml

from prenv.errors import SourceError, SourceUnavailable
from prenv.model import PullRequest
from prenv.sources.records import parse_records

logger = logging.getLogger(__name__)

# A list of PRs is kilobytes; a file this big is a mistake, and reading it would stall the cycle.
MAX_FILE_BYTES = 16 * 1024 * 1024


class FileSource:
    """Lists the PRs in a YAML (``.yaml``/``.yml``, or any other suffix) or JSON (``.json``) file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r})"

    def list_open(self) -> list[PullRequest]:
        try:
            size = self.path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise SourceError(f"{self.path}: larger than {MAX_FILE_BYTES} bytes")
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise SourceError(f"{self.path}: file not found") from e
        except UnicodeDecodeError as e:
            raise SourceError(f"{self.path}: not UTF-8 text") from e
        except OSError as e:
            raise SourceError(f"{self.path}: cannot read ({type(e).__name__})") from e
        data = self._parse(text)
        if data is None:
            # Writers that truncate before writing leave an empty file for a moment; reading it as "every PR
            # closed" would destroy everything. No PRs is spelled ``[]``.
            raise SourceUnavailable(f"{self.path}: file is empty (write [] for no pull requests)")
        if not isinstance(data, list):
            raise SourceError(f"{self.path}: expected a list of pull requests at the top level")
        prs = parse_records(data, source=f"file {self.path.name}")
        logger.debug("%s: %d open pull requests", self.path, len(prs))
        return prs

    def _parse(self, text: str) -> object:
        if self.path.suffix.lower() == ".json":
            try:
                return json.loads(text)
            except json.JSONDecodeError as e:
                raise SourceUnavailable(f"{self.path}: invalid JSON at line {e.lineno}") from e
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise SourceUnavailable(f"{self.path}: invalid YAML{where}") from e
