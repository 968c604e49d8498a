-- Append-only: UPDATE and DELETE on events are refused. (SQLite has no TRUNCATE;
-- `DELETE FROM events` fires the delete trigger.)
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'omorg: UPDATE on events refused: the event log is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'omorg: DELETE on events refused: the event log is append-only'); END;
