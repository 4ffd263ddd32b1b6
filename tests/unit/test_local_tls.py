"""The local stack's throw-away CA and the broker settings of its secured listeners."""

import ipaddress

from cryptography import x509

from heartbeat_localstack.kafka import KafkaSecurity, merge_listeners, security_properties
from heartbeat_localstack.postgres import server_conf, tls_hba_conf
from heartbeat_localstack.tls import create_authority, create_client


def test_the_server_certificate_is_for_localhost_and_127_0_0_1_and_signed_by_the_ca(tmp_path):
    authority = create_authority(tmp_path / "tls")
    ca = x509.load_pem_x509_certificate(authority.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(authority.server_cert.read_bytes())

    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    server.verify_directly_issued_by(ca)
    assert authority.ca_key.stat().st_mode & 0o077 == 0


def test_a_client_certificate_carries_its_user_name_and_is_made_once(tmp_path):
    authority = create_authority(tmp_path / "tls")
    cert, key = create_client(authority, "heartbeat_cert")
    first = cert.read_bytes()

    parsed = x509.load_pem_x509_certificate(first)
    assert parsed.subject.rfc4514_string() == "CN=heartbeat_cert"
    assert create_client(authority, "heartbeat_cert") == (cert, key)
    assert cert.read_bytes() == first
    assert key.stat().st_mode & 0o077 == 0


def test_the_broker_adds_a_scram_listener_and_one_that_requires_client_certificates(tmp_path):
    plain = (
        "listeners=PLAINTEXT://127.0.0.1:1\nlistener.security.protocol.map=PLAINTEXT:PLAINTEXT\n"
    )
    extra = security_properties(KafkaSecurity(tmp_path, "u", "p"), 2, 3)

    merged = dict(line.split("=", 1) for line in merge_listeners(plain, extra).splitlines())

    assert merged["listeners"] == (
        "PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:2,SSL://127.0.0.1:3"
    )
    assert merged["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert merged["listener.name.ssl.ssl.client.auth"] == "required"
    assert "s3cr3t-pw" not in repr(KafkaSecurity(tmp_path, "u", "s3cr3t-pw"))


def test_postgresql_with_tls_refuses_plain_tcp_and_wants_a_password_or_a_certificate(tmp_path):
    rules = [line.split() for line in tls_hba_conf("certuser").splitlines()[1:]]

    assert ["hostssl", "all", "certuser", "127.0.0.1/32", "cert"] in rules
    assert ["hostssl", "all", "all", "127.0.0.1/32", "scram-sha-256"] in rules
    assert rules[-1] == ["hostnossl", "all", "all", "127.0.0.1/32", "reject"]
    assert "ssl = on" in server_conf(5432, tmp_path, tls=True)
    assert "ssl" not in server_conf(5432, tmp_path)
