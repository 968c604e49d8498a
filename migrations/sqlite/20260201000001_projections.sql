-- SQLite twin of migrations/postgres/20260201000001_projections.sql: dates are ISO-8601 text,
-- timestamps RFC 3339 text, JSON is text. Read models, rebuilt from the event log by the projector (projections crate).
-- Everything here can be dropped and rebuilt (`omorg rebuild`); the events table is the truth.
--
-- Bitemporal tables: a row says "from effective_from until effective_to (exclusive, NULL = still)
-- the entity looked like this", and that this was believed from recorded_from until recorded_to
-- (NULL = still believed). A later event that changes the past closes rows (sets recorded_to) and
-- adds new ones; it never edits a row's content. *_version columns give the same recorded axis as
-- stream versions, for step-by-step replay.

CREATE TABLE projection_checkpoints (
    projector   text PRIMARY KEY,
    checkpoint  text NOT NULL,          -- the store's opaque Checkpoint ("tx-position")
    position    integer NOT NULL,        -- global position of the last event applied
    rebuilding  integer NOT NULL DEFAULT 0,  -- a rebuild started and has not finished
    updated_at  text NOT NULL
);

CREATE TABLE timelines (
    timeline_id    text PRIMARY KEY,
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    parent_id      text,               -- for a scenario: the timeline it was forked from
    parent_version integer,
    version        integer NOT NULL,    -- events applied so far
    created_at     text NOT NULL,
    updated_at     text NOT NULL
);

CREATE TABLE unit_versions (
    timeline_id    text NOT NULL,
    unit_id        text NOT NULL,
    code           text,
    name           text NOT NULL,
    kind           text NOT NULL,
    parent_id      text,
    areas          text NOT NULL,     -- area codes held, sorted
    attributes     text NOT NULL,
    effective_from text NOT NULL,
    effective_to   text,
    recorded_from  text NOT NULL,
    recorded_to    text,
    recorded_from_version integer NOT NULL,
    recorded_to_version   integer
);
CREATE UNIQUE INDEX unit_versions_open ON unit_versions (timeline_id, unit_id, effective_from) WHERE recorded_to IS NULL;
CREATE INDEX unit_versions_asof ON unit_versions (timeline_id, effective_from);

CREATE TABLE area_versions (
    timeline_id    text NOT NULL,
    area_code      text NOT NULL,
    name           text NOT NULL,
    holder_id      text,
    carved_from    text,
    effective_from text NOT NULL,
    effective_to   text,
    recorded_from  text NOT NULL,
    recorded_to    text,
    recorded_from_version integer NOT NULL,
    recorded_to_version   integer
);
CREATE UNIQUE INDEX area_versions_open ON area_versions (timeline_id, area_code, effective_from) WHERE recorded_to IS NULL;
CREATE INDEX area_versions_asof ON area_versions (timeline_id, effective_from);

CREATE TABLE service_versions (
    timeline_id    text NOT NULL,
    service_code   text NOT NULL,
    name           text NOT NULL,
    category       text NOT NULL,
    effective_from text NOT NULL,
    effective_to   text,
    recorded_from  text NOT NULL,
    recorded_to    text,
    recorded_from_version integer NOT NULL,
    recorded_to_version   integer
);
CREATE UNIQUE INDEX service_versions_open ON service_versions (timeline_id, service_code, effective_from) WHERE recorded_to IS NULL;
CREATE INDEX service_versions_asof ON service_versions (timeline_id, effective_from);

CREATE TABLE responsibility_versions (
    timeline_id    text NOT NULL,
    service_code   text NOT NULL,
    area_code      text NOT NULL,
    unit_id        text NOT NULL,
    effective_from text NOT NULL,
    effective_to   text,
    recorded_from  text NOT NULL,
    recorded_to    text,
    recorded_from_version integer NOT NULL,
    recorded_to_version   integer
);
CREATE UNIQUE INDEX responsibility_versions_open ON responsibility_versions (timeline_id, service_code, area_code, effective_from) WHERE recorded_to IS NULL;
CREATE INDEX responsibility_versions_asof ON responsibility_versions (timeline_id, effective_from);
CREATE INDEX responsibility_versions_unit ON responsibility_versions (timeline_id, unit_id);

CREATE TABLE service_point_versions (
    timeline_id    text NOT NULL,
    point_id       text NOT NULL,
    name           text NOT NULL,
    unit_id        text NOT NULL,
    area_code      text,
    services       text NOT NULL,     -- service codes offered, sorted
    effective_from text NOT NULL,
    effective_to   text,
    recorded_from  text NOT NULL,
    recorded_to    text,
    recorded_from_version integer NOT NULL,
    recorded_to_version   integer
);
CREATE UNIQUE INDEX service_point_versions_open ON service_point_versions (timeline_id, point_id, effective_from) WHERE recorded_to IS NULL;

-- Lineage: merged_into / split_into between units (from_id → to_id), and forked_from between
-- timelines (from_id = the scenario, to_id = its parent). Revoking the decision closes the edge.
CREATE TABLE lineage_edges (
    timeline_id    text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('merged_into', 'split_into', 'forked_from')),
    from_id        text NOT NULL,
    to_id          text NOT NULL,
    effective_on   text NOT NULL,
    command_id     text NOT NULL,
    case_number    text NOT NULL,
    recorded_from  text NOT NULL,
    recorded_to    text,
    recorded_from_version integer NOT NULL,
    recorded_to_version   integer
);
CREATE INDEX lineage_edges_from ON lineage_edges (timeline_id, from_id);
CREATE INDEX lineage_edges_to ON lineage_edges (timeline_id, to_id);

-- One row per event: the decision behind it and what it was.
CREATE TABLE decisions (
    timeline_id    text NOT NULL,
    stream_version integer NOT NULL,
    position       integer NOT NULL,
    command_id     text NOT NULL,
    event_type     text NOT NULL,
    case_number    text NOT NULL,
    body           text NOT NULL,
    decision_date  text NOT NULL,
    title          text NOT NULL,
    link           text,
    actor          text NOT NULL,
    rationale      text NOT NULL,
    effective_from text NOT NULL,
    recorded_at    text NOT NULL,
    revoked_at     text,        -- when a later RevokeDecision withdrew it
    revoked_by_version integer,
    PRIMARY KEY (timeline_id, stream_version)
);
CREATE INDEX decisions_case ON decisions (timeline_id, case_number);

-- Every event in the order the projector applied it, with a one-line summary.
CREATE TABLE change_feed (
    position       integer PRIMARY KEY,
    timeline_id    text NOT NULL,
    stream_version integer NOT NULL,
    event_type     text NOT NULL,
    command_id     text NOT NULL,
    case_number    text NOT NULL,
    effective_from text NOT NULL,
    recorded_at    text NOT NULL,
    summary        text NOT NULL
);
CREATE INDEX change_feed_timeline ON change_feed (timeline_id, stream_version);
