-- First start of deploy/compose.yaml's PostgreSQL: POSTGRES_DB made the store's database (hub);
-- Dagster's storage (runs, event logs, schedules, sensor cursors) gets its own.
CREATE DATABASE dagster OWNER hub;
