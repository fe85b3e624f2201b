"""Readable names for branch environments: ``br-<slug>-<digits>`` stacks, namespaces and hosts from a sanitised
slug of the branch name plus the digits of its hashed number; every derived name fits its budget and pattern for any
text at all (property tests), names that slug alike stay apart, and stacks parse back to their number and slug,
including the ``pr-9xxxxxxxx`` stacks of branch environments made before slugs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prenv import naming, stackconfig
from prenv.errors import ConfigError
from prenv.sources.branches import branch_records
from prenv.sources.records import InvalidRecord, parse_record

ROOT = Path(__file__).resolve().parents[2]
SHA = "a" * 40

PULUMI_STACK = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SLUG = re.compile(r"^([a-z0-9]+(-[a-z0-9]+)*)?$")
LONGEST_DOMAIN = f"{'a' * 63}.{'b' * 63}.{'c' * 61}"  # the longest check_base_domain accepts

HOSTILE = [
    "release/1.2",
    "Release/1.2",
    "release-1.2",
    "release_1_2",
    "../../etc/passwd",
    "$(rm -rf /)",
    "'; DROP TABLE users; --",
    "Ünïcödé/ブランチ",
    "ﬁx/ǅemo/K",  # ligature, titlecase digraph, Kelvin sign: lower-case to ASCII or not at all
    "!!!///...",
    "a" * 300,
    "-leading-and-trailing-",
    "x" * 39 + "/" + "y" * 10,  # the cut falls right after a '-'
]


def digits(branch: str) -> str:
    return f"{naming.branch_number(branch) - naming.BRANCH_NUMBER_BASE:08d}"


@pytest.mark.parametrize(
    ("branch", "slug"),
    [
        ("release/1.2", "release-1-2"),
        ("Feature/LOGIN_page", "feature-login-page"),
        ("../../etc/passwd", "etc-passwd"),
        ("$(rm -rf /)", "rm-rf"),
        ("Ünïcödé/ブランチ", "n-c-d"),
        ("!!!///...", ""),
        ("a" * 300, "a" * naming.SLUG_MAX),
        ("x" * 39 + "/" + "y" * 10, "x" * 39),
    ],
)
def test_a_branch_slug_keeps_only_lower_case_letters_and_digits_joined_by_single_dashes(branch: str, slug: str) -> None:
    assert naming.branch_slug(branch) == slug


def test_a_branch_stack_is_readable_and_ends_with_the_digits_of_its_number() -> None:
    n = naming.branch_number("release/1.2")

    assert naming.stack_name(n, "release-1-2") == f"br-release-1-2-{digits('release/1.2')}"
    assert naming.namespace(n, "preview-", "release-1-2") == f"preview-br-release-1-2-{digits('release/1.2')}"
    assert naming.host("web", n, "preview.example.com", "release-1-2") == (
        f"web-br-release-1-2-{digits('release/1.2')}.preview.example.com"
    )
    assert naming.database(n) == f"pr_{n}"  # nobody reads it; gc matches it by number


def test_a_branch_with_nothing_readable_gets_only_its_digits() -> None:
    n = naming.branch_number("!!!")

    assert naming.stack_name(n, "") == f"br-{digits('!!!')}"
    assert naming.namespace(n, "", "") == f"br-{digits('!!!')}"
    assert naming.parse_stack(f"br-{digits('!!!')}") == naming.StackName(n, "")


def test_branches_that_slug_alike_get_distinct_stacks_namespaces_and_hosts() -> None:
    alike = ["release/1.2", "Release/1.2", "release-1.2", "release_1_2", "RELEASE 1 2"]
    prs = branch_records([(b, SHA) for b in alike], source="test")

    assert {p.slug for p in prs} == {"release-1-2"}
    stacks = {naming.stack_name(p.number, p.slug) for p in prs}
    namespaces = {naming.namespace(p.number, "", p.slug) for p in prs}
    hosts = {naming.host("web", p.number, "preview.example.com", p.slug) for p in prs}
    assert len(stacks) == len(namespaces) == len(hosts) == len(alike)


@pytest.mark.parametrize("branch", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_branch_names_give_names_that_fit_and_parse_back(branch: str) -> None:
    n, slug = naming.branch_number(branch), naming.branch_slug(branch)
    stack = naming.stack_name(n, slug)

    assert PULUMI_STACK.match(stack) and naming.parse_stack(stack) == naming.StackName(n, slug)
    assert naming.check_dns_label(naming.namespace(n, "preview-", slug), "ns")
    assert not set("$/.;' ") & set(stack)


def test_a_long_namespace_prefix_or_service_name_shortens_the_slug_but_keeps_the_digits() -> None:
    n, slug = naming.branch_number("release/2024-q4"), "release-2024-q4"
    prefix = "p" * 45 + "-"  # the longest prefix check_namespace_prefix allows is 51

    namespace = naming.namespace(n, prefix, slug)
    assert len(namespace) <= 63 and namespace.endswith(f"-{digits('release/2024-q4')}")
    assert namespace.startswith(f"{prefix}br-rel")
    assert naming.namespace(n, "p" * 51, slug) == f"{'p' * 51}br-{digits('release/2024-q4')}"
    assert naming.host("w" * 53, n, "preview.example.com", slug) == f"{'w' * 53}-{n}.preview.example.com"


@pytest.mark.parametrize(
    ("stack", "parsed"),
    [
        ("pr-7", naming.StackName(7)),
        ("pr-912345678", naming.StackName(912_345_678)),  # a branch stack made before slugs
        ("br-release-1-2-12345678", naming.StackName(912_345_678, "release-1-2")),
        ("br-12345678", naming.StackName(912_345_678, "")),
        ("br-00000000", naming.StackName(naming.BRANCH_NUMBER_BASE, "")),
        ("br-2024-12345678", naming.StackName(912_345_678, "2024")),
        ("acme/prenv/br-main-00000042", naming.StackName(900_000_042, "main")),
    ],
)
def test_both_stack_forms_parse_back_to_their_number_and_slug(stack: str, parsed: naming.StackName) -> None:
    assert naming.parse_stack(stack) == parsed
    assert naming.pr_of_stack(stack) == parsed.number


@pytest.mark.parametrize(
    "stack",
    [
        "br-",
        "br-main",
        "br-main-1234567",  # 7 digits
        "br-main-123456789",  # 9 digits
        "br--12345678",
        "br-main--12345678",
        "br-Main-12345678",
        "br-main_x-12345678",
        f"br-{'a' * 41}-12345678",
        "shared",
    ],
)
def test_names_no_branch_stack_could_have_are_not_stacks(stack: str) -> None:
    assert naming.parse_stack(stack) is None


def test_the_stacks_of_one_number_are_found_whatever_their_form() -> None:
    names = ["shared", "pr-7", "pr-912345678", "br-release-12345678", "br-main-00000001", "org/prenv/pr-8"]

    assert naming.stacks_of(names, 912_345_678) == ["br-release-12345678", "pr-912345678"]
    assert naming.stacks_of(names, 8) == ["pr-8"]
    assert naming.stacks_of(names, 9) == []


@pytest.mark.parametrize("slug", ["Release", "a--b", "-a", "a-", "a/b", "a" * 41, "ü", 7, None])
def test_a_slug_that_branch_slug_could_not_give_is_refused_naming_the_key(slug: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        naming.check_slug(slug, "prenv:slug")
    assert caught.value.key == "prenv:slug"


def test_a_slug_needs_a_branch_number() -> None:
    with pytest.raises(ConfigError, match=r"^prenv:pr"):
        naming.stack_name(7, "main")
    with pytest.raises(InvalidRecord, match="not a branch"):
        parse_record({"number": 7, "sha": SHA, "branch": "main", "slug": "main"})
    with pytest.raises(InvalidRecord, match="not a branch slug"):
        parse_record({"number": naming.branch_number("x"), "sha": SHA, "branch": "x", "slug": "$(x)"})


def test_a_branch_record_carries_its_slug_and_a_pr_record_none() -> None:
    [branch] = branch_records([("Release/1.2", SHA)], source="test")
    pr = parse_record({"number": 7, "sha": SHA, "branch": "Release/1.2"})

    assert (branch.slug, pr.slug) == ("release-1-2", None)


def test_the_stack_config_of_a_branch_environment_names_everything_from_its_slug() -> None:
    n = naming.branch_number("release/1.2")
    raw = {
        "baseDomain": "preview.example.com",
        "image": {"repository": "registry.example.com/app"},
        "services": [{"name": "web", "public": True}],
        "pr": n,
        "sha": SHA,
        "slug": "release-1-2",
        "namespacePrefix": "preview-",
    }
    cfg = stackconfig.load(raw)

    assert cfg.stack == f"br-release-1-2-{digits('release/1.2')}"
    assert cfg.namespace == f"preview-br-release-1-2-{digits('release/1.2')}"
    assert cfg.host == f"web-br-release-1-2-{digits('release/1.2')}.preview.example.com"
    assert cfg.database_name == f"pr_{n}"
    with pytest.raises(ConfigError, match=r"^prenv:slug: is set but prenv:pr 7 is not a branch"):
        stackconfig.load({**raw, "pr": 7})
    with pytest.raises(ConfigError, match=r"^prenv:slug: must be a branch slug"):
        stackconfig.load({**raw, "slug": "Release/1.2"})


def test_the_preview_program_takes_the_slug_from_the_stack_name_and_checks_the_config_agrees() -> None:
    from stacks import preview

    cfg = preview.load(ROOT, "br-release-1-2-12345678", {"sha": SHA})
    assert (cfg.pr.pr, cfg.pr.slug, cfg.namespace) == (912_345_678, "release-1-2", "br-release-1-2-12345678")
    assert preview.load(ROOT, "pr-912345678", {"sha": SHA}).namespace == "pr-912345678"  # made before slugs
    with pytest.raises(ConfigError, match=r"^prenv:slug"):
        preview.load(ROOT, "br-release-1-2-12345678", {"sha": SHA, "slug": "release-1-3"})
    with pytest.raises(ConfigError, match=r"^prenv:slug"):
        preview.load(ROOT, "pr-912345678", {"sha": SHA, "slug": "release-1-2"})


# -- properties: any text at all ------------------------------------------------------------------------------------

# No deadline: the machine is shared, and a slow example is not a wrong one.
properties = settings(max_examples=300, deadline=None)
any_text = st.text(min_size=0, max_size=400)
prefixes = st.from_regex(r"[a-z0-9][-a-z0-9]{0,50}", fullmatch=True) | st.just("")
apps = st.from_regex(r"[a-z]([-a-z0-9]{0,51}[a-z0-9])?", fullmatch=True)


@properties
@given(any_text)
def test_any_text_gives_a_canonical_slug_within_its_budget(branch: str) -> None:
    slug = naming.branch_slug(branch)

    assert SLUG.match(slug) and len(slug) <= naming.SLUG_MAX
    assert naming.check_slug(slug) == slug
    assert naming.branch_slug(slug) == slug  # a slug is its own slug


@properties
@given(any_text)
def test_any_text_gives_a_stack_name_pulumi_accepts_that_parses_back(branch: str) -> None:
    n, slug = naming.branch_number(branch), naming.branch_slug(branch)
    stack = naming.stack_name(n, slug)

    assert PULUMI_STACK.match(stack)
    assert naming.parse_stack(stack) == naming.StackName(n, slug)
    assert stack.endswith(digits(branch))


@properties
@given(any_text, prefixes)
def test_any_text_under_any_valid_prefix_gives_a_namespace_within_63_that_the_policy_admits(
    branch: str, prefix: str
) -> None:
    naming.check_namespace_prefix(prefix)  # the generated prefixes are valid ones
    n, slug = naming.branch_number(branch), naming.branch_slug(branch)
    ns = naming.namespace(n, prefix, slug)

    assert len(ns) <= naming.DNS_LABEL_MAX and DNS_LABEL.match(ns)
    assert re.fullmatch(naming.namespace_pattern(prefix), ns)
    assert ns.endswith(f"-{digits(branch)}")


@properties
@given(any_text, apps)
def test_any_text_with_any_valid_service_name_gives_a_host_within_budget(branch: str, app: str) -> None:
    n, slug = naming.branch_number(branch), naming.branch_slug(branch)
    host = naming.host(app, n, LONGEST_DOMAIN, slug)
    label = host.split(".", 1)[0]

    assert len(host) <= naming.DNS_NAME_MAX
    assert len(label) <= naming.DNS_LABEL_MAX and DNS_LABEL.match(label)
    assert label.endswith(digits(branch)) or label == f"{app}-{n}"


@properties
@given(st.lists(any_text, min_size=2, max_size=6, unique=True))
def test_distinct_branch_names_never_share_a_name_in_one_listing(branches: list[str]) -> None:
    prs = branch_records([(b, SHA) for b in branches], source="test")  # a hash collision is skipped there

    assert len({naming.stack_name(p.number, p.slug) for p in prs}) == len(prs)
    assert len({naming.namespace(p.number, "", p.slug) for p in prs}) == len(prs)
