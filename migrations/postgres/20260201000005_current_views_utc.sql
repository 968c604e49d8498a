-- The "current" views take today as the current date in UTC, like the API's default date and the
-- SQLite views (date('now') is UTC). CURRENT_DATE follows the session's time zone, so a BI tool
-- whose session runs in Europe/Oslo saw tomorrow's changes from local midnight on (and one in a
-- zone behind UTC missed today's) while the API and SQLite did not.

CREATE OR REPLACE VIEW current_org_chart AS
SELECT timeline_id, unit_id, code, name, kind, parent_id, areas, attributes, effective_from
FROM unit_versions
WHERE recorded_to IS NULL
  AND effective_from <= (now() AT TIME ZONE 'UTC')::date
  AND (effective_to IS NULL OR effective_to > (now() AT TIME ZONE 'UTC')::date);

CREATE OR REPLACE VIEW current_responsibilities AS
SELECT r.timeline_id, r.service_code, s.name AS service_name, r.area_code, a.name AS area_name,
       r.unit_id, u.name AS unit_name, u.kind AS unit_kind, r.effective_from
FROM responsibility_versions r
JOIN service_versions s ON s.timeline_id = r.timeline_id AND s.service_code = r.service_code
     AND s.recorded_to IS NULL AND s.effective_from <= (now() AT TIME ZONE 'UTC')::date
     AND (s.effective_to IS NULL OR s.effective_to > (now() AT TIME ZONE 'UTC')::date)
JOIN area_versions a ON a.timeline_id = r.timeline_id AND a.area_code = r.area_code
     AND a.recorded_to IS NULL AND a.effective_from <= (now() AT TIME ZONE 'UTC')::date
     AND (a.effective_to IS NULL OR a.effective_to > (now() AT TIME ZONE 'UTC')::date)
JOIN unit_versions u ON u.timeline_id = r.timeline_id AND u.unit_id = r.unit_id
     AND u.recorded_to IS NULL AND u.effective_from <= (now() AT TIME ZONE 'UTC')::date
     AND (u.effective_to IS NULL OR u.effective_to > (now() AT TIME ZONE 'UTC')::date)
WHERE r.recorded_to IS NULL
  AND r.effective_from <= (now() AT TIME ZONE 'UTC')::date
  AND (r.effective_to IS NULL OR r.effective_to > (now() AT TIME ZONE 'UTC')::date);
