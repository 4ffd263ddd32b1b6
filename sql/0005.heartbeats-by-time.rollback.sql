-- Back to one table, with every reading the partitions hold.
ALTER TABLE heartbeats RENAME TO heartbeats_partitioned;
ALTER INDEX heartbeats_pkey RENAME TO heartbeats_partitioned_pkey;
ALTER INDEX heartbeats_ts_idx RENAME TO heartbeats_partitioned_ts_idx;
ALTER INDEX heartbeats_anomaly_idx RENAME TO heartbeats_partitioned_anomaly_idx;

CREATE TABLE heartbeats (
    customer_id  bigint      NOT NULL CONSTRAINT heartbeats_customer_id_check CHECK (customer_id >= 1),
    ts           timestamptz NOT NULL,
    heart_rate   smallint    NOT NULL
                 CONSTRAINT heartbeats_heart_rate_check CHECK (heart_rate BETWEEN 30 AND 220),
    anomaly      text        CHECK (anomaly IN ('low', 'high')),
    ingested_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT heartbeats_anomaly_matches_rate CHECK (
        anomaly IS NOT DISTINCT FROM (
            CASE WHEN heart_rate < 45 THEN 'low' WHEN heart_rate > 180 THEN 'high' END
        )
    )
);

INSERT INTO heartbeats (customer_id, ts, heart_rate, anomaly, ingested_at)
SELECT customer_id, ts, heart_rate, anomaly, ingested_at FROM heartbeats_partitioned;

DROP TABLE heartbeats_partitioned;

ALTER TABLE heartbeats ADD PRIMARY KEY (customer_id, ts);
CREATE INDEX heartbeats_ts_idx ON heartbeats USING brin (ts);
CREATE INDEX heartbeats_anomaly_idx ON heartbeats (ts) WHERE anomaly IS NOT NULL;
