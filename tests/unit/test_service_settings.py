"""The serve: section: defaults, environment overrides, and the webhook secret only from env or a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from prenv.errors import ConfigError
from prenv.service import settings as serve_settings

SECRET = "hush-hush-value"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prenv.yaml"
    path.write_text(text)
    return path


def test_defaults_match_the_documented_ones(tmp_path: Path) -> None:
    _, serve = serve_settings.load(write(tmp_path, "{}\n"), {serve_settings.SECRET_ENV: SECRET})
    assert (serve.host, serve.port, serve.max_body_bytes) == ("0.0.0.0", 8080, 1024 * 1024)  # noqa: S104
    assert (serve.resync_seconds, serve.shutdown_grace_seconds) == (300.0, 600.0)
    assert serve.ttl.default_hours == 48.0 and serve.ttl.enabled
    assert serve.feedback.enabled and not serve.feedback.health_check
    assert serve.secret_bytes() == SECRET.encode()


def test_the_serve_section_lives_next_to_the_driver_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "reconcile:\n  parallelism: 3\nserve:\n  port: 9000\n  ttl:\n    default_hours: 12\n")
    settings, serve = serve_settings.load(
        path, {serve_settings.SECRET_ENV: SECRET, "PRENV_SERVE__TTL__ENABLED": "false"}
    )
    assert settings.reconcile.parallelism == 3
    assert serve.port == 9000 and serve.ttl.default_hours == 12.0
    assert serve.ttl.enabled is False


def test_a_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"serve\.webhook_secret"):
        serve_settings.load(write(tmp_path, f"serve:\n  webhook_secret: {SECRET}\n"), {})


def test_the_secret_can_come_from_a_file_relative_to_prenv_yaml(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text(SECRET + "\n")
    _, serve = serve_settings.load(write(tmp_path, "serve:\n  webhook_secret_file: hook.secret\n"), {})
    assert serve.secret_bytes() == SECRET.encode()
    assert SECRET not in repr(serve) and SECRET not in str(serve.model_dump())


def test_no_secret_at_all_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    _, serve = serve_settings.load(write(tmp_path, "{}\n"), {})
    with pytest.raises(ConfigError, match="PRENV_WEBHOOK_SECRET"):
        serve.secret_bytes()


@pytest.mark.parametrize(
    ("text", "key"),
    [("serve:\n  port: 0\n", "serve.port"), ("serve:\n  nope: 1\n", "serve.nope"), ("serve: [1]\n", "serve")],
    ids=["bad-port", "unknown-key", "not-a-mapping"],
)
def test_a_bad_serve_section_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        serve_settings.load(write(tmp_path, text), {serve_settings.SECRET_ENV: SECRET})
    assert info.value.key == key
