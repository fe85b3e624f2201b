"""prenv.yaml and the environment: one tree for driver and service, one env mapping, errors naming the written key."""

from __future__ import annotations

from pathlib import Path

import pytest

from prenv import settings
from prenv.errors import ConfigError

SECRET = "hush-hush-value"
WITH_SECRET = {settings.WEBHOOK_SECRET_ENV: SECRET}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "prenv.yaml"
    path.write_text(text)
    return path


def test_serve_defaults_match_the_documented_ones(tmp_path: Path) -> None:
    serve = settings.load(write(tmp_path, "{}\n"), WITH_SECRET).serve
    assert (serve.host, serve.port, serve.max_body_bytes) == ("0.0.0.0", 8080, 1024 * 1024)  # noqa: S104
    assert (serve.resync_seconds, serve.shutdown_grace_seconds) == (300.0, 600.0)
    assert serve.ttl.default_hours is None and serve.ttl.enabled  # None: the template's prenv:ttl (48h)
    assert serve.feedback.enabled and not serve.feedback.health_check
    assert not serve.leader_election.enabled and serve.leader_election.namespace == "prenv-system"
    assert serve.secret_bytes() == SECRET.encode()


def test_the_serve_section_is_part_of_the_one_settings_tree(tmp_path: Path) -> None:
    path = write(tmp_path, "reconcile:\n  parallelism: 3\nserve:\n  port: 9000\n  ttl:\n    default_hours: 12\n")
    s = settings.load(path, {**WITH_SECRET, "PRENV_SERVE__TTL__ENABLED": "false"})
    assert s.reconcile.parallelism == 3
    assert s.serve.port == 9000 and s.serve.ttl.default_hours == 12.0
    assert s.serve.ttl.enabled is False


def test_an_empty_serve_section_means_its_defaults(tmp_path: Path) -> None:
    assert settings.load(write(tmp_path, "serve:\n"), {}).serve.port == 8080


def test_the_environment_overlay_reads_the_environ_passed_not_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRENV_RECONCILE__PARALLELISM", "7")
    monkeypatch.setenv("PRENV_SERVE__PORT", "9999")
    path = write(tmp_path, "{}\n")
    assert settings.load(path, {}).reconcile.parallelism == 2
    assert settings.load(path, {}).serve.port == 8080
    assert settings.load(path, {"PRENV_RECONCILE__PARALLELISM": "4"}).reconcile.parallelism == 4


def test_without_an_environ_the_process_environment_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRENV_RECONCILE__PARALLELISM", "7")
    assert settings.load(write(tmp_path, "{}\n")).reconcile.parallelism == 7


def test_a_nested_serve_key_comes_from_the_environment_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "serve:\n  ttl:\n    default_hours: 12\n    keep_label: keep-me\n")
    ttl = settings.load(path, {"PRENV_SERVE__TTL__DEFAULT_HOURS": "24"}).serve.ttl
    assert ttl.default_hours == 24.0
    assert ttl.keep_label == "keep-me"  # the rest of the file's section stays


def test_a_list_comes_from_the_environment_as_json(tmp_path: Path) -> None:
    s = settings.load(write(tmp_path, "filters:\n  labels: [a]\n"), {"PRENV_FILTERS__LABELS": '["preview"]'})
    assert s.filters.labels == ("preview",)


@pytest.mark.parametrize(
    ("environ", "file_enabled", "enabled"),
    [
        ({"PRENV_LEADER_ELECTION": "true"}, False, True),
        ({"PRENV_LEADER_ELECTION": "false"}, True, False),
        ({}, True, True),
        ({"PRENV_LEADER_ELECTION": "true", "PRENV_SERVE__LEADER_ELECTION__ENABLED": "false"}, False, False),
    ],
    ids=["alias-turns-it-on", "alias-turns-it-off", "file-alone", "the-sectioned-name-wins-over-the-alias"],
)
def test_leader_election_follows_prenv_leader_election(
    tmp_path: Path, environ: dict[str, str], file_enabled: bool, enabled: bool
) -> None:
    path = write(tmp_path, f"serve:\n  leader_election:\n    enabled: {str(file_enabled).lower()}\n")
    assert settings.load(path, environ).serve.leader_election.enabled is enabled


def test_well_known_variables_set_the_github_token_and_the_admin_dsn_as_secrets(tmp_path: Path) -> None:
    environ = {"GITHUB_TOKEN": "ghp_alias", "PRENV_DATABASE_ADMIN_DSN": "postgresql://admin:pw@db/postgres"}
    s = settings.load(write(tmp_path, "{}\n"), environ)
    assert s.source.github.token is not None and s.source.github.token.get_secret_value() == "ghp_alias"
    assert s.database.admin_dsn is not None and s.database.admin_dsn.get_secret_value().endswith("@db/postgres")
    assert "ghp_alias" not in repr(s) and "pw@db" not in repr(s)


def test_the_sectioned_variable_wins_over_the_well_known_one(tmp_path: Path) -> None:
    environ = {"GITHUB_TOKEN": "ghp_alias", "PRENV_SOURCE__GITHUB__TOKEN": "ghp_own"}
    token = settings.load(write(tmp_path, "{}\n"), environ).source.github.token
    assert token is not None and token.get_secret_value() == "ghp_own"


def test_relative_paths_resolve_against_the_folder_of_prenv_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "project_dir: proj\nsource:\n  file:\n    path: prs.yaml\nstate:\n  backend: file://st\n")
    s = settings.load(path, {})
    assert s.project_dir == tmp_path / "proj"
    assert s.source.file.path == tmp_path / "prs.yaml"
    assert s.state.backend == f"file://{tmp_path / 'st'}"


def test_a_webhook_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"serve\.webhook_secret"):
        settings.load(write(tmp_path, f"serve:\n  webhook_secret: {SECRET}\n"), {})


def test_the_webhook_secret_never_comes_from_a_sectioned_variable(tmp_path: Path) -> None:
    serve = settings.load(write(tmp_path, "{}\n"), {"PRENV_SERVE__WEBHOOK_SECRET": SECRET}).serve
    assert serve.webhook_secret is None


def test_the_webhook_secret_can_come_from_a_file_relative_to_prenv_yaml(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text(SECRET + "\n")
    s = settings.load(write(tmp_path, "serve:\n  webhook_secret_file: hook.secret\n"), {})
    assert s.serve.secret_bytes() == SECRET.encode()
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())


def test_the_variable_wins_over_the_webhook_secret_file(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text("from-the-file\n")
    s = settings.load(write(tmp_path, "serve:\n  webhook_secret_file: hook.secret\n"), WITH_SECRET)
    assert s.serve.secret_bytes() == SECRET.encode()


def test_a_missing_webhook_secret_file_fails_only_the_command_that_needs_the_secret(tmp_path: Path) -> None:
    s = settings.load(write(tmp_path, "serve:\n  webhook_secret_file: gone.secret\n"), {})  # prenv sync, list...
    with pytest.raises(ConfigError) as info:
        s.serve.secret_bytes()  # prenv serve, at start
    assert info.value.key == "serve.webhook_secret_file"


def test_no_webhook_secret_at_all_is_a_config_error_naming_the_variable(tmp_path: Path) -> None:
    serve = settings.load(write(tmp_path, "{}\n"), {}).serve
    with pytest.raises(ConfigError, match="PRENV_WEBHOOK_SECRET"):
        serve.secret_bytes()


@pytest.mark.parametrize(
    ("text", "environ", "key"),
    [
        ("serve:\n  port: 0\n", {}, "serve.port"),
        ("serve:\n  nope: 1\n", {}, "serve.nope"),
        ("serve: [1]\n", {}, "serve"),
        ("serve:\n  ttl:\n    default_hours: -1\n", {}, "serve.ttl.default_hours"),
        ("{}\n", {"PRENV_SERVE__TTL__DEFAULT_HOURS": "soon"}, "serve.ttl.default_hours"),
        ("reconcile:\n  parallelism: 99\n", {}, "reconcile.parallelism"),
        ("source:\n  type: github\n", {}, "source"),
        ("sorce: {}\n", {}, "sorce"),
        ("filters:\n  labels: [1]\n", {}, "filters.labels[0]"),
    ],
    ids=[
        "bad-port",
        "unknown-serve-key",
        "serve-not-a-mapping",
        "nested-serve-key",
        "bad-value-from-the-environment",
        "out-of-range",
        "incomplete-section",
        "unknown-section",
        "list-item",
    ],
)
def test_a_bad_setting_is_a_config_error_naming_the_key_as_written(
    tmp_path: Path, text: str, environ: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        settings.load(write(tmp_path, text), environ)
    assert info.value.key == key
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_a_mapping_is_named_by_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, "- 1\n")
    with pytest.raises(ConfigError) as info:
        settings.load(path, {})
    assert info.value.key == str(path)


def test_the_file_comes_from_prenv_config_in_the_environ_passed(tmp_path: Path) -> None:
    path = write(tmp_path, "serve:\n  port: 9100\n")
    assert settings.load(None, {settings.CONFIG_ENV: str(path)}).serve.port == 9100


def test_the_example_file_is_valid_and_spells_out_the_serve_defaults() -> None:
    example = Path(__file__).resolve().parents[2] / "prenv.example.yaml"
    s = settings.load(example, {})
    assert s.serve.model_dump(exclude={"repository", "webhook_secret_file"}) == (
        settings.ServeSettings().model_dump(exclude={"repository", "webhook_secret_file"})
    )
