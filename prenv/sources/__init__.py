"""PR sources: where the open pull requests come from. One file per provider behind one Protocol.

``GitHubSource`` and ``GitLabSource`` (the APIs), ``FileSource`` (YAML/JSON, the embedded default) and
``PostgresTableSource`` (a table CI writes) implement ``PullRequestSource.list_open``; ``GitHubBranchSource`` and
``GitLabBranchSource`` list branches as environments (prenv.sources.branches); filtering happens elsewhere
(``prenv.filters``). The in-memory ``prenv.sources.fake.FakeSource`` is a first-class provider for tests, imported
from its module, not exported here.
"""

from prenv.sources.base import ImageGate, PullRequestSource
from prenv.sources.file import FileSource
from prenv.sources.forge import RateLimit
from prenv.sources.github import GitHubAppCredentials, GitHubBranchSource, GitHubSource
from prenv.sources.gitlab import GitLabBranchSource, GitLabSource
from prenv.sources.postgres import PostgresTableSource

__all__ = [
    "FileSource",
    "GitHubAppCredentials",
    "GitHubBranchSource",
    "GitHubSource",
    "GitLabBranchSource",
    "GitLabSource",
    "ImageGate",
    "PostgresTableSource",
    "PullRequestSource",
    "RateLimit",
]
