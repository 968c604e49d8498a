-- SQLite twin of migrations/postgres/20260201000002_reporting.sql. SQLite has no SQL functions,
-- so only the two "current" views exist here; for other dates use the API or the as-of
-- conditions shown in docs/reporting.md.

CREATE VIEW current_org_chart AS
SELECT timeline_id, unit_id, code, name, kind, parent_id, areas, attributes, effective_from
FROM unit_versions
WHERE recorded_to IS NULL
  AND effective_from <= date('now') AND (effective_to IS NULL OR effective_to > date('now'));

CREATE VIEW current_responsibilities AS
SELECT r.timeline_id, r.service_code, s.name AS service_name, r.area_code, a.name AS area_name,
       r.unit_id, u.name AS unit_name, u.kind AS unit_kind, r.effective_from
FROM responsibility_versions r
JOIN service_versions s ON s.timeline_id = r.timeline_id AND s.service_code = r.service_code
     AND s.recorded_to IS NULL AND s.effective_from <= date('now') AND (s.effective_to IS NULL OR s.effective_to > date('now'))
JOIN area_versions a ON a.timeline_id = r.timeline_id AND a.area_code = r.area_code
     AND a.recorded_to IS NULL AND a.effective_from <= date('now') AND (a.effective_to IS NULL OR a.effective_to > date('now'))
JOIN unit_versions u ON u.timeline_id = r.timeline_id AND u.unit_id = r.unit_id
     AND u.recorded_to IS NULL AND u.effective_from <= date('now') AND (u.effective_to IS NULL OR u.effective_to > date('now'))
WHERE r.recorded_to IS NULL
  AND r.effective_from <= date('now') AND (r.effective_to IS NULL OR r.effective_to > date('now'));
