"""Sends one known batch to Kafka from inside a pod of the image: run as `python -c <this file>`.

$BATCH_FILE holds the messages, one JSON `[key, value]` per line, sent in that order at
$BATCH_RATE messages per second (0: as fast as the broker takes them). Kafka is reached through
the image's own settings (KAFKA_*), with the pipeline's idempotent producer. Prints one JSON
line of counts; exits 1 if any message was not acknowledged, so the Job fails rather than
leaving a batch half sent.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from heartbeat.kafka import DeliveryReport, KafkaProducer, ensure_topics
from heartbeat.settings import load_settings


def main() -> int:
    lines = Path(os.environ["BATCH_FILE"]).read_text().splitlines()
    messages = [json.loads(line) for line in lines if line]
    rate = float(os.environ.get("BATCH_RATE", "0"))
    settings = load_settings()
    ensure_topics(settings, [settings.kafka_topic])
    failed: list[str] = []

    def delivered(report: DeliveryReport) -> None:
        if report.error is not None:
            failed.append(report.error)

    producer = KafkaProducer(settings, on_delivery=delivered)
    interval = 1.0 / rate if rate > 0 else 0.0
    next_at = time.monotonic()
    for key, value in messages:
        if interval:
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        producer.produce(settings.kafka_topic, key.encode(), value.encode())
        producer.poll(0)
    undelivered = producer.flush(60.0)
    counts = {"sent": len(messages), "failed": len(failed), "undelivered": undelivered}
    print(json.dumps(counts | {"first_error": failed[0] if failed else None}), flush=True)
    return 1 if failed or undelivered else 0


if __name__ == "__main__":
    sys.exit(main())
