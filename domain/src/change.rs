//! Commands and events.
//!
//! A command is an [`Action`] (imperative: `EstablishUnit`) wrapped with the decision behind it;
//! every accepted command produces exactly one event, a [`Change`] (past tense: `UnitEstablished`)
//! wrapped with the same context. Both share one payload struct per kind of change, so a command and
//! its event can never drift apart.
//!
//! Events record the decision's *intent* ("merge Grorud and Stovner into X"), not the consequences
//! computed when it was recorded: a change recorded later but effective earlier (a new district
//! responsibility, say) is then carried along by a merge already scheduled, exactly as the decision
//! says. The consequences on any date come from replaying the changes (`Timeline::state_at`).

use crate::ids::{AreaCode, CommandId, ServiceCode, ServicePointId, TimelineId, UnitId};
use crate::model::UnitKind;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Reads `null` as the default, as if the member were absent: for members that have a
/// default (a rationale, a description, a list), where a client or a YAML file writes `null`
/// (`~`) for "none" as readily as it leaves the member out.
pub fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The decision a change rests on (*vedtak*).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionRef {
    /// Case number (*saksnummer*), e.g. `17/6` or `08/03021-26`.
    pub case_number: String,
    /// The deciding body, e.g. `Bystyret` or `Fellesnemnda for nye Asker`.
    pub body: String,
    /// The date the decision was made (not the date it takes effect).
    #[serde(deserialize_with = "crate::date::strict")]
    pub decision_date: NaiveDate,
    /// The decision's title.
    pub title: String,
    /// Optional link to the decision document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// What every command and event carries besides the change itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeContext {
    /// Client-chosen id: a retried command with the same id is applied once.
    pub command_id: CommandId,
    /// The date the change takes effect in the world.
    #[serde(deserialize_with = "crate::date::strict")]
    pub effective_from: NaiveDate,
    /// The decision behind the change.
    pub decision: DecisionRef,
    /// Who submitted it.
    pub actor: String,
    /// Free text: why.
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub rationale: String,
}

/// A command on a timeline: the change asked for and its context. In JSON the context's members
/// and `action` sit side by side in one object (see [`flat`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "flat::Command")]
pub struct TimelineCommand {
    /// Decision, dates, actor, command id.
    pub context: ChangeContext,
    /// The change asked for.
    pub action: Action,
}

/// An event on a timeline: the change made and its context. In JSON the context's members and
/// `change` sit side by side in one object (see [`flat`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "flat::Event")]
pub struct TimelineEvent {
    /// Decision, dates, actor, command id, copied from the command.
    pub context: ChangeContext,
    /// The change made.
    pub change: Change,
}

/// The JSON form of commands and events: [`ChangeContext`]'s members and the action or change
/// in one flat object, as `#[serde(flatten)]` would write it. Spelled out because serde reads a
/// flattened struct through a buffered copy of the whole object: on the command path of the
/// server that made reading a command and writing its event cost roughly twice the
/// instructions, and the projector pays it again for every event it reads.
mod flat {
    use super::{Action, Change, ChangeContext, DecisionRef, TimelineCommand, TimelineEvent};
    use crate::ids::CommandId;
    use chrono::NaiveDate;
    use serde::ser::{SerializeStruct, Serializer};
    use serde::{Deserialize, Serialize};

    /// A command or event as read (`$wire`), and how it becomes `$target`: the context's
    /// members and `$body` (`action` or `change`) side by side.
    macro_rules! read_flat {
        ($wire:ident, $target:ident, $body:ident: $ty:ty) => {
            #[doc = concat!("[`", stringify!($target), "`] as read.")]
            #[derive(Deserialize)]
            pub struct $wire {
                command_id: CommandId,
                #[serde(deserialize_with = "crate::date::strict")]
                effective_from: NaiveDate,
                decision: DecisionRef,
                actor: String,
                #[serde(default, deserialize_with = "crate::null_as_default")]
                rationale: String,
                $body: $ty,
            }

            impl From<$wire> for $target {
                fn from(w: $wire) -> Self {
                    let $wire {
                        command_id,
                        effective_from,
                        decision,
                        actor,
                        rationale,
                        $body,
                    } = w;
                    let context = ChangeContext {
                        command_id,
                        effective_from,
                        decision,
                        actor,
                        rationale,
                    };
                    Self { context, $body }
                }
            }
        };
    }

    read_flat!(Command, TimelineCommand, action: Action);
    read_flat!(Event, TimelineEvent, change: Change);

    /// Writes the context's members and then `body` under `name`, in one struct.
    fn write<S: Serializer, B: Serialize>(
        serializer: S,
        struct_name: &'static str,
        context: &ChangeContext,
        name: &'static str,
        body: &B,
    ) -> Result<S::Ok, S::Error> {
        // Exhaustive, so that a member added to the context cannot be left out here.
        let ChangeContext {
            command_id,
            effective_from,
            decision,
            actor,
            rationale,
        } = context;
        let mut s = serializer.serialize_struct(struct_name, 6)?;
        s.serialize_field("command_id", command_id)?;
        s.serialize_field("effective_from", effective_from)?;
        s.serialize_field("decision", decision)?;
        s.serialize_field("actor", actor)?;
        s.serialize_field("rationale", rationale)?;
        s.serialize_field(name, body)?;
        s.end()
    }

    impl Serialize for TimelineCommand {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            write(
                serializer,
                "TimelineCommand",
                &self.context,
                "action",
                &self.action,
            )
        }
    }

    impl Serialize for TimelineEvent {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            write(
                serializer,
                "TimelineEvent",
                &self.context,
                "change",
                &self.change,
            )
        }
    }
}

/// A new area, given whole to a unit or carved from an area being divided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AreaDef {
    /// Stable code.
    pub code: AreaCode,
    /// Name (needed when the area is new; ignored when it already exists).
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub name: String,
    /// For a split of a single-area unit: the area this one is carved from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carved_from: Option<AreaCode>,
}

/// A unit to establish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnitDef {
    /// Stable id chosen by the client.
    pub unit: UnitId,
    /// Official code, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: UnitKind,
    /// Parent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<UnitId>,
    /// Areas it covers from the start: new ones are defined, existing unheld ones are taken.
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub areas: Vec<AreaDef>,
    /// Free attributes.
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub attributes: BTreeMap<String, String>,
}

/// Rename a unit: its name, its official code, or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rename {
    /// The unit.
    pub unit: UnitId,
    /// New name, if it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New official code, if it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// Re-parent a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Move {
    /// The unit.
    pub unit: UnitId,
    /// New parent; `None` makes it a root.
    pub new_parent: Option<UnitId>,
}

/// Dissolve a unit that no longer holds anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dissolve {
    /// The unit.
    pub unit: UnitId,
}

/// Who receives a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Successor {
    /// An existing unit (may be one of the sources, which then absorbs the others).
    Existing {
        /// The unit.
        unit: UnitId,
    },
    /// A unit established by the merge.
    New(UnitDef),
}

/// Merge units into a successor that inherits their areas, children, responsibilities and points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Merge {
    /// The units merged.
    pub sources: Vec<UnitId>,
    /// The successor.
    pub successor: Successor,
}

/// Who receives one part of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PartTarget {
    /// The source itself, which continues with this part.
    Source,
    /// An existing unit that absorbs the part.
    Existing {
        /// The unit.
        unit: UnitId,
    },
    /// A unit established by the split (its `areas` must be empty: the part says which areas).
    New(UnitDef),
}

/// One part of a split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SplitPart {
    /// Who receives the part.
    pub target: PartTarget,
    /// Whole areas of the source that go to this part.
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub areas: Vec<AreaCode>,
    /// New areas carved from a source area that is divided (each with `carved_from`).
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub carved_areas: Vec<AreaDef>,
    /// Child units of the source that move to this part.
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub children: Vec<UnitId>,
}

/// Split a unit into parts; responsibilities follow the areas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Split {
    /// The unit split.
    pub source: UnitId,
    /// The parts.
    pub parts: Vec<SplitPart>,
}

/// Move one area from one unit to another (a boundary adjustment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AreaTransfer {
    /// The area.
    pub area: AreaCode,
    /// The giving unit.
    pub from: UnitId,
    /// The receiving unit.
    pub to: UnitId,
}

/// Register a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceDef {
    /// Stable code.
    pub service: ServiceCode,
    /// Name.
    pub name: String,
    /// Category.
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub category: String,
}

/// Retire a service; its responsibilities end and service points stop offering it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceRetirement {
    /// The service.
    pub service: ServiceCode,
}

/// Make a unit responsible for a service in some areas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    /// The service.
    pub service: ServiceCode,
    /// The unit.
    pub unit: UnitId,
    /// The areas.
    pub areas: Vec<AreaCode>,
}

/// Move responsibility for a service from one unit to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResponsibilityTransfer {
    /// The service.
    pub service: ServiceCode,
    /// The unit responsible now.
    pub from: UnitId,
    /// The unit responsible after.
    pub to: UnitId,
    /// The areas; `None` means every area `from` is responsible for on the date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub areas: Option<Vec<AreaCode>>,
}

/// End a unit's responsibility for a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Withdrawal {
    /// The service.
    pub service: ServiceCode,
    /// The unit.
    pub unit: UnitId,
    /// The areas; `None` means every area the unit is responsible for on the date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub areas: Option<Vec<AreaCode>>,
}

/// Move a service from every district that holds it to one central agency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Centralisation {
    /// The service.
    pub service: ServiceCode,
    /// The central agency (or municipal enterprise) taking it over.
    pub agency: UnitId,
}

/// Hand a service back to each district for its own areas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decentralisation {
    /// The service.
    pub service: ServiceCode,
    /// The unit giving it up; `None` means whichever non-district unit holds each pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agency: Option<UnitId>,
}

/// Open a service point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServicePointDef {
    /// Stable id.
    pub point: ServicePointId,
    /// Name.
    pub name: String,
    /// The unit that runs it.
    pub unit: UnitId,
    /// The area it is in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<AreaCode>,
    /// Services offered.
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub services: Vec<ServiceCode>,
}

/// Close a service point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServicePointClosure {
    /// The service point.
    pub point: ServicePointId,
}

/// Replace the set of services a point offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServicePointServices {
    /// The service point.
    pub point: ServicePointId,
    /// The services offered from the effective date.
    pub services: Vec<ServiceCode>,
}

/// Hand a service point over to another unit: the point stays where it is, with its services;
/// only who runs it changes (e.g. an innbyggertorg moving under a new business unit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServicePointTransfer {
    /// The service point.
    pub point: ServicePointId,
    /// The unit that runs it now (checked: a command written against a stale chart is refused).
    pub from: UnitId,
    /// The unit that runs it from the effective date.
    pub to: UnitId,
}

/// Withdraw the changes of an earlier decision as if never made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revocation {
    /// The decision whose changes are withdrawn.
    pub case_number: String,
    /// Only these changes of that decision; `None` means all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_ids: Option<Vec<CommandId>>,
}

/// The changes a revocation withdrew, resolved when it was recorded (a revocation names records,
/// which never change, so resolving them once is exact).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// The decision.
    pub case_number: String,
    /// The command ids of the withdrawn changes.
    pub revoked: Vec<CommandId>,
}

/// Start a baseline timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineDef {
    /// Name, e.g. "Oslo kommune".
    pub name: String,
    /// Free description.
    #[serde(default, deserialize_with = "crate::null_as_default")]
    pub description: String,
}

/// Start a scenario as a copy of another timeline at a known version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fork {
    /// Name of the scenario, e.g. "Alternative 1".
    pub name: String,
    /// The timeline forked from.
    pub parent: TimelineId,
    /// How many of the parent's events the scenario starts from.
    pub parent_version: u64,
    /// The parent's events up to `parent_version`, so a scenario replays without its parent.
    pub base: Vec<TimelineEvent>,
}

/// A scenario's own changes were adopted into the timeline it was forked from. Recorded on the
/// scenario, so that whoever reads it (or lists the timelines) sees it was adopted, where, and
/// by which decision; the adopted changes themselves are events of that timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adoption {
    /// The timeline the scenario was forked from, which now has its changes.
    pub into: TimelineId,
    /// That timeline's version after the adopted changes.
    pub into_version: u64,
}

/// What a command asks for. JSON: `{"type": "EstablishUnit", ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[allow(missing_docs)] // each variant is documented by its payload type
pub enum Action {
    CreateTimeline(TimelineDef),
    ForkTimeline(Fork),
    EstablishUnit(UnitDef),
    RenameUnit(Rename),
    MoveUnit(Move),
    DissolveUnit(Dissolve),
    MergeUnits(Merge),
    SplitUnit(Split),
    TransferArea(AreaTransfer),
    RegisterService(ServiceDef),
    RetireService(ServiceRetirement),
    AssignResponsibility(Assignment),
    TransferResponsibility(ResponsibilityTransfer),
    WithdrawResponsibility(Withdrawal),
    CentraliseService(Centralisation),
    DecentraliseService(Decentralisation),
    OpenServicePoint(ServicePointDef),
    CloseServicePoint(ServicePointClosure),
    SetServicePointServices(ServicePointServices),
    TransferServicePoint(ServicePointTransfer),
    RevokeDecision(Revocation),
    /// Only the service's adoption writes this (`POST /timelines/{id}/adopt`).
    RecordAdoption(Adoption),
}

/// What an event records. JSON: `{"type": "UnitEstablished", ...fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[allow(missing_docs)] // each variant is documented by its payload type
pub enum Change {
    TimelineCreated(TimelineDef),
    TimelineForked(Fork),
    UnitEstablished(UnitDef),
    UnitRenamed(Rename),
    UnitMoved(Move),
    UnitDissolved(Dissolve),
    UnitsMerged(Merge),
    UnitSplit(Split),
    AreaTransferred(AreaTransfer),
    ServiceRegistered(ServiceDef),
    ServiceRetired(ServiceRetirement),
    ResponsibilityAssigned(Assignment),
    ResponsibilityTransferred(ResponsibilityTransfer),
    ResponsibilityWithdrawn(Withdrawal),
    ServiceCentralised(Centralisation),
    ServiceDecentralised(Decentralisation),
    ServicePointOpened(ServicePointDef),
    ServicePointClosed(ServicePointClosure),
    ServicePointServicesSet(ServicePointServices),
    ServicePointTransferred(ServicePointTransfer),
    DecisionRevoked(Revoked),
    ScenarioAdopted(Adoption),
}

impl Change {
    /// The event type name, as stored in the log.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::TimelineCreated(_) => "TimelineCreated",
            Self::TimelineForked(_) => "TimelineForked",
            Self::UnitEstablished(_) => "UnitEstablished",
            Self::UnitRenamed(_) => "UnitRenamed",
            Self::UnitMoved(_) => "UnitMoved",
            Self::UnitDissolved(_) => "UnitDissolved",
            Self::UnitsMerged(_) => "UnitsMerged",
            Self::UnitSplit(_) => "UnitSplit",
            Self::AreaTransferred(_) => "AreaTransferred",
            Self::ServiceRegistered(_) => "ServiceRegistered",
            Self::ServiceRetired(_) => "ServiceRetired",
            Self::ResponsibilityAssigned(_) => "ResponsibilityAssigned",
            Self::ResponsibilityTransferred(_) => "ResponsibilityTransferred",
            Self::ResponsibilityWithdrawn(_) => "ResponsibilityWithdrawn",
            Self::ServiceCentralised(_) => "ServiceCentralised",
            Self::ServiceDecentralised(_) => "ServiceDecentralised",
            Self::ServicePointOpened(_) => "ServicePointOpened",
            Self::ServicePointClosed(_) => "ServicePointClosed",
            Self::ServicePointServicesSet(_) => "ServicePointServicesSet",
            Self::ServicePointTransferred(_) => "ServicePointTransferred",
            Self::DecisionRevoked(_) => "DecisionRevoked",
            Self::ScenarioAdopted(_) => "ScenarioAdopted",
        }
    }

    /// The command that asks for this change again, e.g. to apply a scenario's changes to the
    /// timeline it was forked from. `None` for the timeline's own start (creation, fork), which
    /// cannot be asked for on an existing timeline, and for an adoption record, which says
    /// something about this timeline only. A revocation asks for exactly the changes it
    /// withdrew when it was recorded.
    pub fn to_action(&self) -> Option<Action> {
        Some(match self.clone() {
            Self::TimelineCreated(_) | Self::TimelineForked(_) | Self::ScenarioAdopted(_) => {
                return None
            }
            Self::UnitEstablished(p) => Action::EstablishUnit(p),
            Self::UnitRenamed(p) => Action::RenameUnit(p),
            Self::UnitMoved(p) => Action::MoveUnit(p),
            Self::UnitDissolved(p) => Action::DissolveUnit(p),
            Self::UnitsMerged(p) => Action::MergeUnits(p),
            Self::UnitSplit(p) => Action::SplitUnit(p),
            Self::AreaTransferred(p) => Action::TransferArea(p),
            Self::ServiceRegistered(p) => Action::RegisterService(p),
            Self::ServiceRetired(p) => Action::RetireService(p),
            Self::ResponsibilityAssigned(p) => Action::AssignResponsibility(p),
            Self::ResponsibilityTransferred(p) => Action::TransferResponsibility(p),
            Self::ResponsibilityWithdrawn(p) => Action::WithdrawResponsibility(p),
            Self::ServiceCentralised(p) => Action::CentraliseService(p),
            Self::ServiceDecentralised(p) => Action::DecentraliseService(p),
            Self::ServicePointOpened(p) => Action::OpenServicePoint(p),
            Self::ServicePointClosed(p) => Action::CloseServicePoint(p),
            Self::ServicePointServicesSet(p) => Action::SetServicePointServices(p),
            Self::ServicePointTransferred(p) => Action::TransferServicePoint(p),
            Self::DecisionRevoked(Revoked {
                case_number,
                revoked,
            }) => Action::RevokeDecision(Revocation {
                case_number,
                command_ids: Some(revoked),
            }),
        })
    }

    /// True for the changes that alter the organisation on an effective date (as opposed to the
    /// timeline-level events: creation, fork, revocation, adoption).
    pub fn is_org_change(&self) -> bool {
        !matches!(
            self,
            Self::TimelineCreated(_)
                | Self::TimelineForked(_)
                | Self::DecisionRevoked(_)
                | Self::ScenarioAdopted(_)
        )
    }
}

/// Current schema version of every event type; bump per type when its payload changes shape, and
/// add an upcaster in the store for the old version.
pub const EVENT_VERSION: &str = "1";

impl cqrs_es::DomainEvent for TimelineEvent {
    fn event_type(&self) -> String {
        self.change.type_name().to_string()
    }
    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}
