//! Why a command is refused.
//!
//! One variant per reason, in the user's terms, naming the ids and dates involved. The API maps the
//! whole enum onto HTTP: [`DomainError::InvalidInput`] is 422, everything else is a refused domain rule
//! (409), named by [`DomainError::rule`].

use crate::ids::{AreaCode, CommandId, ServiceCode, ServicePointId, UnitId};
use crate::model::UnitKind;
use chrono::NaiveDate;

/// A refused command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field of the command has an invalid value.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The offending field, as a JSON path into the command (e.g. `action.name`).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The timeline has no first event yet; only `CreateTimeline` or `ForkTimeline` can start it.
    #[error("the timeline does not exist yet: create or fork it first")]
    TimelineNotStarted,
    /// `CreateTimeline`/`ForkTimeline` on a timeline that already has events.
    #[error("the timeline already exists")]
    TimelineAlreadyStarted,
    /// The command id was used before for a different command.
    #[error("command id {command_id} was already used for a different command (it differs in {differs})")]
    CommandIdReused {
        /// The reused id.
        command_id: CommandId,
        /// What differs from the recorded command, in the user's terms (e.g. `its decision`).
        differs: String,
    },
    /// No unit with this id is ever established on this timeline.
    #[error("unknown unit {unit}")]
    UnknownUnit {
        /// The unit named by the command.
        unit: UnitId,
    },
    /// The unit is established only after the command's effective date.
    #[error("unit {unit} is established on {established_on}, after the effective date {date}")]
    UnitNotYetEstablished {
        /// The unit.
        unit: UnitId,
        /// When it is established.
        established_on: NaiveDate,
        /// The command's effective date.
        date: NaiveDate,
    },
    /// The unit was dissolved (or merged away) on or before the effective date.
    #[error("unit {unit} was dissolved on {dissolved_on}")]
    UnitDissolved {
        /// The unit.
        unit: UnitId,
        /// When it was dissolved.
        dissolved_on: NaiveDate,
    },
    /// A unit with this id already exists (possibly dissolved: ids are never reused).
    #[error("a unit with id {unit} already exists")]
    DuplicateUnit {
        /// The id.
        unit: UnitId,
    },
    /// Another live unit already carries this official code.
    #[error("official code {code} is already used by unit {holder}")]
    DuplicateCode {
        /// The code.
        code: String,
        /// The unit that has it.
        holder: UnitId,
    },
    /// The unit has the wrong kind for this command (e.g. centralising to a district).
    #[error("unit {unit} is a {kind}, but this needs a {expected}")]
    WrongUnitKind {
        /// The unit.
        unit: UnitId,
        /// Its kind.
        kind: UnitKind,
        /// What the command needs, e.g. "central_agency or municipal_enterprise".
        expected: String,
    },
    /// The change would make a unit its own ancestor.
    #[error("moving {unit} under {parent} would make a cycle in the unit tree")]
    Cycle {
        /// The unit being moved.
        unit: UnitId,
        /// The proposed parent, which is the unit itself or one of its descendants.
        parent: UnitId,
    },
    /// The unit still has live child units.
    #[error("unit {unit} still has child units: {}", join(children))]
    UnitHasChildren {
        /// The unit.
        unit: UnitId,
        /// Its live children.
        children: Vec<UnitId>,
    },
    /// The unit still holds areas.
    #[error("unit {unit} still holds areas: {}", join(areas))]
    UnitHoldsAreas {
        /// The unit.
        unit: UnitId,
        /// The areas.
        areas: Vec<AreaCode>,
    },
    /// The unit still runs open service points.
    #[error("unit {unit} still runs service points: {}", join(points))]
    UnitRunsServicePoints {
        /// The unit.
        unit: UnitId,
        /// The open service points.
        points: Vec<ServicePointId>,
    },
    /// The change would leave a (service, area) pair without a responsible unit.
    #[error(
        "service {service} in area {area} would be left without a responsible unit (now {unit})"
    )]
    PairLeftWithoutResponsible {
        /// The service.
        service: ServiceCode,
        /// The area.
        area: AreaCode,
        /// The unit that is responsible now.
        unit: UnitId,
    },
    /// The change would make two units responsible for one (service, area) pair.
    #[error("service {service} in area {area} already has a responsible unit: {holder}")]
    PairAlreadyHeld {
        /// The service.
        service: ServiceCode,
        /// The area.
        area: AreaCode,
        /// The unit already responsible.
        holder: UnitId,
    },
    /// The unit is not responsible for the pair the command moves or withdraws.
    #[error("unit {unit} is not responsible for service {service} in area {area}")]
    NotResponsible {
        /// The unit.
        unit: UnitId,
        /// The service.
        service: ServiceCode,
        /// The area.
        area: AreaCode,
    },
    /// No area with this code exists at the effective date.
    #[error("unknown area {area}")]
    UnknownArea {
        /// The area.
        area: AreaCode,
    },
    /// The area was divided or otherwise retired.
    #[error("area {area} was retired on {retired_on}")]
    AreaRetired {
        /// The area.
        area: AreaCode,
        /// When.
        retired_on: NaiveDate,
    },
    /// The area already exists (area codes are never reused).
    #[error("area {area} already exists")]
    DuplicateArea {
        /// The area.
        area: AreaCode,
    },
    /// The area is held by another unit than the command assumes.
    #[error(
        "area {area} is held by {}{}",
        holder.as_ref().map_or("no unit".to_string(), ToString::to_string),
        assumed.as_ref().map_or(String::new(), |u| format!(", not by {u}"))
    )]
    AreaHeldByOther {
        /// The area.
        area: AreaCode,
        /// Its holder, if any.
        holder: Option<UnitId>,
        /// The unit the command took for its holder (the split's source, the transfer's
        /// giver); `None` where the command needs the area free.
        assumed: Option<UnitId>,
    },
    /// No service with this code is registered.
    #[error("unknown service {service}")]
    UnknownService {
        /// The service.
        service: ServiceCode,
    },
    /// The service was retired on or before the effective date.
    #[error("service {service} was retired on {retired_on}")]
    ServiceRetired {
        /// The service.
        service: ServiceCode,
        /// When.
        retired_on: NaiveDate,
    },
    /// A service with this code is already registered.
    #[error("service {service} is already registered")]
    DuplicateService {
        /// The service.
        service: ServiceCode,
    },
    /// No service point with this id exists.
    #[error("unknown service point {point}")]
    UnknownServicePoint {
        /// The service point.
        point: ServicePointId,
    },
    /// The service point opens only after the command's effective date.
    #[error("service point {point} opens on {opened_on}, after the effective date {date}")]
    ServicePointNotYetOpened {
        /// The service point.
        point: ServicePointId,
        /// When it opens.
        opened_on: NaiveDate,
        /// The command's effective date.
        date: NaiveDate,
    },
    /// The service point is closed.
    #[error("service point {point} was closed on {closed_on}")]
    ServicePointClosed {
        /// The service point.
        point: ServicePointId,
        /// When.
        closed_on: NaiveDate,
    },
    /// The service point is run by another unit than the command assumes.
    #[error("service point {point} is run by {runner}, not by {assumed}")]
    ServicePointRunByOther {
        /// The service point.
        point: ServicePointId,
        /// The unit that runs it.
        runner: UnitId,
        /// The unit the command took for its runner.
        assumed: UnitId,
    },
    /// A service point with this id already exists.
    #[error("service point {point} already exists")]
    DuplicateServicePoint {
        /// The service point.
        point: ServicePointId,
    },
    /// The command would change nothing (e.g. centralising a service no district holds).
    #[error("nothing to change: {reason}")]
    NothingToChange {
        /// Why.
        reason: String,
    },
    /// No change on this timeline was made under this decision (or it was revoked already).
    #[error("no change recorded under decision {case_number} can be revoked")]
    UnknownDecision {
        /// The case number.
        case_number: String,
    },
    /// The change is valid on its own date but breaks a change already scheduled later.
    #[error("conflicts with the later change {later_command} (decision {later_case}, effective {later_effective}): {reason}")]
    ConflictsWithLaterChange {
        /// The later change's command id.
        later_command: CommandId,
        /// Its decision's case number.
        later_case: String,
        /// Its effective date.
        later_effective: NaiveDate,
        /// Why the later change would fail.
        reason: Box<DomainError>,
    },
    /// Revoking the decision would invalidate later changes that depend on it.
    #[error(
        "decision {case_number} cannot be revoked: later changes depend on it: {}",
        join(dependents)
    )]
    RevocationBlocked {
        /// The decision.
        case_number: String,
        /// The dependent changes, as `command-id (case, effective date): reason`.
        dependents: Vec<String>,
    },
}

fn join<T: std::fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl DomainError {
    /// A stable, machine-readable name of the rule that refused the command (used in API errors).
    pub fn rule(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid-input",
            Self::TimelineNotStarted => "timeline-not-started",
            Self::TimelineAlreadyStarted => "timeline-already-started",
            Self::CommandIdReused { .. } => "command-id-reused",
            Self::UnknownUnit { .. } => "unknown-unit",
            Self::UnitNotYetEstablished { .. } => "unit-not-yet-established",
            Self::UnitDissolved { .. } => "unit-dissolved",
            Self::DuplicateUnit { .. } => "duplicate-unit",
            Self::DuplicateCode { .. } => "duplicate-code",
            Self::WrongUnitKind { .. } => "wrong-unit-kind",
            Self::Cycle { .. } => "cycle",
            Self::UnitHasChildren { .. } => "unit-has-children",
            Self::UnitHoldsAreas { .. } => "unit-holds-areas",
            Self::UnitRunsServicePoints { .. } => "unit-runs-service-points",
            Self::PairLeftWithoutResponsible { .. } => "pair-left-without-responsible",
            Self::PairAlreadyHeld { .. } => "pair-already-held",
            Self::NotResponsible { .. } => "not-responsible",
            Self::UnknownArea { .. } => "unknown-area",
            Self::AreaRetired { .. } => "area-retired",
            Self::DuplicateArea { .. } => "duplicate-area",
            Self::AreaHeldByOther { .. } => "area-held-by-other",
            Self::UnknownService { .. } => "unknown-service",
            Self::ServiceRetired { .. } => "service-retired",
            Self::DuplicateService { .. } => "duplicate-service",
            Self::UnknownServicePoint { .. } => "unknown-service-point",
            Self::ServicePointClosed { .. } => "service-point-closed",
            Self::ServicePointNotYetOpened { .. } => "service-point-not-yet-opened",
            Self::DuplicateServicePoint { .. } => "duplicate-service-point",
            Self::ServicePointRunByOther { .. } => "service-point-run-by-other",
            Self::NothingToChange { .. } => "nothing-to-change",
            Self::UnknownDecision { .. } => "unknown-decision",
            Self::ConflictsWithLaterChange { .. } => "conflicts-with-later-change",
            Self::RevocationBlocked { .. } => "revocation-blocked",
        }
    }

    /// True when the command itself is malformed (HTTP 422) rather than refused by a rule (409).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::InvalidInput { .. })
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}
