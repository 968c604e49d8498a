-- One snapshot per stream: a new one overwrites the old, so rows never pile up.
-- Snapshots are a cache: deleting them all is always safe.
CREATE TABLE snapshots (
    stream_id      TEXT    NOT NULL PRIMARY KEY,
    aggregate_type TEXT    NOT NULL,
    stream_version INTEGER NOT NULL,
    last_hash      TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    taken_at       TEXT    NOT NULL
);
