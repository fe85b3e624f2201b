"""Staging secrets from AWS Secrets Manager (moto): selected by prefix, named as env vars, values untouched."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from components import secrets


@pytest.fixture
def client():  # type: ignore[no-untyped-def]
    with mock_aws():
        c = boto3.client("secretsmanager", region_name="eu-west-1")
        c.create_secret(Name="staging/shop/stripe-key", SecretString="sk_test_1")
        c.create_secret(Name="staging/shop/smtp.password", SecretString="mail-pw")
        c.create_secret(Name="staging/other/token", SecretString="not-ours")
        c.create_secret(Name="production/shop/stripe-key", SecretString="sk_live")
        yield c


def test_only_secrets_under_the_prefix_are_fetched_and_named_as_env_vars(client) -> None:  # type: ignore[no-untyped-def]
    assert secrets.fetch("staging/shop/", client=client) == {"STRIPE_KEY": "sk_test_1", "SMTP_PASSWORD": "mail-pw"}


def test_pagination_is_followed(client) -> None:  # type: ignore[no-untyped-def]
    for i in range(120):
        client.create_secret(Name=f"staging/bulk/key-{i:03d}", SecretString=str(i))
    fetched = secrets.fetch("staging/bulk/", client=client)
    assert len(fetched) == 120
    assert fetched["KEY_119"] == "119"


def test_an_empty_prefix_match_gives_no_secrets(client) -> None:  # type: ignore[no-untyped-def]
    assert secrets.fetch("staging/none/", client=client) == {}


@pytest.mark.parametrize(
    ("name", "expected"), [("staging/a/db-url", "DB_URL"), ("staging/a/x.y.z", "X_Y_Z"), ("staging/a/-", "")]
)
def test_env_names(name: str, expected: str) -> None:
    assert secrets.env_name(name, "staging/a/") == expected
