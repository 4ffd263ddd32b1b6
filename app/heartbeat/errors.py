"""Exceptions raised by the pipeline.

Every exception the package raises on purpose derives from ``HeartbeatError``, and the
command line reports each class in its own way (``heartbeat.cli.REPORTS``)::

    HeartbeatError
    ├── SettingsError              a setting is missing or wrong; the process cannot start
    ├── UsageError                 a command-line option asks for something impossible
    ├── TransientError             a dependency is unreachable; retry with backoff, never skip
    │   ├── KafkaUnavailable
    │   └── DatabaseUnavailable
    ├── FatalError                 retrying cannot fix it; the process stops, for one cause:
    │   ├── TopicNotCreated        Kafka refuses to create a topic the pipeline needs
    │   ├── TopicNotFound          a topic to read does not exist
    │   ├── ConsumerFailed         the Kafka client reports a fatal consumer error
    │   ├── SchemaNotMigrated      PostgreSQL lacks what a migration makes
    │   ├── MigrationsFolderMissing  MIGRATIONS_DIR names no folder
    │   ├── NoRollbackStep         a migration to roll back has no rollback step
    │   ├── MetricsPortUnavailable the metrics port cannot be bound
    │   └── GroupActive            a consumer group must be stopped first
    └── MessageRefused             the Kafka client refuses one message outright (too large)

Data errors (a malformed reading) are not exceptions: validation returns a
``Rejection`` value that goes to the dead-letter topic with its reason. ``MessageRefused``
is handled where a message is sent: a dead letter is sent again as a minimal one, a
re-driven one is reported and skipped, a reading is counted as not delivered.
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
    """Something that retrying cannot fix; the process must stop. Raised as one of its causes."""


class TopicNotCreated(FatalError):
    """Kafka refused, for good, to create a topic the pipeline needs (e.g. not authorised)."""


class TopicNotFound(FatalError):
    """A topic to read from, or whose partitions are asked for, does not exist."""


class ConsumerFailed(FatalError):
    """The Kafka client reports a fatal consumer error (e.g. fenced by another instance)."""


class SchemaNotMigrated(FatalError):
    """PostgreSQL lacks a table or the partitioning a migration makes: run ``heartbeat migrate``."""


class MigrationsFolderMissing(FatalError):
    """The migrations folder (MIGRATIONS_DIR) does not exist."""


class NoRollbackStep(FatalError):
    """A migration chosen for rollback has no rollback step, so nothing is undone."""


class MetricsPortUnavailable(FatalError):
    """The metrics server cannot listen on METRICS_HOST:METRICS_PORT (in use, not allowed)."""


class GroupActive(FatalError):
    """The consumer group has active members; what was asked needs it stopped."""


class MessageRefused(HeartbeatError):
    """The Kafka client refused one message outright (too large); retrying cannot help."""
