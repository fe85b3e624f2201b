"""Every name prenv gives to a thing, computed in one place from the PR number and validated config only.

Branch names, titles and authors are attacker-controlled: they never reach a name. They may appear only as label
values (through :func:`label_value`) or as escaped text. The budgets each name must fit are written beside it:

| thing              | form                        | budget                                                   |
|--------------------|-----------------------------|----------------------------------------------------------|
| stack              | ``pr-<n>``                  | Pulumi stack names: ``[A-Za-z0-9_.-]``, ≤ 100            |
| namespace          | ``<prefix>pr-<n>``          | DNS-1123 label: ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``, ≤ 63  |
| host               | ``<app>-<n>.<base domain>`` | each label ≤ 63, whole name ≤ 253                        |
| database / role    | ``<db prefix><n>``          | PostgreSQL identifier ≤ 63 bytes, lower-case, quoted     |
| label value        | sanitised                   | ``([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]``, ≤ 63       |
| system namespace   | ``prenv-system``            | the shared stack's and the in-cluster driver's objects   |

Fixed formats live here too: a commit sha (:func:`check_sha`) and the ``createdAt`` stamp (:func:`created_at`).

Branch environments (``source.type: github-branches`` / ``gitlab-branches``) have no PR number, and a branch name is
attacker-controlled text. A branch gets a number instead (:func:`branch_number`): ``BRANCH_NUMBER_BASE`` plus 8
digits of the SHA-256 of the name, so every name above is built from that number exactly as for a PR and fits the
same budgets; the raw name never reaches one. The range ``9xxxxxxxx`` is far above any real PR or MR number.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from prenv.errors import ConfigError

STACK_PREFIX = "pr-"
MAX_PR_NUMBER = 10**9  # keeps every derived name far inside its budget
BRANCH_NUMBER_BASE = 900_000_000
"""Branch environments are numbered ``BRANCH_NUMBER_BASE + <hash mod BRANCH_NUMBER_SPAN>``, below MAX_PR_NUMBER."""
BRANCH_NUMBER_SPAN = MAX_PR_NUMBER - BRANCH_NUMBER_BASE
DNS_LABEL_MAX = 63
DNS_NAME_MAX = 253
PG_IDENTIFIER_MAX = 63
LABEL_VALUE_MAX = 63

LABEL_PREFIX = "prenv.dev/"
LABEL_PR = LABEL_PREFIX + "pr"
LABEL_SHA = LABEL_PREFIX + "sha"
LABEL_AUTHOR = LABEL_PREFIX + "author"
LABEL_CREATED_AT = LABEL_PREFIX + "created-at"
LABEL_TTL = LABEL_PREFIX + "ttl"
LABEL_MANAGED_BY = LABEL_PREFIX + "managed-by"
MANAGED_BY = "prenv"

SYSTEM_NAMESPACE = "prenv-system"
"""Where cluster-wide objects live: the shared stack's wildcard certificate and the in-cluster driver."""

CREATED_AT_KEY = "createdAt"
"""The stack config key (in the ``prenv:`` namespace) holding the stamp; set once, on the first up."""
CREATED_AT_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
"""UTC, with '-' for ':' so that the stamp is also a valid label value."""

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PG_PREFIX = re.compile(r"^[a-z_][a-z0-9_]*$")
_STACK = re.compile(r"^pr-([1-9][0-9]*)$")
_LABEL_BAD = re.compile(r"[^A-Za-z0-9_.-]+")
_SHA = re.compile(r"[0-9a-fA-F]{7,40}")


def check_pr_number(pr: object, key: str = "prenv:pr") -> int:
    """Return ``pr`` as a positive int, or raise ConfigError naming ``key``. Accepts ints and digit strings."""
    if isinstance(pr, bool):
        raise ConfigError(key, "must be a positive integer (a PR number)")
    if isinstance(pr, str) and re.fullmatch(r"[1-9][0-9]{0,9}", pr.strip()):
        pr = int(pr.strip())
    if not isinstance(pr, int) or not 0 < pr < MAX_PR_NUMBER:
        raise ConfigError(key, f"must be a positive integer below {MAX_PR_NUMBER} (a PR number)")
    return pr


def check_sha(sha: object, key: str = "prenv:sha", *, full: bool = False) -> str:
    """The one commit-sha rule: hexadecimal, 7 to 40 characters (exactly 40 with ``full``), returned in lower case;
    anything else is a ConfigError naming ``key``."""
    if not isinstance(sha, str) or not _SHA.fullmatch(sha) or (full and len(sha) != 40):
        size = "40" if full else "7 to 40"
        raise ConfigError(key, f"must be a hexadecimal commit sha ({size} characters)")
    return sha.lower()


def branch_number(branch: str) -> int:
    """The environment number of branch ``branch``: stable, in ``[BRANCH_NUMBER_BASE, MAX_PR_NUMBER)``.

    The name is hashed, never parsed, so any text maps to a valid number; two branches sharing a number (one chance
    in about 10**8 per pair) are told apart by the branch sources, which keep the first and log the second.
    """
    digest = hashlib.sha256(branch.encode("utf-8", "surrogatepass")).digest()
    return BRANCH_NUMBER_BASE + int.from_bytes(digest[:8], "big") % BRANCH_NUMBER_SPAN


def is_branch_number(number: int) -> bool:
    """Whether ``number`` is in the range :func:`branch_number` uses."""
    return BRANCH_NUMBER_BASE <= number < MAX_PR_NUMBER


def created_at(now: datetime | None = None) -> str:
    """The ``createdAt`` stamp of a new environment (UTC, label-safe)."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(CREATED_AT_FORMAT)


def stack_name(pr: int) -> str:
    return f"{STACK_PREFIX}{check_pr_number(pr)}"


def pr_of_stack(name: str) -> int | None:
    """The PR number of a ``pr-<n>`` stack name (a fully qualified ``org/project/pr-<n>`` too), else None."""
    m = _STACK.match(name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


def check_dns_label(value: str, key: str) -> str:
    if len(value) > DNS_LABEL_MAX or not _DNS_LABEL.match(value):
        raise ConfigError(key, f"{value!r} is not a DNS-1123 label (lower-case a-z, 0-9 and '-', ≤ 63 chars)")
    return value


def check_namespace_prefix(prefix: str, key: str = "prenv:namespacePrefix") -> str:
    """A prefix is valid when ``<prefix>pr-<largest n>`` is a DNS-1123 label."""
    if prefix:
        check_dns_label(f"{prefix}{STACK_PREFIX}{MAX_PR_NUMBER - 1}", key)
    return prefix


def check_base_domain(domain: str, key: str = "prenv:baseDomain") -> str:
    labels = domain.split(".")
    if len(labels) < 2 or any(not _DNS_LABEL.match(label) or len(label) > DNS_LABEL_MAX for label in labels):
        raise ConfigError(
            key, f"{domain!r} is not a DNS name (lower-case labels joined by '.', e.g. preview.example.com)"
        )
    # Leave room for the longest host label we generate: "<app>-<n>." with a 63-char label.
    if len(domain) > DNS_NAME_MAX - DNS_LABEL_MAX - 1:
        raise ConfigError(key, f"is too long ({len(domain)} chars); hosts under it would exceed {DNS_NAME_MAX}")
    return domain


def check_db_prefix(prefix: str, key: str = "prenv:database.namePrefix") -> str:
    if not _PG_PREFIX.match(prefix) or len(prefix) + len(str(MAX_PR_NUMBER)) > PG_IDENTIFIER_MAX:
        raise ConfigError(key, f"{prefix!r} must start with a-z or '_' and contain only a-z, 0-9, '_'")
    return prefix


def namespace(pr: int, prefix: str = "") -> str:
    return f"{prefix}{STACK_PREFIX}{check_pr_number(pr)}"


def host(app: str, pr: int, base_domain: str) -> str:
    """``<app>-<n>.<base domain>``: the service name is a validated DNS label; the result is checked again."""
    label = f"{app}-{check_pr_number(pr)}"
    check_dns_label(label, "prenv:services[].name")
    name = f"{label}.{base_domain}"
    if len(name) > DNS_NAME_MAX:
        raise ConfigError("prenv:baseDomain", f"host {name!r} would exceed {DNS_NAME_MAX} characters")
    return name


def database(pr: int, prefix: str = "pr_") -> str:
    """Database and role name (the same): ``<prefix><n>``; compose into SQL only with psycopg.sql.Identifier."""
    return f"{prefix}{check_pr_number(pr)}"


def label_value(text: str | None) -> str:
    """Sanitise arbitrary (possibly hostile) text into a valid Kubernetes label value; '' when nothing is left."""
    if not text:
        return ""
    value = _LABEL_BAD.sub("-", text)[:LABEL_VALUE_MAX]
    return value.strip("-_.")


def labels(pr: int, sha: str, author: str, created_at: str, ttl: str) -> dict[str, str]:
    """The labels every object of a preview environment carries."""
    return {
        LABEL_MANAGED_BY: MANAGED_BY,
        LABEL_PR: str(check_pr_number(pr)),
        LABEL_SHA: label_value(sha),
        LABEL_AUTHOR: label_value(author),
        LABEL_CREATED_AT: label_value(created_at),
        LABEL_TTL: label_value(ttl),
    }
