"""prenv serve's composition root for GitLab and branch sources: the right source, webhook scope and feedback."""

from __future__ import annotations

from pathlib import Path

import pytest

from prenv import settings
from prenv.errors import ConfigError
from prenv.service.dispatch import BackgroundFeedback
from prenv.service.feedback import NullFeedback
from prenv.service.gitlab_feedback import GitLabFeedback
from prenv.service.runner import build_service
from prenv.service.ttl import TtlSource
from prenv.sleep import SleepSource
from prenv.sources import GitHubBranchSource, GitLabBranchSource, GitLabSource
from tests.fixtures.gitlab import TOKEN
from testsupport.gitlab_server import FakeGitLab

PROJECT_DIR = Path(__file__).resolve().parents[2]  # this checkout's Pulumi project


def load(tmp_path: Path, env: dict[str, str]) -> settings.Settings:
    config = tmp_path / "prenv.yaml"
    config.write_text(f"project_dir: {PROJECT_DIR}\nstate:\n  backend: file://{tmp_path / 'state'}\n")
    return settings.load(config, {settings.WEBHOOK_SECRET_ENV: "x", **env})


def test_a_gitlab_source_gets_gitlab_webhooks_scoped_to_its_project_and_gitlab_feedback(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        {
            "PRENV_SOURCE__TYPE": "gitlab",
            "PRENV_SOURCE__GITLAB__PROJECT": "platform/shop",
            "PRENV_SOURCE__GITLAB__BASE_URL": "https://gitlab.example.com",
            "GITLAB_TOKEN": "glpat-secret",
        },
    )

    service = build_service(s)
    try:
        source = service.reconciler.source
        assert isinstance(source, TtlSource) and isinstance(source.inner, SleepSource)
        gitlab = source.inner.inner
        assert isinstance(gitlab, GitLabSource) and gitlab.base_url == "https://gitlab.example.com"
        assert (service.options.gitlab_project, service.options.repository) == ("platform/shop", None)
        assert service.options.branches is False
        assert isinstance(service.feedback, BackgroundFeedback)
        assert isinstance(service.feedback.inner, GitLabFeedback)
        assert "glpat-secret" not in repr(service.feedback) + repr(source.inner) + repr(s)
    finally:
        if isinstance(service.feedback, BackgroundFeedback):
            service.feedback.close()


def test_gitlab_s_rate_limit_is_not_exported_as_github_s(tmp_path: Path, fake_gitlab: FakeGitLab) -> None:
    fake_gitlab.add_merge_request("platform/shop", 1)
    s = load(
        tmp_path,
        {
            "PRENV_SOURCE__TYPE": "gitlab",
            "PRENV_SOURCE__GITLAB__PROJECT": "platform/shop",
            "PRENV_SOURCE__GITLAB__BASE_URL": fake_gitlab.url,
            "GITLAB_TOKEN": TOKEN,
            "PRENV_SERVE__FEEDBACK__ENABLED": "false",
            "PRENV_SERVE__TTL__ENABLED": "false",
        },
    )
    service = build_service(s)
    sleep = service.reconciler.source  # TTLs are off: the sleep source is the outermost wrapper
    assert isinstance(sleep, SleepSource)
    source = sleep.inner
    assert isinstance(source, GitLabSource)

    source.list_open()

    assert source.rate_limit is not None  # seen on the source...
    assert b"prenv_github_rate_limit" not in service.metrics.render()  # ...but not reported as GitHub's


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        (
            {"PRENV_SOURCE__TYPE": "gitlab-branches", "PRENV_SOURCE__GITLAB__PROJECT": "platform/shop"},
            GitLabBranchSource,
        ),
        (
            {"PRENV_SOURCE__TYPE": "github-branches", "PRENV_SOURCE__GITHUB__REPOSITORY": "octo/shop"},
            GitHubBranchSource,
        ),
    ],
    ids=["gitlab", "github"],
)
def test_a_branch_source_acts_on_pushes_writes_no_feedback_and_never_expires(
    tmp_path: Path, env: dict[str, str], kind: type[object]
) -> None:
    s = load(tmp_path, {**env, "PRENV_FILTERS__BRANCH_INCLUDE": "^release/"})
    assert s.serve.ttl.enabled

    service = build_service(s)

    assert isinstance(service.reconciler.source, kind)  # not wrapped in a TtlSource: branches do not expire
    assert service.ttl is None
    assert service.options.branches is True
    assert isinstance(service.feedback, NullFeedback)


def test_a_gitlab_source_without_a_project_is_refused_naming_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"source\.gitlab\.project is required"):
        load(tmp_path, {"PRENV_SOURCE__TYPE": "gitlab"})
