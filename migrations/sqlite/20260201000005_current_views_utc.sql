-- Twin of migrations/postgres/20260201000005_current_views_utc.sql. Nothing to change here: the
-- SQLite views already take today in UTC (date('now')).
SELECT 1;
