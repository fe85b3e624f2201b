"""prenv: one Pulumi stack per pull request, created, updated and destroyed as PRs open, change and close."""

__version__ = "0.1.0"
