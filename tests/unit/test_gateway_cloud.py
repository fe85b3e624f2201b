"""The Automation-API gateway reads only plain outputs: a secret output never becomes a sha, hash or URL."""

from __future__ import annotations

from pulumi import automation as auto

from prenv.gateway.cloud import _out


def test_plain_outputs_are_read_as_text_and_secret_or_missing_ones_as_nothing() -> None:
    outputs = {
        "sha": auto.OutputValue(value="a" * 40, secret=False),
        "port": auto.OutputValue(value=5432, secret=False),
        "url": auto.OutputValue(value="postgresql://u:pw@db/x", secret=True),
    }
    assert _out(outputs, "sha") == "a" * 40
    assert _out(outputs, "port") == "5432"
    assert _out(outputs, "url") is None
    assert _out(outputs, "configHash") is None
