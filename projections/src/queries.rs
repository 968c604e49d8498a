//! Queries over the read models: what the API and the CLI answer from.
//!
//! Every query takes an [`AsOf`]: an effective date, and optionally the recorded instant to see
//! the read models as they were believed then ("as of 2026-03-01, as known on 2025-12-01").

use crate::error::ProjectionError;
use crate::sql::{RowExt, Ts};
use crate::{fetch, fold_rows};
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc};
use omorg_store::Database;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Which version of the world a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsOf {
    /// The effective date.
    pub date: NaiveDate,
    /// Only what was recorded before this instant (exclusive); `None` means everything known now.
    pub known_before: Option<DateTime<Utc>>,
    /// Only what the timeline's first `n` own events said (the recorded axis as stream versions,
    /// for step-by-step replay); takes precedence over `known_before`.
    pub known_version: Option<i64>,
}

impl AsOf {
    /// As of `date`, using everything known now.
    pub fn now(date: NaiveDate) -> Self {
        Self {
            date,
            known_before: None,
            known_version: None,
        }
    }

    /// As of `date`, as the timeline stood after its first `version` own events.
    pub fn known_at_version(date: NaiveDate, version: i64) -> Self {
        Self {
            date,
            known_before: None,
            known_version: Some(version),
        }
    }

    /// As of `date`, as known at the end of the recorded day `known_on`.
    pub fn known_on(date: NaiveDate, known_on: NaiveDate) -> Self {
        let next = known_on
            .checked_add_days(Days::new(1))
            .map(|d| d.and_time(NaiveTime::MIN).and_utc());
        Self {
            date,
            known_before: next.and_then(recorded_bound),
            known_version: None,
        }
    }

    /// As of `date`, as known at the instant `at` (events recorded at `at` included).
    pub fn known_at(date: NaiveDate, at: DateTime<Utc>) -> Self {
        let next = at.checked_add_signed(chrono::Duration::microseconds(1));
        Self {
            date,
            known_before: next.and_then(recorded_bound),
            known_version: None,
        }
    }

    /// The SQL condition for table alias `t`, with the effective date as `$2` and the recorded
    /// bound as `$3` (bound only when `known_before` is set).
    fn predicate(&self, t: &str) -> String {
        let eff = format!(
            "{t}.effective_from <= $2 AND ({t}.effective_to IS NULL OR {t}.effective_to > $2)"
        );
        match (self.known_version, self.known_before) {
            (Some(_), _) => format!("{eff} AND {t}.recorded_from_version <= $3 AND ({t}.recorded_to_version IS NULL OR {t}.recorded_to_version > $3)"),
            (None, None) => format!("{eff} AND {t}.recorded_to IS NULL"),
            (None, Some(_)) => format!("{eff} AND {t}.recorded_from < $3 AND ({t}.recorded_to IS NULL OR {t}.recorded_to >= $3)"),
        }
    }

    fn bound(&self) -> Ts {
        Ts(self.known_before.unwrap_or(DateTime::<Utc>::MAX_UTC))
    }

    /// Which third parameter the predicate needs.
    fn third(&self) -> Third {
        match (self.known_version, self.known_before) {
            (Some(v), _) => Third::Version(v),
            (None, Some(_)) => Third::Instant(self.bound()),
            (None, None) => Third::None,
        }
    }
}

/// `before` as an exclusive bound on recorded time, or `None` ("everything known now") when it
/// lies past the last instant of year 9999. Every recorded time is earlier than that, so the
/// answer is the same; and such a bound cannot be compared on SQLite, where times are RFC 3339
/// text and year 10000 is written `+10000-…`, which sorts before every real time (so "as known
/// at the end of 9999-12-31" saw nothing at all).
fn recorded_bound(before: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (before.year() <= 9999).then_some(before)
}

/// The third bound parameter of an as-of query, if any.
enum Third {
    None,
    Instant(Ts),
    Version(i64),
}

/// Runs an as-of query with `$1` = timeline, `$2` = date and `$3` = the recorded bound (when
/// there is one), then any extra arguments.
macro_rules! fold_as_of {
    ($db:expr, $fold:path, $acc:expr, $sql:expr, $timeline:expr, $at:expr $(,)?) => {
        match $at.third() {
            Third::None => fold_rows!($db, $fold, $acc, $sql, $timeline, $at.date),
            Third::Instant(ts) => fold_rows!($db, $fold, $acc, $sql, $timeline, $at.date, ts),
            Third::Version(v) => fold_rows!($db, $fold, $acc, $sql, $timeline, $at.date, v),
        }
    };
}

macro_rules! fetch_as_of {
    ($db:expr, $map:path, $sql:expr, $timeline:expr, $at:expr $(, $extra:expr)* $(,)?) => {
        match $at.third() {
            Third::None => fetch!($db, $map, $sql, $timeline, $at.date $(, $extra)*),
            Third::Instant(ts) => fetch!($db, $map, $sql, $timeline, $at.date, ts $(, $extra)*),
            Third::Version(v) => fetch!($db, $map, $sql, $timeline, $at.date, v $(, $extra)*),
        }
    };
}

/// A timeline as projected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineRow {
    /// Id (the stream id).
    pub timeline_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// For a scenario, the timeline it was forked from.
    pub parent_id: Option<String>,
    /// And the parent's version at the fork.
    pub parent_version: Option<i64>,
    /// Events applied.
    pub version: i64,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

fn timeline_row<R: RowExt>(r: &R) -> Result<TimelineRow, sqlx::Error> {
    Ok(TimelineRow {
        timeline_id: r.text("timeline_id")?,
        name: r.text("name")?,
        description: r.text("description")?,
        parent_id: r.opt_text("parent_id")?,
        parent_version: r.opt_int("parent_version")?,
        version: r.int("version")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// Every projected timeline.
#[tracing::instrument(name = "query.timelines", skip(db))]
pub async fn timelines(db: &Database) -> Result<Vec<TimelineRow>, ProjectionError> {
    Ok(fetch!(
        db,
        timeline_row,
        "SELECT * FROM timelines ORDER BY timeline_id"
    )?)
}

/// One projected timeline.
#[tracing::instrument(name = "query.timeline", skip(db))]
pub async fn timeline(db: &Database, id: &str) -> Result<TimelineRow, ProjectionError> {
    fetch!(
        db,
        timeline_row,
        "SELECT * FROM timelines WHERE timeline_id = $1",
        id
    )?
    .into_iter()
    .next()
    .ok_or_else(|| ProjectionError::UnknownTimeline(id.to_string()))
}

/// A unit as of a date, or one version of it in a history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitVersion {
    /// Stable id.
    pub unit_id: String,
    /// Official code.
    pub code: Option<String>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Parent.
    pub parent_id: Option<String>,
    /// Areas held.
    pub areas: Vec<String>,
    /// Free attributes.
    pub attributes: BTreeMap<String, String>,
    /// First effective day of this version.
    pub effective_from: NaiveDate,
    /// First effective day it no longer holds.
    pub effective_to: Option<NaiveDate>,
    /// When this version was recorded.
    pub recorded_from: DateTime<Utc>,
    /// When it stopped being believed.
    pub recorded_to: Option<DateTime<Utc>>,
}

fn json_as<T: serde::de::DeserializeOwned>(col: &str, v: Value) -> Result<T, sqlx::Error> {
    serde_json::from_value(v).map_err(|e| sqlx::Error::ColumnDecode {
        index: col.to_string(),
        source: Box::new(e),
    })
}

fn unit_version<R: RowExt>(r: &R) -> Result<UnitVersion, sqlx::Error> {
    Ok(UnitVersion {
        unit_id: r.text("unit_id")?,
        code: r.opt_text("code")?,
        name: r.text("name")?,
        kind: r.text("kind")?,
        parent_id: r.opt_text("parent_id")?,
        areas: json_as("areas", r.json("areas")?)?,
        attributes: json_as("attributes", r.json("attributes")?)?,
        effective_from: r.date("effective_from")?,
        effective_to: r.opt_date("effective_to")?,
        recorded_from: r.ts("recorded_from")?,
        recorded_to: r.opt_ts("recorded_to")?,
    })
}

/// Every unit that exists as of the date.
#[tracing::instrument(name = "query.units", skip(db))]
pub async fn units(
    db: &Database,
    timeline: &str,
    at: AsOf,
) -> Result<Vec<UnitVersion>, ProjectionError> {
    let sql = format!(
        "SELECT * FROM unit_versions u WHERE u.timeline_id = $1 AND {} ORDER BY u.unit_id",
        at.predicate("u")
    );
    Ok(fetch_as_of!(db, unit_version, &sql, timeline, at)?)
}

/// A node of the org chart: a unit and the units under it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgNode {
    /// The unit.
    #[serde(flatten)]
    pub unit: UnitVersion,
    /// Its children, by name.
    pub children: Vec<OrgNode>,
}

/// The org chart as a forest (roots are units without a live parent), children sorted by name.
#[tracing::instrument(name = "query.org_chart", skip(db))]
pub async fn org_chart(
    db: &Database,
    timeline: &str,
    at: AsOf,
) -> Result<Vec<OrgNode>, ProjectionError> {
    let units = units(db, timeline, at).await?;
    if units.is_empty() {
        // Only an empty answer needs the extra round trip that tells "no units" from "no timeline".
        ensure_timeline(db, timeline).await?;
    }
    Ok(build_tree(units))
}

/// Arranges units into a forest; a unit whose parent is not among them becomes a root.
pub fn build_tree(units: Vec<UnitVersion>) -> Vec<OrgNode> {
    let ids: BTreeSet<String> = units.iter().map(|u| u.unit_id.clone()).collect();
    let mut children: BTreeMap<Option<String>, Vec<UnitVersion>> = BTreeMap::new();
    for u in units {
        let parent = u
            .parent_id
            .clone()
            .filter(|p| ids.contains(p) && *p != u.unit_id);
        children.entry(parent).or_default().push(u);
    }
    fn grow(
        key: Option<String>,
        children: &mut BTreeMap<Option<String>, Vec<UnitVersion>>,
        depth: usize,
    ) -> Vec<OrgNode> {
        let mut list = children.remove(&key).unwrap_or_default();
        list.sort_by(|a, b| a.name.cmp(&b.name).then(a.unit_id.cmp(&b.unit_id)));
        list.into_iter()
            .map(|u| {
                // The domain never stores a cycle; the depth bound only keeps a corrupt table
                // from recursing forever.
                let kids = if depth < 10_000 {
                    grow(Some(u.unit_id.clone()), children, depth + 1)
                } else {
                    Vec::new()
                };
                OrgNode {
                    unit: u,
                    children: kids,
                }
            })
            .collect()
    }
    grow(None, &mut children, 0)
}

/// One cell of the responsibility matrix: who is responsible for a service in an area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatrixRow {
    /// Service code.
    pub service_code: String,
    /// Service name.
    pub service_name: String,
    /// Area code.
    pub area_code: String,
    /// Area name.
    pub area_name: String,
    /// Responsible unit.
    pub unit_id: String,
    /// Its name.
    pub unit_name: String,
    /// Its kind.
    pub unit_kind: String,
}

/// What the matrix statement returned, sorted by kind: cells (service, area, unit) and the names
/// of the services, areas and units (with their kind) they mention.
#[derive(Default)]
struct MatrixParts {
    cells: Vec<(String, String, String)>,
    services: HashMap<String, String>,
    areas: HashMap<String, String>,
    units: HashMap<String, (String, String)>,
}

/// Folds one row of the matrix statement, by column position (`k`, `code`, `name`, `extra`),
/// into [`MatrixParts`]: the matrix reads one row per cell.
fn matrix_part<R: RowExt>(parts: &mut MatrixParts, r: &R) -> Result<(), sqlx::Error> {
    let (code, name) = (r.text_at(1)?, r.text_at(2)?);
    match r.str_at(0)? {
        "r" => parts
            .cells
            .push((code, name, r.opt_text_at(3)?.unwrap_or_default())),
        "s" => {
            parts.services.insert(code, name);
        }
        "a" => {
            parts.areas.insert(code, name);
        }
        _ => {
            parts
                .units
                .insert(code, (name, r.opt_text_at(3)?.unwrap_or_default()));
        }
    }
    Ok(())
}

/// The responsibility matrix (service × area → unit) as of the date, ordered by service code
/// and area code (byte order, the same on both databases).
///
/// Why not a four-way join: its plan depends on statistics, and on freshly rebuilt tables (no
/// statistics yet) PostgreSQL picked nested loops that took seconds on 20 000 cells. One
/// statement returns the cells, then the services, areas and units they mention, each cut down
/// on its own; the units are found by one index probe each (a unit's latest version starting on
/// or before the date) instead of a scan of every unit's history. The join happens here, where
/// its cost does not depend on a planner's guess.
#[tracing::instrument(name = "query.responsibilities", skip(db))]
pub async fn responsibility_matrix(
    db: &Database,
    timeline: &str,
    at: AsOf,
) -> Result<Vec<MatrixRow>, ProjectionError> {
    let unit_probe = match db {
        // A lateral probe per unit; LIMIT 1 is exact because the as-of predicate leaves at most
        // one version of a unit (versions of one belief never overlap in effective time).
        Database::Postgres(_) => format!(
            "SELECT 'u', ids.unit_id, v.name, v.kind FROM (SELECT DISTINCT unit_id FROM r) ids \
             CROSS JOIN LATERAL (SELECT u.name, u.kind FROM unit_versions u \
               WHERE u.timeline_id = $1 AND u.unit_id = ids.unit_id AND {u} \
               ORDER BY u.effective_from DESC LIMIT 1) v",
            u = at.predicate("u")
        ),
        // SQLite turns `IN (subquery)` into index probes on its own.
        Database::Sqlite(_) => format!(
            "SELECT 'u', u.unit_id, u.name, u.kind FROM unit_versions u \
             WHERE u.timeline_id = $1 AND u.unit_id IN (SELECT unit_id FROM r) AND {u}",
            u = at.predicate("u")
        ),
    };
    let sql = format!(
        "WITH r AS MATERIALIZED (SELECT service_code, area_code, unit_id FROM responsibility_versions r WHERE r.timeline_id = $1 AND {r}) \
         SELECT 'r' AS k, service_code AS code, area_code AS name, unit_id AS extra FROM r \
         UNION ALL SELECT 's', s.service_code, s.name, NULL FROM service_versions s WHERE s.timeline_id = $1 AND {s} \
         UNION ALL SELECT 'a', a.area_code, a.name, NULL FROM area_versions a WHERE a.timeline_id = $1 AND {a} \
         UNION ALL {unit_probe}",
        r = at.predicate("r"),
        s = at.predicate("s"),
        a = at.predicate("a"),
    );
    let mut parts = MatrixParts::default();
    fold_as_of!(db, matrix_part, &mut parts, &sql, timeline, at)?;
    let MatrixParts {
        mut cells,
        services,
        areas,
        units,
    } = parts;
    if cells.is_empty() {
        // Only an empty answer needs the round trip that tells "no cells" from "no timeline".
        ensure_timeline(db, timeline).await?;
        return Ok(Vec::new());
    }
    cells.sort_unstable_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    // A cell whose service, area or unit is not live on the date is not part of the matrix
    // (the domain prevents it; this keeps the inner-join meaning if it ever happened).
    Ok(cells
        .into_iter()
        .filter_map(|(service_code, area_code, unit_id)| {
            let service_name = services.get(&service_code)?.clone();
            let area_name = areas.get(&area_code)?.clone();
            let (unit_name, unit_kind) = units.get(&unit_id)?.clone();
            Some(MatrixRow {
                service_code,
                service_name,
                area_code,
                area_name,
                unit_id,
                unit_name,
                unit_kind,
            })
        })
        .collect())
}

/// One version of a responsibility.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsibilityVersion {
    /// Service.
    pub service_code: String,
    /// Area.
    pub area_code: String,
    /// Responsible unit.
    pub unit_id: String,
    /// From.
    pub effective_from: NaiveDate,
    /// Until (exclusive).
    pub effective_to: Option<NaiveDate>,
    /// Recorded from.
    pub recorded_from: DateTime<Utc>,
    /// Recorded until.
    pub recorded_to: Option<DateTime<Utc>>,
}

fn responsibility_version<R: RowExt>(r: &R) -> Result<ResponsibilityVersion, sqlx::Error> {
    Ok(ResponsibilityVersion {
        service_code: r.text("service_code")?,
        area_code: r.text("area_code")?,
        unit_id: r.text("unit_id")?,
        effective_from: r.date("effective_from")?,
        effective_to: r.opt_date("effective_to")?,
        recorded_from: r.ts("recorded_from")?,
        recorded_to: r.opt_ts("recorded_to")?,
    })
}

/// A lineage edge: a unit merged into or split into another, or a scenario forked from a timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageEdge {
    /// `merged_into`, `split_into` or `forked_from`.
    pub kind: String,
    /// Predecessor (or the scenario).
    pub from_id: String,
    /// Successor (or the parent timeline).
    pub to_id: String,
    /// Effective date.
    pub effective_on: NaiveDate,
    /// The command that made it.
    pub command_id: String,
    /// The decision.
    pub case_number: String,
}

fn lineage_edge<R: RowExt>(r: &R) -> Result<LineageEdge, sqlx::Error> {
    Ok(LineageEdge {
        kind: r.text("kind")?,
        from_id: r.text("from_id")?,
        to_id: r.text("to_id")?,
        effective_on: r.date("effective_on")?,
        command_id: r.text("command_id")?,
        case_number: r.text("case_number")?,
    })
}

/// A unit's history: every version believed now, and its lineage both ways.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitHistory {
    /// The unit.
    pub unit_id: String,
    /// Its versions, oldest first.
    pub versions: Vec<UnitVersion>,
    /// Edges leading to it, transitively (the units it came from).
    pub predecessors: Vec<LineageEdge>,
    /// Edges leading from it, transitively (the units it went into).
    pub successors: Vec<LineageEdge>,
}

/// A unit's history and lineage through merges and splits in both directions.
#[tracing::instrument(name = "query.unit_history", skip(db))]
pub async fn unit_history(
    db: &Database,
    timeline: &str,
    unit: &str,
) -> Result<UnitHistory, ProjectionError> {
    ensure_timeline(db, timeline).await?;
    let versions = fetch!(db, unit_version,
        "SELECT * FROM unit_versions WHERE timeline_id = $1 AND unit_id = $2 AND recorded_to IS NULL ORDER BY effective_from",
        timeline, unit)?;
    let edges = fetch!(db, lineage_edge,
        "SELECT * FROM lineage_edges WHERE timeline_id = $1 AND kind <> 'forked_from' AND recorded_to IS NULL ORDER BY effective_on, from_id, to_id",
        timeline)?;
    if versions.is_empty() && !edges.iter().any(|e| e.from_id == unit || e.to_id == unit) {
        return Err(ProjectionError::NotFound {
            what: "unit",
            id: unit.to_owned(),
            timeline: timeline.to_owned(),
        });
    }
    let walk = |forward: bool| {
        let mut out = Vec::new();
        let mut seen = BTreeSet::from([unit.to_string()]);
        let mut frontier = vec![unit.to_string()];
        while let Some(u) = frontier.pop() {
            for e in &edges {
                let (here, there) = if forward {
                    (&e.from_id, &e.to_id)
                } else {
                    (&e.to_id, &e.from_id)
                };
                if *here == u {
                    out.push(e.clone());
                    if seen.insert(there.clone()) {
                        frontier.push(there.clone());
                    }
                }
            }
        }
        out.sort_by(|a, b| {
            a.effective_on
                .cmp(&b.effective_on)
                .then(a.from_id.cmp(&b.from_id))
        });
        out
    };
    Ok(UnitHistory {
        unit_id: unit.to_string(),
        predecessors: walk(false),
        successors: walk(true),
        versions,
    })
}

/// A service's history: its own versions and every responsibility version for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceHistory {
    /// The service.
    pub service_code: String,
    /// Name/category versions: (from, to, name, category).
    pub versions: Vec<(NaiveDate, Option<NaiveDate>, String, String)>,
    /// Who was responsible where, when (believed now).
    pub responsibilities: Vec<ResponsibilityVersion>,
}

fn service_version<R: RowExt>(
    r: &R,
) -> Result<(NaiveDate, Option<NaiveDate>, String, String), sqlx::Error> {
    Ok((
        r.date("effective_from")?,
        r.opt_date("effective_to")?,
        r.text("name")?,
        r.text("category")?,
    ))
}

/// A service's history of names and responsibilities.
#[tracing::instrument(name = "query.service_history", skip(db))]
pub async fn service_history(
    db: &Database,
    timeline: &str,
    service: &str,
) -> Result<ServiceHistory, ProjectionError> {
    ensure_timeline(db, timeline).await?;
    let versions = fetch!(db, service_version,
        "SELECT * FROM service_versions WHERE timeline_id = $1 AND service_code = $2 AND recorded_to IS NULL ORDER BY effective_from",
        timeline, service)?;
    if versions.is_empty() {
        return Err(ProjectionError::NotFound {
            what: "service",
            id: service.to_owned(),
            timeline: timeline.to_owned(),
        });
    }
    let responsibilities = fetch!(db, responsibility_version,
        "SELECT * FROM responsibility_versions WHERE timeline_id = $1 AND service_code = $2 AND recorded_to IS NULL ORDER BY area_code, effective_from",
        timeline, service)?;
    Ok(ServiceHistory {
        service_code: service.to_string(),
        versions,
        responsibilities,
    })
}

/// One entry of the decision log: an event and the decision behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRow {
    /// Version of the event in the stream that holds it: the timeline's own, or for an
    /// inherited decision the ancestor's named by `inherited_from`.
    pub stream_version: i64,
    /// For a scenario's decision made before its fork: the ancestor timeline that recorded it
    /// (the parent, or further up for a scenario of a scenario). `None` for the timeline's own.
    pub inherited_from: Option<String>,
    /// Command id.
    pub command_id: String,
    /// Event type.
    pub event_type: String,
    /// Case number.
    pub case_number: String,
    /// Deciding body.
    pub body: String,
    /// Decision date.
    pub decision_date: NaiveDate,
    /// Title.
    pub title: String,
    /// Link.
    pub link: Option<String>,
    /// Who submitted it.
    pub actor: String,
    /// Why.
    pub rationale: String,
    /// When it takes effect.
    pub effective_from: NaiveDate,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

fn decision_row<R: RowExt>(r: &R) -> Result<DecisionRow, sqlx::Error> {
    Ok(DecisionRow {
        stream_version: r.int("stream_version")?,
        inherited_from: r.opt_text("inherited_from")?,
        command_id: r.text("command_id")?,
        event_type: r.text("event_type")?,
        case_number: r.text("case_number")?,
        body: r.text("body")?,
        decision_date: r.date("decision_date")?,
        title: r.text("title")?,
        link: r.opt_text("link")?,
        actor: r.text("actor")?,
        rationale: r.text("rationale")?,
        effective_from: r.date("effective_from")?,
        recorded_at: r.ts("recorded_at")?,
        revoked_at: r.opt_ts("revoked_at")?,
    })
}

/// Filters for the decision log; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionFilter {
    /// Exact case number.
    pub case_number: Option<String>,
    /// Exact deciding body.
    pub body: Option<String>,
    /// Decision date on or after.
    pub decided_from: Option<NaiveDate>,
    /// Decision date on or before.
    pub decided_to: Option<NaiveDate>,
}

/// The decision log, in recorded order. A scenario's starts with the decisions it inherited
/// (the oldest ancestor's first), then its own.
#[tracing::instrument(name = "query.decisions", skip(db))]
pub async fn decision_log(
    db: &Database,
    timeline: &str,
    f: &DecisionFilter,
) -> Result<Vec<DecisionRow>, ProjectionError> {
    ensure_timeline(db, timeline).await?;
    if let (Some(a), Some(b)) = (f.decided_from, f.decided_to) {
        if a > b {
            return Err(ProjectionError::InvalidQuery {
                field: "decided_from",
                reason: format!("{a} is after decided_to {b}"),
            });
        }
    }
    // NULL parameters switch a condition off, so one statement serves every combination.
    let sql = "SELECT * FROM decisions WHERE timeline_id = $1 \
               AND ($2 IS NULL OR case_number = $2) AND ($3 IS NULL OR body = $3) \
               AND ($4 IS NULL OR decision_date >= $4) AND ($5 IS NULL OR decision_date <= $5) \
               ORDER BY inherited_depth DESC, stream_version";
    let sql_pg = "SELECT * FROM decisions WHERE timeline_id = $1 \
               AND ($2::text IS NULL OR case_number = $2) AND ($3::text IS NULL OR body = $3) \
               AND ($4::date IS NULL OR decision_date >= $4) AND ($5::date IS NULL OR decision_date <= $5) \
               ORDER BY inherited_depth DESC, stream_version";
    let sql = match db {
        Database::Postgres(_) => sql_pg,
        Database::Sqlite(_) => sql,
    };
    Ok(fetch!(
        db,
        decision_row,
        sql,
        timeline,
        f.case_number.as_deref(),
        f.body.as_deref(),
        f.decided_from,
        f.decided_to
    )?)
}

/// What changed between two effective dates, as known now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Exclusive start.
    pub from: NaiveDate,
    /// Inclusive end.
    pub to: NaiveDate,
    /// Changes in force taking effect in `(from, to]`, in effective then recorded order.
    pub decisions: Vec<DecisionRow>,
    /// Responsibilities as of `from` that no longer hold as of `to` (or hold with another unit).
    pub responsibilities_before: Vec<MatrixRow>,
    /// Responsibilities as of `to` that did not hold as of `from`.
    pub responsibilities_after: Vec<MatrixRow>,
    /// Units that exist as of `to` but not as of `from`.
    pub units_added: Vec<String>,
    /// Units that exist as of `from` but not as of `to`.
    pub units_removed: Vec<String>,
    /// Service points open as of `from` that are closed, or differ (another unit runs them,
    /// other services), as of `to`: as they were.
    pub service_points_before: Vec<ServicePointVersion>,
    /// Service points open as of `to` that were not, or differed, as of `from`: as they are.
    pub service_points_after: Vec<ServicePointVersion>,
}

/// The changes between two effective dates: the decisions taking effect and the net difference.
#[tracing::instrument(name = "query.changes", skip(db))]
pub async fn changes_between(
    db: &Database,
    timeline: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Changes, ProjectionError> {
    ensure_timeline(db, timeline).await?;
    if from > to {
        return Err(ProjectionError::InvalidQuery {
            field: "from",
            reason: format!("{from} is after to {to}"),
        });
    }
    let decisions = fetch!(db, decision_row,
        "SELECT * FROM decisions WHERE timeline_id = $1 AND revoked_at IS NULL AND effective_from > $2 AND effective_from <= $3 \
         AND event_type NOT IN ('TimelineCreated', 'TimelineForked', 'DecisionRevoked', 'ScenarioAdopted') ORDER BY effective_from, inherited_depth DESC, stream_version",
        timeline, from, to)?;
    let before = responsibility_matrix(db, timeline, AsOf::now(from)).await?;
    let after = responsibility_matrix(db, timeline, AsOf::now(to)).await?;
    let key = |r: &MatrixRow| {
        (
            r.service_code.clone(),
            r.area_code.clone(),
            r.unit_id.clone(),
        )
    };
    let bset: BTreeSet<_> = before.iter().map(key).collect();
    let aset: BTreeSet<_> = after.iter().map(key).collect();
    let ub: BTreeSet<String> = units(db, timeline, AsOf::now(from))
        .await?
        .into_iter()
        .map(|u| u.unit_id)
        .collect();
    let ua: BTreeSet<String> = units(db, timeline, AsOf::now(to))
        .await?
        .into_iter()
        .map(|u| u.unit_id)
        .collect();
    let pb = service_points(db, timeline, AsOf::now(from)).await?;
    let pa = service_points(db, timeline, AsOf::now(to)).await?;
    let service_points_before = pb.iter().filter(|p| !pa.contains(p)).cloned().collect();
    let service_points_after = pa.iter().filter(|p| !pb.contains(p)).cloned().collect();
    Ok(Changes {
        from,
        to,
        decisions,
        service_points_before,
        service_points_after,
        responsibilities_before: before
            .iter()
            .filter(|r| !aset.contains(&key(r)))
            .cloned()
            .collect(),
        responsibilities_after: after
            .iter()
            .filter(|r| !bset.contains(&key(r)))
            .cloned()
            .collect(),
        units_added: ua.difference(&ub).cloned().collect(),
        units_removed: ub.difference(&ua).cloned().collect(),
    })
}

async fn ensure_timeline(db: &Database, id: &str) -> Result<(), ProjectionError> {
    timeline(db, id).await.map(|_| ())
}

/// An area as of a date: its name and the unit holding it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaVersion {
    /// Stable code.
    pub area_code: String,
    /// Name.
    pub name: String,
    /// The unit holding it, if any.
    pub holder_id: Option<String>,
}

fn area_version<R: RowExt>(r: &R) -> Result<AreaVersion, sqlx::Error> {
    Ok(AreaVersion {
        area_code: r.text("area_code")?,
        name: r.text("name")?,
        holder_id: r.opt_text("holder_id")?,
    })
}

/// Every area that exists as of the date, by code.
#[tracing::instrument(name = "query.areas", skip(db))]
pub async fn areas(
    db: &Database,
    timeline: &str,
    at: AsOf,
) -> Result<Vec<AreaVersion>, ProjectionError> {
    let sql = format!(
        "SELECT a.area_code, a.name, a.holder_id FROM area_versions a \
         WHERE a.timeline_id = $1 AND {} ORDER BY a.area_code",
        at.predicate("a")
    );
    Ok(fetch_as_of!(db, area_version, &sql, timeline, at)?)
}

/// A service point open as of a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePointVersion {
    /// Stable id.
    pub point_id: String,
    /// Name.
    pub name: String,
    /// The unit running it.
    pub unit_id: String,
    /// The area it is in.
    pub area_code: Option<String>,
    /// Services offered there, sorted.
    pub services: Vec<String>,
}

fn service_point_version<R: RowExt>(r: &R) -> Result<ServicePointVersion, sqlx::Error> {
    Ok(ServicePointVersion {
        point_id: r.text("point_id")?,
        name: r.text("name")?,
        unit_id: r.text("unit_id")?,
        area_code: r.opt_text("area_code")?,
        services: json_as("services", r.json("services")?)?,
    })
}

/// Every service point open as of the date, by id.
#[tracing::instrument(name = "query.service_points", skip(db))]
pub async fn service_points(
    db: &Database,
    timeline: &str,
    at: AsOf,
) -> Result<Vec<ServicePointVersion>, ProjectionError> {
    let sql = format!(
        "SELECT p.point_id, p.name, p.unit_id, p.area_code, p.services FROM service_point_versions p \
         WHERE p.timeline_id = $1 AND {} ORDER BY p.point_id",
        at.predicate("p")
    );
    Ok(fetch_as_of!(db, service_point_version, &sql, timeline, at)?)
}

fn version_of<R: RowExt>(r: &R) -> Result<i64, sqlx::Error> {
    Ok(r.opt_int("v")?.unwrap_or(0))
}

/// How many of the timeline's own events were recorded before `known_before` (exclusive): the
/// stream version an [`AsOf::known_at`] query sees. 404 for an unknown timeline.
#[tracing::instrument(name = "query.version_known_before", skip(db))]
pub async fn version_known_before(
    db: &Database,
    timeline: &str,
    known_before: DateTime<Utc>,
) -> Result<i64, ProjectionError> {
    ensure_timeline(db, timeline).await?;
    let rows = fetch!(
        db,
        version_of,
        "SELECT max(stream_version) AS v FROM decisions WHERE timeline_id = $1 AND inherited_depth = 0 AND recorded_at < $2",
        timeline,
        Ts(known_before)
    )?;
    Ok(rows.into_iter().next().unwrap_or(0))
}

/// One entry of the change feed: an event as projected, with a one-line summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    /// Global position (the paging key).
    pub position: i64,
    /// Stream version within the timeline.
    pub stream_version: i64,
    /// Event type.
    pub event_type: String,
    /// The command that caused it.
    pub command_id: String,
    /// The decision's case number.
    pub case_number: String,
    /// When it takes effect.
    pub effective_from: NaiveDate,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// What happened, for a human.
    pub summary: String,
}

fn feed_entry<R: RowExt>(r: &R) -> Result<FeedEntry, sqlx::Error> {
    Ok(FeedEntry {
        position: r.int("position")?,
        stream_version: r.int("stream_version")?,
        event_type: r.text("event_type")?,
        command_id: r.text("command_id")?,
        case_number: r.text("case_number")?,
        effective_from: r.date("effective_from")?,
        recorded_at: r.ts("recorded_at")?,
        summary: r.text("summary")?,
    })
}

/// Up to `limit` change-feed entries of `timeline` after global position `after`, in position
/// order. Positions only grow, so a client pages with the last position it saw.
#[tracing::instrument(name = "query.change_feed", skip(db))]
pub async fn change_feed(
    db: &Database,
    timeline: &str,
    after: i64,
    limit: u32,
) -> Result<Vec<FeedEntry>, ProjectionError> {
    ensure_timeline(db, timeline).await?;
    Ok(fetch!(
        db,
        feed_entry,
        "SELECT * FROM change_feed WHERE timeline_id = $1 AND position > $2 ORDER BY position LIMIT $3",
        timeline,
        after,
        i64::from(limit)
    )?)
}

/// Who is responsible for one (service, area) on each of two timelines; `None` where nobody is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsibilityDiff {
    /// Service code.
    pub service_code: String,
    /// Service name (from whichever timeline has it, `a` first).
    pub service_name: String,
    /// Area code.
    pub area_code: String,
    /// Area name.
    pub area_name: String,
    /// The responsible unit on timeline `a`.
    pub a_unit_id: Option<String>,
    /// Its name on `a`.
    pub a_unit_name: Option<String>,
    /// The responsible unit on timeline `b`.
    pub b_unit_id: Option<String>,
    /// Its name on `b`.
    pub b_unit_name: Option<String>,
}

/// A unit on two timelines; `None` where it does not exist on that date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitDiff {
    /// The unit.
    pub unit_id: String,
    /// As of the date on timeline `a`.
    pub a: Option<UnitVersion>,
    /// As of the date on timeline `b`.
    pub b: Option<UnitVersion>,
}

/// Two timelines side by side on one date: only what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// The first timeline (typically the baseline).
    pub a: String,
    /// The second timeline (typically a scenario).
    pub b: String,
    /// The effective date compared.
    pub as_of: NaiveDate,
    /// (service, area) pairs whose responsible unit differs, by service then area.
    pub responsibilities: Vec<ResponsibilityDiff>,
    /// Units that exist on only one side, or differ in name, code, kind, parent or areas; by id.
    pub units: Vec<UnitDiff>,
}

/// Compares two timelines as of `at` (both read on the same axes): which responsibilities and
/// units differ. Planners use it to see what a scenario changes against the baseline.
pub async fn compare(
    db: &Database,
    a: &str,
    b: &str,
    at: AsOf,
) -> Result<Comparison, ProjectionError> {
    compare_as(db, (a, at), (b, at)).await
}

/// Like [`compare`], with each side read on its own recorded axis (on the same effective date,
/// `a`'s). The baseline as known at the version a scenario forked from, against the scenario,
/// shows what the scenario itself changes, without what the baseline decided since.
#[tracing::instrument(name = "query.compare", skip(db))]
pub async fn compare_as(
    db: &Database,
    (a, at_a): (&str, AsOf),
    (b, at_b): (&str, AsOf),
) -> Result<Comparison, ProjectionError> {
    let at_b = AsOf {
        date: at_a.date,
        ..at_b
    };
    let (ma, mb) = (
        responsibility_matrix(db, a, at_a).await?,
        responsibility_matrix(db, b, at_b).await?,
    );
    let key = |r: &MatrixRow| (r.service_code.clone(), r.area_code.clone());
    let mut pairs: BTreeMap<(String, String), (Option<MatrixRow>, Option<MatrixRow>)> =
        BTreeMap::new();
    for r in ma {
        let k = key(&r);
        pairs.entry(k).or_default().0 = Some(r);
    }
    for r in mb {
        let k = key(&r);
        pairs.entry(k).or_default().1 = Some(r);
    }
    let responsibilities = pairs
        .into_iter()
        .filter(|(_, (x, y))| x.as_ref().map(|r| &r.unit_id) != y.as_ref().map(|r| &r.unit_id))
        .filter_map(|((service_code, area_code), (x, y))| {
            let named = x.as_ref().or(y.as_ref())?;
            Some(ResponsibilityDiff {
                service_name: named.service_name.clone(),
                area_name: named.area_name.clone(),
                service_code,
                area_code,
                a_unit_id: x.as_ref().map(|r| r.unit_id.clone()),
                a_unit_name: x.as_ref().map(|r| r.unit_name.clone()),
                b_unit_id: y.as_ref().map(|r| r.unit_id.clone()),
                b_unit_name: y.as_ref().map(|r| r.unit_name.clone()),
            })
        })
        .collect();
    let mut sides: BTreeMap<String, (Option<UnitVersion>, Option<UnitVersion>)> = BTreeMap::new();
    for u in units(db, a, at_a).await? {
        let k = u.unit_id.clone();
        sides.entry(k).or_default().0 = Some(u);
    }
    for u in units(db, b, at_b).await? {
        let k = u.unit_id.clone();
        sides.entry(k).or_default().1 = Some(u);
    }
    // Versions carry their own effective and recorded periods, which differ between timelines
    // even for an identical unit; only what the unit *is* counts as a difference.
    let same = |x: &UnitVersion, y: &UnitVersion| {
        (&x.code, &x.name, &x.kind, &x.parent_id, &x.areas)
            == (&y.code, &y.name, &y.kind, &y.parent_id, &y.areas)
    };
    let units = sides
        .into_iter()
        .filter(|(_, (x, y))| match (x, y) {
            (Some(x), Some(y)) => !same(x, y),
            _ => true,
        })
        .map(|(unit_id, (a, b))| UnitDiff { unit_id, a, b })
        .collect();
    Ok(Comparison {
        a: a.to_string(),
        b: b.to_string(),
        as_of: at_a.date,
        responsibilities,
        units,
    })
}
