DROP VIEW heartbeat_hours_live;
DROP VIEW heartbeat_hours_stale;
DROP TABLE heartbeat_hours_pending;
DROP TABLE heartbeat_hours;
