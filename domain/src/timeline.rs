//! The organisation timeline: the aggregate (one event stream, one consistency boundary).
//!
//! A timeline keeps every recorded change with its effective date. The organisation on a date is
//! the replay, in effective order, of the changes in force (not revoked) that take effect on or
//! before it; changes with the same effective date keep their recorded order. A new command is
//! checked by replaying the history with the new change inserted at its effective date: it must be
//! valid there, and every change scheduled after it must still be valid — otherwise it is refused,
//! naming the later change it would break.

use crate::change::*;
use crate::error::DomainError;
use crate::ids::{CommandId, TimelineId, UnitId};
use crate::model::OrgState;
use crate::rules::{check_date, check_text, check_trimmed, check_trimmed_change};
use chrono::NaiveDate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What kind of timeline this is and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineInfo {
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// For a scenario: the timeline and version it was forked from.
    pub forked_from: Option<(TimelineId, u64)>,
    /// For a scenario whose changes were adopted: the timeline (its parent) and that timeline's
    /// version after the last adoption.
    pub adopted_into: Option<(TimelineId, u64)>,
}

/// One change as the timeline remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The event (for a fork, with its `base` emptied: the base events are records of their own).
    pub event: TimelineEvent,
    /// This timeline's own event version (1-based); 0 for events inherited from a fork's parent.
    pub version: u64,
    /// The version of the `DecisionRevoked` event that withdrew it (0 if withdrawn before a fork).
    pub revoked_by: Option<u64>,
}

impl Record {
    fn in_force_at(&self, known_version: u64) -> bool {
        self.version <= known_version && self.revoked_by.is_none_or(|v| v > known_version)
    }
}

/// The aggregate. See the module docs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timeline {
    info: Option<TimelineInfo>,
    /// Own events applied so far (the stream version).
    version: u64,
    /// Every change, own and inherited, in recorded order.
    records: Vec<Record>,
    /// Command id → index into `records`, for exactly-once handling of retries.
    commands: BTreeMap<CommandId, usize>,
    /// The state after every change in force. Most commands take effect after everything
    /// already recorded, so they are checked against (and applied to) this state instead of a
    /// full replay. Derived data: never serialised, rebuilt on demand.
    #[serde(skip)]
    head: Option<Head>,
}

/// The cached head state and what it covers.
#[derive(Debug, Clone)]
struct Head {
    /// How many records it covers.
    covers: usize,
    /// The command id of the last record it covers: a command decided but never applied must
    /// not leave a head that a different event would seem to match.
    last_command: Option<CommandId>,
    /// The latest effective date in force.
    last_date: NaiveDate,
    /// The state.
    state: OrgState,
}

impl PartialEq for Timeline {
    fn eq(&self, other: &Self) -> bool {
        // `head` is a cache and is deliberately left out.
        self.info == other.info
            && self.version == other.version
            && self.records == other.records
            && self.commands == other.commands
    }
}

impl Timeline {
    /// Name, description and origin, once the timeline is created.
    pub fn info(&self) -> Option<&TimelineInfo> {
        self.info.as_ref()
    }

    /// Number of own events applied (the stream version).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every change, own and inherited, in recorded order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The record written for a command id, if that command was applied.
    pub fn record_of(&self, command_id: &CommandId) -> Option<&Record> {
        self.commands.get(command_id).map(|i| &self.records[*i])
    }

    /// Whether `cmd` was already applied in substance: a change is recorded with the same
    /// effective date, decision and content (lists of ids compared as sets), whoever submitted
    /// it and whatever rationale it gave. Under `cmd`'s command id only, or, with `any_id`,
    /// under any id.
    ///
    /// Not [`Timeline::decide`]'s test, which is the whole request under the id: a client that
    /// reuses an id with another actor or rationale is told so. An import re-reads a file whose
    /// rows may have moved (the rationale names the line) or that another person imported
    /// first, and the rows already in the timeline are then the same decisions, not a conflict.
    /// `any_id` serves ids an import derives itself, whose derivation may have changed.
    pub fn applied_in_substance(&self, cmd: &TimelineCommand, any_id: bool) -> bool {
        let same = |rec: &Record| {
            let was = &rec.event.context;
            was.effective_from == cmd.context.effective_from
                && was.decision == cmd.context.decision
                && same_in_substance(&cmd.action, &rec.event.change)
        };
        if any_id {
            self.records.iter().any(same)
        } else {
            self.record_of(&cmd.context.command_id).is_some_and(same)
        }
    }

    /// Org changes in force as known at `known_version`, in effective order.
    fn in_force(&self, known_version: u64) -> Vec<&Record> {
        let mut v: Vec<&Record> = self
            .records
            .iter()
            .filter(|r| r.event.change.is_org_change() && r.in_force_at(known_version))
            .collect();
        // A stable sort keeps recorded order among changes with the same effective date.
        v.sort_by_key(|r| r.event.context.effective_from);
        v
    }

    /// The organisation as of effective date `date`, using everything known now.
    pub fn state_at(&self, date: NaiveDate) -> OrgState {
        self.state_at_as_known(date, self.version)
    }

    /// The organisation as of `date` as it was believed when the timeline had `known_version` own
    /// events: later events, and revocations recorded later, are ignored.
    pub fn state_at_as_known(&self, date: NaiveDate, known_version: u64) -> OrgState {
        let mut state = OrgState::default();
        for r in self.in_force(known_version) {
            let eff = r.event.context.effective_from;
            if eff > date {
                break;
            }
            // Stored changes were valid when recorded; a failure here could only come from a
            // rule changed since, and then the change is skipped (`apply_change` is atomic).
            let _ = state.apply_change(eff, &r.event.change);
        }
        state
    }

    /// The organisation on `from` and on every later date on which something changes (as known
    /// now), ascending; each state holds until the next date. One replay for all of them, which
    /// is what the projections need to rewrite history from an effective date onward.
    pub fn states_on_or_after(&self, from: NaiveDate) -> Vec<(NaiveDate, OrgState)> {
        let mut out: Vec<(NaiveDate, OrgState)> = Vec::new();
        let mut state = OrgState::default();
        let mut current: Option<NaiveDate> = None;
        for r in self.in_force(self.version) {
            let eff = r.event.context.effective_from;
            if current.is_some_and(|c| c != eff && c >= from) {
                out.push((current.unwrap_or(from), state.clone()));
            }
            if eff > from && out.is_empty() {
                out.push((from, state.clone()));
            }
            current = Some(eff);
            let _ = state.apply_change(eff, &r.event.change);
        }
        match current {
            Some(c) if c >= from => out.push((c, state)),
            _ if out.is_empty() => out.push((from, state)),
            _ => {}
        }
        out
    }

    /// The effective dates on which something changes (as known now), ascending and distinct.
    pub fn change_dates(&self) -> Vec<NaiveDate> {
        let set: BTreeSet<NaiveDate> = self
            .in_force(self.version)
            .iter()
            .map(|r| r.event.context.effective_from)
            .collect();
        set.into_iter().collect()
    }

    /// Makes sure the cached head matches the records, recomputing it if not.
    fn ensure_head(&mut self) {
        let covers = self.records.len();
        let last_command = self
            .records
            .last()
            .map(|r| r.event.context.command_id.clone());
        if self
            .head
            .as_ref()
            .is_some_and(|h| h.covers == covers && h.last_command == last_command)
        {
            return;
        }
        let last_date = self
            .in_force(self.version)
            .last()
            .map(|r| r.event.context.effective_from)
            .unwrap_or(NaiveDate::MIN);
        let state = self.state_at(last_date);
        self.head = Some(Head {
            covers,
            last_command,
            last_date,
            state,
        });
    }

    /// Checks `change` inserted at its effective date against the whole history.
    fn check_insert(
        &mut self,
        ctx: &ChangeContext,
        change: &Change,
        refuse_no_op: bool,
    ) -> Result<(), DomainError> {
        let date = ctx.effective_from;
        self.ensure_head();
        if let Some(mut head) = self.head.take().filter(|h| date >= h.last_date) {
            // Nothing is scheduled after it: checking it on the head state is enough, and the
            // head then becomes the state after it (in place: no copy of the organisation).
            if let Some(reason) = head.state.no_op(change).filter(|_| refuse_no_op) {
                self.head = Some(head);
                return Err(DomainError::NothingToChange { reason });
            }
            return match head.state.apply_change(date, change) {
                Ok(()) => {
                    head.covers += 1;
                    head.last_command = Some(ctx.command_id.clone());
                    head.last_date = date;
                    self.head = Some(head);
                    Ok(())
                }
                // A refused change leaves the head as it was (`apply_change` is atomic).
                Err(e) => {
                    self.head = Some(head);
                    Err(self.explain(e, date))
                }
            };
        }
        let mut state = OrgState::default();
        let mut inserted = false;
        for r in self.in_force(self.version) {
            let eff = r.event.context.effective_from;
            if !inserted && eff > date {
                if let Some(reason) = state.no_op(change).filter(|_| refuse_no_op) {
                    return Err(DomainError::NothingToChange { reason });
                }
                state
                    .apply_change(date, change)
                    .map_err(|e| self.explain(e, date))?;
                inserted = true;
            }
            let result = state.apply_change(eff, &r.event.change);
            if inserted {
                result.map_err(|e| DomainError::ConflictsWithLaterChange {
                    later_command: r.event.context.command_id.clone(),
                    later_case: r.event.context.decision.case_number.clone(),
                    later_effective: eff,
                    reason: Box::new(e),
                })?;
            }
        }
        Ok(())
    }

    /// Turns "unknown unit" into "not yet established" when the unit is established later.
    fn explain(&self, e: DomainError, date: NaiveDate) -> DomainError {
        if let DomainError::UnknownServicePoint { point } = &e {
            // Likewise "unknown service point" when it opens later.
            let opened =
                self.in_force(self.version)
                    .into_iter()
                    .find_map(|r| match &r.event.change {
                        Change::ServicePointOpened(p) if p.point == *point => {
                            Some(r.event.context.effective_from)
                        }
                        _ => None,
                    });
            return match opened {
                Some(on) if on > date => DomainError::ServicePointNotYetOpened {
                    point: point.clone(),
                    opened_on: on,
                    date,
                },
                _ => e,
            };
        }
        let DomainError::UnknownUnit { unit } = &e else {
            return e;
        };
        let established = self.in_force(self.version).into_iter().find_map(|r| {
            let made = established_units(&r.event.change);
            made.contains(unit)
                .then_some(r.event.context.effective_from)
        });
        match established {
            Some(on) if on > date => DomainError::UnitNotYetEstablished {
                unit: unit.clone(),
                established_on: on,
                date,
            },
            _ => e,
        }
    }

    /// Checks what every command carries (dates in range, the decision's texts, the actor, the
    /// rationale) without deciding anything: [`Timeline::decide`] runs it first, and a caller
    /// that may answer without deciding (a repeated adoption) runs it itself.
    pub fn check_context(ctx: &ChangeContext) -> Result<(), DomainError> {
        check_date("effective_from", ctx.effective_from)?;
        check_date("decision.decision_date", ctx.decision.decision_date)?;
        check_text("actor", &ctx.actor)?;
        check_text("decision.case_number", &ctx.decision.case_number)?;
        check_text("decision.body", &ctx.decision.body)?;
        check_text("decision.title", &ctx.decision.title)?;
        if let Some(link) = &ctx.decision.link {
            check_text("decision.link", link)?;
        }
        for (field, text) in [
            ("actor", ctx.actor.as_str()),
            ("decision.case_number", ctx.decision.case_number.as_str()),
            ("decision.body", ctx.decision.body.as_str()),
            ("decision.title", ctx.decision.title.as_str()),
        ]
        .into_iter()
        .chain(ctx.decision.link.as_deref().map(|l| ("decision.link", l)))
        {
            check_trimmed(field, text)?;
        }
        if ctx.rationale.contains('\0') {
            return Err(DomainError::invalid(
                "rationale",
                "must not contain the NUL character",
            ));
        }
        if ctx.rationale.chars().count() > 10_000 {
            return Err(DomainError::invalid(
                "rationale",
                "must be at most 10000 characters",
            ));
        }
        Ok(())
    }

    /// Decides the event for a command, or refuses it. Pure: no IO, no clock.
    ///
    /// Returns `Ok(None)` when the command id was already applied with the same request: a retry
    /// is answered with the original outcome and produces nothing new.
    pub fn decide(&mut self, cmd: TimelineCommand) -> Result<Option<TimelineEvent>, DomainError> {
        self.decide_as(cmd, true)
    }

    /// [`Timeline::decide`] for a change copied from a scenario being adopted: the same rules,
    /// except that a copy which changes nothing (the baseline made the same change meanwhile)
    /// is written rather than refused, so that one change already made does not block the
    /// adoption of all the others.
    pub fn decide_copy(
        &mut self,
        cmd: TimelineCommand,
    ) -> Result<Option<TimelineEvent>, DomainError> {
        self.decide_as(cmd, false)
    }

    fn decide_as(
        &mut self,
        cmd: TimelineCommand,
        refuse_no_op: bool,
    ) -> Result<Option<TimelineEvent>, DomainError> {
        // A timeline's name before the context: a client that names no decision gets one
        // titled after the name, and a bad name must be reported as the name, not that title.
        match &cmd.action {
            Action::CreateTimeline(def) => check_text("action.name", &def.name)?,
            Action::ForkTimeline(fork) => check_text("action.name", &fork.name)?,
            _ => {}
        }
        Self::check_context(&cmd.context)?;
        if let Some(rec) = self.record_of(&cmd.context.command_id) {
            return if rec.event.context == cmd.context
                && same_request(&cmd.action, &rec.event.change)
            {
                Ok(None)
            } else {
                Err(DomainError::CommandIdReused {
                    differs: differences(&cmd, &rec.event),
                    command_id: cmd.context.command_id,
                })
            };
        }
        let starts = matches!(
            cmd.action,
            Action::CreateTimeline(_) | Action::ForkTimeline(_)
        );
        match (&self.info, starts) {
            (None, false) => return Err(DomainError::TimelineNotStarted),
            (Some(_), true) => return Err(DomainError::TimelineAlreadyStarted),
            _ => {}
        }
        let change = match cmd.action {
            Action::CreateTimeline(def) => {
                check_text("action.name", &def.name)?;
                crate::rules::check_free_text("action.description", &def.description)?;
                Change::TimelineCreated(def)
            }
            Action::ForkTimeline(fork) => {
                check_text("action.name", &fork.name)?;
                if fork.base.len() as u64 != fork.parent_version {
                    return Err(DomainError::invalid(
                        "action.base",
                        format!(
                            "holds {} events but parent_version is {}",
                            fork.base.len(),
                            fork.parent_version
                        ),
                    ));
                }
                if !fork.base.first().is_some_and(|e| {
                    !e.change.is_org_change() && !matches!(e.change, Change::DecisionRevoked(_))
                }) {
                    return Err(DomainError::invalid(
                        "action.base",
                        "must start with the parent's TimelineCreated or TimelineForked event",
                    ));
                }
                Change::TimelineForked(fork)
            }
            Action::RevokeDecision(r) => Change::DecisionRevoked(self.check_revocation(r)?),
            Action::RecordAdoption(a) => {
                let parent = self.info.as_ref().and_then(|i| i.forked_from.as_ref());
                if parent.is_none_or(|(p, _)| *p != a.into) {
                    return Err(DomainError::invalid(
                        "action.into",
                        format!("is not the timeline this one was forked from: {}", a.into),
                    ));
                }
                Change::ScenarioAdopted(a)
            }
            other => {
                let change = org_change(other);
                check_trimmed_change(&change)?;
                self.check_insert(&cmd.context, &change, refuse_no_op)?;
                change
            }
        };
        Ok(Some(TimelineEvent {
            context: cmd.context,
            change,
        }))
    }

    fn check_revocation(&self, r: Revocation) -> Result<Revoked, DomainError> {
        check_text("action.case_number", &r.case_number)?;
        let candidates: Vec<&Record> = self
            .records
            .iter()
            .filter(|x| {
                x.event.change.is_org_change()
                    && x.revoked_by.is_none()
                    && x.event.context.decision.case_number == r.case_number
            })
            .collect();
        let targets: Vec<CommandId> = match &r.command_ids {
            None => candidates
                .iter()
                .map(|x| x.event.context.command_id.clone())
                .collect(),
            Some(ids) => {
                for id in ids {
                    if !candidates.iter().any(|x| &x.event.context.command_id == id) {
                        return Err(DomainError::invalid(
                            "action.command_ids",
                            format!(
                                "{id} is not a change in force under decision {}",
                                r.case_number
                            ),
                        ));
                    }
                }
                ids.clone()
            }
        };
        if targets.is_empty() {
            return Err(DomainError::UnknownDecision {
                case_number: r.case_number,
            });
        }
        // Replay without the revoked changes; every change that no longer holds is a dependent.
        let mut state = OrgState::default();
        let mut dependents = Vec::new();
        for rec in self.in_force(self.version) {
            if targets.contains(&rec.event.context.command_id) {
                continue;
            }
            let eff = rec.event.context.effective_from;
            match state.apply_change(eff, &rec.event.change) {
                Ok(()) => {}
                Err(e) => dependents.push(format!(
                    "{} (decision {}, effective {}): {}",
                    rec.event.context.command_id, rec.event.context.decision.case_number, eff, e
                )),
            }
        }
        if !dependents.is_empty() {
            return Err(DomainError::RevocationBlocked {
                case_number: r.case_number,
                dependents,
            });
        }
        Ok(Revoked {
            case_number: r.case_number,
            revoked: targets,
        })
    }

    /// Records an inherited event (from a fork's base) without touching the own version.
    fn apply_inherited(&mut self, event: TimelineEvent) {
        self.push(event, 0);
    }

    fn push(&mut self, mut event: TimelineEvent, version: u64) {
        match &mut event.change {
            Change::TimelineCreated(def) if version > 0 => {
                self.info = Some(TimelineInfo {
                    name: def.name.clone(),
                    description: def.description.clone(),
                    forked_from: None,
                    adopted_into: None,
                });
            }
            Change::TimelineForked(fork) => {
                if version > 0 {
                    self.info = Some(TimelineInfo {
                        name: fork.name.clone(),
                        description: String::new(),
                        forked_from: Some((fork.parent.clone(), fork.parent_version)),
                        adopted_into: None,
                    });
                }
                for e in std::mem::take(&mut fork.base) {
                    self.apply_inherited(e);
                }
            }
            // Inherited (version 0): the parent's adoption, not this timeline's.
            Change::ScenarioAdopted(a) if version > 0 => {
                if let Some(info) = &mut self.info {
                    info.adopted_into = Some((a.into.clone(), a.into_version));
                }
            }
            Change::DecisionRevoked(r) => {
                let revoked: BTreeSet<&CommandId> = r.revoked.iter().collect();
                for rec in &mut self.records {
                    if rec.revoked_by.is_none() && revoked.contains(&rec.event.context.command_id) {
                        rec.revoked_by = Some(version);
                    }
                }
            }
            _ => {}
        }
        self.commands
            .insert(event.context.command_id.clone(), self.records.len());
        self.records.push(Record {
            event,
            version,
            revoked_by: None,
        });
    }
}

/// The units a change brings into existence.
pub fn established_units(change: &Change) -> Vec<UnitId> {
    match change {
        Change::UnitEstablished(d) => vec![d.unit.clone()],
        Change::UnitsMerged(Merge {
            successor: Successor::New(d),
            ..
        }) => vec![d.unit.clone()],
        Change::UnitSplit(s) => s
            .parts
            .iter()
            .filter_map(|p| match &p.target {
                PartTarget::New(d) => Some(d.unit.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The event an org-changing action records (its intent, unchanged).
fn org_change(action: Action) -> Change {
    match action {
        Action::CreateTimeline(d) => Change::TimelineCreated(d),
        Action::ForkTimeline(f) => Change::TimelineForked(f),
        Action::EstablishUnit(d) => Change::UnitEstablished(d),
        Action::RenameUnit(r) => Change::UnitRenamed(r),
        Action::MoveUnit(m) => Change::UnitMoved(m),
        Action::DissolveUnit(d) => Change::UnitDissolved(d),
        Action::MergeUnits(m) => Change::UnitsMerged(m),
        Action::SplitUnit(s) => Change::UnitSplit(s),
        Action::TransferArea(t) => Change::AreaTransferred(t),
        Action::RegisterService(s) => Change::ServiceRegistered(s),
        Action::RetireService(r) => Change::ServiceRetired(r),
        Action::AssignResponsibility(a) => Change::ResponsibilityAssigned(a),
        Action::TransferResponsibility(t) => Change::ResponsibilityTransferred(t),
        Action::WithdrawResponsibility(w) => Change::ResponsibilityWithdrawn(w),
        Action::CentraliseService(c) => Change::ServiceCentralised(c),
        Action::DecentraliseService(d) => Change::ServiceDecentralised(d),
        Action::OpenServicePoint(p) => Change::ServicePointOpened(p),
        Action::CloseServicePoint(c) => Change::ServicePointClosed(c),
        Action::SetServicePointServices(s) => Change::ServicePointServicesSet(s),
        Action::TransferServicePoint(t) => Change::ServicePointTransferred(t),
        Action::RevokeDecision(r) => Change::DecisionRevoked(Revoked {
            case_number: r.case_number,
            revoked: r.command_ids.unwrap_or_default(),
        }),
        Action::RecordAdoption(a) => Change::ScenarioAdopted(a),
    }
}

/// Whether a retried action asks for what the recorded change did (so the retry is a no-op).
fn same_request(action: &Action, recorded: &Change) -> bool {
    match (action, recorded) {
        (Action::RevokeDecision(a), Change::DecisionRevoked(r)) => {
            a.case_number == r.case_number
                && a.command_ids.as_ref().is_none_or(|ids| ids == &r.revoked)
        }
        // A fork's record has its base moved out; compare everything else.
        (Action::ForkTimeline(a), Change::TimelineForked(r)) => {
            a.name == r.name && a.parent == r.parent && a.parent_version == r.parent_version
        }
        _ => &org_change(action.clone()) == recorded,
    }
}

/// What a command under a recorded id differs in from the recorded one, for the refusal: an
/// import whose row changed only in its decision says so, not just "a different command".
fn differences(cmd: &TimelineCommand, recorded: &TimelineEvent) -> String {
    let (now, was) = (&cmd.context, &recorded.context);
    let mut parts = Vec::new();
    if !same_request(&cmd.action, &recorded.change) {
        parts.push("its change");
    }
    if now.effective_from != was.effective_from {
        parts.push("its effective date");
    }
    if now.decision != was.decision {
        parts.push("its decision");
    }
    if now.actor != was.actor {
        parts.push("its actor");
    }
    if now.rationale != was.rationale {
        parts.push("its rationale");
    }
    if parts.is_empty() {
        parts.push("its details");
    }
    parts.join(", ")
}

/// [`same_request`], with every list of strings (areas, command ids, units) compared as a set:
/// the order a file happened to list them in is not part of the decision.
fn same_in_substance(action: &Action, recorded: &Change) -> bool {
    match (action, recorded) {
        (Action::RevokeDecision(a), Change::DecisionRevoked(r)) => {
            a.case_number == r.case_number
                && a.command_ids.as_ref().is_none_or(|ids| {
                    let mut ids: Vec<_> = ids.iter().collect();
                    let mut was: Vec<_> = r.revoked.iter().collect();
                    ids.sort();
                    ids.dedup();
                    was.sort();
                    was.dedup();
                    ids == was
                })
        }
        (Action::ForkTimeline(_), _) | (Action::CreateTimeline(_), _) => {
            same_request(action, recorded)
        }
        _ => {
            let as_set = |change: &Change| {
                serde_json::to_value(change).map(|mut v| {
                    sort_string_lists(&mut v);
                    v
                })
            };
            match (as_set(&org_change(action.clone())), as_set(recorded)) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
        }
    }
}

/// Sorts, in place and at any depth, every array whose items are all strings.
fn sort_string_lists(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Array(items) if items.iter().all(serde_json::Value::is_string) => {
            items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            items.dedup();
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(sort_string_lists),
        serde_json::Value::Object(members) => members.values_mut().for_each(sort_string_lists),
        _ => {}
    }
}

impl Aggregate for Timeline {
    const TYPE: &'static str = "timeline";
    type Command = TimelineCommand;
    type Event = TimelineEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if let Some(event) = self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.version += 1;
        let v = self.version;
        self.push(event, v);
    }
}

#[cfg(test)]
mod tests;
