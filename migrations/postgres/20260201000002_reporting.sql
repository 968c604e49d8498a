-- Reporting views and functions over the read models, for analysts and BI tools that speak SQL.
-- Documented with examples in docs/reporting.md (the tests run those examples).

-- The organisation today, as known now.
CREATE VIEW current_org_chart AS
SELECT timeline_id, unit_id, code, name, kind, parent_id, areas, attributes, effective_from
FROM unit_versions
WHERE recorded_to IS NULL
  AND effective_from <= CURRENT_DATE AND (effective_to IS NULL OR effective_to > CURRENT_DATE);

-- Who is responsible for which service in which area today, as known now.
CREATE VIEW current_responsibilities AS
SELECT r.timeline_id, r.service_code, s.name AS service_name, r.area_code, a.name AS area_name,
       r.unit_id, u.name AS unit_name, u.kind AS unit_kind, r.effective_from
FROM responsibility_versions r
JOIN service_versions s ON s.timeline_id = r.timeline_id AND s.service_code = r.service_code
     AND s.recorded_to IS NULL AND s.effective_from <= CURRENT_DATE AND (s.effective_to IS NULL OR s.effective_to > CURRENT_DATE)
JOIN area_versions a ON a.timeline_id = r.timeline_id AND a.area_code = r.area_code
     AND a.recorded_to IS NULL AND a.effective_from <= CURRENT_DATE AND (a.effective_to IS NULL OR a.effective_to > CURRENT_DATE)
JOIN unit_versions u ON u.timeline_id = r.timeline_id AND u.unit_id = r.unit_id
     AND u.recorded_to IS NULL AND u.effective_from <= CURRENT_DATE AND (u.effective_to IS NULL OR u.effective_to > CURRENT_DATE)
WHERE r.recorded_to IS NULL
  AND r.effective_from <= CURRENT_DATE AND (r.effective_to IS NULL OR r.effective_to > CURRENT_DATE);

-- The units as of effective date d, as known at instant `known` (NULL: as known now).
CREATE FUNCTION org_chart_as_of(d date, known timestamptz DEFAULT NULL)
RETURNS TABLE (timeline_id text, unit_id text, code text, name text, kind text, parent_id text,
               areas jsonb, effective_from date, effective_to date)
LANGUAGE sql STABLE AS $$
    SELECT u.timeline_id, u.unit_id, u.code, u.name, u.kind, u.parent_id, u.areas, u.effective_from, u.effective_to
    FROM unit_versions u
    WHERE u.effective_from <= d AND (u.effective_to IS NULL OR u.effective_to > d)
      AND CASE WHEN known IS NULL THEN u.recorded_to IS NULL
               ELSE u.recorded_from <= known AND (u.recorded_to IS NULL OR u.recorded_to > known) END
$$;

-- The responsibility matrix as of effective date d, as known at instant `known` (NULL: now).
CREATE FUNCTION responsibilities_as_of(d date, known timestamptz DEFAULT NULL)
RETURNS TABLE (timeline_id text, service_code text, service_name text, area_code text,
               area_name text, unit_id text, unit_name text, unit_kind text)
LANGUAGE sql STABLE AS $$
    SELECT r.timeline_id, r.service_code, s.name, r.area_code, a.name, r.unit_id, u.name, u.kind
    FROM responsibility_versions r
    JOIN service_versions s ON s.timeline_id = r.timeline_id AND s.service_code = r.service_code
    JOIN area_versions a ON a.timeline_id = r.timeline_id AND a.area_code = r.area_code
    JOIN unit_versions u ON u.timeline_id = r.timeline_id AND u.unit_id = r.unit_id
    WHERE r.effective_from <= d AND (r.effective_to IS NULL OR r.effective_to > d)
      AND s.effective_from <= d AND (s.effective_to IS NULL OR s.effective_to > d)
      AND a.effective_from <= d AND (a.effective_to IS NULL OR a.effective_to > d)
      AND u.effective_from <= d AND (u.effective_to IS NULL OR u.effective_to > d)
      AND CASE WHEN known IS NULL
               THEN r.recorded_to IS NULL AND s.recorded_to IS NULL AND a.recorded_to IS NULL AND u.recorded_to IS NULL
               ELSE r.recorded_from <= known AND (r.recorded_to IS NULL OR r.recorded_to > known)
                AND s.recorded_from <= known AND (s.recorded_to IS NULL OR s.recorded_to > known)
                AND a.recorded_from <= known AND (a.recorded_to IS NULL OR a.recorded_to > known)
                AND u.recorded_from <= known AND (u.recorded_to IS NULL OR u.recorded_to > known) END
$$;
