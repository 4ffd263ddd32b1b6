-- depends: 0003.dead-letters
-- Each customer's newest stored reading, kept by every batch that stores readings in
-- the same transaction, so "who has gone quiet" reads one row per customer instead of
-- the readings. A batch writes a customer's row only when it moves on by 10 s or more
-- (with a reading a second, once in ten batches): newest_ts is the newest stored
-- reading or up to 10 s before it.
--
-- No index but the key: newest_ts is rewritten in place (a HOT update, room left by
-- the fill factor), which an index on it would prevent; a count over it reads one row
-- per customer.
CREATE TABLE customer_last_seen (
    customer_id  bigint      PRIMARY KEY CHECK (customer_id >= 1),
    newest_ts    timestamptz NOT NULL
) WITH (fillfactor = 50);

INSERT INTO customer_last_seen (customer_id, newest_ts)
SELECT customer_id, max(ts) FROM heartbeats GROUP BY customer_id;
