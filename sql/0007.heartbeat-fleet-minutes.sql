-- depends: 0006.heartbeat-minutes
-- The whole fleet's figures per minute: one row per minute, whatever the number of
-- customers, for panels and `heartbeat stats` totals over long ranges. Kept like
-- heartbeat_minutes, by the same maintenance statement from the same recomputation
-- (so both agree), and read through heartbeat_fleet_minutes_live, which computes the
-- minutes still pending from the readings. Not partitioned: 1,440 rows a day; expired
-- rows (ROLLUP_RETENTION_DAYS) are deleted.
CREATE TABLE heartbeat_fleet_minutes (
    minute          timestamptz PRIMARY KEY,
    readings        bigint      NOT NULL CHECK (readings > 0),
    customers       integer     NOT NULL,
    low_anomalies   bigint      NOT NULL,
    high_anomalies  bigint      NOT NULL,
    newest_ts       timestamptz NOT NULL
);

CREATE VIEW heartbeat_fleet_minutes_live AS
SELECT f.minute, f.readings, f.customers, f.low_anomalies, f.high_anomalies, f.newest_ts
FROM heartbeat_fleet_minutes AS f
WHERE NOT EXISTS (SELECT FROM heartbeat_minutes_pending AS p WHERE p.minute = f.minute)
UNION ALL
SELECT p.minute, r.readings, r.customers, r.low_anomalies, r.high_anomalies, r.newest_ts
FROM (SELECT DISTINCT minute FROM heartbeat_minutes_pending) AS p
CROSS JOIN LATERAL (
    SELECT count(*) AS readings,
           count(DISTINCT h.customer_id)::integer AS customers,
           count(*) FILTER (WHERE h.anomaly = 'low') AS low_anomalies,
           count(*) FILTER (WHERE h.anomaly = 'high') AS high_anomalies,
           max(h.ts) AS newest_ts
    FROM heartbeats AS h
    WHERE h.ts >= p.minute AND h.ts < p.minute + interval '1 minute'
) AS r
WHERE r.readings > 0;

INSERT INTO heartbeat_fleet_minutes (
    minute, readings, customers, low_anomalies, high_anomalies, newest_ts
)
SELECT minute, sum(readings), count(*), sum(low_anomalies), sum(high_anomalies), max(newest_ts)
FROM heartbeat_minutes
GROUP BY minute;
