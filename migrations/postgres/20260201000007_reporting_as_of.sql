-- Reporting: `org_chart_as_of` also returns the units' free attributes (e.g. population), last so
-- that a query naming its columns by position keeps working; and service points and lineage get
-- as-of functions like the org chart and the responsibility matrix. `known` is an instant, as
-- before: NULL means as known now.
DROP FUNCTION org_chart_as_of(date, timestamptz);
CREATE FUNCTION org_chart_as_of(d date, known timestamptz DEFAULT NULL)
RETURNS TABLE (timeline_id text, unit_id text, code text, name text, kind text, parent_id text,
               areas jsonb, effective_from date, effective_to date, attributes jsonb)
LANGUAGE sql STABLE AS $$
    SELECT u.timeline_id, u.unit_id, u.code, u.name, u.kind, u.parent_id, u.areas, u.effective_from,
           u.effective_to, u.attributes
    FROM unit_versions u
    WHERE u.effective_from <= d AND (u.effective_to IS NULL OR u.effective_to > d)
      AND CASE WHEN known IS NULL THEN u.recorded_to IS NULL
               ELSE u.recorded_from <= known AND (u.recorded_to IS NULL OR u.recorded_to > known) END
$$;

-- The service points open on effective date d, as known at `known` (NULL: now).
CREATE FUNCTION service_points_as_of(d date, known timestamptz DEFAULT NULL)
RETURNS TABLE (timeline_id text, point_id text, name text, unit_id text, area_code text,
               services jsonb, effective_from date, effective_to date)
LANGUAGE sql STABLE AS $$
    SELECT p.timeline_id, p.point_id, p.name, p.unit_id, p.area_code, p.services, p.effective_from,
           p.effective_to
    FROM service_point_versions p
    WHERE p.effective_from <= d AND (p.effective_to IS NULL OR p.effective_to > d)
      AND CASE WHEN known IS NULL THEN p.recorded_to IS NULL
               ELSE p.recorded_from <= known AND (p.recorded_to IS NULL OR p.recorded_to > known) END
$$;

-- The merges, splits and forks that had taken effect by effective date d, as known at `known`
-- (NULL: now; a revoked decision's edges are gone from then on).
CREATE FUNCTION lineage_as_of(d date, known timestamptz DEFAULT NULL)
RETURNS TABLE (timeline_id text, kind text, from_id text, to_id text, effective_on date,
               command_id text, case_number text)
LANGUAGE sql STABLE AS $$
    SELECT l.timeline_id, l.kind, l.from_id, l.to_id, l.effective_on, l.command_id, l.case_number
    FROM lineage_edges l
    WHERE l.effective_on <= d
      AND CASE WHEN known IS NULL THEN l.recorded_to IS NULL
               ELSE l.recorded_from <= known AND (l.recorded_to IS NULL OR l.recorded_to > known) END
$$;
