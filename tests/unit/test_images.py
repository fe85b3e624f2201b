"""prenv.cluster.images: spec validation, and the OCI archive umoci builds (read back blob by blob)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools.images import EXAMPLE_APP_DIR, EXAMPLE_APP_PORT, ROOT, example_app_spec, source_version
from prenv import stackconfig
from prenv.cluster import images
from prenv.cluster.images import EPOCH, ImageSpec, build_image, pause_image, split_ref
from prenv.errors import ClusterError, ToolError


def _binary(tmp_path: Path, name: str = "app", content: bytes = b"\x7fELF pretend binary") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    path.chmod(0o755)
    return path


def _spec(binary: Path, **overrides: Any) -> ImageSpec:
    fields: dict[str, Any] = {
        "ref": "prenv.local/example-app:pr-101",
        "entrypoint": ("/app", "--serve"),
        "files": {"/app": binary},
        "env": {"PORT": "8080"},
        "ports": (8080,),
        "labels": {"org.opencontainers.image.title": "t"},
    }
    fields.update(overrides)
    return ImageSpec(**fields)


class Archive:
    """An OCI layout tar read back, with every blob's digest checked against its name."""

    def __init__(self, path: Path) -> None:
        with tarfile.open(path) as tar:
            self.entries = {m.name: m for m in tar.getmembers()}
            self.files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
        for name, data in self.files.items():
            if name.startswith("blobs/sha256/"):
                assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1], f"{name} is not its digest"
        self.index = json.loads(self.files["index.json"])
        (self.descriptor,) = self.index["manifests"]
        self.manifest = self.blob(self.descriptor["digest"])
        self.config = self.blob(self.manifest["config"]["digest"])

    def blob(self, digest: str) -> Any:
        return json.loads(self.files[f"blobs/sha256/{digest.removeprefix('sha256:')}"])

    def layer(self) -> dict[str, tarfile.TarInfo]:
        (layer,) = self.manifest["layers"]
        data = gzip.decompress(self.files[f"blobs/sha256/{layer['digest'].removeprefix('sha256:')}"])
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            return {m.name.strip("/").removeprefix("./") or "/": m for m in tar.getmembers()}


def test_the_archive_is_an_oci_layout_named_for_containerd(tmp_path: Path) -> None:
    built = build_image(_spec(_binary(tmp_path)), tmp_path / "out" / "app.tar")
    archive = Archive(built.archive)

    assert json.loads(archive.files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert archive.descriptor["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert archive.descriptor["annotations"] == {
        "io.containerd.image.name": "prenv.local/example-app:pr-101",
        "org.opencontainers.image.ref.name": "pr-101",
    }
    assert archive.manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [layer["mediaType"] for layer in archive.manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ]
    assert built.ref == "prenv.local/example-app:pr-101"
    assert built.manifest_digest == archive.descriptor["digest"]
    assert built.config_digest == archive.manifest["config"]["digest"]
    # The archive's own entries: root-owned, fixed time, no group/world write.
    for info in archive.entries.values():
        assert (info.uid, info.gid, info.mtime) == (0, 0, EPOCH)
        assert info.mode & 0o022 == 0


def test_the_config_carries_entrypoint_env_ports_labels_and_a_non_root_user(tmp_path: Path) -> None:
    built = build_image(_spec(_binary(tmp_path)), tmp_path / "app.tar")
    config = Archive(built.archive).config

    assert config["architecture"] == "amd64"
    assert config["os"] == "linux"
    assert config["config"] == {
        "Entrypoint": ["/app", "--serve"],
        "Env": ["PORT=8080"],
        "ExposedPorts": {"8080/tcp": {}},
        "User": "65532:65532",
        "WorkingDir": "/",
        "Labels": {"org.opencontainers.image.title": "t"},
    }
    assert built.config.entrypoint == ("/app", "--serve")
    assert built.config.user == "65532:65532"
    assert built.config.ports == ("8080/tcp",)


def test_the_layer_holds_the_files_root_owned_with_fixed_modes_and_a_sticky_tmp(tmp_path: Path) -> None:
    data = tmp_path / "index.html"
    data.write_text("<p>hi</p>")
    data.chmod(0o600)  # not readable by the image's user as it is on the host: the image must fix that
    spec = _spec(_binary(tmp_path), files={"/app": _binary(tmp_path), "/srv/www/index.html": data})
    layer = Archive(build_image(spec, tmp_path / "app.tar").archive).layer()

    modes = {name: (info.type, info.mode, info.uid, info.gid) for name, info in layer.items()}
    assert modes == {
        "/": (tarfile.DIRTYPE, 0o755, 0, 0),
        "app": (tarfile.REGTYPE, 0o755, 0, 0),
        "srv": (tarfile.DIRTYPE, 0o755, 0, 0),
        "srv/www": (tarfile.DIRTYPE, 0o755, 0, 0),
        "srv/www/index.html": (tarfile.REGTYPE, 0o644, 0, 0),
        "tmp": (tarfile.DIRTYPE, 0o1777, 0, 0),
    }
    assert {info.mtime for info in layer.values()} == {EPOCH}


def test_the_same_inputs_give_the_same_digest_and_a_changed_binary_another(tmp_path: Path) -> None:
    binary = _binary(tmp_path)
    first = build_image(_spec(binary), tmp_path / "a.tar")
    second = build_image(_spec(binary), tmp_path / "b.tar")
    binary.write_bytes(b"\x7fELF another build")
    third = build_image(_spec(binary), tmp_path / "c.tar")

    assert first.manifest_digest == second.manifest_digest
    assert first.archive.read_bytes() == second.archive.read_bytes()
    assert third.manifest_digest != first.manifest_digest


def test_rebuilding_replaces_the_archive_and_leaves_no_scratch_files(tmp_path: Path) -> None:
    out = tmp_path / "images"
    build_image(_spec(_binary(tmp_path)), out / "app.tar")
    build_image(_spec(_binary(tmp_path), env={"PORT": "9090"}), out / "app.tar")

    assert sorted(p.name for p in out.iterdir()) == ["app.tar"]
    assert Archive(out / "app.tar").config["config"]["Env"] == ["PORT=9090"]


def test_the_pause_image_runs_pause_as_65535(tmp_path: Path) -> None:
    built = pause_image(_binary(tmp_path, "pause"), tmp_path / "pause.tar", "1.0")

    assert built.ref == "prenv.local/pause:1.0"
    assert built.config.entrypoint == ("/pause",)
    assert built.config.user == "65535:65535"
    assert "pause" in Archive(built.archive).layer()


def test_a_missing_umoci_fails_with_the_install_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolError, match="apt-get install -y umoci"):
        build_image(_spec(_binary(tmp_path)), tmp_path / "app.tar")


def test_a_missing_source_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="nope"):
        build_image(_spec(tmp_path / "nope"), tmp_path / "app.tar")
    assert not (tmp_path / "app.tar").exists()


def test_a_failing_umoci_is_reported_with_its_words(tmp_path: Path) -> None:
    fake = tmp_path / "umoci"
    fake.write_text("#!/bin/sh\necho 'umoci: no space left on device' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(ClusterError, match="umoci init failed: umoci: no space left on device"):
        build_image(_spec(_binary(tmp_path)), tmp_path / "app.tar", umoci=str(fake))


@pytest.mark.parametrize(
    ("ref", "parts"),
    [
        ("prenv.local/pause:1.0", ("prenv.local/pause", "1.0")),
        ("localhost:5000/team/app:pr-7", ("localhost:5000/team/app", "pr-7")),
        ("app:v1_2", ("app", "v1_2")),
    ],
    ids=["local host", "host with port", "bare name"],
)
def test_references_split_into_repository_and_tag(ref: str, parts: tuple[str, str]) -> None:
    assert split_ref(ref) == parts


@pytest.mark.parametrize(
    "ref",
    ["prenv.local/app", "Prenv/App:1", "app:", "app@sha256:" + "0" * 64, "app:-x", "localhost:5000/app", "a b:1"],
    ids=["no tag", "upper case", "empty tag", "digest", "tag starts with dash", "port is no tag", "space"],
)
def test_bad_references_are_refused(ref: str) -> None:
    with pytest.raises(ValueError, match="repository:tag"):
        split_ref(ref)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"entrypoint": ()}, "entrypoint"),
        ({"entrypoint": ("app",)}, "entrypoint"),
        ({"files": {"app": Path("/bin/true")}}, "absolute"),
        ({"files": {"/../etc/passwd": Path("/bin/true")}}, "absolute"),
        ({"user": "nobody"}, "numeric"),
        ({"ports": (0,)}, "range"),
        ({"env": {"A=B": "c"}}, "environment"),
        ({"ref": "app"}, "repository:tag"),
    ],
    ids=[
        "no entrypoint",
        "relative entrypoint",
        "relative file",
        "dotdot file",
        "named user",
        "port 0",
        "env =",
        "bad ref",
    ],
)
def test_bad_specs_are_refused_before_anything_runs(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(Path("/bin/true"), **overrides)


def test_the_public_surface_is_small() -> None:
    assert set(images.__all__) == {
        "CTR_INSTALL",
        "PAUSE_REPOSITORY",
        "UMOCI_INSTALL",
        "BuiltImage",
        "ImageConfig",
        "ImageSpec",
        "build_image",
        "import_archive",
        "pause_image",
        "read_image",
        "split_ref",
    }


def test_the_example_app_image_listens_where_the_template_sends_traffic(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "Pulumi.preview.yaml").read_text())["config"]
    template = stackconfig.load_template({k.removeprefix("prenv:"): v for k, v in raw.items()})
    (web,) = [svc for svc in template.services if svc.public]
    spec = example_app_spec(_binary(tmp_path))

    assert spec.env["PORT"] == str(web.port) == str(EXAMPLE_APP_PORT)
    assert spec.ports == (web.port,)
    assert web.readiness is not None and web.readiness.path == "/healthz"
    assert spec.ref == "prenv.local/example-app:dev"  # never "latest": that would mean pull-always
    assert spec.user == "65532:65532"


def test_the_example_app_version_follows_its_sources(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLE_APP_DIR, app, ignore=shutil.ignore_patterns("app"))
    before = source_version(app)
    (app / "README.md").write_text("docs do not change the binary")
    assert source_version(app) == before
    (app / "main.go").write_text((app / "main.go").read_text() + "\n// changed\n")
    assert source_version(app) != before
