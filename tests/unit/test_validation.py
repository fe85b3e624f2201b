"""The one translation of pydantic's errors into ConfigError: the key as written, a one-line reason."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from prenv.validation import config_error, key_of


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    image_tag: str = Field("x", alias="imageTag", pattern="^[a-z]+$")
    count: int = Field(1, ge=1)


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: Inner = Field(default_factory=Inner)
    items: list[Inner] = Field(default_factory=list)
    name: str


def error_of(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate(data)
    return info.value


@pytest.mark.parametrize(
    ("data", "key", "message"),
    [
        ({"name": "n", "nope": 1}, "nope", "unknown key"),
        ({}, "name", "is required"),
        ({"name": "n", "inner": {"count": 0}}, "inner.count", "Input should be greater than or equal to 1"),
        ({"name": "n", "items": [{}, {"imageTag": "UP"}]}, "items[1].imageTag", "'UP' does not have the expected form"),
    ],
    ids=["unknown-key", "missing", "nested", "list-item-under-its-alias"],
)
def test_the_error_names_the_key_as_written_with_a_short_reason(data: object, key: str, message: str) -> None:
    aliases = {"image_tag": "imageTag"}
    e = config_error(error_of(data), aliases=aliases)
    assert (e.key, str(e)) == (key, f"{key}: {message}")


def test_a_prefix_is_written_before_the_first_part_without_a_dot() -> None:
    assert key_of(("app", "replicas"), "prenv:") == "prenv:app.replicas"
    assert key_of(("serve", "ttl", "default_hours")) == "serve.ttl.default_hours"


def test_an_error_about_the_whole_document_falls_back_to_the_given_key() -> None:
    with pytest.raises(ValidationError) as info:
        Outer.model_validate([1])
    assert config_error(info.value, fallback="prenv.yaml").key == "prenv.yaml"
