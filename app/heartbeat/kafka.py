"""Everything that talks to Kafka; the only module that imports confluent_kafka.

The rest of the package sees small typed wrappers: ``Record`` for a consumed
message, ``Partition`` for a (topic, partition) pair (both in ``heartbeat.types``,
re-exported here), and ``KafkaProducer`` / ``KafkaConsumer`` with just the calls the
pipeline makes.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    ConsumerGroupTopicPartitions,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from heartbeat.errors import (
    ConsumerFailed,
    KafkaUnavailable,
    MessageRefused,
    SettingsError,
    TopicNotCreated,
    TopicNotFound,
)
from heartbeat.security_hints import kafka_hint, with_hint
from heartbeat.settings import Settings
from heartbeat.types import Headers as Headers
from heartbeat.types import Message as RawMessage
from heartbeat.types import Partition as Partition
from heartbeat.types import Record as Record

logger = logging.getLogger(__name__)
librdkafka_logger = logging.getLogger("heartbeat.librdkafka")

# librdkafka's default message.max.bytes, and the budget when Kafka names no limit.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
# Answers that retrying the same message cannot change: it is too large for the client,
# the topic or a log segment, or the broker will not take the record as it is (e.g. no
# key on a compacted topic, headers on an old message format).
REFUSALS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_MSG_SIZE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_MSG,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
    }
)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    topic: str
    partition: int
    offset: int
    error: str | None
    # The broker or the client refused the message for good (see REFUSALS): sending
    # it again cannot succeed. Any other error may succeed on a later attempt.
    refused: bool = False


def _delivery_report(error: KafkaError | None, message: Message) -> DeliveryReport:
    partition, offset = message.partition(), message.offset()
    return DeliveryReport(
        topic=message.topic() or "",
        partition=-1 if partition is None else partition,
        offset=-1 if offset is None else offset,
        error=None if error is None else error.str(),
        refused=error is not None and error.code() in REFUSALS,
    )


def client_config(settings: Settings) -> dict[str, Any]:
    """Connection settings shared by every client."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap_servers,
        "security.protocol": settings.kafka_security_protocol,
        # librdkafka's own log lines go through Python logging (and its format).
        "logger": librdkafka_logger,
        "reconnect.backoff.ms": 250,
        "reconnect.backoff.max.ms": 10_000,
    }
    if settings.kafka_security_protocol.startswith("SASL_") and not (
        settings.kafka_sasl_username and settings.kafka_sasl_password
    ):
        # Checked where a client needs them: the operator passes SASL on to pods without
        # holding the password itself.
        missing = [
            name
            for name, value in (
                ("KAFKA_SASL_USERNAME", settings.kafka_sasl_username),
                ("KAFKA_SASL_PASSWORD", settings.kafka_sasl_password),
            )
            if not value
        ]
        raise SettingsError(
            "invalid settings:\n"
            + "\n".join(f"  {name}: required with a SASL_* protocol" for name in missing)
        )
    if settings.kafka_sasl_mechanism:
        config["sasl.mechanism"] = settings.kafka_sasl_mechanism
    if settings.kafka_sasl_username is not None:
        config["sasl.username"] = settings.kafka_sasl_username
    if settings.kafka_sasl_password is not None:
        config["sasl.password"] = settings.kafka_sasl_password.get_secret_value()
    for key, path, setting in (
        ("ssl.ca.location", settings.kafka_ssl_ca_location, "KAFKA_SSL_CA_LOCATION"),
        (
            "ssl.certificate.location",
            settings.kafka_ssl_certificate_location,
            "KAFKA_SSL_CERTIFICATE_LOCATION",
        ),
        ("ssl.key.location", settings.kafka_ssl_key_location, "KAFKA_SSL_KEY_LOCATION"),
    ):
        if path is not None:
            # Checked here, where a client needs it, not when settings load: the
            # operator passes these paths on to pods that mount the files.
            if not path.is_file():
                raise SettingsError(f"invalid settings:\n  {setting}: no file at {path}")
            config[key] = str(path)
    return config


class SecurityErrors:
    """An ``error_cb`` that keeps the first error saying which setting to check."""

    def __init__(self) -> None:
        self.hint: str | None = None

    def __call__(self, error: KafkaError) -> None:
        logger.debug("kafka admin client: %s", error.str())
        self.hint = self.hint or kafka_hint(error.str())

    def config(self) -> dict[str, Any]:
        """Client settings: errors come here; the failure is reported once, by the caller."""
        return {"error_cb": self, "log_level": 2}

    def explain(self, client: Any, text: str) -> str:
        """`text` with the hint of the errors `client` has queued (served here)."""
        client.poll(0.2)
        return with_hint(text, self.hint)


def _error_callback(on_unreachable: Callable[[str], None] | None) -> Callable[[KafkaError], None]:
    def callback(error: KafkaError) -> None:
        hint = kafka_hint(error.str())
        if error.fatal():
            logger.error("kafka fatal error: %s", error.str())
        elif hint is not None:
            # Refused, not away: a wrong CA, password or client certificate.
            logger.warning("kafka refused the connection: %s: %s", error.str(), hint)
            if on_unreachable is not None:
                on_unreachable(with_hint(error.str(), hint))
        elif error.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT):
            logger.warning("kafka unreachable: %s", error.str())
            if on_unreachable is not None:
                on_unreachable(error.str())
        else:
            logger.info("kafka client: %s", error.str())

    return callback


def ensure_topics(settings: Settings, names: Iterable[str], timeout: float = 10.0) -> None:
    """Create the topics if missing; raise ``KafkaUnavailable`` if Kafka does not answer."""
    errors = SecurityErrors()
    admin = AdminClient(client_config(settings) | errors.config())
    wanted = [
        NewTopic(name, settings.kafka_topic_partitions, settings.kafka_replication_factor)
        for name in names
    ]
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise KafkaUnavailable(errors.explain(admin, f"cannot list topics: {exc}")) from exc
    missing = [topic for topic in wanted if topic.topic not in existing]
    for topic in wanted:
        if topic.topic in existing:
            have = len(existing[topic.topic].partitions)
            if have != settings.kafka_topic_partitions:
                logger.info("topic %s exists with %d partitions", topic.topic, have)
    if not missing:
        return
    for name, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result()
            logger.info("created topic %s", name)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            if error.retriable() or error.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT):
                raise KafkaUnavailable(f"cannot create topic {name}: {error.str()}") from exc
            raise TopicNotCreated(f"cannot create topic {name}: {error.str()}") from exc


def partition_count(settings: Settings, topic: str, timeout: float = 10.0) -> int:
    errors = SecurityErrors()
    admin = AdminClient(client_config(settings) | errors.config())
    try:
        metadata = admin.list_topics(topic=topic, timeout=timeout)
    except KafkaException as exc:
        text = f"cannot read metadata of {topic}: {exc}"
        raise KafkaUnavailable(errors.explain(admin, text)) from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        return 0
    return len(found.partitions)


def ping(settings: Settings, timeout: float = 5.0) -> None:
    """Raise ``KafkaUnavailable`` unless a broker answers a metadata request."""
    errors = SecurityErrors()
    admin = AdminClient(client_config(settings) | errors.config())
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaUnavailable(errors.explain(admin, str(exc))) from exc


def topic_byte_budget(
    settings: Settings,
    topic: str,
    *,
    client_max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    timeout: float = 10.0,
) -> int:
    """The largest record batch, in bytes, a producer may send to ``topic``.

    The topic's ``max.message.bytes``; when the topic cannot be described, the
    broker's ``message.max.bytes``; failing both, 1,000,000. Never more than
    ``client_max_bytes``, the producer's own ``message.max.bytes``. Raises
    ``KafkaUnavailable`` when Kafka does not answer.
    """
    admin = AdminClient(client_config(settings))
    limit = _config_number(
        admin, ConfigResource(ResourceType.TOPIC, topic), "max.message.bytes", timeout
    )
    if limit is None:
        try:
            brokers = sorted(admin.list_topics(timeout=timeout).brokers)
        except KafkaException as exc:
            raise KafkaUnavailable(f"cannot read the brokers' limits: {exc}") from exc
        for broker in brokers[:1]:
            limit = _config_number(
                admin,
                ConfigResource(ResourceType.BROKER, str(broker)),
                "message.max.bytes",
                timeout,
            )
    if limit is None:
        logger.warning(
            "no message size limit found for %s; assuming %d bytes",
            topic,
            DEFAULT_MAX_MESSAGE_BYTES,
        )
        limit = DEFAULT_MAX_MESSAGE_BYTES
    return min(limit, client_max_bytes)


def _config_number(
    admin: AdminClient, resource: ConfigResource, name: str, timeout: float
) -> int | None:
    """One numeric setting of a topic or broker; ``None`` if it cannot be described."""
    try:
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result()
    except KafkaException as exc:
        error = exc.args[0]
        if not isinstance(error, KafkaError):
            raise KafkaUnavailable(f"cannot describe {resource}: {exc}") from exc
        if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART and (
            error.retriable() or error.code() in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT)
        ):
            raise KafkaUnavailable(f"cannot describe {resource}: {error.str()}") from exc
        logger.info("cannot read %s of %s: %s", name, resource, error.str())
        return None
    entry = entries.get(name)
    try:
        return None if entry is None or entry.value is None else int(entry.value)
    except ValueError:
        return None


class KafkaProducer:
    """An idempotent producer (acks=all) with delivery reports.

    ``max_batch_bytes`` bounds the record batches it builds (librdkafka's
    ``batch.size``): a topic whose limit is below the client's must never receive
    a batch of several messages larger than it accepts.

    With ``count_acknowledged`` (the producer's hot path), librdkafka reports failures
    only (``delivery.report.only.error``): a message the broker acknowledged costs no
    report and no Python call, and ``acknowledged`` counts them from what was sent, what
    is still queued and what failed. Failures still go to ``on_delivery`` (or a message's
    own callback). Without it, every message is reported.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_delivery: Callable[[DeliveryReport], None],
        on_unreachable: Callable[[str], None] | None = None,
        count_acknowledged: bool = False,
        max_batch_bytes: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        config = client_config(settings) | {
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": settings.kafka_compression,
            "linger.ms": 20,
            "error_cb": _error_callback(on_unreachable),
            # For messages produced without a callback of their own (``produce_all``).
            "on_delivery": self._report,
        }
        if count_acknowledged:
            config["delivery.report.only.error"] = True
        if max_batch_bytes is not None:
            config["batch.size"] = max_batch_bytes
        config.update(extra or {})
        self._producer = Producer(config)
        self._on_delivery = on_delivery
        self.sent = 0  # messages the client took to send
        self._failed = 0  # ... of which reported failed
        self._acknowledged = 0
        # The largest message this client sends; a larger one raises MessageRefused.
        self.max_message_bytes = int(config.get("message.max.bytes", DEFAULT_MAX_MESSAGE_BYTES))

    def _report(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failed += 1
        self._on_delivery(_delivery_report(error, message))

    def _reporter(
        self, callback: Callable[[DeliveryReport], None]
    ) -> Callable[[KafkaError | None, Message], None]:
        def report(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self._failed += 1
            callback(_delivery_report(error, message))

        return report

    @property
    def acknowledged(self) -> int:
        """Messages the broker acknowledged so far, with ``count_acknowledged``.

        What was sent, less what is still queued, in flight or waiting to be reported, less
        what was reported failed: exact once everything is flushed and served, never more
        than the truth before (an error event waiting to be served counts as queued).
        """
        self._acknowledged = max(self._acknowledged, self.sent - len(self._producer) - self._failed)
        return self._acknowledged

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        on_delivery: Callable[[DeliveryReport], None] | None = None,
        on_wait: Callable[[], None] | None = None,
    ) -> None:
        """Queue one message; waits for room (serving delivery reports) when the queue is full.

        ``on_delivery``, if given, is called for this message instead of the
        producer-wide callback. ``on_wait`` is called every 0.1 s while the queue is
        full (to report liveness, or to raise and give up when the process stops).
        A message the client refuses for good (e.g. larger than ``message.max.bytes``,
        see ``REFUSALS``) raises ``MessageRefused``, which retrying cannot change; other
        failures raise ``KafkaUnavailable``.
        """
        callback = self._report if on_delivery is None else self._reporter(on_delivery)
        while True:
            try:
                if headers:
                    self._producer.produce(
                        topic, value=value, key=key, headers=list(headers), on_delivery=callback
                    )
                else:
                    self._producer.produce(topic, value, key, on_delivery=callback)
                self.sent += 1
                return
            except BufferError:
                self._producer.poll(0.1)
                if on_wait is not None:
                    on_wait()
            except KafkaException as exc:
                raise _produce_error(topic, exc) from exc

    def produce_all(
        self,
        topic: str,
        keys: Sequence[bytes],
        values: Sequence[bytes],
        on_wait: Callable[[], None] | None = None,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        """Queue ``values[i]`` keyed ``keys[i]``, in order, then serve reports once.

        The hot path: a message costs the client's own call, with no callback of its own
        (the producer-wide one reports failures). When the queue is full it waits as
        ``produce`` does; a message refused for good is handed to ``on_refused`` (or raises
        ``MessageRefused`` without it) and the rest are still sent; other failures raise
        ``KafkaUnavailable``. ``sent`` counts what was taken, even when it raises.
        """
        produce = self._producer.produce
        taken = 0
        try:
            for key, value in zip(keys, values, strict=True):
                try:
                    produce(topic, value, key)
                    taken += 1
                except BufferError:
                    try:
                        self.produce(topic, key, value, on_wait=on_wait)  # waits for room
                    except MessageRefused as exc:
                        if on_refused is None:
                            raise
                        on_refused(str(exc))
                except KafkaException as exc:
                    error = _produce_error(topic, exc)
                    if on_refused is None or not isinstance(error, MessageRefused):
                        raise error from exc
                    on_refused(str(error))
        finally:
            self.sent += taken
        self._producer.poll(0)

    def purge(self) -> None:
        """Drop what is still queued; their delivery reports say so on the next poll."""
        self._producer.purge()
        self._producer.poll(0)

    def poll(self, timeout: float = 0.0) -> int:
        return self._producer.poll(timeout)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        return self._producer.flush(timeout)

    def __len__(self) -> int:
        return len(self._producer)


def _produce_error(topic: str, exc: KafkaException) -> MessageRefused | KafkaUnavailable:
    error = exc.args[0]
    if error.code() in REFUSALS:
        return MessageRefused(f"cannot produce to {topic}: {error.str()}")
    return KafkaUnavailable(f"cannot produce to {topic}: {exc}")


# What librdkafka may hold of fetched, not yet consumed messages. Fetch limits count the
# bytes on the wire, compressed: readings shrink about 10x under zstd, so one fetch of the
# defaults (1 MiB from each of 6 partitions) brought some 600,000 readings at once and a
# consumer draining a backlog peaked at 277-314 MB. 128 KiB a partition and 1 MiB a fetch
# peaked at 101-111 MB; fetching that little is only as fast as before because a partition
# whose queue emptied is fetched again after 50 ms rather than librdkafka's 1 s
# (``fetch.queue.backoff.ms``): a bare client read 575,000-606,000 readings/s so, 67,000/s
# without it. A consumer that falls behind keeps less in memory, never loses any.
PREFETCH = {
    "queued.max.messages.kbytes": 16_384,
    "queued.min.messages": 20_000,
    "fetch.max.bytes": 1024 * 1024,
    "max.partition.fetch.bytes": 128 * 1024,
    "fetch.queue.backoff.ms": 50,
}


# Called with the partitions just assigned (they start paused) and with those revoked or lost.
AssignCallback = Callable[[list[Partition]], None]
RevokeCallback = Callable[[list[Partition], bool], None]


class KafkaConsumer:
    """A group consumer whose positions come from the caller (the database).

    Auto commit and auto offset store are off: the caller decides what has been
    processed. Rebalancing is cooperative-sticky. The rebalance callbacks do no
    I/O of the caller's: a newly assigned partition is paused at once and the
    caller positions it (``seek``) and ``resume``s it from its own loop, so a
    slow database never holds up the group's rebalance.

    Pauses are tracked per partition. librdkafka keeps an application's pause
    flag on a partition across its loss, so one assigned back later would stay
    paused for good; pausing every new assignment and resuming it explicitly
    once positioned means no stale flag can survive a rebalance.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_assign: AssignCallback,
        on_revoke: RevokeCallback,
        on_unreachable: Callable[[str], None] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        config = client_config(settings) | {
            "group.id": settings.kafka_consumer_group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": settings.kafka_auto_offset_reset,
            "partition.assignment.strategy": "cooperative-sticky",
            "isolation.level": "read_committed",
            "session.timeout.ms": round(settings.kafka_session_timeout_seconds * 1000),
            "error_cb": _error_callback(on_unreachable),
            **PREFETCH,
        }
        if settings.kafka_group_instance_id:
            config["group.instance.id"] = settings.kafka_group_instance_id
        config.update(extra or {})
        self._reset = (
            OFFSET_BEGINNING if settings.kafka_auto_offset_reset == "earliest" else OFFSET_END
        )
        self._consumer = Consumer(config)
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._paused: set[Partition] = set()

    def subscribe(self, topics: Sequence[str]) -> None:
        self._consumer.subscribe(
            list(topics), on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        assigned = [Partition(tp.topic, tp.partition) for tp in partitions]
        consumer.incremental_assign(partitions)
        if partitions:
            consumer.pause(partitions)
        self._paused.update(assigned)
        self._on_assign(assigned)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget(partitions, lost=False)

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._forget(partitions, lost=True)

    def _forget(self, partitions: list[TopicPartition], *, lost: bool) -> None:
        gone = [Partition(tp.topic, tp.partition) for tp in partitions]
        self._paused.difference_update(gone)
        self._on_revoke(gone, lost)

    def poll_batch(self, max_messages: int, timeout: float) -> list[Record]:
        """Up to ``max_messages`` records, waiting at most ``timeout`` seconds for the first."""
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout)
        records = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise ConsumerFailed(f"kafka consumer fatal error: {error.str()}")
                if error.code() != KafkaError._PARTITION_EOF:
                    logger.warning("kafka consume error: %s", error.str())
                continue
            records.append(_record(message))
        return records

    def poll_messages(self, max_messages: int, timeout: float) -> list[RawMessage]:
        """Like ``poll_batch``, without a copy: the client's own message objects.

        The consumer's hot path reads their partition, offset and value directly;
        ``to_record`` makes a ``Record`` of one when it must be kept (dead letters).
        """
        messages = self._consumer.consume(num_messages=max_messages, timeout=timeout)
        for message in messages:
            if message.error() is not None:
                return [m for m in messages if not self._is_error(m)]
        return messages  # type: ignore[return-value]

    @staticmethod
    def _is_error(message: Message) -> bool:
        error = message.error()
        if error is None:
            return False
        if error.fatal():
            raise ConsumerFailed(f"kafka consumer fatal error: {error.str()}")
        if error.code() != KafkaError._PARTITION_EOF:
            logger.warning("kafka consume error: %s", error.str())
        return True

    def assignment(self) -> list[Partition]:
        return [Partition(tp.topic, tp.partition) for tp in self._consumer.assignment()]

    @property
    def paused(self) -> frozenset[Partition]:
        return frozenset(self._paused)

    def seek(self, partition: Partition, offset: int | None) -> None:
        """Read ``partition`` next from ``offset`` (``None``: where auto.offset.reset says)."""
        target = TopicPartition(partition.topic, partition.partition, _start(offset, self._reset))
        try:
            self._consumer.seek(target)
        except KafkaException as exc:
            raise KafkaUnavailable(
                f"cannot seek {partition.topic}[{partition.partition}]: {exc}"
            ) from exc

    def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit next-offsets to Kafka, asynchronously, for lag tools; PostgreSQL is the truth.

        Never waits: a synchronous commit during a rebalance can block until the
        coordinator drops the member, far beyond any shutdown grace period."""
        if not offsets:
            return
        partitions = [TopicPartition(p.topic, p.partition, o) for p, o in offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=True)
        except KafkaException as exc:
            logger.info("kafka offset commit skipped: %s", exc)

    def pause(self, partitions: Iterable[Partition]) -> None:
        chosen = [p for p in partitions if p not in self._paused]
        if chosen:
            self._consumer.pause([TopicPartition(p.topic, p.partition) for p in chosen])
            self._paused.update(chosen)

    def resume(self, partitions: Iterable[Partition]) -> None:
        # Resumed even when not marked paused here: it costs nothing and clears any
        # flag librdkafka kept from an earlier assignment of the same partition.
        chosen = list(partitions)
        if chosen:
            self._consumer.resume([TopicPartition(p.topic, p.partition) for p in chosen])
            self._paused.difference_update(chosen)

    def ping(self, timeout: float) -> None:
        """Raise ``KafkaUnavailable`` unless the cluster answers a metadata request."""
        try:
            self._consumer.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise KafkaUnavailable(str(exc)) from exc

    def close(self) -> None:
        """Leave the group (runs the revoke callback) and release the client."""
        self._consumer.close()


class EndOffsets:
    """Where partitions' logs start and end, asked of the brokers every time.

    The consumer's lag comes from here rather than from fetch statistics: a
    partition that stops fetching stops updating its statistics too, so a lag
    computed from them would hide exactly the stall it should show.
    """

    def __init__(self, settings: Settings, *, extra: Mapping[str, Any] | None = None) -> None:
        config = client_config(settings) | {"error_cb": _quiet_error}
        config.update({k: v for k, v in (extra or {}).items() if k in _ADMIN_KEYS})
        self._admin = AdminClient(config)

    def read(
        self, partitions: Iterable[Partition], timeout: float
    ) -> dict[Partition, tuple[int, int]]:
        """(log start, last stable offset) of each partition; ``KafkaUnavailable`` if unanswered."""
        wanted = [TopicPartition(p.topic, p.partition) for p in partitions]
        if not wanted:
            return {}
        found: dict[str, dict[Partition, int]] = {}
        specs = (
            ("low", OffsetSpec.earliest()),  # type: ignore[no-untyped-call]
            ("high", OffsetSpec.latest()),  # type: ignore[no-untyped-call]
        )
        for name, spec in specs:
            futures = self._admin.list_offsets(
                {tp: spec for tp in wanted},
                isolation_level=IsolationLevel.READ_COMMITTED,
                request_timeout=timeout,
            )
            found[name] = {}
            for tp, future in futures.items():
                try:
                    found[name][Partition(tp.topic, tp.partition)] = future.result().offset
                except KafkaException as exc:
                    raise KafkaUnavailable(f"cannot read end offsets: {exc}") from exc
        return {p: (max(0, low), found["high"][p]) for p, low in found["low"].items()}


# Settings of the consumer's own that an admin client would only warn about.
_ADMIN_KEYS = frozenset({"socket.timeout.ms", "reconnect.backoff.ms", "reconnect.backoff.max.ms"})


def _quiet_error(error: KafkaError) -> None:
    # The consumer's own client reports the same outage; once is enough.
    logger.debug("kafka admin client: %s", error.str())


def read_topic(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool,
    max_messages: int | None,
    idle_timeout: float | None,
    connect_timeout: float = 10.0,
) -> Iterator[Record]:
    """Records of ``topic`` in arrival order, for ``heartbeat tail``; never commits.

    Stops after ``max_messages`` records, or when nothing arrives for
    ``idle_timeout`` seconds (``None`` follows the topic until interrupted).
    Raises ``KafkaUnavailable`` when Kafka does not answer within ``connect_timeout``
    seconds and ``TopicNotFound`` when the topic does not exist.
    """
    errors = SecurityErrors()
    consumer = Consumer(
        client_config(settings)
        | {
            "group.id": f"heartbeat-tail-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            # An outage is reported once, below, not as librdkafka's lines every 100 ms.
            "log_level": 2,
            "error_cb": errors,
        }
    )
    try:
        try:
            _check_topic(consumer, settings.kafka_bootstrap_servers, topic, connect_timeout)
        except KafkaUnavailable as exc:
            raise KafkaUnavailable(errors.explain(consumer, str(exc))) from None
        consumer.subscribe([topic])
        seen = 0
        idle_since = time.monotonic()
        while max_messages is None or seen < max_messages:
            message = consumer.poll(0.5)
            if message is None or message.error() is not None:
                if idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                    return
                continue
            idle_since = time.monotonic()
            seen += 1
            yield _record(message)
    finally:
        consumer.close()


def _check_topic(consumer: Consumer, servers: str, topic: str, timeout: float) -> None:
    try:
        found = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise KafkaUnavailable(
            f"Kafka at {servers} (KAFKA_BOOTSTRAP_SERVERS) did not answer within "
            f"{timeout:g} s: {exc.args[0].str() if exc.args else exc}"
        ) from None
    if found is None or found.error is not None:
        raise TopicNotFound(f"topic {topic!r} does not exist on Kafka at {servers}")


def _start(stored: int | None, reset: int) -> int:
    return reset if stored is None else stored


def to_record(message: RawMessage) -> Record:
    """A ``Record`` of a message ``KafkaConsumer.poll_messages`` returned."""
    return _record(message)  # type: ignore[arg-type]


def _record(message: Message) -> Record:
    kind, timestamp = message.timestamp()
    return Record(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        timestamp_ms=timestamp if kind else None,
        headers=_headers(message),
    )


def _headers(message: Message) -> Headers:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return [(name, value) for name, value in pairs if isinstance(value, bytes)]


@dataclass(frozen=True, slots=True)
class GroupState:
    """What the brokers' group coordinator says of a consumer group."""

    state: str  # e.g. "STABLE", "EMPTY", "DEAD" (a group Kafka does not know)
    members: int


class GroupAdmin:
    """The calls ``heartbeat lag`` and ``heartbeat offsets`` make of the brokers."""

    def __init__(self, settings: Settings, timeout: float = 10.0) -> None:
        self._errors = SecurityErrors()
        self._admin = AdminClient(client_config(settings) | self._errors.config())
        self._servers = settings.kafka_bootstrap_servers
        self._timeout = timeout

    def _unavailable(self, what: str, exc: BaseException) -> KafkaUnavailable:
        text = f"Kafka at {self._servers} (KAFKA_BOOTSTRAP_SERVERS): cannot {what}: {exc}"
        return KafkaUnavailable(self._errors.explain(self._admin, text))

    def partitions(self, topic: str) -> list[Partition]:
        """The topic's partitions; ``TopicNotFound`` if it does not exist."""
        try:
            found = self._admin.list_topics(topic=topic, timeout=self._timeout).topics.get(topic)
        except KafkaException as exc:
            raise self._unavailable(f"read the metadata of {topic}", exc) from None
        if found is None or found.error is not None or not found.partitions:
            raise TopicNotFound(f"topic {topic!r} does not exist on Kafka at {self._servers}")
        return [Partition(topic, p) for p in sorted(found.partitions)]

    def _list_offsets(self, partitions: Sequence[Partition], spec: Any) -> dict[Partition, int]:
        futures = self._admin.list_offsets(
            {TopicPartition(p.topic, p.partition): spec for p in partitions},
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=self._timeout,
        )
        found = {}
        for tp, future in futures.items():
            try:
                found[Partition(tp.topic, tp.partition)] = future.result().offset
            except KafkaException as exc:
                raise self._unavailable("list offsets", exc) from None
        return found

    def log_bounds(self, partitions: Sequence[Partition]) -> dict[Partition, tuple[int, int]]:
        """(log start, last stable offset) of each partition, as a read_committed reader sees."""
        low = self._list_offsets(partitions, OffsetSpec.earliest())  # type: ignore[no-untyped-call]
        high = self._list_offsets(partitions, OffsetSpec.latest())  # type: ignore[no-untyped-call]
        return {p: (max(0, low[p]), high[p]) for p in partitions}

    def offsets_at(
        self, partitions: Sequence[Partition], at_ms: int
    ) -> dict[Partition, int | None]:
        """The first offset of each partition stamped at or after ``at_ms``; None if none is."""
        spec = OffsetSpec.for_timestamp(at_ms)
        return {p: (o if o >= 0 else None) for p, o in self._list_offsets(partitions, spec).items()}

    def group(self, group: str) -> GroupState:
        """The group's state and how many members it has now."""
        future = self._admin.describe_consumer_groups([group], request_timeout=self._timeout)[group]
        try:
            found = future.result()
        except KafkaException as exc:
            if exc.args and exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                return GroupState("DEAD", 0)
            raise self._unavailable(f"describe consumer group {group}", exc) from None
        state = getattr(found.state, "name", str(found.state))
        return GroupState(state, len(found.members))

    def commit(self, group: str, offsets: Mapping[Partition, int]) -> None:
        """Set the group's committed offsets in Kafka (it must have no members)."""
        request = ConsumerGroupTopicPartitions(
            group, [TopicPartition(p.topic, p.partition, o) for p, o in sorted(offsets.items())]
        )
        futures = self._admin.alter_consumer_group_offsets([request], request_timeout=self._timeout)
        for future in futures.values():
            try:
                future.result()
            except KafkaException as exc:
                raise self._unavailable(f"commit offsets of group {group}", exc) from None
