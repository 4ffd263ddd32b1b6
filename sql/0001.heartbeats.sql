-- Readings, one row per customer and instant. The primary key is what makes
-- storing idempotent: a redelivered or duplicated reading is skipped.
CREATE TABLE heartbeats (
    customer_id  bigint      NOT NULL CHECK (customer_id >= 1),
    ts           timestamptz NOT NULL,
    heart_rate   smallint    NOT NULL CHECK (heart_rate BETWEEN 30 AND 220),
    anomaly      text        CHECK (anomaly IN ('low', 'high')),
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, ts),
    CONSTRAINT heartbeats_anomaly_matches_rate CHECK (
        anomaly IS NOT DISTINCT FROM (
            CASE WHEN heart_rate < 45 THEN 'low' WHEN heart_rate > 180 THEN 'high' END
        )
    )
);

-- Dashboards and `heartbeat stats` read recent readings across customers.
CREATE INDEX heartbeats_ts_idx ON heartbeats USING brin (ts);
CREATE INDEX heartbeats_anomaly_idx ON heartbeats (ts) WHERE anomaly IS NOT NULL;
