DROP TABLE customer_last_seen;
