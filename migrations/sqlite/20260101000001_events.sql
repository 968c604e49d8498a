-- The event log: one row per domain event, never updated or deleted (see the next migration).
--
-- SQLite serialises writers (the store appends inside BEGIN IMMEDIATE), so commit order equals
-- `position` order and the autoincrement position alone is the global order.
-- AUTOINCREMENT: positions are never reused, even after a rolled-back append.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    -- 1-based version within the stream; the unique key is the optimistic-concurrency check.
    stream_version INTEGER NOT NULL CHECK (stream_version >= 1),
    event_type     TEXT    NOT NULL,
    event_version  TEXT    NOT NULL,
    -- JSON text.
    payload        TEXT    NOT NULL,
    -- {"command_id", "actor", "correlation_id", "decision"} as JSON text.
    metadata       TEXT    NOT NULL,
    -- RFC 3339, UTC, microseconds: exactly the string that is hashed.
    recorded_at    TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    -- Exactly once: on the first event of each command, the command id and how many events the
    -- command appended (NULL on the others); see docs/adr/0002.
    command_id     TEXT,
    command_events INTEGER,
    CONSTRAINT events_command_check
        CHECK ((command_id IS NULL) = (command_events IS NULL) AND command_events >= 1),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- One application per command id. Partial: only first events carry one.
CREATE UNIQUE INDEX events_command_id_key ON events (command_id) WHERE command_id IS NOT NULL;
