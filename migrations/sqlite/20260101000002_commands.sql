-- Exactly-once: one row per applied command id, written in the same transaction as its events.
CREATE TABLE commands (
    command_id    TEXT    NOT NULL PRIMARY KEY,
    stream_id     TEXT    NOT NULL,
    first_version INTEGER NOT NULL,
    last_version  INTEGER NOT NULL,
    recorded_at   TEXT    NOT NULL,
    CHECK (first_version >= 1 AND last_version >= first_version)
);

-- No index on stream_id: it would cost every append, and only verify() asks "which versions
-- do this stream's commands claim" (a scan, for an occasional audit).
