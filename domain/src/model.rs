//! The organisation as it stands on one effective date: units, areas, services, responsibilities
//! and service points. [`OrgState`] is what `Timeline::state_at` returns and what every rule checks.

use crate::ids::{AreaCode, ServiceCode, ServicePointId, UnitId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// What kind of public body a unit is (DESIGN.md's domain model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// A municipality (*kommune*).
    Municipality,
    /// A city district (*bydel*).
    District,
    /// A central agency (*etat*).
    CentralAgency,
    /// A municipal enterprise (*kommunalt foretak, KF*).
    MunicipalEnterprise,
    /// A service area (*tjenesteområde*).
    ServiceArea,
    /// A business unit (*virksomhet*).
    BusinessUnit,
    /// A department (*avdeling*).
    Department,
    /// A citizen service centre (*innbyggertorg*, *servicetorg*).
    ServiceCentre,
}

impl UnitKind {
    /// Every kind, in declaration order.
    pub const ALL: [UnitKind; 8] = [
        Self::Municipality,
        Self::District,
        Self::CentralAgency,
        Self::MunicipalEnterprise,
        Self::ServiceArea,
        Self::BusinessUnit,
        Self::Department,
        Self::ServiceCentre,
    ];

    /// The snake_case name used in JSON and SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Municipality => "municipality",
            Self::District => "district",
            Self::CentralAgency => "central_agency",
            Self::MunicipalEnterprise => "municipal_enterprise",
            Self::ServiceArea => "service_area",
            Self::BusinessUnit => "business_unit",
            Self::Department => "department",
            Self::ServiceCentre => "service_centre",
        }
    }
}

impl fmt::Display for UnitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A unit as it stands on a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// Stable internal id.
    pub id: UnitId,
    /// Official code (e.g. an SSB number); changes over time, may be absent.
    pub code: Option<String>,
    /// Current name.
    pub name: String,
    /// Kind of body.
    pub kind: UnitKind,
    /// Parent in the unit tree; `None` for a root.
    pub parent: Option<UnitId>,
    /// Free attributes (e.g. population), as text so that any source can be copied in faithfully.
    pub attributes: BTreeMap<String, String>,
    /// Effective date of its establishment.
    pub established_on: NaiveDate,
    /// Effective date it stopped existing (dissolved, merged away or split up).
    pub dissolved_on: Option<NaiveDate>,
    /// Units it was merged into or split into when it ended, for lineage.
    pub succeeded_by: Vec<UnitId>,
}

impl Unit {
    /// True while the unit exists.
    pub fn is_live(&self) -> bool {
        self.dissolved_on.is_none()
    }
}

/// An area: the atom of geography that responsibilities cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Area {
    /// Stable code.
    pub code: AreaCode,
    /// Name.
    pub name: String,
    /// The unit whose territory it is (a district, a municipality), if any.
    pub holder: Option<UnitId>,
    /// The area it was carved from when a single-area unit was split.
    pub carved_from: Option<AreaCode>,
    /// Effective date it came into use.
    pub defined_on: NaiveDate,
    /// Effective date it was divided or retired.
    pub retired_on: Option<NaiveDate>,
}

impl Area {
    /// True while the area is in use.
    pub fn is_active(&self) -> bool {
        self.retired_on.is_none()
    }
}

/// A public service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Stable code.
    pub code: ServiceCode,
    /// Name.
    pub name: String,
    /// Category (e.g. "home care", "library").
    pub category: String,
    /// Effective date of registration.
    pub registered_on: NaiveDate,
    /// Effective date of retirement.
    pub retired_on: Option<NaiveDate>,
}

impl Service {
    /// True while the service is offered.
    pub fn is_active(&self) -> bool {
        self.retired_on.is_none()
    }
}

/// A place where a unit offers some services (e.g. an innbyggertorg).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePoint {
    /// Stable id.
    pub id: ServicePointId,
    /// Name, e.g. "Innbyggertorg Sætre".
    pub name: String,
    /// The unit that runs it.
    pub unit: UnitId,
    /// Where it is, if it is tied to an area.
    pub area: Option<AreaCode>,
    /// Services offered there.
    pub services: BTreeSet<ServiceCode>,
    /// Effective opening date.
    pub opened_on: NaiveDate,
    /// Effective closing date.
    pub closed_on: Option<NaiveDate>,
}

impl ServicePoint {
    /// True while open.
    pub fn is_open(&self) -> bool {
        self.closed_on.is_none()
    }
}

/// The whole organisation on one effective date.
///
/// Ended things (dissolved units, retired services, closed points) stay in the maps with their end
/// date, so that a refusal can say "dissolved on …" rather than "unknown".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgState {
    /// Every unit ever established up to the date.
    pub units: BTreeMap<UnitId, Unit>,
    /// Every area ever defined up to the date.
    pub areas: BTreeMap<AreaCode, Area>,
    /// Every service ever registered up to the date.
    pub services: BTreeMap<ServiceCode, Service>,
    /// Service → area → the one responsible unit. A nested map, not a pair key, so that at most one
    /// unit per pair is a property of the data structure *and* the JSON form stays an object.
    pub responsibilities: BTreeMap<ServiceCode, BTreeMap<AreaCode, UnitId>>,
    /// Every service point ever opened up to the date.
    pub service_points: BTreeMap<ServicePointId, ServicePoint>,
}

impl OrgState {
    /// Live units.
    pub fn live_units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values().filter(|u| u.is_live())
    }

    /// Active areas held by `unit`.
    pub fn areas_of(&self, unit: &UnitId) -> Vec<AreaCode> {
        self.areas
            .values()
            .filter(|a| a.is_active() && a.holder.as_ref() == Some(unit))
            .map(|a| a.code.clone())
            .collect()
    }

    /// Live children of `unit`.
    pub fn children_of(&self, unit: &UnitId) -> Vec<UnitId> {
        self.live_units()
            .filter(|u| u.parent.as_ref() == Some(unit))
            .map(|u| u.id.clone())
            .collect()
    }

    /// Open service points run by `unit`.
    pub fn points_of(&self, unit: &UnitId) -> Vec<ServicePointId> {
        self.service_points
            .values()
            .filter(|p| p.is_open() && &p.unit == unit)
            .map(|p| p.id.clone())
            .collect()
    }

    /// The unit responsible for `service` in `area`, if any.
    pub fn responsible(&self, service: &ServiceCode, area: &AreaCode) -> Option<&UnitId> {
        self.responsibilities.get(service)?.get(area)
    }

    /// Every (service, area, unit) responsibility, ordered by service then area.
    pub fn responsibility_rows(&self) -> impl Iterator<Item = (&ServiceCode, &AreaCode, &UnitId)> {
        self.responsibilities
            .iter()
            .flat_map(|(s, m)| m.iter().map(move |(a, u)| (s, a, u)))
    }

    /// The (service, area) pairs `unit` is responsible for.
    pub fn responsibilities_of(&self, unit: &UnitId) -> Vec<(ServiceCode, AreaCode)> {
        self.responsibility_rows()
            .filter(|(_, _, u)| *u == unit)
            .map(|(s, a, _)| (s.clone(), a.clone()))
            .collect()
    }

    /// The chain of ancestors of `unit`, nearest first. Stops (rather than loops) if the data ever
    /// held a cycle, so that a query can never hang.
    pub fn ancestors(&self, unit: &UnitId) -> Vec<UnitId> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::from([unit.clone()]);
        let mut cur = self.units.get(unit).and_then(|u| u.parent.clone());
        while let Some(p) = cur {
            if !seen.insert(p.clone()) {
                break;
            }
            cur = self.units.get(&p).and_then(|u| u.parent.clone());
            out.push(p);
        }
        out
    }

    /// True if following parents from some unit ever comes back to it.
    pub fn has_cycle(&self) -> bool {
        self.units.keys().any(|start| {
            let mut steps = 0usize;
            let mut cur = self.units.get(start).and_then(|u| u.parent.clone());
            while let Some(p) = cur {
                if &p == start {
                    return true;
                }
                steps += 1;
                if steps > self.units.len() {
                    return true;
                }
                cur = self.units.get(&p).and_then(|u| u.parent.clone());
            }
            false
        })
    }
}
