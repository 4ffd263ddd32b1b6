"""Pipeline overview: what flows through, what is rejected, how far behind and how fast.

Every query reads the metrics of ``app/heartbeat/metrics.py``; the monitoring tests run each
one against a real Prometheus scraping a real producer and consumer.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard, Row
from grafana_foundation_sdk.models.dashboard import ValueMap, ValueMappingResult

from heartbeat_dashboards.datasources import PROMETHEUS, promql, promql_table
from heartbeat_dashboards.panels import Panel, stat, table, timeseries

UID = "heartbeat-pipeline"
RATE = "[$__rate_interval]"
STALL_SECONDS = 180  # CONSUMER_STALL_SECONDS' default


def _rate(metric: str, by: str = "") -> str:
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(rate({metric}{RATE}))"


def _quantile(q: float, histogram: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{RATE})))"


def throughput() -> list[Panel]:
    return [
        timeseries(
            "Readings per second",
            "Acknowledged by Kafka (produced), read by the consumers (consumed), newly written "
            "to PostgreSQL (stored), and valid readings skipped as already stored (duplicates).",
            PROMETHEUS,
            [
                promql("A", _rate("heartbeat_produced_total"), "produced"),
                promql("B", _rate("heartbeat_consumed_total"), "consumed"),
                promql("C", _rate("heartbeat_stored_total"), "stored"),
                promql("D", _rate("heartbeat_duplicates_total"), "duplicates"),
            ],
            unit="ops",
        ),
        timeseries(
            "Rejected by reason",
            "Messages sent to the dead-letter topic per second, by the validation rule they broke.",
            PROMETHEUS,
            [promql("A", _rate("heartbeat_rejected_total", "reason"), "{{reason}}")],
            unit="ops",
        ),
        timeseries(
            "Anomalies by kind",
            "Stored readings flagged low (below 45 bpm) or high (above 180 bpm), per second.",
            PROMETHEUS,
            [promql("A", _rate("heartbeat_anomalies_total", "kind"), "{{kind}}")],
            unit="ops",
            width=6,
        ),
        timeseries(
            "Dead-letter rate",
            "Messages per second written to the dead-letter topic, and what the producers "
            "failed to deliver to Kafka at all.",
            PROMETHEUS,
            [
                promql("A", _rate("heartbeat_rejected_total"), "dead-lettered"),
                promql("B", _rate("heartbeat_produce_errors_total"), "undelivered by producers"),
            ],
            unit="ops",
            width=6,
        ),
        stat(
            "Rejected share",
            "Rejected messages as a share of the messages consumed, over the last 5 minutes. "
            "The alert HeartbeatRejectRatioHigh fires above 5 %.",
            PROMETHEUS,
            [
                promql(
                    "A",
                    "sum(rate(heartbeat_rejected_total[5m])) "
                    "/ sum(rate(heartbeat_consumed_total[5m]))",
                )
            ],
            unit="percentunit",
            width=6,
            height=8,
            steps=((None, "green"), (0.02, "orange"), (0.05, "red")),
        ),
        stat(
            "Dead letters refused",
            "Dead letters the broker refused even when cut to the dead-letter topic's limit, in "
            "the time range; a minimal dead letter (reason, source coordinates, sizes) went in "
            "each one's place, without the message's bytes. The alert "
            "HeartbeatDeadLettersRefused fires on any.",
            PROMETHEUS,
            [
                promql(
                    "A",
                    "round(sum(increase(heartbeat_dead_letters_refused_total[$__range])))",
                    "refused",
                )
            ],
            width=6,
            height=8,
            steps=((None, "green"), (1, "orange")),
        ),
    ]


def consumers() -> list[Panel]:
    return [
        timeseries(
            "Consumer lag by partition",
            "Messages in each partition not yet stored, as reported by the consumer that owns it.",
            PROMETHEUS,
            [
                promql(
                    "A",
                    "sum by (topic, partition) (heartbeat_consumer_lag)",
                    "{{topic}}[{{partition}}]",
                )
            ],
            unit="short",
        ),
        timeseries(
            "Time since progress by partition",
            "Seconds since each partition's stored position last advanced (or it was "
            "assigned). It grows while a partition has nothing to read (lag 0), which is fine; "
            "with lag it should stay near the batch wait. Past CONSUMER_STALL_SECONDS (3 minutes "
            "by default, the dashed line) with lag, the consumer counts the partition as "
            "stalled and its /readyz fails the progress check.",
            PROMETHEUS,
            [
                promql(
                    "A",
                    "time() - max by (topic, partition) "
                    "(heartbeat_consumer_last_progress_timestamp_seconds)",
                    "{{topic}}[{{partition}}]",
                )
            ],
            unit="s",
            threshold_lines=((None, "green"), (STALL_SECONDS, "red")),
        ),
        timeseries(
            "Assigned partitions",
            "Partitions each consumer owns; a consumer with none is idle (more consumers than "
            "partitions).",
            PROMETHEUS,
            [promql("A", "sum by (instance) (heartbeat_assigned_partitions)", "{{instance}}")],
            unit="short",
            width=8,
        ),
        timeseries(
            "Batch size",
            "Messages per batch written in one transaction: median and 99th percentile.",
            PROMETHEUS,
            [
                promql("A", _quantile(0.5, "heartbeat_batch_size"), "p50"),
                promql("B", _quantile(0.99, "heartbeat_batch_size"), "p99"),
            ],
            unit="short",
            width=8,
        ),
        timeseries(
            "Stalled partitions",
            "Partitions each consumer owns that have lag and have not advanced for "
            "CONSUMER_STALL_SECONDS; while any has, that consumer's /readyz fails its progress "
            "check. The alert HeartbeatConsumerPartitionsStalled fires after 2 minutes of it.",
            PROMETHEUS,
            [
                promql(
                    "A",
                    "max by (instance) (heartbeat_consumer_stalled_partitions)",
                    "{{instance}}",
                )
            ],
            unit="short",
            width=8,
            threshold_lines=((None, "green"), (1, "red")),
        ),
    ]


def latency() -> list[Panel]:
    return [
        timeseries(
            "Database write latency",
            "Time to write one batch and its offsets to PostgreSQL. The alert "
            "HeartbeatDatabaseWritesSlow fires when the 99th percentile stays above 1 s.",
            PROMETHEUS,
            [
                promql("A", _quantile(0.5, "heartbeat_db_write_seconds"), "p50"),
                promql("B", _quantile(0.99, "heartbeat_db_write_seconds"), "p99"),
                promql(
                    "C",
                    "sum(rate(heartbeat_db_write_seconds_sum[$__rate_interval])) "
                    "/ sum(rate(heartbeat_db_write_seconds_count[$__rate_interval]))",
                    "mean",
                ),
            ],
            unit="s",
        ),
        timeseries(
            "Event time to stored",
            "From the timestamp a reading carries to its commit in PostgreSQL.",
            PROMETHEUS,
            [
                promql("A", _quantile(0.5, "heartbeat_event_to_stored_seconds"), "p50"),
                promql("B", _quantile(0.99, "heartbeat_event_to_stored_seconds"), "p99"),
            ],
            unit="s",
        ),
    ]


def processes() -> list[Panel]:
    reachable = ValueMap(
        {
            "0": ValueMappingResult(text="retrying", color="red", index=0),
            "1": ValueMappingResult(text="reachable", color="green", index=1),
        }
    )
    return [
        stat(
            "Replicas up",
            "Processes Prometheus scrapes successfully, by component.",
            PROMETHEUS,
            [promql("A", "count by (component) (heartbeat_build_info)", "{{component}}")],
            all_values=True,
        ),
        stat(
            "Dependencies",
            "Whether each process currently reaches Kafka and PostgreSQL (the worst process).",
            PROMETHEUS,
            [promql("A", "min by (dependency) (heartbeat_dependency_up)", "{{dependency}}")],
            steps=((None, "red"), (1, "green")),
            all_values=True,
        ).mappings([reachable]),
        stat(
            "Stale customers",
            "Customers seen in the last hour whose newest stored reading is older than "
            "STALE_CUSTOMER_SECONDS (5 minutes by default), as the consumers count them.",
            PROMETHEUS,
            [promql("A", "max(heartbeat_stale_customers)", "stale")],
            steps=((None, "green"), (1, "orange")),
        ),
        timeseries(
            "Dependency retries",
            "Retries per second after Kafka or PostgreSQL failed (with capped backoff).",
            PROMETHEUS,
            [
                promql(
                    "A",
                    _rate("heartbeat_dependency_retries_total", "dependency"),
                    "{{dependency}}",
                )
            ],
            unit="ops",
            width=6,
            height=4,
        ),
        table(
            "Versions running",
            "Processes per component and version.",
            PROMETHEUS,
            [promql_table("A", "count by (component, version) (heartbeat_build_info)")],
            width=6,
            height=4,
        ),
    ]


def build() -> Dashboard:
    dashboard = (
        Dashboard("Heartbeat pipeline")
        .uid(UID)
        .description(
            "Readings produced, consumed, stored and rejected; consumer lag; write and "
            "end-to-end latency; which processes run."
        )
        .tags(["heartbeat"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
    )
    sections = {
        "Throughput": throughput(),
        "Consumers": consumers(),
        "Latency": latency(),
        "Processes": processes(),
    }
    for title, panels in sections.items():
        dashboard = dashboard.with_row(Row(title))
        for panel in panels:
            dashboard = dashboard.with_panel(panel)
    return dashboard
