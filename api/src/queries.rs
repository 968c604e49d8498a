//! Read queries the API serves: the org chart and the responsibility matrix on a date.
//!
//! For now they are answered straight from the aggregate (`Timeline::state_at`), which is exact
//! but replays the timeline per request. When the projections crate lands, only this module
//! changes: handlers call [`Queries`] and nothing else.

use crate::error::ApiError;
use crate::service::Omorg;
use chrono::NaiveDate;
use omorg_domain::OrgState;
use serde::Serialize;
use utoipa::ToSchema;

/// Which point in the two time axes a query looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf {
    /// Effective date.
    pub date: NaiveDate,
    /// Only the timeline's first `n` own events (what was known then); `None`: everything.
    pub known_version: Option<u64>,
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

/// The read side as the API sees it. See the module docs.
#[derive(Debug, Clone)]
pub struct Queries {
    app: Omorg,
}

impl Queries {
    /// Queries answered from `app`'s store.
    pub fn new(app: Omorg) -> Self {
        Self { app }
    }

    async fn state(&self, timeline: &str, at: AsOf) -> Result<(OrgState, u64), ApiError> {
        let t = self.app.load(timeline).await?;
        let known = at.known_version.unwrap_or(t.version()).min(t.version());
        Ok((t.state_at_as_known(at.date, known), known))
    }

    /// The org chart of `timeline` on `at`.
    #[tracing::instrument(name = "queries.org_chart", skip(self))]
    pub async fn org_chart(&self, timeline: &str, at: AsOf) -> Result<OrgChart, ApiError> {
        let (state, known) = self.state(timeline, at).await?;
        Ok(OrgChart {
            timeline: timeline.to_owned(),
            as_of: at.date,
            known_version: known,
            units: org_tree(&state),
        })
    }

    /// The responsibility matrix of `timeline` on `at`.
    #[tracing::instrument(name = "queries.responsibilities", skip(self))]
    pub async fn responsibilities(
        &self,
        timeline: &str,
        at: AsOf,
    ) -> Result<Responsibilities, ApiError> {
        let (state, known) = self.state(timeline, at).await?;
        let rows = state
            .responsibility_rows()
            .map(|(s, a, u)| ResponsibilityRow {
                service: s.to_string(),
                service_name: state
                    .services
                    .get(s)
                    .map(|x| x.name.clone())
                    .unwrap_or_default(),
                area: a.to_string(),
                area_name: state
                    .areas
                    .get(a)
                    .map(|x| x.name.clone())
                    .unwrap_or_default(),
                unit: u.to_string(),
                unit_name: state
                    .units
                    .get(u)
                    .map(|x| x.name.clone())
                    .unwrap_or_default(),
            })
            .collect();
        Ok(Responsibilities {
            timeline: timeline.to_owned(),
            as_of: at.date,
            known_version: known,
            rows,
        })
    }
}

/// The live units of `state` as a forest: roots are units without a live parent.
pub fn org_tree(state: &OrgState) -> Vec<UnitNode> {
    let live = |id: &omorg_domain::UnitId| state.units.get(id).is_some_and(|u| u.is_live());
    let roots: Vec<_> = state
        .live_units()
        .filter(|u| !u.parent.as_ref().is_some_and(live))
        .map(|u| u.id.clone())
        .collect();
    // `ancestors` guards against cycles in data; depth is also bounded by the unit count.
    roots
        .iter()
        .map(|r| node(state, r, state.units.len()))
        .collect()
}

fn node(state: &OrgState, id: &omorg_domain::UnitId, budget: usize) -> UnitNode {
    let unit = &state.units[id];
    let children = if budget == 0 {
        Vec::new()
    } else {
        state
            .children_of(id)
            .iter()
            .map(|c| node(state, c, budget - 1))
            .collect()
    };
    UnitNode {
        id: id.to_string(),
        code: unit.code.clone(),
        name: unit.name.clone(),
        kind: unit.kind.to_string(),
        areas: state
            .areas_of(id)
            .iter()
            .map(|a| AreaRef {
                code: a.to_string(),
                name: state.areas[a].name.clone(),
            })
            .collect(),
        responsibilities: state.responsibilities_of(id).len(),
        service_points: state
            .points_of(id)
            .iter()
            .map(|p| {
                let point = &state.service_points[p];
                PointNode {
                    id: p.to_string(),
                    name: point.name.clone(),
                    area: point.area.as_ref().map(ToString::to_string),
                    services: point.services.iter().map(ToString::to_string).collect(),
                }
            })
            .collect(),
        children,
    }
}
