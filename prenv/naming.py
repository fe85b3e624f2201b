"""Every name prenv gives to a thing, computed in one place from the PR number (and a branch environment's
validated slug) and validated config only.

Branch names, titles and authors are attacker-controlled: they never reach a name. They may appear only as label
values (through :func:`label_value`), as escaped text, or — for branch environments — as the slug below, which keeps
nothing of the name but ``[a-z0-9-]``. The budgets each name must fit are written beside it:

| thing            | PR form                     | branch form                         | budget                       |
|------------------|-----------------------------|-------------------------------------|------------------------------|
| stack            | ``pr-<n>``                  | ``br-<slug>-<digits>``              | ``[A-Za-z0-9_.-]``, ≤ 100    |
| namespace        | ``<prefix>pr-<n>``          | ``<prefix>br-<slug>-<digits>``      | DNS-1123 label, ≤ 63         |
| host             | ``<app>-<n>.<base domain>`` | ``<app>-br-<slug>-<digits>.<base>`` | each label ≤ 63, whole ≤ 253 |
| database / role  | ``<db prefix><n>``          | ``<db prefix><n>`` (numeric)        | PostgreSQL identifier ≤ 63   |
| label value      | sanitised                   | sanitised                           | ``[-A-Za-z0-9_.]``, ≤ 63     |
| system namespace | ``prenv-system``            |                                     | shared stack, driver         |

(DNS-1123 label: ``[a-z0-9]([-a-z0-9]*[a-z0-9])?``; label value: ``([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]``.)

Fixed formats live here too: a commit sha (:func:`check_sha`) and the ``createdAt`` stamp (:func:`created_at`).

**Branch environments** (``source.type: github-branches`` / ``gitlab-branches``) have no PR number, and a branch
name is attacker-controlled text. A branch gets a number (:func:`branch_number`): ``BRANCH_NUMBER_BASE`` plus
``<digits>``, 8 decimal digits of the SHA-256 of the exact name, so the whole driver (plans, locks, labels, gc,
databases) stays keyed by an integer as for a PR; the range ``9xxxxxxxx`` is far above any real PR or MR number.
For a reviewer it also gets a *slug* (:func:`branch_slug`): the name lower-cased, every run of characters outside
``[a-z0-9]`` turned into one ``-``, trimmed, at most ``SLUG_MAX`` characters (``release/1.2`` → ``release-1-2``).
Names that slug alike (``Release/1.2``, ``release-1.2``) are still kept apart by the digits, which every branch name
ends with; the slug is only for reading. The stack is ``br-<slug>-<digits>`` (``br-<digits>`` when nothing of the
name is left) and :func:`parse_stack` gives the number and slug back from it, so a stack name alone says which
environment it is. A namespace or host truncates the slug further when its budget needs it (a long namespace
prefix, a long service name), and a host whose service name leaves no room for ``-br-<digits>`` falls back to the
numeric ``<app>-<n>``. Database and role names stay numeric: nobody reads them, and gc matches them by number.

Stacks of branch environments made before slugs (``pr-9xxxxxxxx``) are still found by their number: the gateways
keep updating and destroy them under their old names, so an old branch environment keeps its numeric names until
its branch is deleted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from prenv.errors import ConfigError

STACK_PREFIX = "pr-"
MAX_PR_NUMBER = 10**9  # keeps every derived name far inside its budget
BRANCH_NUMBER_BASE = 900_000_000
"""Branch environments are numbered ``BRANCH_NUMBER_BASE + <hash mod BRANCH_NUMBER_SPAN>``, below MAX_PR_NUMBER."""
BRANCH_NUMBER_SPAN = MAX_PR_NUMBER - BRANCH_NUMBER_BASE
BRANCH_DIGITS = len(str(BRANCH_NUMBER_SPAN - 1))
"""How many digits the hash part of a branch number has, zero-padded, at the end of every branch name (8)."""
BRANCH_STACK_PREFIX = "br-"
SLUG_MAX = 40
"""Longest branch slug. ``br-<40>-<8 digits>`` is 52 characters: a stack name (≤ 100), and a namespace under a
prefix of up to 11 characters without truncation. Like Argo CD's branch slug (50), short enough to read at a glance."""
STACK_NAME_MAX = 100
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
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_SLUG_BAD = re.compile(r"[^a-z0-9]+")
_BRANCH_STACK = re.compile(rf"^br-(?:([a-z0-9]+(?:-[a-z0-9]+)*)-)?([0-9]{{{BRANCH_DIGITS}}})$")
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


def branch_slug(branch: str) -> str:
    """The readable part of branch ``branch``'s names: ``[a-z0-9]`` runs joined by ``-``, ≤ SLUG_MAX; may be ''.

    Only ASCII letters and digits survive (after lower-casing), so nothing of a hostile name but those reaches a
    name; two names with the same slug are told apart by their number's digits, never by the slug.
    """
    return _SLUG_BAD.sub("-", branch.lower()).strip("-")[:SLUG_MAX].rstrip("-")


def check_slug(slug: object, key: str = "prenv:slug") -> str:
    """Return ``slug`` when it is a slug :func:`branch_slug` can give ('' included), else raise ConfigError."""
    if not isinstance(slug, str) or (slug and (len(slug) > SLUG_MAX or not _SLUG.match(slug))):
        raise ConfigError(
            key, f"must be a branch slug: a-z and 0-9 runs joined by single '-', at most {SLUG_MAX} characters"
        )
    return slug


def branch_digits(number: int, key: str = "prenv:pr") -> str:
    """The hash part of branch number ``number``, zero-padded to BRANCH_DIGITS; ConfigError for any other number."""
    if not is_branch_number(check_pr_number(number, key)):
        raise ConfigError(key, f"{number} is not a branch environment's number (from {BRANCH_NUMBER_BASE})")
    return f"{number - BRANCH_NUMBER_BASE:0{BRANCH_DIGITS}d}"


def _with_slug(head: str, slug: str, digits: str, budget: int) -> str:
    """``<head><slug>-<digits>``, the slug cut (at a '-' boundary or not) to fit ``budget``; ``<head><digits>``
    when nothing of it fits. The caller makes sure ``<head><digits>`` fits."""
    room = budget - len(head) - len(digits) - 1
    cut = slug[: max(room, 0)].rstrip("-")
    return f"{head}{cut}-{digits}" if cut else f"{head}{digits}"


def created_at(now: datetime | None = None) -> str:
    """The ``createdAt`` stamp of a new environment (UTC, label-safe)."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(CREATED_AT_FORMAT)


def stack_name(pr: int, slug: str | None = None) -> str:
    """``pr-<n>``, or ``br-<slug>-<digits>`` for a branch environment (``slug`` given; ``pr`` a branch number)."""
    if slug is None:
        return f"{STACK_PREFIX}{check_pr_number(pr)}"
    return _with_slug(BRANCH_STACK_PREFIX, check_slug(slug), branch_digits(pr), STACK_NAME_MAX)


@dataclass(frozen=True, slots=True)
class StackName:
    """What a stack name says: the environment's number, and its branch slug (None: a ``pr-<n>`` stack)."""

    number: int
    slug: str | None = None


def parse_stack(name: str) -> StackName | None:
    """The number and slug of a ``pr-<n>`` or ``br-[<slug>-]<digits>`` stack name (fully qualified
    ``org/project/<stack>`` too); None for any other name. Only names :func:`stack_name` gives are accepted."""
    short = name.rsplit("/", 1)[-1]
    m = _STACK.match(short)
    if m:
        return StackName(int(m.group(1)))
    m = _BRANCH_STACK.match(short)
    if m is None or len(m.group(1) or "") > SLUG_MAX:
        return None
    return StackName(BRANCH_NUMBER_BASE + int(m.group(2)), m.group(1) or "")


def pr_of_stack(name: str) -> int | None:
    """The number of a ``pr-<n>`` or ``br-<slug>-<digits>`` stack name (see :func:`parse_stack`), else None."""
    parsed = parse_stack(name)
    return parsed.number if parsed else None


def stacks_of(names: Iterable[str], number: int) -> list[str]:
    """The names among ``names`` that are stacks of environment ``number``, sorted: one, normally; a branch
    environment's may be its ``br-`` name or the ``pr-9xxxxxxxx`` one it had before slugs."""
    return sorted({name.rsplit("/", 1)[-1] for name in names if pr_of_stack(name) == number})


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


def namespace(pr: int, prefix: str = "", slug: str | None = None) -> str:
    """``<prefix>pr-<n>``, or ``<prefix>br-<slug>-<digits>`` (slug cut to fit 63) for a branch environment."""
    if slug is None:
        return f"{prefix}{STACK_PREFIX}{check_pr_number(pr)}"
    # check_namespace_prefix keeps room for "pr-<9 digits>", one more than "br-<8 digits>" needs.
    name = _with_slug(f"{prefix}{BRANCH_STACK_PREFIX}", check_slug(slug), branch_digits(pr), DNS_LABEL_MAX)
    return check_dns_label(name, "prenv:namespacePrefix")


def namespace_pattern(prefix: str = "") -> str:
    """A regular expression (RE2 and Python alike) that every name :func:`namespace` gives under ``prefix``
    matches: ``<prefix>pr-<n>`` or ``<prefix>br-[<slug>-]<digits>``. The prefix is validated
    (:func:`check_namespace_prefix`): DNS-label characters, no regex metacharacters."""
    pr_digits = len(str(MAX_PR_NUMBER - 1))
    return (
        f"^{prefix}({STACK_PREFIX}[1-9][0-9]{{0,{pr_digits - 1}}}"
        f"|{BRANCH_STACK_PREFIX}([a-z0-9]+-)*[0-9]{{{BRANCH_DIGITS}}})$"
    )


def host(app: str, pr: int, base_domain: str, slug: str | None = None) -> str:
    """``<app>-<n>.<base domain>``, or ``<app>-br-<slug>-<digits>.<base domain>`` for a branch environment (slug
    cut to fit the 63-character label; ``<app>-<n>`` when ``-br-<digits>`` itself does not fit). The service name is
    a validated DNS label; the result is checked again."""
    label = f"{app}-{check_pr_number(pr)}"
    if slug is not None:
        head, digits = f"{app}-{BRANCH_STACK_PREFIX}", branch_digits(pr)
        if len(head) + len(digits) <= DNS_LABEL_MAX:
            label = _with_slug(head, check_slug(slug), digits, DNS_LABEL_MAX)
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
