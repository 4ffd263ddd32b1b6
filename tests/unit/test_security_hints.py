"""A refused secured connection names the setting to check, in the client library's words."""

import pytest

from heartbeat.security_hints import kafka_hint, postgres_hint, with_hint

# Messages as librdkafka 2.x and libpq 16 print them.
KAFKA = {
    "sasl_ssl://127.0.0.1:1/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
    "certificate verify failed: broker certificate could not be verified": "KAFKA_SSL_CA_LOCATION",
    "sasl_ssl://127.0.0.1:1/bootstrap: SASL authentication error: Authentication failed during "
    "authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512": (
        "KAFKA_SASL_PASSWORD"
    ),
    "ssl://127.0.0.1:1/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls alert "
    "bad certificate: SSL alert number 42": "KAFKA_SSL_CERTIFICATE_LOCATION",
}
POSTGRES = {
    'connection to server at "127.0.0.1", port 1 failed: SSL error: certificate verify failed': (
        "sslrootcert"
    ),
    'server certificate for "other.example" does not match host name "db.example.org"': "PGHOST",
    'FATAL:  password authentication failed for user "heartbeat"': "PGPASSWORD",
    "FATAL:  connection requires a valid client certificate": "sslcert",
    'pg_hba.conf rejects connection for host "127.0.0.1", user "x", no encryption': "sslmode",
    'invalid sslmode value: "verify-fullx"': "PGSSLMODE",
}


@pytest.mark.parametrize(("message", "setting"), KAFKA.items())
def test_a_refused_kafka_connection_names_the_setting_to_check(message, setting):
    assert setting in (kafka_hint(message) or "")


@pytest.mark.parametrize(("message", "setting"), POSTGRES.items())
def test_a_refused_postgresql_connection_names_the_setting_to_check(message, setting):
    assert setting in (postgres_hint(message) or "")


def test_an_outage_has_no_hint_and_keeps_its_own_words():
    message = "127.0.0.1:9092/bootstrap: Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
    assert kafka_hint(message) is None
    assert postgres_hint("Connection refused") is None
    assert with_hint(message, None) == message
