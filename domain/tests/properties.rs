//! Property tests over random command sequences.
//!
//! A sequence of abstract operations on small pools of units, areas and services is turned into
//! commands at random effective dates (deliberately out of order, so that changes are often
//! recorded before or after the ones around them). Refused commands are part of the game; the
//! properties must hold for whatever the timeline accepted:
//! (a) at every date, and as known at every version, each (service, area) pair has at most one
//!     responsible unit, and that unit is live, the area active and the service active;
//! (b) the unit tree never has a cycle;
//! (c) re-applying the stored events to a fresh aggregate gives the same timeline and states, and
//!     a timeline restored from its JSON snapshot decides exactly as the original;
//! (d) a merge effective on date D leaves every query for dates before D unchanged;
//! and a refused command leaves the timeline exactly as it was.

use chrono::{Days, NaiveDate};
use cqrs_es::Aggregate;
use omorg_domain::testing::*;
use omorg_domain::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// The event type an action records.
fn past_tense(action: &str) -> String {
    match action {
        "EstablishUnit" => "UnitEstablished",
        "RenameUnit" => "UnitRenamed",
        "MoveUnit" => "UnitMoved",
        "DissolveUnit" => "UnitDissolved",
        "MergeUnits" => "UnitsMerged",
        "SplitUnit" => "UnitSplit",
        "TransferArea" => "AreaTransferred",
        "RegisterService" => "ServiceRegistered",
        "RetireService" => "ServiceRetired",
        "AssignResponsibility" => "ResponsibilityAssigned",
        "TransferResponsibility" => "ResponsibilityTransferred",
        "WithdrawResponsibility" => "ResponsibilityWithdrawn",
        "CentraliseService" => "ServiceCentralised",
        "DecentraliseService" => "ServiceDecentralised",
        "OpenServicePoint" => "ServicePointOpened",
        "CloseServicePoint" => "ServicePointClosed",
        "SetServicePointServices" => "ServicePointServicesSet",
        "TransferServicePoint" => "ServicePointTransferred",
        other => other,
    }
    .to_string()
}

fn probe_dates() -> Vec<NaiveDate> {
    (0..=21)
        .flat_map(|k| [date(k) - Days::new(1), date(k)])
        .collect()
}

fn check_invariants(s: &OrgState, when: &str) -> Result<(), TestCaseError> {
    let mut pairs = BTreeSet::new();
    for (svc, a, u) in s.responsibility_rows() {
        prop_assert!(
            pairs.insert((svc.clone(), a.clone())),
            "{when}: two units for ({svc}, {a})"
        );
        prop_assert!(
            s.units.get(u).is_some_and(|x| x.is_live()),
            "{when}: ({svc}, {a}) held by dead or unknown unit {u}"
        );
        prop_assert!(
            s.areas.get(a).is_some_and(|x| x.is_active()),
            "{when}: ({svc}, {a}) on a retired area"
        );
        prop_assert!(
            s.services.get(svc).is_some_and(|x| x.is_active()),
            "{when}: retired service {svc} still held"
        );
    }
    prop_assert!(!s.has_cycle(), "{when}: the unit tree has a cycle");
    for u in s.live_units() {
        if let Some(p) = &u.parent {
            prop_assert!(
                s.units.contains_key(p),
                "{when}: {} has unknown parent {p}",
                u.id
            );
        }
    }
    for a in s.areas.values().filter(|a| a.is_active()) {
        if let Some(h) = &a.holder {
            prop_assert!(
                s.units.get(h).is_some_and(|x| x.is_live()),
                "{when}: area {} held by dead unit {h}",
                a.code
            );
        }
    }
    for p in s.service_points.values().filter(|p| p.is_open()) {
        prop_assert!(
            s.units.get(&p.unit).is_some_and(|x| x.is_live()),
            "{when}: open service point {} run by dead or unknown unit {}",
            p.id,
            p.unit
        );
    }
    Ok(())
}

/// Commands and events as `#[serde(flatten)]` writes and reads them: the wire form that stored
/// events, snapshots and API clients have, which the hand-written form must keep.
mod flattened {
    use omorg_domain::{Action, Change, ChangeContext};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct Command {
        #[serde(flatten)]
        pub context: ChangeContext,
        pub action: Action,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct Event {
        #[serde(flatten)]
        pub context: ChangeContext,
        pub change: Change,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// (a) and (b), at every probed date and as known at every version.
    #[test]
    fn invariants_hold_at_every_date_and_every_version(ops in ops()) {
        let (t, _) = build(&ops)?;
        for v in 1..=t.version() {
            for d in probe_dates() {
                check_invariants(&t.state_at_as_known(d, v), &format!("{d} as known at v{v}"))?;
            }
        }
    }

    /// A refused change leaves the state untouched (`apply_change` is atomic), whatever the
    /// change and the state.
    #[test]
    fn a_refused_change_leaves_the_state_untouched(ops in ops(), tries in proptest::collection::vec((op(), 0..20u64), 1..20)) {
        let (t, _) = build(&ops)?;
        // Each change is built twice: with parameters picked from the state (plausible, refused
        // late) and picked blind (from an empty state: refused anywhere).
        for (n, (o, k, blind)) in tries.iter().flat_map(|(o, k)| [(o, k, false), (o, k, true)]).enumerate() {
            let mut state = t.state_at(date(*k));
            let before = state.clone();
            let basis = if blind { OrgState::default() } else { state.clone() };
            let cmd = TimelineCommand { context: ctx(3000 + n, *k), action: action(o, 3000 + n, &basis) };
            let change = match cmd.action {
                Action::RevokeDecision(_) | Action::CreateTimeline(_) | Action::ForkTimeline(_) => continue,
                other => serde_json::from_value::<Change>(
                    serde_json::to_value(&other).expect("json")
                        .as_object().map(|m| {
                            let mut m = m.clone();
                            let ty = m["type"].as_str().unwrap_or_default().to_string();
                            m.insert("type".into(), serde_json::Value::String(past_tense(&ty)));
                            serde_json::Value::Object(m)
                        }).expect("object"),
                ).expect("change"),
            };
            if state.apply_change(date(*k), &change).is_err() {
                prop_assert_eq!(&state, &before, "refused {} changed the state", change.type_name());
            }
        }
    }

    /// (c) replaying the events rebuilds the same aggregate; a snapshot decides like the original.
    #[test]
    fn replay_and_snapshot_give_the_same_timeline(ops in ops(), next in op(), k in 0..20u64) {
        let (mut t, events) = build(&ops)?;
        let mut replayed = Timeline::default();
        for e in events {
            replayed.apply(e);
        }
        prop_assert_eq!(&replayed, &t);
        for d in probe_dates() {
            prop_assert_eq!(replayed.state_at(d), t.state_at(d));
        }
        let json = serde_json::to_string(&t).expect("serialise");
        let mut restored: Timeline = serde_json::from_str(&json).expect("deserialise");
        prop_assert_eq!(&restored, &t);
        let cmd = TimelineCommand { context: ctx(1000, k), action: action(&next, 1000, &t.state_at(date(k))) };
        prop_assert_eq!(restored.decide(cmd.clone()), t.decide(cmd));
    }

    /// Every accepted command and its event have the same JSON (text, member order and all) as
    /// with `#[serde(flatten)]`, and each form reads the other's.
    #[test]
    fn commands_and_events_keep_their_flattened_json(ops in ops()) {
        let (_, events, commands) = build_commands(&ops)?;
        for c in commands {
            let old = flattened::Command { context: c.context.clone(), action: c.action.clone() };
            let text = serde_json::to_string(&c).expect("json");
            prop_assert_eq!(&text, &serde_json::to_string(&old).expect("json"));
            prop_assert_eq!(&serde_json::from_str::<TimelineCommand>(&text).expect("read"), &c);
            prop_assert_eq!(serde_json::from_str::<flattened::Command>(&text).expect("read"), old);
        }
        for e in events {
            let old = flattened::Event { context: e.context.clone(), change: e.change.clone() };
            let text = serde_json::to_string(&e).expect("json");
            prop_assert_eq!(&text, &serde_json::to_string(&old).expect("json"));
            prop_assert_eq!(&serde_json::from_str::<TimelineEvent>(&text).expect("read"), &e);
            prop_assert_eq!(serde_json::from_str::<flattened::Event>(&text).expect("read"), old);
        }
    }

    /// Asking again for every recorded change (`Change::to_action`), in order, on a fresh
    /// timeline decides exactly the same events: what adopting a scenario relies on.
    #[test]
    fn every_change_asked_for_again_decides_the_same_event(ops in ops()) {
        let (t, events) = build(&ops)?;
        let mut again = Timeline::default();
        for e in events {
            let event = match e.change.to_action() {
                None => e.clone(),
                Some(action) => {
                    let command = TimelineCommand { context: e.context.clone(), action };
                    again.decide(command).expect("accepted again").expect("an event")
                }
            };
            prop_assert_eq!(&event, &e);
            again.apply(event);
        }
        prop_assert_eq!(&again, &t);
    }

    /// (d) a merge effective on D changes nothing before D.
    #[test]
    fn a_merge_leaves_earlier_dates_unchanged(ops in ops(), a in 0..UNITS, b in 0..UNITS, into_new in any::<bool>(), k in 1..20u64) {
        let (mut t, _) = build(&ops)?;
        let before: Vec<OrgState> = probe_dates().into_iter().map(|d| t.state_at(d)).collect();
        let merge = TimelineCommand {
            context: ctx(2000, k),
            action: action(&Op::Merge { a, b, into_new, new: 9 }, 2000, &t.state_at(date(k))),
        };
        if let Ok(Some(e)) = t.decide(merge) {
            t.apply(e);
            for (d, old) in probe_dates().into_iter().zip(before) {
                if d < date(k) {
                    prop_assert_eq!(t.state_at(d), old, "state on {} changed", d);
                }
            }
            check_invariants(&t.state_at(date(k)), "after the merge")?;
        }
    }
}

/// The generator is worth something only if it produces accepted commands of every kind.
#[test]
fn the_generator_reaches_every_kind_of_change() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut kinds = BTreeSet::new();
    for _ in 0..400 {
        let ops = ops().new_tree(&mut runner).expect("tree").current();
        let (_, events) = build(&ops).expect("build");
        kinds.extend(events.iter().map(|e| e.change.type_name()));
    }
    for k in [
        "UnitEstablished",
        "UnitRenamed",
        "UnitMoved",
        "UnitDissolved",
        "UnitsMerged",
        "UnitSplit",
        "AreaTransferred",
        "ServiceRegistered",
        "ServiceRetired",
        "ResponsibilityAssigned",
        "ResponsibilityTransferred",
        "ResponsibilityWithdrawn",
        "ServiceCentralised",
        "ServiceDecentralised",
        "ServicePointOpened",
        "ServicePointClosed",
        "ServicePointTransferred",
        "DecisionRevoked",
    ] {
        assert!(
            kinds.contains(k),
            "no accepted {k} in 400 random sequences: {kinds:?}"
        );
    }
}
