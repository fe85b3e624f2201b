"""The local CA and its wildcard certificates: made once, reused, verified by a real TLS client."""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509

from prenv.cluster import pki
from prenv.errors import ConfigError


@pytest.fixture
def ca(tmp_path: Path) -> pki.KeyPair:
    return pki.ensure_ca(tmp_path / "tls", "prenv local CA (test)")


def test_the_ca_and_the_wildcard_keys_are_private_to_their_owner(tmp_path: Path, ca: pki.KeyPair) -> None:
    leaf = pki.ensure_wildcard(tmp_path / "tls", ca, "preview.test")
    for key in (ca.key, leaf.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == [
        "ca.crt",
        "ca.key",
        "wildcard.preview.test.crt",
        "wildcard.preview.test.key",
    ]


def test_a_second_call_reuses_the_ca_and_the_certificate(tmp_path: Path, ca: pki.KeyPair) -> None:
    leaf = pki.ensure_wildcard(tmp_path / "tls", ca, "preview.test")
    before = (ca.cert.read_bytes(), leaf.cert.read_bytes(), leaf.key.read_bytes())
    again_ca = pki.ensure_ca(tmp_path / "tls", "prenv local CA (test)")
    again_leaf = pki.ensure_wildcard(tmp_path / "tls", again_ca, "preview.test")
    assert (again_ca.cert.read_bytes(), again_leaf.cert.read_bytes(), again_leaf.key.read_bytes()) == before


def test_the_certificate_covers_the_wildcard_and_the_domain_and_is_signed_by_the_ca(
    tmp_path: Path, ca: pki.KeyPair
) -> None:
    leaf = pki.ensure_wildcard(tmp_path / "tls", ca, "preview.test")
    assert pki.dns_names(leaf.cert) == ["*.preview.test", "preview.test"]
    cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert.read_bytes()))
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


def test_a_certificate_from_another_ca_is_reissued(tmp_path: Path, ca: pki.KeyPair) -> None:
    leaf = pki.ensure_wildcard(tmp_path / "tls", ca, "preview.test")
    old = leaf.cert.read_bytes()
    other = pki.ensure_ca(tmp_path / "other", "another CA")
    reissued = pki.ensure_wildcard(tmp_path / "tls", other, "preview.test")
    assert reissued.cert.read_bytes() != old
    x509.load_pem_x509_certificate(reissued.cert.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate(other.cert.read_bytes())
    )


def test_a_certificate_close_to_expiry_is_reissued(
    tmp_path: Path, ca: pki.KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaf = pki.ensure_wildcard(tmp_path / "tls", ca, "preview.test")
    old = leaf.cert.read_bytes()
    later = datetime.datetime.now(datetime.UTC) + pki.LEAF_VALIDITY - pki.RENEW_BEFORE + datetime.timedelta(days=1)
    monkeypatch.setattr(pki, "_now", lambda: later)
    assert pki.ensure_wildcard(tmp_path / "tls", ca, "preview.test").cert.read_bytes() != old


def test_a_damaged_key_file_makes_a_new_ca(tmp_path: Path, ca: pki.KeyPair) -> None:
    old = ca.cert.read_bytes()
    ca.key.write_text("not a key\n")
    assert pki.ensure_ca(tmp_path / "tls", "prenv local CA (test)").cert.read_bytes() != old


@pytest.mark.parametrize(
    "domain",
    ["Preview.Test", "", "-a.test", "a..test", "a_b.test", "x" * 64 + ".test", "*.test"],
    ids=["upper-case", "empty", "leading-dash", "empty-label", "underscore", "label-too-long", "wildcard"],
)
def test_a_base_domain_that_is_not_a_dns_name_is_refused(tmp_path: Path, ca: pki.KeyPair, domain: str) -> None:
    with pytest.raises(ConfigError, match="base domain"):
        pki.ensure_wildcard(tmp_path / "tls", ca, domain)


def test_a_tls_client_trusting_the_ca_verifies_the_chain_and_the_name(tmp_path: Path, ca: pki.KeyPair) -> None:
    leaf = pki.ensure_wildcard(tmp_path / "tls", ca, "preview.test")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(leaf.cert, leaf.key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(ca.cert))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client_ctx.wrap_socket(raw, server_hostname="web-7.preview.test") as tls,
        ):
            assert tls.getpeercert()["subjectAltName"] == (("DNS", "*.preview.test"), ("DNS", "preview.test"))
        with (
            pytest.raises(ssl.SSLCertVerificationError, match=r"mismatch|doesn't match"),
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        ):
            client_ctx.wrap_socket(raw, server_hostname="web-7.elsewhere.test")
    finally:
        thread.join(timeout=5)
        listener.close()
