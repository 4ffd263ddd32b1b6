-- depends: 0004.customer-last-seen
-- Readings become range-partitioned on ts, so that expired days are dropped as whole
-- tables (never deleted row by row) and queries over a time range read only the
-- partitions it covers. The primary key stays (customer_id, ts): deduplication is
-- unchanged, and it holds the partition key as PostgreSQL requires.
--
-- `heartbeat maintain` creates the partitions ahead of time and drops expired ones
-- (PARTITION_INTERVAL, PARTITION_AHEAD_DAYS, RAW_RETENTION_DAYS). A reading whose
-- partition does not exist (far in the past, or further ahead than the partitions
-- made so far) is stored in heartbeats_default; the next maintenance moves it into
-- its own partition, or deletes it once past the retention.
--
-- An existing table is converted with its rows: one partition per UTC day it holds
-- data for, named heartbeats_pYYYYMMDD, then the rows are copied and the indexes built
-- once at the end (faster than keeping them up to date row by row). This runs in one
-- transaction holding the table: consumers wait for it (and retry) while it runs.
ALTER TABLE heartbeats RENAME TO heartbeats_unpartitioned;
ALTER INDEX heartbeats_pkey RENAME TO heartbeats_unpartitioned_pkey;
ALTER INDEX heartbeats_ts_idx RENAME TO heartbeats_unpartitioned_ts_idx;
ALTER INDEX heartbeats_anomaly_idx RENAME TO heartbeats_unpartitioned_anomaly_idx;

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
) PARTITION BY RANGE (ts);

CREATE TABLE heartbeats_default PARTITION OF heartbeats DEFAULT;

DO $$
DECLARE
    day timestamptz;
BEGIN
    FOR day IN
        SELECT DISTINCT date_bin('1 day', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')
        FROM heartbeats_unpartitioned
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF heartbeats FOR VALUES FROM (%L) TO (%L)',
            'heartbeats_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'),
            day,
            day + interval '24 hours'
        );
    END LOOP;
END
$$;

INSERT INTO heartbeats (customer_id, ts, heart_rate, anomaly, ingested_at)
SELECT customer_id, ts, heart_rate, anomaly, ingested_at FROM heartbeats_unpartitioned;

DROP TABLE heartbeats_unpartitioned;

ALTER TABLE heartbeats ADD PRIMARY KEY (customer_id, ts);
-- Dashboards and `heartbeat stats` read recent readings across customers.
CREATE INDEX heartbeats_ts_idx ON heartbeats USING brin (ts);
CREATE INDEX heartbeats_anomaly_idx ON heartbeats (ts) WHERE anomaly IS NOT NULL;
