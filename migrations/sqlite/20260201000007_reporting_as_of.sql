-- Twin of migrations/postgres/20260201000007_reporting_as_of.sql. SQLite has no functions; the
-- conditions they apply are in docs/reporting.md, next to each PostgreSQL example.
SELECT 1;
