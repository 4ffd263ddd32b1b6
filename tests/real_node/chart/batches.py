"""A known batch of messages: the Job that sends it, and what the pipeline must make of it.

The readings are drawn here from a seeded random generator, one per customer per second from a
fixed start, with heart rates from 25 to 225 bpm, so a few fall outside the valid band of the
README (30-220 bpm) and must be refused. After them come hand-made messages: an exact copy of a
stored reading (stored once, refused never), the same customer and instant with another heart
rate (`conflicting_reading`), and one of each of a few malformed kinds. The test ships every
message to the Job in a ConfigMap, so what it expects does not depend on the image's code.
Every batch has customers of its own, so batches and the chart's producer never mix.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SCRIPT = (Path(__file__).parent / "send_batch.py").read_text()
VALID_BAND = range(30, 221)
LOW_BELOW, HIGH_ABOVE = 45, 180
SEED = 20261202
HEART_RATES = (25, 225)

# (customer_id, ts as YYYY-MM-DDTHH:MM:SS.ffffff in UTC, heart_rate, anomaly or "")
Row = tuple[int, str, int, str]
# (key, reason)
DeadLetter = tuple[str, str]


def utc_text(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def anomaly(heart_rate: int) -> str:
    if heart_rate < LOW_BELOW:
        return "low"
    return "high" if heart_rate > HIGH_ABOVE else ""


@dataclass(frozen=True)
class Expected:
    rows: Counter[Row]
    dead_letters: Counter[DeadLetter]


@dataclass(frozen=True)
class Reading:
    customer_id: int
    timestamp: datetime
    heart_rate: int

    def key(self) -> bytes:
        return str(self.customer_id).encode()

    def to_json(self) -> bytes:
        fields = {
            "customer_id": self.customer_id,
            "timestamp": self.timestamp.isoformat(),
            "heart_rate": self.heart_rate,
        }
        return json.dumps(fields).encode()


@dataclass(frozen=True)
class Batch:
    name: str
    first_customer: int
    customers: int
    rounds: int
    # Messages per second; 0 sends as fast as the broker takes them.
    rate: float
    start: datetime
    step_seconds: float = 1.0

    @property
    def customer_ids(self) -> range:
        return range(self.first_customer, self.first_customer + self.customers)

    def readings(self) -> list[Reading]:
        rng = random.Random(f"{SEED}:{self.name}")
        return [
            Reading(
                customer,
                self.start + timedelta(seconds=n * self.step_seconds),
                rng.randint(*HEART_RATES),
            )
            for n in range(self.rounds)
            for customer in self.customer_ids
        ]

    def messages(self) -> list[tuple[bytes, bytes]]:
        """Every message of the batch, in the order it is sent."""
        sent = [(r.key(), r.to_json()) for r in self.readings()]
        return sent + [(key, value) for key, value, _ in self._extra()]

    def _extra(self) -> list[tuple[bytes, bytes, str | None]]:
        """(key, value, the reason it is refused or None) of the hand-made messages."""
        first = next(r for r in self.readings() if r.heart_rate in VALID_BAND)
        key = first.key()
        other_rate = first.heart_rate + 1 if first.heart_rate < 220 else first.heart_rate - 1
        earlier = self.start - timedelta(seconds=5)

        def reading(**fields: Any) -> bytes:
            return json.dumps({"customer_id": first.customer_id, **fields}).encode()

        return [
            (key, first.to_json(), None),
            (
                key,
                reading(timestamp=first.timestamp.isoformat(), heart_rate=other_rate),
                "conflicting_reading",
            ),
            (
                key,
                reading(timestamp=earlier.isoformat(), heart_rate=250),
                "heart_rate_out_of_range",
            ),
            (key, b'{"customer_id": ', "invalid_json"),
            (key, reading(timestamp=earlier.isoformat()), "missing_field"),
            (
                key,
                reading(timestamp=earlier.replace(tzinfo=None).isoformat(), heart_rate=70),
                "timestamp_without_timezone",
            ),
        ]

    def expected(self) -> Expected:
        rows: Counter[Row] = Counter()
        dead_letters: Counter[DeadLetter] = Counter()
        for r in self.readings():
            if r.heart_rate in VALID_BAND:
                rows[
                    (r.customer_id, utc_text(r.timestamp), r.heart_rate, anomaly(r.heart_rate))
                ] += 1
            else:
                dead_letters[(str(r.customer_id), "heart_rate_out_of_range")] += 1
        for key, _, reason in self._extra():
            if reason is not None:
                dead_letters[(key.decode(), reason)] += 1
        return Expected(rows, dead_letters)

    def config_map(self) -> dict[str, Any]:
        """The messages, one JSON [key, value] per line, for send_batch.py."""
        lines = [json.dumps([k.decode(), v.decode()]) for k, v in self.messages()]
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": self.job_name, "labels": {"app.kubernetes.io/name": "send-batch"}},
            "data": {"messages.jsonl": "\n".join(lines) + "\n"},
        }

    @property
    def job_name(self) -> str:
        return f"send-{self.name}"

    def job(self, image: str, env: dict[str, str]) -> dict[str, Any]:
        """A Job of the image that sends the batch once (no retry: a retry would send it twice)."""
        variables = {
            **env,
            "BATCH_FILE": "/batch/messages.jsonl",
            "BATCH_RATE": str(self.rate),
            "LOG_FORMAT": "text",
        }
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": self.job_name, "labels": {"app.kubernetes.io/name": "send-batch"}},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/name": "send-batch"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "runAsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [
                            {
                                "name": "send",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "command": ["python", "-c", SCRIPT],
                                "env": [{"name": k, "value": v} for k, v in variables.items()],
                                "resources": {
                                    "requests": {"cpu": "50m", "memory": "64Mi"},
                                    "limits": {"memory": "256Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": False,
                                    "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]},
                                },
                                "volumeMounts": [
                                    {"name": "batch", "mountPath": "/batch", "readOnly": True}
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "batch", "configMap": {"name": self.job_name}},
                        ],
                    },
                },
            },
        }
