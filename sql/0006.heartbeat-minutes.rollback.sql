DROP VIEW heartbeat_minutes_live;
DROP TABLE heartbeat_minutes_pending;
DROP TABLE heartbeat_minutes;
