-- depends: 0002.consumer-offsets
-- Every message the consumer refused, written in the same transaction as the rows
-- and offsets of its batch, so each one is accounted for exactly once even across
-- crashes (the dead-letter topic is at-least-once). Keyed by where it was read;
-- a late write from a consumer that lost its partitions is skipped.
--
-- Bounded so one poison message cannot make a row too large to write or read:
-- the first 64 KiB of the payload (payload_size and payload_truncated say what was
-- cut), the first 1 KiB of the key (key_size), whole headers in order while their
-- names and values total 16 KiB (header_count is how many the message had), and the
-- first 1,024 characters of the detail. Headers are a JSON array of
-- {"name": ..., "value": base64 or null}, so repeated names and order survive.
CREATE TABLE dead_letters (
    topic              text        NOT NULL,
    partition          integer     NOT NULL CHECK (partition >= 0),
    "offset"           bigint      NOT NULL CHECK ("offset" >= 0),
    consumer_group     text        NOT NULL,
    reason             text        NOT NULL,
    detail             text        NOT NULL,
    key                bytea,
    key_size           integer     CHECK (key_size >= 0),
    headers            jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(headers) = 'array'),
    header_count       integer     NOT NULL DEFAULT 0 CHECK (header_count >= 0),
    payload            bytea,
    payload_size       integer     CHECK (payload_size >= 0),
    payload_truncated  boolean     NOT NULL DEFAULT false,
    kafka_timestamp    timestamptz,
    received_at        timestamptz NOT NULL DEFAULT now(),
    redriven_at        timestamptz,
    PRIMARY KEY (topic, partition, "offset"),
    CHECK ((key IS NULL) = (key_size IS NULL)),
    CHECK ((payload IS NULL) = (payload_size IS NULL))
);

-- `heartbeat dlq list` shows the newest first, optionally of one reason.
CREATE INDEX dead_letters_received_idx ON dead_letters (received_at);
CREATE INDEX dead_letters_reason_idx ON dead_letters (reason, received_at);
