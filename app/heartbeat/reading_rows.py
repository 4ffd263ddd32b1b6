"""The SQL of storing readings: the staging table, the move into ``heartbeats`` with
the last-seen and pending-minute bookkeeping, conflicts, and the stale-customer count.

Plain text, no client: ``heartbeat.store`` runs these statements.

One batch is one statement after the COPY (``MOVE_STAGED``), so everything it does
is decided on the rows actually inserted: a duplicate is never inserted, so it never
moves a customer's last-seen time nor marks a minute for the rollups.
"""

from __future__ import annotations

from datetime import timedelta

# A customer's last-seen row is rewritten only when it moves on by this much, so a
# customer sending a reading a second costs one row update per 10 s, not per batch.
LAST_SEEN_RESOLUTION = timedelta(seconds=10)
# Minutes are counted from here, in UTC whatever the session's time zone.
MINUTE_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00:00+00'"

# ``ordinal`` is the reading's index in the batch, to name a conflict's reading.
STAGING_DDL = """
CREATE TEMPORARY TABLE IF NOT EXISTS heartbeats_staging (
    ordinal integer NOT NULL,
    customer_id bigint NOT NULL,
    ts timestamptz NOT NULL,
    heart_rate smallint NOT NULL,
    anomaly text
) ON COMMIT DELETE ROWS
"""
COPY_STAGING = (
    "COPY heartbeats_staging (ordinal, customer_id, ts, heart_rate, anomaly)"
    " FROM STDIN (FORMAT BINARY)"
)
# A temporary table is scanned in the order it was written (no parallel or
# synchronized scans of local buffers), so of two staged readings for the same
# customer and instant the first in the batch is the one stored.
#
# From the rows inserted: each customer's newest reading moves customer_last_seen on
# (when it moved by LAST_SEEN_RESOLUTION; never backwards, whatever another consumer
# wrote meanwhile), and each minute they fall in is added to heartbeat_minutes_pending
# for maintenance to roll up. Rows are upserted in key order, so two batches touching
# the same customers lock their rows in the same order.
MOVE_STAGED = f"""
WITH stored AS (
    INSERT INTO heartbeats (customer_id, ts, heart_rate, anomaly)
    SELECT customer_id, ts, heart_rate, anomaly FROM heartbeats_staging
    ON CONFLICT (customer_id, ts) DO NOTHING
    RETURNING customer_id, ts, anomaly
), newest AS (
    SELECT customer_id, max(ts) AS ts FROM stored GROUP BY customer_id
), seen AS (
    INSERT INTO customer_last_seen AS s (customer_id, newest_ts)
    SELECT n.customer_id, n.ts
    FROM newest AS n
    LEFT JOIN customer_last_seen AS known ON known.customer_id = n.customer_id
    WHERE known.newest_ts IS NULL
       OR known.newest_ts < n.ts - make_interval(secs => {LAST_SEEN_RESOLUTION.total_seconds()})
    ORDER BY n.customer_id
    ON CONFLICT (customer_id) DO UPDATE SET newest_ts = EXCLUDED.newest_ts
        WHERE s.newest_ts < EXCLUDED.newest_ts
), pending AS (
    INSERT INTO heartbeat_minutes_pending (minute)
    SELECT DISTINCT date_bin('1 minute', ts, {MINUTE_ORIGIN}) FROM stored
)
SELECT ts, anomaly FROM stored
"""
# Run only when fewer rows went in than were staged: every staged reading whose
# customer and instant are stored (before, or just now from earlier in the batch)
# with another heart rate. The rest of the skipped ones are exact duplicates.
FIND_CONFLICTS = """
SELECT s.ordinal, h.heart_rate
FROM heartbeats_staging AS s
JOIN heartbeats AS h ON h.customer_id = s.customer_id AND h.ts = s.ts
WHERE h.heart_rate <> s.heart_rate
ORDER BY s.ordinal
"""
# One row per customer, whatever the number of readings.
COUNT_STALE = """
SELECT count(*) FROM customer_last_seen
WHERE newest_ts >= now() - make_interval(secs => %(lookback)s)
  AND newest_ts < now() - make_interval(secs => %(stale)s)
"""
INSERT_ONE = """
INSERT INTO heartbeats (customer_id, ts, heart_rate, anomaly) VALUES (%s, %s, %s, %s)
ON CONFLICT (customer_id, ts) DO NOTHING
"""
