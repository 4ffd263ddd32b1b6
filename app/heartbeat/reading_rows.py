"""The SQL of storing readings: the staging table, the move into ``heartbeats`` with
the last-seen and pending-minute bookkeeping, conflicts, and the stale-customer count.

Plain text, no client: ``heartbeat.store`` runs these statements.

One batch is one statement after the COPY (``MOVE_STAGED``), so everything it does
is decided on the rows actually inserted: a duplicate is never inserted, so it never
moves a customer's last-seen time nor marks a minute for the rollups.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import timedelta
from itertools import chain, repeat

from heartbeat.validation import VALID_MAX_BPM, classify

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
# PostgreSQL's binary COPY: a signature, flags and header extension, then rows of a
# field count and (length, bytes) per field, then -1. A row here is the ordinal (int4),
# customer_id (int8) and ts (int8, microseconds since 2000-01-01 UTC), then heart_rate
# (int2) and anomaly (text or NULL), which depend only on the heart rate and are
# packed once per possible value.
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + b"\x00\x00\x00\x00" * 2
COPY_TRAILER = b"\xff\xff"
_ROW_HEAD = struct.Struct("!hiiiqiq").pack


def _row_tail(heart_rate: int) -> bytes:
    anomaly = classify(heart_rate)
    text = (
        b"\xff\xff\xff\xff"
        if anomaly is None
        else struct.pack("!i", len(anomaly)) + anomaly.encode()
    )
    return struct.pack("!ih", 2, heart_rate) + text


_ROW_TAILS = [_row_tail(rate) for rate in range(VALID_MAX_BPM + 1)]


def pack_rows(
    customer_ids: Sequence[int], micros: Sequence[int], heart_rates: Sequence[int]
) -> bytes:
    """The binary COPY data of valid readings given as columns (no Python loop per row)."""
    heads = map(
        _ROW_HEAD,
        repeat(5),
        repeat(4),
        range(len(customer_ids)),
        repeat(8),
        customer_ids,
        repeat(8),
        micros,
    )
    tails = map(_ROW_TAILS.__getitem__, heart_rates)
    rows = chain.from_iterable(zip(heads, tails, strict=True))
    return b"".join(chain((COPY_SIGNATURE,), rows, (COPY_TRAILER,)))


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
# The same, answering with one row whatever the batch's size: how many readings were
# stored, how many of them low and high, and only when fewer were stored than staged
# (duplicates, conflicts) their instants, for the latency histogram.
MOVE_STAGED_COUNTED = MOVE_STAGED.replace(
    "SELECT ts, anomaly FROM stored",
    "SELECT count(*), count(*) FILTER (WHERE anomaly = 'low'),"
    " count(*) FILTER (WHERE anomaly = 'high'),"
    " CASE WHEN count(*) < %(staged)s THEN array_agg(ts) END FROM stored",
)
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
