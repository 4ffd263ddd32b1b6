DROP VIEW heartbeat_fleet_minutes_live;
DROP TABLE heartbeat_fleet_minutes;
