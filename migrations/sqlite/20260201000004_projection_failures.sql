-- Timelines whose projection stopped on an event that can never be applied (one stored before a
-- validation existed, or that no longer decodes). The projector records the first such event
-- here, skips that timeline's later events and goes on with every other timeline; queries on the
-- timeline answer a `projection-failed` problem naming the event. A rebuild (after a fix or an
-- upcaster) clears the table and tries again.
CREATE TABLE projection_failures (
    timeline_id    text        PRIMARY KEY,
    stream_version bigint      NOT NULL,
    position       bigint      NOT NULL,
    error          text        NOT NULL,
    failed_at      text        NOT NULL
);
