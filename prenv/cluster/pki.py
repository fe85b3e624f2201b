"""The embedded cluster's local certificate authority and the ``*.<base domain>`` certificates it signs.

In production the shared stack holds a wildcard certificate from a public CA and every PR namespace gets a copy
(``tls.mode: wildcard``). Locally there is no public CA, so the embedded cluster makes its own: one CA per
cluster, created by the first ``up`` and reused by every later one (``down`` removes it with the rest of the
cluster's files), and one wildcard certificate per base domain, signed by it. A client that trusts the CA file
(``curl --cacert``, a browser, ``ssl.create_default_context(cafile=...)``) verifies the chain Traefik serves.

Keys are ECDSA P-256 (fast to make, understood by Go, OpenSSL and browsers) and written 0600; certificates are
reissued when they are about to expire, when the domain's certificate was signed by another CA, or when a file
is unreadable.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from prenv.errors import ConfigError

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate a little clock skew between processes

# A base domain is a lower-case DNS name: labels of a-z, 0-9 and '-', each <= 63, and short enough that
# "*.<domain>" stays within the 253-character limit.
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A PEM certificate file and its PEM private key file."""

    cert: Path
    key: Path

    def cert_pem(self) -> str:
        return self.cert.read_text()

    def key_pem(self) -> str:
        return self.key.read_text()


def validate_base_domain(domain: str) -> str:
    if len(domain) > 251 or not _DOMAIN_RE.match(domain):
        raise ConfigError("base domain", f"{domain!r} is not a lower-case DNS name (labels of a-z, 0-9 and '-')")
    return domain


def ensure_ca(directory: Path, common_name: str) -> KeyPair:
    """The CA in ``directory`` (``ca.crt``, ``ca.key``), created if missing, unreadable or about to expire."""
    pair = KeyPair(directory / "ca.crt", directory / "ca.key")
    if _usable_ca(pair):
        return pair
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "prenv"), _cn(common_name)])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(pair, cert, key)
    return pair


def ensure_wildcard(directory: Path, ca: KeyPair, base_domain: str) -> KeyPair:
    """``wildcard.<base domain>.crt|.key`` in ``directory`` for ``*.<base domain>`` and ``<base domain>``,
    signed by ``ca``; reused while it is valid, for that domain, and signed by this CA."""
    domain = validate_base_domain(base_domain)
    pair = KeyPair(directory / f"wildcard.{domain}.crt", directory / f"wildcard.{domain}.key")
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    if _usable_leaf(pair, ca_cert, domain):
        return pair
    ca_key = serialization.load_pem_private_key(ca.key.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError("local CA", f"{ca.key} is not the EC key this module writes")
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "prenv"), _cn(f"*.{domain}")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"*.{domain}"), x509.DNSName(domain)]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write(pair, cert, key)
    return pair


def dns_names(cert: Path) -> list[str]:
    """The DNS names a certificate file is valid for (its SAN)."""
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    return loaded.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    )


def _cn(value: str) -> x509.NameAttribute[str]:
    # The CN is informational (clients match the SAN) and limited to 64 characters.
    return x509.NameAttribute(NameOID.COMMON_NAME, value[:64])


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _load(pair: KeyPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
        key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or cert.public_key() != key.public_key():
        return None
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return None
    return cert, key


def _usable_ca(pair: KeyPair) -> bool:
    return _load(pair) is not None


def _usable_leaf(pair: KeyPair, ca_cert: x509.Certificate, domain: str) -> bool:
    loaded = _load(pair)
    if loaded is None:
        return False
    cert, _ = loaded
    try:
        cert.verify_directly_issued_by(ca_cert)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return f"*.{domain}" in names.get_values_for_type(x509.DNSName)


def _write(pair: KeyPair, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    """Key first, then certificate, each written to a temporary file and renamed: a reader never sees half a
    file, and the key is 0600 from its first byte."""
    pair.key.parent.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _atomic_write(pair.key, key_pem, 0o600)
    _atomic_write(pair.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
