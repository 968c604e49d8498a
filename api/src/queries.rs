//! Read queries the API serves, answered from the projections (read models kept by the
//! projector, see the `omorg-projections` crate), never by replaying a timeline.
//!
//! Every query first waits until the projector has applied every event committed before the
//! request ([`ProjectionRunner::sync`]): a client that just wrote reads its own write. If the
//! projector cannot catch up within the configured patience, the query answers 503 (with
//! `Retry-After`) rather than a stale answer.

use crate::error::ApiError;
use chrono::{DateTime, NaiveDate, Utc};
use omorg_projections::queries::{self as pq, DecisionFilter};
use omorg_projections::{ProjectionError, ProjectionRunner};
use omorg_store::Database;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa::ToSchema;

/// How long a query waits for the projector by default (`serve --sync-patience-ms`).
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(5);

/// Which point in the two time axes a query looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf {
    /// Effective date.
    pub date: NaiveDate,
    /// Only the timeline's first `n` own events (what was known then); `None`: everything.
    pub known_version: Option<u64>,
    /// Only what was recorded at or before this instant; `None`: everything. Exclusive with
    /// `known_version` (the API refuses both).
    pub known_at: Option<DateTime<Utc>>,
}

impl AsOf {
    /// As of `date`, as known now.
    pub fn now(date: NaiveDate) -> Self {
        Self {
            date,
            known_version: None,
            known_at: None,
        }
    }

    fn projection(&self) -> pq::AsOf {
        match (self.known_version, self.known_at) {
            (Some(v), _) => {
                pq::AsOf::known_at_version(self.date, i64::try_from(v).unwrap_or(i64::MAX))
            }
            (None, Some(t)) => pq::AsOf::known_at(self.date, t),
            (None, None) => pq::AsOf::now(self.date),
        }
    }
}

/// An area in an answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AreaRef {
    /// Stable code, e.g. `030101`.
    pub code: String,
    /// Name.
    pub name: String,
}

/// A service point in an org chart.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PointNode {
    /// Stable id.
    pub id: String,
    /// Name.
    pub name: String,
    /// The area it is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// Services offered there.
    pub services: Vec<String>,
}

/// A unit in the org chart, with its children.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UnitNode {
    /// Stable id.
    pub id: String,
    /// Official code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Name.
    pub name: String,
    /// Kind (`district`, `central_agency`, …).
    pub kind: String,
    /// Areas it covers.
    pub areas: Vec<AreaRef>,
    /// How many (service, area) pairs it is responsible for.
    pub responsibilities: usize,
    /// Open service points it runs.
    pub service_points: Vec<PointNode>,
    /// Child units.
    #[schema(no_recursion)]
    pub children: Vec<UnitNode>,
}

/// The unit tree of a timeline on a date.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct OrgChart {
    /// The timeline.
    pub timeline: String,
    /// The effective date.
    pub as_of: NaiveDate,
    /// The number of the timeline's own events taken into account.
    pub known_version: u64,
    /// Root units (no live parent), by id.
    pub units: Vec<UnitNode>,
}

/// One row of the responsibility matrix.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResponsibilityRow {
    /// Service code.
    pub service: String,
    /// Service name.
    pub service_name: String,
    /// Area code.
    pub area: String,
    /// Area name.
    pub area_name: String,
    /// Responsible unit id.
    pub unit: String,
    /// Responsible unit name.
    pub unit_name: String,
}

/// Who is responsible for which service where, on a date.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Responsibilities {
    /// The timeline.
    pub timeline: String,
    /// The effective date.
    pub as_of: NaiveDate,
    /// The number of the timeline's own events taken into account.
    pub known_version: u64,
    /// One row per (service, area), ordered by service then area.
    pub rows: Vec<ResponsibilityRow>,
}

/// One name/category version of a service.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServiceVersion {
    /// First effective day.
    pub effective_from: NaiveDate,
    /// First day it no longer holds (`null`: still).
    pub effective_to: Option<NaiveDate>,
    /// Name.
    pub name: String,
    /// Category.
    pub category: String,
}

/// A service's history: its names and who was responsible where, when (as known now).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServiceHistory {
    /// The timeline.
    pub timeline: String,
    /// The service code.
    pub service: String,
    /// Name/category versions, oldest first.
    pub versions: Vec<ServiceVersion>,
    /// Responsibility versions by area, then effective date.
    #[schema(value_type = Vec<Object>)]
    pub responsibilities: Vec<pq::ResponsibilityVersion>,
}

/// A unit's history and lineage.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UnitHistory {
    /// The timeline.
    pub timeline: String,
    /// The unit.
    pub unit: String,
    /// Its versions (as known now), oldest first: name, code, kind, parent, areas, periods.
    #[schema(value_type = Vec<Object>)]
    pub versions: Vec<pq::UnitVersion>,
    /// Lineage edges leading to it, transitively: the units it came from (merges, splits).
    #[schema(value_type = Vec<Object>)]
    pub predecessors: Vec<pq::LineageEdge>,
    /// Lineage edges leading from it, transitively: the units it went into.
    #[schema(value_type = Vec<Object>)]
    pub successors: Vec<pq::LineageEdge>,
}

/// The decision log of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct DecisionLog {
    /// The timeline.
    pub timeline: String,
    /// One entry per event in recorded order: case number, body, decision date, title, event
    /// type, effective date, `recorded_at`, and `revoked_at` when a later decision revoked it. A
    /// scenario's log starts with the decisions it inherited up to its fork (`inherited_from`
    /// names the timeline that recorded each; `null` for the scenario's own).
    #[schema(value_type = Vec<Object>)]
    pub decisions: Vec<pq::DecisionRow>,
}

/// What changed between two effective dates.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Changes {
    /// The timeline.
    pub timeline: String,
    /// Decisions in force taking effect in `(from, to]`, and the net differences
    /// (`responsibilities_before`/`_after`, `units_added`/`_removed`,
    /// `service_points_before`/`_after`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub changes: pq::Changes,
}

/// A page of a timeline's change feed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct FeedPage {
    /// The timeline.
    pub timeline: String,
    /// Entries in global-position order: position, stream_version, event_type, command_id,
    /// case_number, effective_from, recorded_at, summary.
    #[schema(value_type = Vec<Object>)]
    pub entries: Vec<pq::FeedEntry>,
    /// Pass as `after_position` for the next page (the request's when the page is empty).
    pub next: i64,
}

/// Two timelines side by side: responsibilities and units that differ on one date.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Comparison {
    /// `a`, `b`, `as_of`, `responsibilities` [{service_code, area_code, a_unit_id, b_unit_id,
    /// names…}], `units` [{unit_id, a, b}] (a side is `null` where the unit does not exist).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub comparison: pq::Comparison,
    /// Service points open on one side only, or different (name, unit, area or services): an
    /// alternative for citizen service centres may change nothing else. By id.
    pub service_points: Vec<ServicePointDiff>,
}

/// A service point on the two sides of a comparison (`null` where it is not open).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServicePointDiff {
    /// The service point.
    pub point_id: String,
    /// On timeline `a`.
    #[schema(value_type = Option<Object>)]
    pub a: Option<pq::ServicePointVersion>,
    /// On timeline `b`.
    #[schema(value_type = Option<Object>)]
    pub b: Option<pq::ServicePointVersion>,
}

/// The service points that differ between two lists of open ones (before/after, or `a`/`b`),
/// by id: `(id, first side, second side)`.
fn point_differences(
    first: Vec<pq::ServicePointVersion>,
    second: Vec<pq::ServicePointVersion>,
) -> Vec<(
    String,
    Option<pq::ServicePointVersion>,
    Option<pq::ServicePointVersion>,
)> {
    type Sides = (
        Option<pq::ServicePointVersion>,
        Option<pq::ServicePointVersion>,
    );
    let mut by_id: BTreeMap<String, Sides> = BTreeMap::new();
    for p in first {
        let id = p.point_id.clone();
        by_id.entry(id).or_default().0 = Some(p);
    }
    for p in second {
        let id = p.point_id.clone();
        by_id.entry(id).or_default().1 = Some(p);
    }
    by_id
        .into_iter()
        .filter(|(_, (x, y))| x != y)
        .map(|(id, (x, y))| (id, x, y))
        .collect()
}

/// A timeline's decision history replayed a step at a time (auditors).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Replay {
    /// The timeline.
    pub timeline: String,
    /// The steps of this page, in recorded order.
    pub steps: Vec<ReplayStep>,
    /// The last version on this page: pass it as `after_version` for the next (the same value
    /// as asked for when the page is empty).
    pub next: u64,
}

/// One step: an event of the timeline, the decision behind it, and what it changed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReplayStep {
    /// The event as the decision log shows it: `stream_version`, `event_type`, `command_id`,
    /// the decision (`case_number`, `body`, `decision_date`, `title`, `link`), `actor`,
    /// `rationale`, `effective_from`, `recorded_at`, and `revoked_at` if a later step revoked it.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub event: pq::DecisionRow,
    /// The organisation before and after the step, on each date it changed something: the date
    /// it takes effect, and for a revocation the dates of the changes it undid. Empty when the
    /// step changed no unit and no responsibility (a service registered, say).
    pub changes: Vec<StepChange>,
}

/// What one step changed on one effective date.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct StepChange {
    /// The effective date compared.
    pub as_of: NaiveDate,
    /// Each (service, area) whose responsible unit changed.
    pub responsibilities: Vec<ResponsibilityChange>,
    /// Each unit that appeared, disappeared, or changed name, code, kind, parent or areas.
    pub units: Vec<UnitChange>,
    /// Each service point that opened, closed, or changed its name, unit, area or services.
    pub service_points: Vec<ServicePointChange>,
}

/// A service point before and after a step (`null` on the side where it is not open).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ServicePointChange {
    /// The service point.
    pub point_id: String,
    /// Before the step.
    #[schema(value_type = Option<Object>)]
    pub before: Option<pq::ServicePointVersion>,
    /// After it.
    #[schema(value_type = Option<Object>)]
    pub after: Option<pq::ServicePointVersion>,
}

/// A (service, area) pair before and after a step.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ResponsibilityChange {
    /// Service code.
    pub service_code: String,
    /// Service name.
    pub service_name: String,
    /// Area code.
    pub area_code: String,
    /// Area name.
    pub area_name: String,
    /// The unit responsible before the step (`null`: none).
    pub before_unit_id: Option<String>,
    /// Its name.
    pub before_unit_name: Option<String>,
    /// The unit responsible after it (`null`: none).
    pub after_unit_id: Option<String>,
    /// Its name.
    pub after_unit_name: Option<String>,
}

/// A unit before and after a step (`null` on the side where it does not exist).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UnitChange {
    /// The unit.
    pub unit_id: String,
    /// Before the step.
    #[schema(value_type = Option<Object>)]
    pub before: Option<pq::UnitVersion>,
    /// After it.
    #[schema(value_type = Option<Object>)]
    pub after: Option<pq::UnitVersion>,
}

impl StepChange {
    /// The comparison of the timeline before (`a`) and after (`b`) a step, in those terms,
    /// with the service points open before and after it.
    fn from_comparison(
        as_of: NaiveDate,
        c: pq::Comparison,
        points: (Vec<pq::ServicePointVersion>, Vec<pq::ServicePointVersion>),
    ) -> Self {
        Self {
            service_points: point_differences(points.0, points.1)
                .into_iter()
                .map(|(point_id, before, after)| ServicePointChange {
                    point_id,
                    before,
                    after,
                })
                .collect(),
            as_of,
            responsibilities: c
                .responsibilities
                .into_iter()
                .map(|r| ResponsibilityChange {
                    service_code: r.service_code,
                    service_name: r.service_name,
                    area_code: r.area_code,
                    area_name: r.area_name,
                    before_unit_id: r.a_unit_id,
                    before_unit_name: r.a_unit_name,
                    after_unit_id: r.b_unit_id,
                    after_unit_name: r.b_unit_name,
                })
                .collect(),
            units: c
                .units
                .into_iter()
                .map(|u| UnitChange {
                    unit_id: u.unit_id,
                    before: u.a,
                    after: u.b,
                })
                .collect(),
        }
    }
}

/// The read side as the API sees it. See the module docs.
#[derive(Clone)]
pub struct Queries {
    db: Database,
    /// The server's projector; `sync` on it gives read-your-writes. `None` for the CLI, which
    /// catches up once itself before asking.
    runner: Option<ProjectionRunner>,
    /// How long a query waits for the projector before answering 503.
    patience: Duration,
}

impl std::fmt::Debug for Queries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queries")
            .field("backend", &self.db.backend())
            .field("patience", &self.patience)
            .finish_non_exhaustive()
    }
}

impl From<ProjectionError> for ApiError {
    fn from(e: ProjectionError) -> Self {
        match e {
            ProjectionError::UnknownTimeline(id) => ApiError::timeline_not_found(&id),
            ProjectionError::NotFound { what, id, .. } => ApiError::NotFound { what, id },
            ProjectionError::InvalidQuery { field, reason } => ApiError::invalid(field, reason),
            ProjectionError::Lagging { waited, .. } => ApiError::Lagging { waited },
            ProjectionError::Store(s) => s.into(),
            ProjectionError::Database(d) => omorg_store::StoreError::from(d).into(),
            other => ApiError::internal(other),
        }
    }
}

impl Queries {
    /// Queries over `db`'s read models, kept current by `runner`; each waits up to `patience`.
    pub fn new(db: Database, runner: ProjectionRunner, patience: Duration) -> Self {
        Self {
            db,
            runner: Some(runner),
            patience,
        }
    }

    /// Queries over `db`'s read models as they are, without a projector: for the CLI, which
    /// catches up ([`omorg_projections::Projector::catch_up_to_head`]) before asking.
    pub fn offline(db: Database) -> Self {
        Self {
            db,
            runner: None,
            patience: Duration::ZERO,
        }
    }

    /// True once the server's projector has projected the events committed before it started
    /// (always, for the CLI's queries, which catch up themselves).
    pub fn caught_up(&self) -> bool {
        self.runner
            .as_ref()
            .is_none_or(ProjectionRunner::has_caught_up)
    }

    /// Wakes the projector: the caller just committed events.
    pub fn nudge(&self) {
        if let Some(r) = &self.runner {
            r.nudge();
        }
    }

    /// Waits until every event of `timelines` committed before the call is projected (every
    /// event at all when `timelines` is empty; 503 after `patience`), then makes sure none of
    /// `timelines` stopped on an event that cannot be projected (500 `projection-failed` naming
    /// it: its read models would be silently out of date).
    pub async fn sync(&self, timelines: &[&str]) -> Result<(), ApiError> {
        if let Some(r) = &self.runner {
            if timelines.is_empty() {
                r.sync(self.patience).await?;
            } else {
                // Only what these timelines' read models depend on: their own events (a
                // scenario's fork event carries its base), not another timeline's newer ones.
                r.sync_streams(timelines, self.patience).await?;
            }
        }
        for t in timelines {
            if let Some(f) = omorg_projections::projector::failure_of(&self.db, t).await? {
                return Err(ApiError::ProjectionFailed {
                    timeline: f.timeline_id,
                    version: f.stream_version,
                    position: f.position,
                });
            }
        }
        Ok(())
    }

    /// Stops the projector after its current round (graceful shutdown).
    pub fn shutdown(&self) {
        if let Some(r) = &self.runner {
            r.shutdown();
        }
    }

    /// The timeline's version the answer reflects (404 for an unknown timeline).
    async fn known_version(&self, timeline: &str, at: AsOf) -> Result<u64, ApiError> {
        let current = self
            .reached(timeline, at.known_version, "known_version")
            .await?;
        let known = match (at.known_version, at.known_at) {
            (Some(v), _) => i64::try_from(v).unwrap_or(i64::MAX).min(current),
            (None, Some(t)) => {
                let before = pq::AsOf::known_at(at.date, t).known_before;
                match before {
                    Some(b) => pq::version_known_before(&self.db, timeline, b).await?,
                    None => current,
                }
            }
            (None, None) => current,
        };
        Ok(u64::try_from(known).unwrap_or(0))
    }

    /// The timeline's version, after checking that it has reached `version` (if any): a
    /// version it has not reached is refused (422 on `field`) rather than read as "now", since
    /// what the timeline will hold after that many events is not known yet.
    async fn reached(
        &self,
        timeline: &str,
        version: Option<u64>,
        field: &str,
    ) -> Result<i64, ApiError> {
        let current = pq::timeline(&self.db, timeline).await?.version;
        match version {
            Some(v) if i64::try_from(v).map_or(true, |v| v > current) => Err(ApiError::invalid(
                field,
                format!("{timeline} has {current} events, not {v}"),
            )),
            _ => Ok(current),
        }
    }

    /// The org chart of `timeline` on `at`.
    #[tracing::instrument(name = "queries.org_chart", skip(self))]
    pub async fn org_chart(&self, timeline: &str, at: AsOf) -> Result<OrgChart, ApiError> {
        self.sync(&[timeline]).await?;
        let known_version = self.known_version(timeline, at).await?;
        let p = at.projection();
        let units = pq::units(&self.db, timeline, p).await?;
        let areas: BTreeMap<String, String> = pq::areas(&self.db, timeline, p)
            .await?
            .into_iter()
            .map(|a| (a.area_code, a.name))
            .collect();
        let mut points: BTreeMap<String, Vec<PointNode>> = BTreeMap::new();
        for sp in pq::service_points(&self.db, timeline, p).await? {
            points.entry(sp.unit_id).or_default().push(PointNode {
                id: sp.point_id,
                name: sp.name,
                area: sp.area_code,
                services: sp.services,
            });
        }
        let mut held: BTreeMap<String, usize> = BTreeMap::new();
        for r in pq::responsibility_matrix(&self.db, timeline, p).await? {
            *held.entry(r.unit_id).or_default() += 1;
        }
        Ok(OrgChart {
            timeline: timeline.to_owned(),
            as_of: at.date,
            known_version,
            units: org_tree(units, &areas, &mut points, &held),
        })
    }

    /// The responsibility matrix of `timeline` on `at`.
    #[tracing::instrument(name = "queries.responsibilities", skip(self))]
    pub async fn responsibilities(
        &self,
        timeline: &str,
        at: AsOf,
    ) -> Result<Responsibilities, ApiError> {
        self.sync(&[timeline]).await?;
        let known_version = self.known_version(timeline, at).await?;
        let rows = pq::responsibility_matrix(&self.db, timeline, at.projection())
            .await?
            .into_iter()
            .map(|r| ResponsibilityRow {
                service: r.service_code,
                service_name: r.service_name,
                area: r.area_code,
                area_name: r.area_name,
                unit: r.unit_id,
                unit_name: r.unit_name,
            })
            .collect();
        Ok(Responsibilities {
            timeline: timeline.to_owned(),
            as_of: at.date,
            known_version,
            rows,
        })
    }

    /// A unit's versions and lineage; 422 on `unit` when the timeline never had it.
    #[tracing::instrument(name = "queries.unit_history", skip(self))]
    pub async fn unit_history(&self, timeline: &str, unit: &str) -> Result<UnitHistory, ApiError> {
        self.sync(&[timeline]).await?;
        let h = pq::unit_history(&self.db, timeline, unit).await?;
        Ok(UnitHistory {
            timeline: timeline.to_owned(),
            unit: h.unit_id,
            versions: h.versions,
            predecessors: h.predecessors,
            successors: h.successors,
        })
    }

    /// A service's history; 422 on `service` when the timeline never had it.
    #[tracing::instrument(name = "queries.service_history", skip(self))]
    pub async fn service_history(
        &self,
        timeline: &str,
        service: &str,
    ) -> Result<ServiceHistory, ApiError> {
        self.sync(&[timeline]).await?;
        let h = pq::service_history(&self.db, timeline, service).await?;
        Ok(ServiceHistory {
            timeline: timeline.to_owned(),
            service: h.service_code,
            versions: h
                .versions
                .into_iter()
                .map(
                    |(effective_from, effective_to, name, category)| ServiceVersion {
                        effective_from,
                        effective_to,
                        name,
                        category,
                    },
                )
                .collect(),
            responsibilities: h.responsibilities,
        })
    }

    /// The decision log, filtered.
    #[tracing::instrument(name = "queries.decisions", skip(self))]
    pub async fn decisions(
        &self,
        timeline: &str,
        filter: &DecisionFilter,
    ) -> Result<DecisionLog, ApiError> {
        self.sync(&[timeline]).await?;
        Ok(DecisionLog {
            timeline: timeline.to_owned(),
            decisions: pq::decision_log(&self.db, timeline, filter).await?,
        })
    }

    /// Replays the timeline's own events after version `after`, at most `limit`: each with its
    /// decision and the organisation as it was known just before and just after it, compared on
    /// the date it takes effect (and, for a revocation, on the dates of what it undid). A
    /// scenario's replay starts at its fork, whose step brings in the parent's organisation.
    #[tracing::instrument(name = "queries.replay", skip(self))]
    pub async fn replay(&self, timeline: &str, after: u64, limit: u32) -> Result<Replay, ApiError> {
        self.sync(&[timeline]).await?;
        // A cursor beyond the timeline's last version would read as "nothing new".
        if after > 0 {
            self.reached(timeline, Some(after), "after_version").await?;
        }
        let log = pq::decision_log(&self.db, timeline, &DecisionFilter::default()).await?;
        let after_version = i64::try_from(after).unwrap_or(i64::MAX);
        let page: Vec<&pq::DecisionRow> = log
            .iter()
            .filter(|d| d.inherited_from.is_none() && d.stream_version > after_version)
            .take(limit as usize)
            .collect();
        let mut steps = Vec::with_capacity(page.len());
        for d in page {
            let mut dates = std::collections::BTreeSet::from([d.effective_from]);
            // What a revocation undid took effect on its own dates (inherited entries too: a
            // scenario may revoke what it inherited). Events of one batch share an instant, so
            // a batch's other steps may compare on these dates too, and find no difference.
            dates.extend(
                log.iter()
                    .filter(|r| r.revoked_at == Some(d.recorded_at))
                    .map(|r| r.effective_from),
            );
            let mut changes = Vec::new();
            for date in dates {
                let c = pq::compare_as(
                    &self.db,
                    (
                        timeline,
                        pq::AsOf::known_at_version(date, d.stream_version - 1),
                    ),
                    (timeline, pq::AsOf::known_at_version(date, d.stream_version)),
                )
                .await?;
                let points = (
                    pq::service_points(
                        &self.db,
                        timeline,
                        pq::AsOf::known_at_version(date, d.stream_version - 1),
                    )
                    .await?,
                    pq::service_points(
                        &self.db,
                        timeline,
                        pq::AsOf::known_at_version(date, d.stream_version),
                    )
                    .await?,
                );
                let change = StepChange::from_comparison(date, c, points);
                if !change.responsibilities.is_empty()
                    || !change.units.is_empty()
                    || !change.service_points.is_empty()
                {
                    changes.push(change);
                }
            }
            steps.push(ReplayStep {
                event: d.clone(),
                changes,
            });
        }
        let next = steps.last().map_or(after, |s| {
            u64::try_from(s.event.stream_version).unwrap_or(after)
        });
        Ok(Replay {
            timeline: timeline.to_owned(),
            steps,
            next,
        })
    }

    /// Decisions taking effect in `(from, to]` and the net differences.
    #[tracing::instrument(name = "queries.changes", skip(self))]
    pub async fn changes(
        &self,
        timeline: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Changes, ApiError> {
        self.sync(&[timeline]).await?;
        Ok(Changes {
            timeline: timeline.to_owned(),
            changes: pq::changes_between(&self.db, timeline, from, to).await?,
        })
    }

    /// A page of the change feed after global position `after`.
    #[tracing::instrument(name = "queries.change_feed", skip(self))]
    pub async fn change_feed(
        &self,
        timeline: &str,
        after: i64,
        limit: u32,
    ) -> Result<FeedPage, ApiError> {
        self.sync(&[timeline]).await?;
        let entries = pq::change_feed(&self.db, timeline, after, limit).await?;
        if entries.is_empty() && after > 0 {
            // A position beyond the log's end (mistyped, or from another database) would read
            // as "nothing new" for ever. Only an empty page pays for the look.
            let head = omorg_projections::projector::log_head(&self.db).await?;
            if after > head {
                return Err(ApiError::invalid(
                    "after_position",
                    format!(
                        "{after} is beyond the end of the event log (its last position is {head})"
                    ),
                ));
            }
        }
        Ok(FeedPage {
            timeline: timeline.to_owned(),
            next: entries.last().map_or(after, |e| e.position),
            entries,
        })
    }

    /// Timelines `a` and `b` side by side on `at`'s date, each on its own recorded axis (both
    /// `at` unless a side names its own known version).
    #[tracing::instrument(name = "queries.compare", skip(self))]
    pub async fn compare(
        &self,
        (a, a_known_version): (&str, Option<u64>),
        (b, b_known_version): (&str, Option<u64>),
        at: AsOf,
    ) -> Result<Comparison, ApiError> {
        self.sync(&[a, b]).await?;
        let side = |v: Option<u64>| match v {
            Some(v) => AsOf {
                known_version: Some(v),
                known_at: None,
                ..at
            },
            None => at,
        };
        let (at_a, at_b) = (side(a_known_version), side(b_known_version));
        for (t, at, field) in [(a, at_a, "a_known_version"), (b, at_b, "b_known_version")] {
            self.reached(t, at.known_version, field).await?;
        }
        let points = (
            pq::service_points(&self.db, a, at_a.projection()).await?,
            pq::service_points(&self.db, b, at_b.projection()).await?,
        );
        Ok(Comparison {
            comparison: pq::compare_as(&self.db, (a, at_a.projection()), (b, at_b.projection()))
                .await?,
            service_points: point_differences(points.0, points.1)
                .into_iter()
                .map(|(point_id, a, b)| ServicePointDiff { point_id, a, b })
                .collect(),
        })
    }
}

/// Arranges units into a forest ordered by id: roots are units whose parent is not among them.
fn org_tree(
    units: Vec<pq::UnitVersion>,
    areas: &BTreeMap<String, String>,
    points: &mut BTreeMap<String, Vec<PointNode>>,
    held: &BTreeMap<String, usize>,
) -> Vec<UnitNode> {
    let ids: std::collections::BTreeSet<String> = units.iter().map(|u| u.unit_id.clone()).collect();
    let mut children: BTreeMap<Option<String>, Vec<pq::UnitVersion>> = BTreeMap::new();
    for u in units {
        let parent = u
            .parent_id
            .clone()
            .filter(|p| ids.contains(p) && *p != u.unit_id);
        children.entry(parent).or_default().push(u);
    }
    struct Ctx<'a> {
        children: BTreeMap<Option<String>, Vec<pq::UnitVersion>>,
        areas: &'a BTreeMap<String, String>,
        points: &'a mut BTreeMap<String, Vec<PointNode>>,
        held: &'a BTreeMap<String, usize>,
    }
    fn grow(key: Option<String>, cx: &mut Ctx<'_>, budget: usize) -> Vec<UnitNode> {
        let mut list = cx.children.remove(&key).unwrap_or_default();
        list.sort_by(|a, b| a.unit_id.cmp(&b.unit_id));
        list.into_iter()
            .map(|u| {
                // Each unit is removed from `children` once, so a cycle in a corrupt table
                // cannot recurse forever; the budget is a second guard.
                let kids = if budget == 0 {
                    Vec::new()
                } else {
                    grow(Some(u.unit_id.clone()), cx, budget - 1)
                };
                UnitNode {
                    areas: u
                        .areas
                        .iter()
                        .map(|code| AreaRef {
                            code: code.clone(),
                            name: cx.areas.get(code).cloned().unwrap_or_default(),
                        })
                        .collect(),
                    responsibilities: cx.held.get(&u.unit_id).copied().unwrap_or(0),
                    service_points: cx.points.remove(&u.unit_id).unwrap_or_default(),
                    children: kids,
                    id: u.unit_id,
                    code: u.code,
                    name: u.name,
                    kind: u.kind,
                }
            })
            .collect()
    }
    let budget = ids.len();
    let mut cx = Ctx {
        children,
        areas,
        points,
        held,
    };
    grow(None, &mut cx, budget)
}
