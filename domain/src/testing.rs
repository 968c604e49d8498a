//! Random command histories for property tests (feature `testing`).
//!
//! A sequence of abstract operations on small pools of units, areas and services is turned into
//! commands at random effective dates, deliberately out of order, starting from a small
//! organisation (a municipality, three districts with an area each, a central agency, services).
//! Refused commands are part of the game: [`build`] keeps what the timeline accepted. The domain's
//! own properties and the projections' consistency properties both run on these histories.

#![allow(missing_docs)] // test support: the names say it

use crate::*;
use chrono::{Days, NaiveDate};
use cqrs_es::Aggregate;
use proptest::prelude::*;

pub const UNITS: usize = 6;
pub const AREAS: usize = 6;
pub const SERVICES: usize = 3;

#[derive(Debug, Clone)]
pub enum Op {
    Establish {
        u: usize,
        kind: usize,
        parent: Option<usize>,
        area: Option<usize>,
    },
    Rename {
        u: usize,
        code: usize,
    },
    Move {
        u: usize,
        parent: Option<usize>,
    },
    Dissolve {
        u: usize,
    },
    Merge {
        a: usize,
        b: usize,
        into_new: bool,
        new: usize,
    },
    Split {
        source: usize,
        to: usize,
        new: bool,
        keep: bool,
    },
    TransferArea {
        area: usize,
        to: usize,
    },
    Register {
        s: usize,
    },
    Retire {
        s: usize,
    },
    Assign {
        s: usize,
        u: usize,
        areas: Vec<usize>,
    },
    TransferResp {
        s: usize,
        from: usize,
        to: usize,
    },
    Withdraw {
        s: usize,
        u: usize,
    },
    Centralise {
        s: usize,
        u: usize,
    },
    Decentralise {
        s: usize,
    },
    OpenPoint {
        p: usize,
        u: usize,
        s: usize,
    },
    ClosePoint {
        p: usize,
    },
    TransferPoint {
        p: usize,
        to: usize,
    },
    Revoke {
        nth: usize,
    },
}

pub fn op() -> impl Strategy<Value = Op> {
    let u = 0..UNITS;
    prop_oneof![
        12 => (u.clone(), 0..3usize, proptest::option::of(0..UNITS), proptest::option::of(0..AREAS))
            .prop_map(|(u, kind, parent, area)| Op::Establish { u, kind, parent, area }),
        3 => (u.clone(), 0..3usize).prop_map(|(u, code)| Op::Rename { u, code }),
        6 => (u.clone(), proptest::option::of(0..UNITS)).prop_map(|(u, parent)| Op::Move { u, parent }),
        3 => u.clone().prop_map(|u| Op::Dissolve { u }),
        6 => (u.clone(), u.clone(), any::<bool>(), 0..3usize)
            .prop_map(|(a, b, into_new, new)| Op::Merge { a, b, into_new, new }),
        6 => (u.clone(), u.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(source, to, new, keep)| Op::Split { source, to, new, keep }),
        3 => (0..AREAS, u.clone()).prop_map(|(area, to)| Op::TransferArea { area, to }),
        9 => (0..SERVICES).prop_map(|s| Op::Register { s }),
        1 => (0..SERVICES).prop_map(|s| Op::Retire { s }),
        12 => (0..SERVICES, u.clone(), proptest::collection::vec(0..AREAS, 1..3))
            .prop_map(|(s, u, areas)| Op::Assign { s, u, areas }),
        9 => (0..SERVICES, u.clone(), u.clone()).prop_map(|(s, from, to)| Op::TransferResp { s, from, to }),
        8 => (0..SERVICES, u.clone()).prop_map(|(s, u)| Op::Withdraw { s, u }),
        10 => (0..SERVICES, u.clone()).prop_map(|(s, u)| Op::Centralise { s, u }),
        8 => (0..SERVICES).prop_map(|s| Op::Decentralise { s }),
        3 => (0..3usize, u.clone(), 0..SERVICES).prop_map(|(p, u, s)| Op::OpenPoint { p, u, s }),
        3 => (0..3usize).prop_map(|p| Op::ClosePoint { p }),
        3 => (0..3usize, u.clone()).prop_map(|(p, to)| Op::TransferPoint { p, to }),
        3 => (0..40usize).prop_map(|nth| Op::Revoke { nth }),
    ]
}

pub fn date(k: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Days::new(k * 73)
}
pub fn unit_id(i: usize) -> UnitId {
    UnitId::new(format!("u{i}")).unwrap()
}
pub fn new_unit_id(i: usize, n: usize) -> UnitId {
    UnitId::new(format!("n{i}-{n}")).unwrap()
}
pub fn area(i: usize) -> AreaCode {
    AreaCode::new(format!("a{i}")).unwrap()
}
pub fn area_def(i: usize) -> AreaDef {
    AreaDef {
        code: area(i),
        name: format!("Area {i}"),
        carved_from: None,
    }
}
pub fn service(i: usize) -> ServiceCode {
    ServiceCode::new(format!("s{i}")).unwrap()
}

pub fn ctx(n: usize, k: u64) -> ChangeContext {
    ChangeContext {
        command_id: CommandId::new(format!("cmd-{n}")).unwrap(),
        effective_from: date(k),
        decision: DecisionRef {
            case_number: format!("{n}/1"),
            body: "Bystyret".into(),
            decision_date: date(0),
            title: "t".into(),
            link: None,
        },
        actor: "prop".into(),
        rationale: String::new(),
    }
}

pub fn def(id: UnitId, kind: UnitKind, parent: Option<UnitId>, areas: Vec<AreaDef>) -> UnitDef {
    UnitDef {
        name: id.to_string(),
        unit: id,
        code: None,
        kind,
        parent,
        areas,
        attributes: Default::default(),
    }
}

/// Turns an abstract operation into an action, looking at the state on its date where that makes
/// acceptance likely (e.g. the areas a unit holds), but never guaranteeing it.
pub fn action(op: &Op, n: usize, state: &OrgState) -> Action {
    const KINDS: [UnitKind; 3] = [
        UnitKind::District,
        UnitKind::CentralAgency,
        UnitKind::Municipality,
    ];
    match op.clone() {
        Op::Establish {
            u,
            kind,
            parent,
            area: a,
        } => Action::EstablishUnit(def(
            unit_id(u),
            KINDS[kind],
            parent.map(unit_id),
            a.map(|a| AreaDef {
                code: area(a),
                name: format!("Area {a}"),
                carved_from: None,
            })
            .into_iter()
            .collect(),
        )),
        Op::Rename { u, code } => Action::RenameUnit(Rename {
            unit: unit_id(u),
            name: Some(format!("renamed {n}")),
            code: Some(format!("code-{code}")),
        }),
        Op::Move { u, parent } => Action::MoveUnit(Move {
            unit: unit_id(u),
            new_parent: parent.map(unit_id),
        }),
        Op::Dissolve { u } => Action::DissolveUnit(Dissolve { unit: unit_id(u) }),
        Op::Merge {
            a,
            b,
            into_new,
            new,
        } => Action::MergeUnits(Merge {
            sources: vec![unit_id(a), unit_id(b)],
            successor: if into_new {
                Successor::New(def(new_unit_id(new, n), UnitKind::District, None, vec![]))
            } else {
                Successor::Existing { unit: unit_id(b) }
            },
        }),
        Op::Split {
            source,
            to,
            new,
            keep,
        } => {
            let held = state.areas_of(&unit_id(source));
            let (first, rest) = held
                .split_first()
                .map(|(f, r)| (vec![f.clone()], r.to_vec()))
                .unwrap_or_default();
            let target = if new {
                PartTarget::New(def(new_unit_id(to, n), UnitKind::District, None, vec![]))
            } else {
                PartTarget::Existing { unit: unit_id(to) }
            };
            let mut parts = vec![SplitPart {
                target,
                areas: first,
                carved_areas: vec![],
                children: vec![],
            }];
            if keep {
                parts.push(SplitPart {
                    target: PartTarget::Source,
                    areas: rest,
                    carved_areas: vec![],
                    children: vec![],
                });
            } else if let Some(last) = parts.last_mut() {
                last.areas.extend(rest);
                last.children = state.children_of(&unit_id(source));
            }
            Action::SplitUnit(Split {
                source: unit_id(source),
                parts,
            })
        }
        Op::TransferArea { area: a, to } => Action::TransferArea(AreaTransfer {
            area: area(a),
            from: state
                .areas
                .get(&area(a))
                .and_then(|x| x.holder.clone())
                .unwrap_or_else(|| unit_id(0)),
            to: unit_id(to),
        }),
        Op::Register { s } => Action::RegisterService(ServiceDef {
            service: service(s),
            name: format!("S{s}"),
            category: "c".into(),
        }),
        Op::Retire { s } => Action::RetireService(ServiceRetirement {
            service: service(s),
        }),
        Op::Assign { s, u, areas } => {
            let mut list: Vec<AreaCode> = areas.into_iter().map(area).collect();
            list.sort();
            list.dedup();
            Action::AssignResponsibility(Assignment {
                service: service(s),
                unit: unit_id(u),
                areas: list,
            })
        }
        Op::TransferResp { s, from, to } => {
            Action::TransferResponsibility(ResponsibilityTransfer {
                service: service(s),
                from: pick_holder(state, s, from),
                to: unit_id(to),
                areas: None,
            })
        }
        Op::Withdraw { s, u } => Action::WithdrawResponsibility(Withdrawal {
            service: service(s),
            unit: pick_holder(state, s, u),
            areas: None,
        }),
        Op::Centralise { s, u } => {
            let agencies: Vec<UnitId> = state
                .live_units()
                .filter(|x| x.kind == UnitKind::CentralAgency)
                .map(|x| x.id.clone())
                .collect();
            let agency = if agencies.is_empty() {
                unit_id(u)
            } else {
                agencies[u % agencies.len()].clone()
            };
            Action::CentraliseService(Centralisation {
                service: service(s),
                agency,
            })
        }
        Op::Decentralise { s } => Action::DecentraliseService(Decentralisation {
            service: service(s),
            agency: None,
        }),
        Op::OpenPoint { p, u, s } => Action::OpenServicePoint(ServicePointDef {
            point: ServicePointId::new(format!("p{p}")).unwrap(),
            name: format!("Point {p}"),
            unit: unit_id(u),
            area: None,
            services: vec![service(s)],
        }),
        Op::ClosePoint { p } => Action::CloseServicePoint(ServicePointClosure {
            point: ServicePointId::new(format!("p{p}")).unwrap(),
        }),
        Op::TransferPoint { p, to } => {
            let point = ServicePointId::new(format!("p{p}")).unwrap();
            // The runner as it stands on the date, so that most transfers are accepted.
            let from = state
                .service_points
                .get(&point)
                .map_or_else(|| unit_id(0), |x| x.unit.clone());
            Action::TransferServicePoint(ServicePointTransfer {
                point,
                from,
                to: unit_id(to),
            })
        }
        Op::Revoke { nth } => Action::RevokeDecision(Revocation {
            case_number: format!("{nth}/1"),
            command_ids: None,
        }),
    }
}

/// One of the units responsible for service `s` on the state's date, or `u{i}` if none is.
pub fn pick_holder(state: &OrgState, s: usize, i: usize) -> UnitId {
    let holders: Vec<UnitId> = state
        .responsibility_rows()
        .filter(|(svc, _, _)| **svc == service(s))
        .map(|(_, _, u)| u.clone())
        .collect();
    if holders.is_empty() {
        unit_id(i)
    } else {
        holders[i % holders.len()].clone()
    }
}

/// Runs the operations; returns the timeline and the events it accepted.
pub fn build(ops: &[(Op, u64)]) -> Result<(Timeline, Vec<TimelineEvent>), TestCaseError> {
    build_commands(ops).map(|(t, events, _)| (t, events))
}

/// Like [`build`], also returning the accepted commands (to run them through a store).
#[allow(clippy::type_complexity)]
pub fn build_commands(
    ops: &[(Op, u64)],
) -> Result<(Timeline, Vec<TimelineEvent>, Vec<TimelineCommand>), TestCaseError> {
    let mut t = Timeline::default();
    let mut events = Vec::new();
    let mut commands = Vec::new();
    let create = TimelineCommand {
        context: ctx(usize::MAX, 0),
        action: Action::CreateTimeline(TimelineDef {
            name: "prop".into(),
            description: String::new(),
        }),
    };
    let e = t.decide(create.clone()).expect("create").expect("event");
    t.apply(e.clone());
    events.push(e);
    commands.push(create);
    // Services are registered up front so that responsibility operations have something to act on;
    // `Register` operations later still exercise the duplicate refusal.
    for i in 0..SERVICES {
        let reg = TimelineCommand {
            context: ctx(10_000 + i, 0),
            action: Action::RegisterService(ServiceDef {
                service: service(i),
                name: format!("S{i}"),
                category: "c".into(),
            }),
        };
        let e = t.decide(reg.clone()).expect("register").expect("event");
        t.apply(e.clone());
        events.push(e);
        commands.push(reg);
    }
    // A small organisation to start from: a municipality, three districts with one area each, a
    // central agency, and s0 run by each district for its own area.
    let setup = [
        Action::EstablishUnit(def(unit_id(0), UnitKind::Municipality, None, vec![])),
        Action::EstablishUnit(def(
            unit_id(1),
            UnitKind::District,
            Some(unit_id(0)),
            vec![area_def(1)],
        )),
        Action::EstablishUnit(def(
            unit_id(2),
            UnitKind::District,
            Some(unit_id(0)),
            vec![area_def(2)],
        )),
        Action::EstablishUnit(def(
            unit_id(3),
            UnitKind::District,
            Some(unit_id(0)),
            vec![area_def(3)],
        )),
        Action::EstablishUnit(def(
            unit_id(4),
            UnitKind::CentralAgency,
            Some(unit_id(0)),
            vec![],
        )),
        Action::AssignResponsibility(Assignment {
            service: service(0),
            unit: unit_id(1),
            areas: vec![area(1)],
        }),
        Action::AssignResponsibility(Assignment {
            service: service(0),
            unit: unit_id(2),
            areas: vec![area(2)],
        }),
        Action::AssignResponsibility(Assignment {
            service: service(0),
            unit: unit_id(3),
            areas: vec![area(3)],
        }),
    ];
    for (i, a) in setup.into_iter().enumerate() {
        let cmd = TimelineCommand {
            context: ctx(20_000 + i, 0),
            action: a,
        };
        let e = t.decide(cmd.clone()).expect("setup").expect("event");
        t.apply(e.clone());
        events.push(e);
        commands.push(cmd);
    }
    for (n, (op, k)) in ops.iter().enumerate() {
        let state = t.state_at(date(*k));
        let cmd = TimelineCommand {
            context: ctx(n, *k),
            action: action(op, n, &state),
        };
        let before = t.clone();
        match t.decide(cmd.clone()) {
            Ok(Some(e)) => {
                t.apply(e.clone());
                events.push(e);
                commands.push(cmd);
            }
            Ok(None) => prop_assert!(false, "a fresh command id was treated as a retry"),
            Err(_) => prop_assert_eq!(&t, &before, "a refused command changed the timeline"),
        }
    }
    Ok((t, events, commands))
}

pub fn ops() -> impl Strategy<Value = Vec<(Op, u64)>> {
    proptest::collection::vec((op(), 0..20u64), 5..45)
}
