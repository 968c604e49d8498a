-- A scenario's decision log starts with the decisions it inherited from its parent up to the fork
-- (and, for a scenario of a scenario, from every ancestor), so that an auditor or planner reading
-- a scenario sees the whole history its organisation rests on, and a scenario that revokes an
-- inherited decision shows it revoked. An inherited row names the ancestor whose stream holds
-- the event (`inherited_from`) and keeps that stream's version; `inherited_depth` counts the
-- forks between (1 = the parent, 2 = the grandparent, ...; 0 = the timeline's own event). The
-- log's order is `inherited_depth DESC, stream_version`: every ancestor's events before its
-- descendants'.
--
-- Read models are rebuilt from the event log: emptying them here makes the projector replay the
-- whole log on the next start, which fills the inherited rows of scenarios forked before this
-- migration. Queries wait for it (`/readyz`, and 503 after the configured patience).
DELETE FROM timelines;
DELETE FROM unit_versions;
DELETE FROM area_versions;
DELETE FROM service_versions;
DELETE FROM responsibility_versions;
DELETE FROM service_point_versions;
DELETE FROM lineage_edges;
DELETE FROM decisions;
DELETE FROM change_feed;
DELETE FROM projection_failures;
DELETE FROM projection_checkpoints;

ALTER TABLE decisions ADD COLUMN inherited_from text;
ALTER TABLE decisions ADD COLUMN inherited_depth integer NOT NULL DEFAULT 0
    CHECK (inherited_depth >= 0 AND (inherited_depth = 0) = (inherited_from IS NULL));
ALTER TABLE decisions DROP CONSTRAINT decisions_pkey;
ALTER TABLE decisions ADD CONSTRAINT decisions_pkey
    PRIMARY KEY (timeline_id, inherited_depth, stream_version);

-- A scenario whose changes were adopted (`ScenarioAdopted`): into which timeline (its parent),
-- and that timeline's version after the last adoption. NULL otherwise.
ALTER TABLE timelines ADD COLUMN adopted_into text;
ALTER TABLE timelines ADD COLUMN adopted_into_version bigint;
