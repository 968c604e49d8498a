//! OpenAPI-only mirrors of types from crates without utoipa (domain, store), so that the
//! description names concrete shapes instead of `Object`. Never (de)serialised: the handlers use
//! the real types; `tests/tests/fuzz.rs` checks the description against the server.

#![allow(dead_code)]

use chrono::{DateTime, NaiveDate, Utc};
use omorg_domain::{
    AreaTransfer, Assignment, Centralisation, Decentralisation, Dissolve, Merge, Move, Rename,
    ResponsibilityTransfer, Revocation, ServiceDef, ServicePointClosure, ServicePointDef,
    ServicePointServices, ServicePointTransfer, ServiceRetirement, Split, UnitDef, Withdrawal,
};
use serde::Serialize;
use utoipa::ToSchema;

/// The decision a change rests on (mirrors `omorg_domain::DecisionRef`).
#[derive(ToSchema)]
pub struct Decision {
    /// Case number, e.g. `17/6`.
    pub case_number: String,
    /// The deciding body, e.g. `Bystyret`.
    pub body: String,
    /// The date the decision was made (0001-01-01 to 9999-12-31).
    pub decision_date: NaiveDate,
    /// The decision's title.
    pub title: String,
    /// Optional link to the decision document.
    pub link: Option<String>,
}

/// The change a command asks for: `type` names it, the other fields are that change's (the
/// domain's own types). Timelines are started with `POST /timelines` and forked with
/// `POST /timelines/{id}/fork`, so `CreateTimeline` and `ForkTimeline` are not accepted here.
#[derive(ToSchema, Serialize)]
#[serde(tag = "type")]
pub enum CommandAction {
    /// Establish a unit.
    EstablishUnit(UnitDef),
    /// Rename a unit or change its code.
    RenameUnit(Rename),
    /// Move a unit under another parent.
    MoveUnit(Move),
    /// Dissolve a unit.
    DissolveUnit(Dissolve),
    /// Merge units into one.
    MergeUnits(Merge),
    /// Split a unit.
    SplitUnit(Split),
    /// Move an area between units.
    TransferArea(AreaTransfer),
    /// Register a service.
    RegisterService(ServiceDef),
    /// Retire a service.
    RetireService(ServiceRetirement),
    /// Make a unit responsible for a service in areas.
    AssignResponsibility(Assignment),
    /// Move a responsibility between units.
    TransferResponsibility(ResponsibilityTransfer),
    /// Withdraw a responsibility.
    WithdrawResponsibility(Withdrawal),
    /// Centralise a service to an agency.
    CentraliseService(Centralisation),
    /// Hand a centralised service back to the districts.
    DecentraliseService(Decentralisation),
    /// Open a service point.
    OpenServicePoint(ServicePointDef),
    /// Close a service point.
    CloseServicePoint(ServicePointClosure),
    /// Set the services of a service point.
    SetServicePointServices(ServicePointServices),
    /// Hand a service point over to another unit.
    TransferServicePoint(ServicePointTransfer),
    /// Revoke an earlier decision.
    RevokeDecision(Revocation),
}

/// A command on a timeline (mirrors `omorg_domain::TimelineCommand`).
#[derive(ToSchema)]
pub struct Command {
    /// Client-chosen id: a retry with the same id is applied once.
    pub command_id: String,
    /// The date the change takes effect (0001-01-01 to 9999-12-31).
    pub effective_from: NaiveDate,
    /// The decision behind the change.
    pub decision: Decision,
    /// Who submitted it.
    pub actor: String,
    /// Free text: why.
    pub rationale: Option<String>,
    /// The change asked for.
    pub action: CommandAction,
}

/// A global checkpoint (mirrors `omorg_store::Checkpoint`).
#[derive(ToSchema)]
pub struct CheckpointDoc {
    /// Transaction part.
    pub tx: i64,
    /// Global position part.
    pub position: i64,
}

/// One stored event (mirrors `omorg_store::RecordedEvent`).
#[derive(ToSchema)]
pub struct RecordedEvent {
    /// Where it sits in the global order.
    pub checkpoint: CheckpointDoc,
    /// Global position.
    pub position: i64,
    /// The timeline (stream) id.
    pub stream_id: String,
    /// 1-based version in the stream.
    pub stream_version: u64,
    /// Event type, e.g. `UnitEstablished`.
    pub event_type: String,
    /// Event schema version.
    pub event_version: String,
    /// The event as stored.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// Actor, command id, decision.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
    /// Hash of the previous event in the stream.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
    /// On the first event of each command only: how many events the command appended.
    pub command_events: Option<u32>,
}

/// The first place where a chain does not hold (mirrors `omorg_store::ChainBreak`).
#[derive(ToSchema)]
pub struct ChainBreak {
    /// The stream.
    pub stream_id: String,
    /// The version that does not match.
    pub version: u64,
    /// `{"kind": "altered" | "relinked" | "missing", "found": N}`, or
    /// `{"kind": "command_altered", "detail": "…"}`.
    #[schema(value_type = Object)]
    pub kind: serde_json::Value,
}

/// The answer of `GET /timelines/{id}/verify` (`omorg_store::Verification` plus `intact`).
#[derive(ToSchema)]
pub struct VerifyReport {
    /// The stream that was walked.
    pub stream_id: String,
    /// How many events were checked.
    pub events_checked: u64,
    /// True when no break was found.
    pub intact: bool,
    /// `[version, hash]` of the last event when intact.
    pub head: Option<Vec<serde_json::Value>>,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
}
