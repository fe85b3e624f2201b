"""PR sources: where the open pull requests come from. One file per provider behind one Protocol.

``GitHubSource`` (the API), ``FileSource`` (YAML/JSON, the embedded default), ``PostgresTableSource`` (a table CI
writes) and ``FakeSource`` (tests) all implement ``PullRequestSource.list_open``; filtering happens elsewhere
(``prenv.filters``).
"""

from prenv.sources.base import PullRequestSource
from prenv.sources.fake import FakeSource
from prenv.sources.file import FileSource
from prenv.sources.github import GitHubAppCredentials, GitHubSource, RateLimit
from prenv.sources.postgres import PostgresTableSource

__all__ = [
    "FakeSource",
    "FileSource",
    "GitHubAppCredentials",
    "GitHubSource",
    "PostgresTableSource",
    "PullRequestSource",
    "RateLimit",
]
