"""Which setting to look at when a secured connection is refused: pure text in, text out.

librdkafka and libpq say what went wrong in their own words ("certificate verify failed",
"SSL alert number 42"); a user needs the setting that fixes it. Each function returns one
sentence naming the setting, or None when the text is not about TLS or authentication.
"""

from __future__ import annotations

# (words in the client library's message, the sentence for the user), first match wins.
_KAFKA: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("hostname mismatch",),
        "the broker's certificate is for another host name than the one in "
        "KAFKA_BOOTSTRAP_SERVERS (or the broker's advertised listener)",
    ),
    (
        ("certificate verify failed",),
        "the broker's certificate is not signed by the CA in KAFKA_SSL_CA_LOCATION "
        "(or is for another host than the one in KAFKA_BOOTSTRAP_SERVERS)",
    ),
    (
        ("sasl authentication error",),
        "the broker refused the SASL login: check KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD "
        "and KAFKA_SASL_MECHANISM",
    ),
    (
        ("alert bad certificate",),
        "the broker wants a client certificate it trusts: check "
        "KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION",
    ),
    (
        ("alert certificate required",),
        "the broker wants a client certificate: set KAFKA_SSL_CERTIFICATE_LOCATION and "
        "KAFKA_SSL_KEY_LOCATION",
    ),
    (
        ("alert unknown ca",),
        "the broker does not trust the client certificate in KAFKA_SSL_CERTIFICATE_LOCATION",
    ),
    (
        ("ssl handshake failed", "wrong version number"),
        "the broker does not speak TLS on this port: check KAFKA_SECURITY_PROTOCOL and "
        "KAFKA_BOOTSTRAP_SERVERS",
    ),
    (
        ("disconnected while requesting apiversion", "connection setup timed out in state ssl"),
        "the broker closed the connection during setup: check that KAFKA_SECURITY_PROTOCOL "
        "matches the listener in KAFKA_BOOTSTRAP_SERVERS",
    ),
)

_POSTGRES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("does not match host name", "server certificate for"),
        "the server's certificate is for another host than the one in DATABASE_URL/PGHOST "
        "(sslmode=verify-full checks the name)",
    ),
    (
        ("certificate verify failed",),
        "the server's certificate is not signed by the CA in sslrootcert (DATABASE_URL) "
        "or PGSSLROOTCERT",
    ),
    (
        ("root certificate file",),
        "sslmode=verify-ca/verify-full needs a CA: set sslrootcert in DATABASE_URL or "
        "PGSSLROOTCERT to an existing file",
    ),
    (
        ("password authentication failed",),
        "PostgreSQL refused the password: check the password in DATABASE_URL or PGPASSWORD",
    ),
    (
        ("no password supplied",),
        "PostgreSQL wants a password: set it in DATABASE_URL or PGPASSWORD",
    ),
    (
        ("connection requires a valid client certificate", "certificate authentication failed"),
        "PostgreSQL wants a client certificate it trusts for this user: check sslcert and "
        "sslkey in DATABASE_URL (or PGSSLCERT and PGSSLKEY)",
    ),
    (
        ("alert certificate required", "alert bad certificate", "alert unknown ca"),
        "PostgreSQL refused the client certificate: check sslcert and sslkey in DATABASE_URL "
        "(or PGSSLCERT and PGSSLKEY)",
    ),
    (
        ("no encryption", "server does not support ssl"),
        "PostgreSQL and the client disagree on TLS: check sslmode in DATABASE_URL or PGSSLMODE",
    ),
    (
        ("invalid sslmode value",),
        "sslmode in DATABASE_URL or PGSSLMODE is not one of disable, allow, prefer, require, "
        "verify-ca, verify-full",
    ),
)


def _match(text: str, rules: tuple[tuple[tuple[str, ...], str], ...]) -> str | None:
    lowered = text.lower()
    for words, sentence in rules:
        if any(word in lowered for word in words):
            return sentence
    return None


def kafka_hint(text: str) -> str | None:
    """The setting to check for a librdkafka error or log line, if it is about security."""
    return _match(text, _KAFKA)


def postgres_hint(text: str) -> str | None:
    """The setting to check for a libpq error message, if it is about TLS or login."""
    return _match(text, _POSTGRES)


def with_hint(text: str, hint: str | None) -> str:
    """`text`, followed by the hint when there is one."""
    return f"{text}: {hint}" if hint else text
