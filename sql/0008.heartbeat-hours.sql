-- depends: 0007.heartbeat-fleet-minutes
-- Per-customer, per-hour aggregates, for per-customer panels and `heartbeat stats` over
-- long ranges: 24 rows per customer a day instead of up to 1,440. Range-partitioned on
-- hour by UTC week (heartbeat_hours_pYYYYMMDD, from a Monday), kept
-- HOURLY_ROLLUP_RETENTION_DAYS, at least as long as the per-minute rollups.
--
-- Built by `heartbeat maintain` from heartbeat_minutes, never by the consumer: the
-- statement that rolls up pending minutes adds the hours they fall in to
-- heartbeat_hours_pending, and the next step takes those rows of the hours that are over
-- and recomputes each such hour from its minutes, in one statement (the current hour stays
-- pending until it ends, so it is written once, not once a minute). Recomputing replaces,
-- never adds, so an hour recomputed twice (a late reading) is still exact.
--
-- heartbeat_hours_live is what readers use: the rolled-up hours that nothing pending
-- touches, and, for an hour with a pending minute (the current one, one a late reading
-- touched) or still pending itself, the same figures from heartbeat_minutes_live. Exact at
-- any moment, like heartbeat_minutes_live.
CREATE TABLE heartbeat_hours (
    customer_id     bigint      NOT NULL,
    hour            timestamptz NOT NULL,
    readings        integer     NOT NULL CHECK (readings > 0),
    min_heart_rate  smallint    NOT NULL,
    max_heart_rate  smallint    NOT NULL,
    sum_heart_rate  bigint      NOT NULL,
    sum_squares     bigint      NOT NULL,
    low_anomalies   integer     NOT NULL,
    high_anomalies  integer     NOT NULL,
    newest_ts       timestamptz NOT NULL,
    -- The figures in the key too: a customer's hours come from one index range, without
    -- visiting a heap page per hour (rows are written an hour of every customer at a time).
    PRIMARY KEY (customer_id, hour) INCLUDE (
        readings, min_heart_rate, max_heart_rate, sum_heart_rate, sum_squares,
        low_anomalies, high_anomalies, newest_ts
    )
) PARTITION BY RANGE (hour);

CREATE TABLE heartbeat_hours_default PARTITION OF heartbeat_hours DEFAULT;

-- Written and read by maintenance only (under its advisory lock).
CREATE TABLE heartbeat_hours_pending (
    hour  timestamptz NOT NULL
);

-- The hours something pending touches: computed from the minutes until rolled up.
CREATE VIEW heartbeat_hours_stale AS
SELECT hour FROM heartbeat_hours_pending
UNION
SELECT date_bin('1 hour', minute, TIMESTAMPTZ '2000-01-01 00:00:00+00')
FROM heartbeat_minutes_pending;

CREATE VIEW heartbeat_hours_live AS
SELECT h.customer_id, h.hour, h.readings, h.min_heart_rate, h.max_heart_rate,
       h.sum_heart_rate, h.sum_squares, h.low_anomalies, h.high_anomalies, h.newest_ts
FROM heartbeat_hours AS h
WHERE NOT EXISTS (SELECT FROM heartbeat_hours_stale AS s WHERE s.hour = h.hour)
UNION ALL
SELECT r.customer_id, s.hour, r.readings, r.min_heart_rate, r.max_heart_rate,
       r.sum_heart_rate, r.sum_squares, r.low_anomalies, r.high_anomalies, r.newest_ts
FROM heartbeat_hours_stale AS s
CROSS JOIN LATERAL (
    SELECT m.customer_id,
           sum(m.readings)::integer AS readings,
           min(m.min_heart_rate) AS min_heart_rate,
           max(m.max_heart_rate) AS max_heart_rate,
           sum(m.sum_heart_rate)::bigint AS sum_heart_rate,
           sum(m.sum_squares)::bigint AS sum_squares,
           sum(m.low_anomalies)::integer AS low_anomalies,
           sum(m.high_anomalies)::integer AS high_anomalies,
           max(m.newest_ts) AS newest_ts
    FROM heartbeat_minutes_live AS m
    WHERE m.minute >= s.hour AND m.minute < s.hour + interval '1 hour'
    GROUP BY m.customer_id
) AS r;

-- The rollups of what is rolled up already: one partition per UTC week it covers.
DO $$
DECLARE
    week timestamptz;
BEGIN
    FOR week IN
        SELECT DISTINCT date_trunc('week', minute AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        FROM heartbeat_minutes
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF heartbeat_hours FOR VALUES FROM (%L) TO (%L)',
            'heartbeat_hours_p' || to_char(week AT TIME ZONE 'UTC', 'YYYYMMDD'),
            week,
            week + interval '7 days'
        );
    END LOOP;
END
$$;

INSERT INTO heartbeat_hours (
    customer_id, hour, readings, min_heart_rate, max_heart_rate, sum_heart_rate,
    sum_squares, low_anomalies, high_anomalies, newest_ts
)
SELECT customer_id,
       date_bin('1 hour', minute, TIMESTAMPTZ '2000-01-01 00:00:00+00'),
       sum(readings),
       min(min_heart_rate),
       max(max_heart_rate),
       sum(sum_heart_rate),
       sum(sum_squares),
       sum(low_anomalies),
       sum(high_anomalies),
       max(newest_ts)
FROM heartbeat_minutes
GROUP BY 1, 2
ORDER BY 2, 1;

-- Hours that may still change, marked so that `heartbeat maintain` recomputes each from
-- its minutes once it is over: those a pending minute falls in, the newest one filled
-- above, and (in a database with rollups) the current hour and the one before. Until the
-- new `heartbeat maintain` runs, one of the previous release (a CronJob firing during the
-- upgrade) rolls minutes up without marking their hours, which would leave those hours
-- short for good.
INSERT INTO heartbeat_hours_pending (hour)
SELECT date_bin('1 hour', minute, TIMESTAMPTZ '2000-01-01 00:00:00+00')
FROM heartbeat_minutes_pending
UNION
SELECT max(hour) FROM heartbeat_hours HAVING max(hour) IS NOT NULL
UNION
SELECT date_bin('1 hour', now(), TIMESTAMPTZ '2000-01-01 00:00:00+00') - n * interval '1 hour'
FROM generate_series(0, 1) AS n
WHERE EXISTS (SELECT 1 FROM heartbeat_minutes);
