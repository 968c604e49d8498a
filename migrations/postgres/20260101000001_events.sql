-- The event log: one row per domain event, never updated or deleted (see the next migration).
--
-- Global order: `tx_id` (the writing transaction's id, assigned by PostgreSQL) then `position`.
-- A catch-up reader reads (tx_id, position) above its checkpoint and only below the oldest
-- transaction still in flight, so it never skips an event whose transaction commits late and
-- appends never take a global lock. See docs/adr/0001-global-ordering.md.
CREATE TABLE events (
    position       bigint      GENERATED ALWAYS AS IDENTITY,
    tx_id          xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id      text        NOT NULL,
    -- 1-based version within the stream; the unique key is the optimistic-concurrency check.
    stream_version bigint      NOT NULL CHECK (stream_version >= 1),
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    payload        jsonb       NOT NULL,
    -- {"command_id", "actor", "correlation_id", "decision"}: who and on which authority.
    metadata       jsonb       NOT NULL,
    recorded_at    timestamptz NOT NULL,
    -- SHA-256 hex chain within the stream; canonical form in docs/store.md.
    prev_hash      text        NOT NULL,
    hash           text        NOT NULL,
    -- Exactly once: the first event of each command carries the client's command id and how many
    -- events the command appended (NULL on the others). The unique index below refuses a second
    -- application of the id in the same statement that would append it; a retry then reads the
    -- original events back (see docs/adr/0002).
    command_id     text,
    command_events integer,
    CONSTRAINT events_command_check
        CHECK ((command_id IS NULL) = (command_events IS NULL) AND command_events >= 1),
    -- The optimistic-concurrency check, and the index for loading a stream.
    CONSTRAINT events_pkey PRIMARY KEY (stream_id, stream_version)
);

-- The catch-up reader's scan order. Each index costs every append (see docs/benchmarks.md), so
-- there are only these three; `position` is unique by construction (identity).
CREATE INDEX events_global_order_idx ON events (tx_id, position);

-- One application per command id. Partial: only first events carry one.
CREATE UNIQUE INDEX events_command_id_key ON events (command_id) WHERE command_id IS NOT NULL;
