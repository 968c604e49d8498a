-- Exactly-once: one row per applied command id, written in the same transaction as its events.
CREATE TABLE commands (
    command_id    TEXT    NOT NULL PRIMARY KEY,
    stream_id     TEXT    NOT NULL,
    first_version INTEGER NOT NULL,
    last_version  INTEGER NOT NULL,
    recorded_at   TEXT    NOT NULL,
    CHECK (first_version >= 1 AND last_version >= first_version)
);

-- verify() compares a stream's last event with the last version its commands claim.
CREATE INDEX commands_stream_idx ON commands (stream_id, last_version);
