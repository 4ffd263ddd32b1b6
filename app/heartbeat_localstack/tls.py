"""A throw-away certificate authority for the local services, made with `cryptography`.

One CA per stack signs a server certificate for ``127.0.0.1``/``localhost`` (Kafka and
PostgreSQL both use it) and client certificates. Everything lives in the stack's own
``tls/`` folder and is made again when that folder is gone; nothing of it is ever committed.

The files, all PEM:

    ca.crt, ca.key               the authority
    server.crt, server.key       the servers' certificate and (PKCS#8, unencrypted) key
    server.pem                   key and certificate in one file, as Kafka's PEM keystore reads it
    <name>.crt, <name>.key       a client certificate (CN=<name>) and its key
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1",)


@dataclass(frozen=True)
class Authority:
    """The files under one ``tls/`` folder."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def server_pem(self) -> Path:
        return self.root / "server.pem"

    def client_cert(self, name: str) -> Path:
        return self.root / f"{name}.crt"

    def client_key(self, name: str) -> Path:
        return self.root / f"{name}.key"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.write_bytes(data)
    path.chmod(mode)


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def create_authority(root: Path, name: str = "heartbeat-local-ca") -> Authority:
    """A CA and the servers' certificate, unless `root` holds them already."""
    authority = Authority(Path(root))
    if authority.ca_cert.exists() and authority.server_pem.exists():
        return authority
    authority.root.mkdir(parents=True, exist_ok=True)
    authority.root.chmod(0o755)
    ca_key = _key()
    ca_cert = (
        _builder(name, _name(name), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(authority.ca_key, _key_pem(ca_key), 0o600)
    _write(authority.ca_cert, _cert_pem(ca_cert))
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_ADDRESSES]
    server_key, server_cert = issue(authority, "localhost", names, server=True)
    _write(authority.server_key, _key_pem(server_key), 0o644)
    _write(authority.server_cert, _cert_pem(server_cert))
    _write(authority.server_pem, _key_pem(server_key) + _cert_pem(server_cert), 0o644)
    return authority


def issue(
    authority: Authority,
    common_name: str,
    names: list[x509.GeneralName] | None = None,
    *,
    server: bool = False,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a certificate for it signed by `authority` (server or client use)."""
    ca_key = serialization.load_pem_private_key(authority.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(authority.ca_cert.read_bytes())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{authority.ca_key} is not an EC key")
    key = _key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(common_name, ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def create_client(authority: Authority, name: str) -> tuple[Path, Path]:
    """A client certificate with CN=`name` (also its user name to PostgreSQL): cert, key."""
    cert_path, key_path = authority.client_cert(name), authority.client_key(name)
    if not (cert_path.exists() and key_path.exists()):
        key, cert = issue(authority, name)
        _write(key_path, _key_pem(key), 0o600)
        _write(cert_path, _cert_pem(cert))
    return cert_path, key_path


def create_server_for(authority: Authority, root: Path, host: str) -> tuple[Path, Path]:
    """A server certificate from `authority` for another host name only (for tests)."""
    root.mkdir(parents=True, exist_ok=True)
    key, cert = issue(authority, host, [x509.DNSName(host)], server=True)
    cert_path, key_path = root / f"{host}.crt", root / f"{host}.key"
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, _cert_pem(cert))
    return cert_path, key_path
