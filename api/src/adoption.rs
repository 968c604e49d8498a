//! Planning an adoption: which commands a scenario's own changes become when they are asked of
//! the timeline it was forked from ([`crate::service::Omorg::adopt`] runs them).
//!
//! Pure: it reads the scenario's changes and the parent's aggregate, and decides nothing the
//! domain would not decide again when the batch runs.

use crate::error::ApiError;
use crate::service::AdoptRequest;
use omorg_domain::{
    Action, Change, ChangeContext, CommandId, Revocation, Timeline, TimelineCommand, TimelineEvent,
};
use omorg_store::Committed;
use std::collections::{BTreeMap, BTreeSet};

/// The batch an adoption asks of the parent.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The commands, in the scenario's order.
    pub commands: Vec<TimelineCommand>,
    /// For each command, its place among the scenario's own changes (what a refusal's `index`
    /// reports: a change can become no command, or several).
    pub places: Vec<usize>,
}

/// The commands that adopt `own` (the scenario's own changes, in order, without its records of
/// earlier adoptions) into `parent`, with ids `<adoption>/<version>`.
///
/// - Each change is asked for again (`Change::to_action`) with its effective date, resting on
///   the adopting decision; its planned decision goes into the rationale.
/// - A change the scenario withdrew itself is adopted net: one the parent does not have yet is
///   left out, with the part of a revocation that withdrew it; one an earlier adoption copied is
///   withdrawn in the parent too (`<adoption>/<version>.<n>`, one revocation per decision the
///   copies rest on), unless the parent withdrew that copy itself.
/// - A command an earlier adoption already wrote is asked for with the context it was written
///   with, so that asking again is a no-op whatever this request's decision.
pub(crate) fn plan(
    parent: &Timeline,
    scenario: &str,
    own: &[&Committed<TimelineEvent>],
    adoption: &CommandId,
    req: &AdoptRequest,
    actor: &str,
) -> Result<Plan, ApiError> {
    let copy_of = |version: u64| {
        CommandId::new(format!("{adoption}/{version}"))
            .map_err(|e| ApiError::invalid("command_id", e.to_string()))
    };
    let own_ids: BTreeSet<&CommandId> = own.iter().map(|c| &c.event.context.command_id).collect();
    let own_version: BTreeMap<&CommandId, u64> = own
        .iter()
        .map(|c| (&c.event.context.command_id, c.record.stream_version))
        .collect();
    let withdrawn: BTreeSet<&CommandId> = own
        .iter()
        .filter_map(|c| match &c.event.change {
            Change::DecisionRevoked(r) => Some(r.revoked.iter()),
            _ => None,
        })
        .flatten()
        .filter(|id| own_ids.contains(id))
        .collect();
    // A copy the parent withdrew by a decision of its own (not by this adoption's revocation of
    // it, which a retry asks for again) is not revoked a second time.
    let ours = format!("{adoption}/");
    let withdrawn_by_parent = |copy: &CommandId| {
        parent
            .record_of(copy)
            .and_then(|r| r.revoked_by)
            .is_some_and(|v| {
                parent.records().iter().any(|r| {
                    r.version == v && !r.event.context.command_id.as_str().starts_with(&ours)
                })
            })
    };

    let mut commands = Vec::with_capacity(own.len());
    let mut places = Vec::with_capacity(own.len());
    for (place, c) in own.iter().enumerate() {
        let version = c.record.stream_version;
        let planned = &c.event.context;
        let Some(action) = c.event.change.to_action() else {
            return Err(ApiError::invalid(
                "scenario",
                format!("change {version} starts a timeline and cannot be adopted"),
            ));
        };
        let copy = copy_of(version)?;
        let mut asks: Vec<(CommandId, Action)> = Vec::new();
        match action {
            Action::RevokeDecision(r) => {
                let (mine, inherited): (Vec<CommandId>, Vec<CommandId>) = r
                    .command_ids
                    .unwrap_or_default()
                    .into_iter()
                    .partition(|id| own_ids.contains(id));
                if !inherited.is_empty() {
                    asks.push((
                        copy.clone(),
                        Action::RevokeDecision(Revocation {
                            case_number: r.case_number,
                            command_ids: Some(inherited),
                        }),
                    ));
                }
                let mut by_case: BTreeMap<String, Vec<CommandId>> = BTreeMap::new();
                for id in &mine {
                    let Some(v) = own_version.get(id) else {
                        continue;
                    };
                    let their_copy = copy_of(*v)?;
                    if let Some(rec) = parent.record_of(&their_copy) {
                        if !withdrawn_by_parent(&their_copy) {
                            by_case
                                .entry(rec.event.context.decision.case_number.clone())
                                .or_default()
                                .push(their_copy);
                        }
                    }
                }
                for (n, (case, ids)) in by_case.into_iter().enumerate() {
                    let id = CommandId::new(format!("{copy}.{}", n + 1))
                        .map_err(|e| ApiError::invalid("command_id", e.to_string()))?;
                    asks.push((
                        id,
                        Action::RevokeDecision(Revocation {
                            case_number: case,
                            command_ids: Some(ids),
                        }),
                    ));
                }
            }
            // Withdrawn in the scenario and not in the parent yet: left out.
            _ if withdrawn.contains(&planned.command_id) && parent.record_of(&copy).is_none() => {}
            action => asks.push((copy, action)),
        }
        for (command_id, action) in asks {
            let context = match parent.record_of(&command_id) {
                Some(written) => written.event.context.clone(),
                None => ChangeContext {
                    command_id,
                    effective_from: planned.effective_from,
                    decision: req.decision.clone(),
                    actor: actor.to_owned(),
                    rationale: rationale(scenario, version, planned, &req.rationale),
                },
            };
            commands.push(TimelineCommand { context, action });
            places.push(place);
        }
    }
    if commands.is_empty() {
        return Err(ApiError::invalid(
            "scenario",
            "has no changes of its own to adopt: it withdrew every one it made",
        ));
    }
    Ok(Plan { commands, places })
}

/// An adopted change's rationale: where it comes from, then the adoption's and the change's own.
fn rationale(scenario: &str, version: u64, planned: &ChangeContext, adopting: &str) -> String {
    let mut out = format!(
        "Adopted from scenario {scenario} (its change {version}, command {}, planned under {} {})",
        planned.command_id, planned.decision.body, planned.decision.case_number
    );
    for text in [adopting, planned.rationale.as_str()] {
        if !text.is_empty() {
            out.push_str(": ");
            out.push_str(text);
        }
    }
    out
}
