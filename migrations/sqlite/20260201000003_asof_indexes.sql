-- Indexes for "as of D, as known now": only the rows still believed (recorded_to IS NULL), by
-- timeline and start date. Superseded rows pile up with every correction and every change that
-- splits a period; these indexes skip them.
CREATE INDEX unit_versions_now ON unit_versions (timeline_id, effective_from) WHERE recorded_to IS NULL;
CREATE INDEX area_versions_now ON area_versions (timeline_id, effective_from) WHERE recorded_to IS NULL;
CREATE INDEX service_versions_now ON service_versions (timeline_id, effective_from) WHERE recorded_to IS NULL;
CREATE INDEX responsibility_versions_now ON responsibility_versions (timeline_id, effective_from) WHERE recorded_to IS NULL;
