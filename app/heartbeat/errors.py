"""Exceptions raised by the pipeline.

Every exception the package raises on purpose derives from ``HeartbeatError``::

    HeartbeatError
    ├── SettingsError          a setting is missing or wrong; the process cannot start
    ├── TransientError         a dependency is unreachable; retry with backoff, never skip
    │   ├── KafkaUnavailable
    │   └── DatabaseUnavailable
    ├── FatalError             a bug or an unrecoverable state; stop the process
    └── MessageRefused         the Kafka client refuses one message outright (too large)

Data errors (a malformed reading) are not exceptions: validation returns a
``Rejection`` value that goes to the dead-letter topic with its reason.
"""


class HeartbeatError(Exception):
    """Root of every exception raised by the heartbeat package."""


class SettingsError(HeartbeatError):
    """One or more settings are invalid; the message names each bad field."""


class UsageError(HeartbeatError):
    """A command-line option asks for something impossible; the message names the option."""


class TransientError(HeartbeatError):
    """A dependency failed in a way that retrying later can fix."""


class KafkaUnavailable(TransientError):
    """The Kafka cluster could not be reached or did not acknowledge in time."""


class DatabaseUnavailable(TransientError):
    """PostgreSQL could not be reached or the connection broke mid-transaction."""


class FatalError(HeartbeatError):
    """Something that retrying cannot fix; the process must stop."""


class MessageRefused(HeartbeatError):
    """The Kafka client refused one message outright (too large); retrying cannot help."""
