-- "Which versions hold on date D" as a range containment the index answers directly, instead of
-- scanning every version that starts before D. btree_gist lets the GiST index lead with the
-- timeline id; it is a trusted contrib extension (PostgreSQL 13+), so a database owner may
-- create it without superuser rights.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE INDEX unit_versions_during ON unit_versions USING gist (timeline_id, daterange(effective_from, effective_to, '[)')) WHERE recorded_to IS NULL;
CREATE INDEX area_versions_during ON area_versions USING gist (timeline_id, daterange(effective_from, effective_to, '[)')) WHERE recorded_to IS NULL;
CREATE INDEX service_versions_during ON service_versions USING gist (timeline_id, daterange(effective_from, effective_to, '[)')) WHERE recorded_to IS NULL;
CREATE INDEX responsibility_versions_during ON responsibility_versions USING gist (timeline_id, daterange(effective_from, effective_to, '[)')) WHERE recorded_to IS NULL;
