-- depends: 0005.heartbeats-by-time
-- Per-customer, per-minute aggregates of the stored readings, for dashboards and
-- `heartbeat stats` over ranges longer than an hour. Range-partitioned on minute by UTC
-- day (heartbeat_minutes_pYYYYMMDD), kept ROLLUP_RETENTION_DAYS, longer than the raw
-- readings.
--
-- Built by `heartbeat maintain`, not by the consumer: every batch that stores readings
-- adds the minutes it touched to heartbeat_minutes_pending, in its own transaction;
-- maintenance takes those rows and recomputes each such minute from the stored
-- readings, in one statement (one snapshot). Recomputing replaces, never adds, so a
-- reading counts exactly once however often its minute is recomputed, and duplicates
-- never count at all (they are never stored).
--
-- heartbeat_minutes_live is what readers use: the rollups of minutes that have nothing
-- pending, and, for the few minutes still pending (the current one, and any a late
-- reading touched), the same figures computed from the readings. It is exact at any
-- moment, whether maintenance ran a minute ago or not.
CREATE TABLE heartbeat_minutes (
    customer_id     bigint      NOT NULL,
    minute          timestamptz NOT NULL,
    readings        integer     NOT NULL CHECK (readings > 0),
    min_heart_rate  smallint    NOT NULL,
    max_heart_rate  smallint    NOT NULL,
    sum_heart_rate  bigint      NOT NULL,
    sum_squares     bigint      NOT NULL,  -- of the heart rates: the standard deviation
    low_anomalies   integer     NOT NULL,
    high_anomalies  integer     NOT NULL,
    newest_ts       timestamptz NOT NULL,  -- the minute's newest reading
    PRIMARY KEY (customer_id, minute)
) PARTITION BY RANGE (minute);

CREATE TABLE heartbeat_minutes_default PARTITION OF heartbeat_minutes DEFAULT;

-- Panels over all customers read a range of minutes.
CREATE INDEX heartbeat_minutes_minute_idx ON heartbeat_minutes USING brin (minute);

-- Append-only: a batch never waits for another to add the same minute.
CREATE TABLE heartbeat_minutes_pending (
    minute  timestamptz NOT NULL
);

CREATE VIEW heartbeat_minutes_live AS
SELECT m.customer_id, m.minute, m.readings, m.min_heart_rate, m.max_heart_rate,
       m.sum_heart_rate, m.sum_squares, m.low_anomalies, m.high_anomalies, m.newest_ts
FROM heartbeat_minutes AS m
WHERE NOT EXISTS (SELECT FROM heartbeat_minutes_pending AS p WHERE p.minute = m.minute)
UNION ALL
SELECT r.customer_id, p.minute, r.readings, r.min_heart_rate, r.max_heart_rate,
       r.sum_heart_rate, r.sum_squares, r.low_anomalies, r.high_anomalies, r.newest_ts
FROM (SELECT DISTINCT minute FROM heartbeat_minutes_pending) AS p
CROSS JOIN LATERAL (
    -- LATERAL: read each pending minute's readings through the time index, whatever
    -- the planner guesses about the pending table's size.
    SELECT h.customer_id,
           count(*)::integer AS readings,
           min(h.heart_rate) AS min_heart_rate,
           max(h.heart_rate) AS max_heart_rate,
           sum(h.heart_rate)::bigint AS sum_heart_rate,
           sum(h.heart_rate::integer * h.heart_rate)::bigint AS sum_squares,
           (count(*) FILTER (WHERE h.anomaly = 'low'))::integer AS low_anomalies,
           (count(*) FILTER (WHERE h.anomaly = 'high'))::integer AS high_anomalies,
           max(h.ts) AS newest_ts
    FROM heartbeats AS h
    WHERE h.ts >= p.minute AND h.ts < p.minute + interval '1 minute'
    GROUP BY h.customer_id
) AS r;

-- The rollups of what is stored already: one partition per UTC day it covers.
DO $$
DECLARE
    day timestamptz;
BEGIN
    FOR day IN
        SELECT DISTINCT date_bin('1 day', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')
        FROM heartbeats
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF heartbeat_minutes FOR VALUES FROM (%L) TO (%L)',
            'heartbeat_minutes_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'),
            day,
            day + interval '24 hours'
        );
    END LOOP;
END
$$;

INSERT INTO heartbeat_minutes (
    customer_id, minute, readings, min_heart_rate, max_heart_rate, sum_heart_rate,
    sum_squares, low_anomalies, high_anomalies, newest_ts
)
SELECT customer_id,
       date_bin('1 minute', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       count(*),
       min(heart_rate),
       max(heart_rate),
       sum(heart_rate),
       sum(heart_rate::integer * heart_rate),
       count(*) FILTER (WHERE anomaly = 'low'),
       count(*) FILTER (WHERE anomaly = 'high'),
       max(ts)
FROM heartbeats
GROUP BY 1, 2;
