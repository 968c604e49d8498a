-- One snapshot per stream (primary key stream_id): a new snapshot overwrites the old one, so rows
-- never pile up, and one that no longer deserialises is replaced after a full replay.
-- Snapshots are a cache: deleting them all is always safe.
CREATE TABLE snapshots (
    stream_id      text        NOT NULL,
    aggregate_type text        NOT NULL,
    -- The aggregate state after applying events 1..=stream_version.
    stream_version bigint      NOT NULL,
    -- Hash of event `stream_version`, so the next append can chain without reading events.
    last_hash      text        NOT NULL,
    state          jsonb       NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT snapshots_pkey PRIMARY KEY (stream_id)
);
