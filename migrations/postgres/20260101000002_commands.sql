-- Exactly-once: one row per applied command id, written in the same statement as its events.
-- A retried command id hits the primary key and the store answers with the original events
-- (stream_id, first_version..last_version) instead of writing new ones.
CREATE TABLE commands (
    command_id    text        NOT NULL,
    stream_id     text        NOT NULL,
    first_version bigint      NOT NULL,
    last_version  bigint      NOT NULL,
    recorded_at   timestamptz NOT NULL,
    CONSTRAINT commands_pkey PRIMARY KEY (command_id),
    CONSTRAINT commands_versions_check CHECK (first_version >= 1 AND last_version >= first_version)
);

-- No index on stream_id: it would cost every append, and only verify() asks "which versions
-- do this stream's commands claim" (a scan, for an occasional audit).
