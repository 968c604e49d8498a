//! Given / When / Then tests of the timeline aggregate: each command's accepted path and each
//! reason for refusal. The fixture is a small Oslo: three districts with their own areas, a central
//! agency, and home care run by each district for its own area.

use super::*;
use crate::ids::*;
use crate::model::{UnitKind, UnitKind::*};
use cqrs_es::test::TestFramework;

type Tf = TestFramework<Timeline>;

pub(crate) fn d(s: &str) -> NaiveDate {
    s.parse().expect("test date")
}
fn uid(s: &str) -> UnitId {
    UnitId::new(s).unwrap()
}
fn ac(s: &str) -> AreaCode {
    AreaCode::new(s).unwrap()
}
fn sc(s: &str) -> ServiceCode {
    ServiceCode::new(s).unwrap()
}
fn pid(s: &str) -> ServicePointId {
    ServicePointId::new(s).unwrap()
}

fn ctx_case(id: &str, date: &str, case: &str) -> ChangeContext {
    ChangeContext {
        command_id: CommandId::new(id).unwrap(),
        effective_from: d(date),
        decision: DecisionRef {
            case_number: case.to_string(),
            body: "Bystyret".into(),
            decision_date: d("2019-06-01"),
            title: format!("Vedtak {case}"),
            link: None,
        },
        actor: "planner@oslo".into(),
        rationale: "test".into(),
    }
}
fn ctx(id: &str, date: &str) -> ChangeContext {
    ctx_case(id, date, &format!("case/{id}"))
}
fn cmd(id: &str, date: &str, action: Action) -> TimelineCommand {
    TimelineCommand {
        context: ctx(id, date),
        action,
    }
}
fn ev(id: &str, date: &str, change: Change) -> TimelineEvent {
    TimelineEvent {
        context: ctx(id, date),
        change,
    }
}
/// The event a command records unchanged (everything but revocations).
fn ev_of(c: &TimelineCommand) -> TimelineEvent {
    TimelineEvent {
        context: c.context.clone(),
        change: org_change(c.action.clone()),
    }
}

fn unit(id: &str, kind: UnitKind, parent: Option<&str>, areas: &[(&str, &str)]) -> UnitDef {
    UnitDef {
        unit: uid(id),
        code: None,
        name: id.to_string(),
        kind,
        parent: parent.map(uid),
        areas: areas
            .iter()
            .map(|(c, n)| AreaDef {
                code: ac(c),
                name: n.to_string(),
                carved_from: None,
            })
            .collect(),
        attributes: Default::default(),
    }
}

fn oslo() -> Vec<TimelineEvent> {
    let mut oslo = unit("oslo", Municipality, None, &[("030116", "Sentrum")]);
    oslo.code = Some("0301".into());
    vec![
        ev(
            "c0",
            "2020-01-01",
            Change::TimelineCreated(TimelineDef {
                name: "Oslo".into(),
                description: String::new(),
            }),
        ),
        ev("c1", "2020-01-01", Change::UnitEstablished(oslo)),
        ev(
            "c2",
            "2020-01-01",
            Change::UnitEstablished(unit(
                "grorud",
                District,
                Some("oslo"),
                &[("030110", "Grorud")],
            )),
        ),
        ev(
            "c3",
            "2020-01-01",
            Change::UnitEstablished(unit(
                "stovner",
                District,
                Some("oslo"),
                &[("030111", "Stovner")],
            )),
        ),
        ev(
            "c4",
            "2020-01-01",
            Change::UnitEstablished(unit("alna", District, Some("oslo"), &[("030112", "Alna")])),
        ),
        ev(
            "c5",
            "2020-01-01",
            Change::UnitEstablished(unit("helseetaten", CentralAgency, Some("oslo"), &[])),
        ),
        ev(
            "c6",
            "2020-01-01",
            Change::ServiceRegistered(ServiceDef {
                service: sc("home-care"),
                name: "Hjemmetjenester".into(),
                category: "home care".into(),
            }),
        ),
        ev("c7", "2020-01-01", assign("grorud", &["030110"])),
        ev("c8", "2020-01-01", assign("stovner", &["030111"])),
        ev("c9", "2020-01-01", assign("alna", &["030112"])),
    ]
}

fn assign(u: &str, areas: &[&str]) -> Change {
    Change::ResponsibilityAssigned(Assignment {
        service: sc("home-care"),
        unit: uid(u),
        areas: areas.iter().map(|a| ac(a)).collect(),
    })
}

fn timeline(events: Vec<TimelineEvent>) -> Timeline {
    let mut t = Timeline::default();
    for e in events {
        t.apply(e);
    }
    t
}

/// Decides and applies a command, as the framework would.
fn run(t: &mut Timeline, c: TimelineCommand) -> Result<Option<TimelineEvent>, DomainError> {
    let e = t.decide(c)?;
    if let Some(e) = &e {
        t.apply(e.clone());
    }
    Ok(e)
}

fn accepts(given: Vec<TimelineEvent>, c: TimelineCommand) {
    let expected = ev_of(&c);
    Tf::with(())
        .given(given)
        .when(c)
        .then_expect_events(vec![expected]);
}

fn refuses(given: Vec<TimelineEvent>, c: TimelineCommand, err: DomainError) {
    Tf::with(()).given(given).when(c).then_expect_error(err);
}

fn holder(t: &Timeline, date: &str, area: &str) -> Option<UnitId> {
    t.state_at(d(date))
        .responsible(&sc("home-care"), &ac(area))
        .cloned()
}

// ---------------------------------------------------------------- timeline start

#[test]
fn create_timeline_is_accepted_once() {
    let c = cmd(
        "new",
        "2020-01-01",
        Action::CreateTimeline(TimelineDef {
            name: "Asker".into(),
            description: "the new Asker".into(),
        }),
    );
    Tf::with(())
        .given_no_previous_events()
        .when(c.clone())
        .then_expect_events(vec![ev_of(&c)]);
    refuses(
        oslo(),
        cmd("again", "2020-01-01", c.action),
        DomainError::TimelineAlreadyStarted,
    );
}

#[test]
fn a_command_before_creation_is_refused() {
    Tf::with(())
        .given_no_previous_events()
        .when(cmd(
            "x",
            "2020-01-01",
            Action::EstablishUnit(unit("u", District, None, &[])),
        ))
        .then_expect_error(DomainError::TimelineNotStarted);
}

// ---------------------------------------------------------------- units

#[test]
fn establish_unit_defines_its_areas() {
    let c = cmd(
        "e",
        "2021-01-01",
        Action::EstablishUnit(unit(
            "bjerke",
            District,
            Some("oslo"),
            &[("030109", "Bjerke")],
        )),
    );
    accepts(oslo(), c.clone());
    let mut t = timeline(oslo());
    run(&mut t, c).unwrap();
    let s = t.state_at(d("2021-01-01"));
    assert_eq!(s.areas_of(&uid("bjerke")), vec![ac("030109")]);
    assert!(!t
        .state_at(d("2020-12-31"))
        .units
        .contains_key(&uid("bjerke")));
}

#[test]
fn establish_refusals() {
    refuses(
        oslo(),
        cmd(
            "e",
            "2021-01-01",
            Action::EstablishUnit(unit("grorud", District, None, &[])),
        ),
        DomainError::DuplicateUnit {
            unit: uid("grorud"),
        },
    );
    refuses(
        oslo(),
        cmd(
            "e",
            "2021-01-01",
            Action::EstablishUnit(unit("x", District, Some("nowhere"), &[])),
        ),
        DomainError::UnknownUnit {
            unit: uid("nowhere"),
        },
    );
    refuses(
        oslo(),
        cmd(
            "e",
            "2021-01-01",
            Action::EstablishUnit(unit("x", District, None, &[("030110", "")])),
        ),
        DomainError::AreaHeldByOther {
            area: ac("030110"),
            holder: Some(uid("grorud")),
            assumed: None,
        },
    );
    let mut empty_name = unit("x", District, None, &[]);
    empty_name.name = "  ".into();
    refuses(
        oslo(),
        cmd("e", "2021-01-01", Action::EstablishUnit(empty_name)),
        DomainError::InvalidInput {
            field: "action.name".into(),
            reason: "must not be empty".into(),
        },
    );
    let mut same_code = unit("x", Municipality, None, &[]);
    same_code.code = Some("0301".into());
    refuses(
        oslo(),
        cmd("e", "2021-01-01", Action::EstablishUnit(same_code)),
        DomainError::DuplicateCode {
            code: "0301".into(),
            holder: uid("oslo"),
        },
    );
}

#[test]
fn rename_changes_name_code_or_both() {
    // Asker was 3025 from 2020 and 3203 from 2024: same unit, new code.
    let c = cmd(
        "r",
        "2024-01-01",
        Action::RenameUnit(Rename {
            unit: uid("oslo"),
            name: None,
            code: Some("0302".into()),
        }),
    );
    accepts(oslo(), c.clone());
    let mut t = timeline(oslo());
    run(&mut t, c).unwrap();
    assert_eq!(
        t.state_at(d("2023-12-31")).units[&uid("oslo")]
            .code
            .as_deref(),
        Some("0301")
    );
    assert_eq!(
        t.state_at(d("2024-01-01")).units[&uid("oslo")]
            .code
            .as_deref(),
        Some("0302")
    );
    refuses(
        oslo(),
        cmd(
            "r",
            "2024-01-01",
            Action::RenameUnit(Rename {
                unit: uid("oslo"),
                name: None,
                code: None,
            }),
        ),
        DomainError::InvalidInput {
            field: "action".into(),
            reason: "give a new name, a new code, or both".into(),
        },
    );
}

#[test]
fn move_unit_reparents_and_refuses_cycles() {
    let c = cmd(
        "m",
        "2021-01-01",
        Action::MoveUnit(Move {
            unit: uid("alna"),
            new_parent: Some(uid("grorud")),
        }),
    );
    accepts(oslo(), c.clone());
    let mut t = timeline(oslo());
    run(&mut t, c).unwrap();
    assert_eq!(
        t.state_at(d("2021-01-01")).units[&uid("alna")].parent,
        Some(uid("grorud"))
    );
    refuses(
        oslo(),
        cmd(
            "m",
            "2021-01-01",
            Action::MoveUnit(Move {
                unit: uid("oslo"),
                new_parent: Some(uid("grorud")),
            }),
        ),
        DomainError::Cycle {
            unit: uid("oslo"),
            parent: uid("grorud"),
        },
    );
    refuses(
        oslo(),
        cmd(
            "m",
            "2021-01-01",
            Action::MoveUnit(Move {
                unit: uid("oslo"),
                new_parent: Some(uid("oslo")),
            }),
        ),
        DomainError::Cycle {
            unit: uid("oslo"),
            parent: uid("oslo"),
        },
    );
}

#[test]
fn dissolve_unit_and_its_refusals() {
    let c = cmd(
        "x",
        "2021-01-01",
        Action::DissolveUnit(Dissolve {
            unit: uid("helseetaten"),
        }),
    );
    accepts(oslo(), c.clone());
    let mut t = timeline(oslo());
    run(&mut t, c).unwrap();
    refuses(
        t_events(&t),
        cmd(
            "y",
            "2021-06-01",
            Action::DissolveUnit(Dissolve {
                unit: uid("helseetaten"),
            }),
        ),
        DomainError::UnitDissolved {
            unit: uid("helseetaten"),
            dissolved_on: d("2021-01-01"),
        },
    );
    refuses(
        oslo(),
        cmd(
            "x",
            "2021-01-01",
            Action::DissolveUnit(Dissolve { unit: uid("oslo") }),
        ),
        DomainError::UnitHasChildren {
            unit: uid("oslo"),
            children: vec![
                uid("alna"),
                uid("grorud"),
                uid("helseetaten"),
                uid("stovner"),
            ],
        },
    );
    refuses(
        oslo(),
        cmd(
            "x",
            "2021-01-01",
            Action::DissolveUnit(Dissolve {
                unit: uid("grorud"),
            }),
        ),
        DomainError::UnitHoldsAreas {
            unit: uid("grorud"),
            areas: vec![ac("030110")],
        },
    );
    // An agency holding a responsibility cannot just vanish: the pair would have no one.
    let mut given = oslo();
    given.push(ev(
        "cz",
        "2020-06-01",
        Change::ServiceCentralised(Centralisation {
            service: sc("home-care"),
            agency: uid("helseetaten"),
        }),
    ));
    refuses(
        given,
        cmd(
            "x",
            "2021-01-01",
            Action::DissolveUnit(Dissolve {
                unit: uid("helseetaten"),
            }),
        ),
        DomainError::PairLeftWithoutResponsible {
            service: sc("home-care"),
            area: ac("030110"),
            unit: uid("helseetaten"),
        },
    );
    let mut given = oslo();
    given.push(ev(
        "p",
        "2020-06-01",
        Change::ServicePointOpened(ServicePointDef {
            point: pid("torg"),
            name: "Torg".into(),
            unit: uid("helseetaten"),
            area: None,
            services: vec![],
        }),
    ));
    refuses(
        given,
        cmd(
            "x",
            "2021-01-01",
            Action::DissolveUnit(Dissolve {
                unit: uid("helseetaten"),
            }),
        ),
        DomainError::UnitRunsServicePoints {
            unit: uid("helseetaten"),
            points: vec![pid("torg")],
        },
    );
}

fn t_events(t: &Timeline) -> Vec<TimelineEvent> {
    t.records().iter().map(|r| r.event.clone()).collect()
}

#[test]
fn a_unit_used_before_it_exists_is_named_as_not_yet_established() {
    let mut t = timeline(oslo());
    run(
        &mut t,
        cmd(
            "e",
            "2022-01-01",
            Action::EstablishUnit(unit("bjerke", District, Some("oslo"), &[])),
        ),
    )
    .unwrap();
    let err = t
        .decide(cmd(
            "r",
            "2021-01-01",
            Action::RenameUnit(Rename {
                unit: uid("bjerke"),
                name: Some("B".into()),
                code: None,
            }),
        ))
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::UnitNotYetEstablished {
            unit: uid("bjerke"),
            established_on: d("2022-01-01"),
            date: d("2021-01-01"),
        }
    );
}

// ---------------------------------------------------------------- merge

fn merge_new() -> Action {
    let mut succ = unit("grorud-stovner", District, Some("oslo"), &[]);
    succ.name = "Grorud og Stovner".into();
    Action::MergeUnits(Merge {
        sources: vec![uid("grorud"), uid("stovner")],
        successor: Successor::New(succ),
    })
}

#[test]
fn merge_into_a_new_unit_inherits_everything() {
    let mut given = oslo();
    given.push(ev(
        "child",
        "2020-01-01",
        Change::UnitEstablished(unit("grorud-helse", Department, Some("grorud"), &[])),
    ));
    given.push(ev(
        "p",
        "2020-01-01",
        Change::ServicePointOpened(ServicePointDef {
            point: pid("torg"),
            name: "Torg".into(),
            unit: uid("stovner"),
            area: Some(ac("030111")),
            services: vec![sc("home-care")],
        }),
    ));
    let c = cmd("m", "2026-01-01", merge_new());
    accepts(given.clone(), c.clone());
    let mut t = timeline(given);
    run(&mut t, c).unwrap();
    let after = t.state_at(d("2026-01-01"));
    let succ = uid("grorud-stovner");
    assert_eq!(after.areas_of(&succ), vec![ac("030110"), ac("030111")]);
    assert_eq!(
        after.responsible(&sc("home-care"), &ac("030111")),
        Some(&succ)
    );
    assert_eq!(after.units[&uid("grorud-helse")].parent, Some(succ.clone()));
    assert_eq!(after.service_points[&pid("torg")].unit, succ);
    assert_eq!(
        after.units[&uid("grorud")].dissolved_on,
        Some(d("2026-01-01"))
    );
    assert_eq!(after.units[&uid("grorud")].succeeded_by, vec![succ.clone()]);
    // The day before, nothing has changed.
    let before = t.state_at(d("2025-12-31"));
    assert_eq!(
        before.responsible(&sc("home-care"), &ac("030111")),
        Some(&uid("stovner"))
    );
    assert!(!before.units.contains_key(&succ));
}

#[test]
fn merge_into_one_of_the_sources_absorbs_the_others() {
    // Stavanger absorbing Finnøy and Rennesøy: the successor is one of the sources and lives on.
    let c = cmd(
        "m",
        "2026-01-01",
        Action::MergeUnits(Merge {
            sources: vec![uid("grorud"), uid("stovner"), uid("alna")],
            successor: Successor::Existing { unit: uid("alna") },
        }),
    );
    accepts(oslo(), c.clone());
    let mut t = timeline(oslo());
    run(&mut t, c).unwrap();
    let s = t.state_at(d("2026-01-01"));
    assert!(s.units[&uid("alna")].is_live());
    assert_eq!(s.areas_of(&uid("alna")).len(), 3);
    assert_eq!(s.responsibilities_of(&uid("alna")).len(), 3);
}

#[test]
fn merge_refusals() {
    refuses(
        oslo(),
        cmd(
            "m",
            "2026-01-01",
            Action::MergeUnits(Merge {
                sources: vec![uid("alna")],
                successor: Successor::Existing { unit: uid("alna") },
            }),
        ),
        DomainError::InvalidInput {
            field: "action.sources".into(),
            reason: "merging alna into itself changes nothing".into(),
        },
    );
    refuses(
        oslo(),
        cmd(
            "m",
            "2026-01-01",
            Action::MergeUnits(Merge {
                sources: vec![uid("alna"), uid("ghost")],
                successor: Successor::Existing {
                    unit: uid("grorud"),
                },
            }),
        ),
        DomainError::UnknownUnit { unit: uid("ghost") },
    );
    refuses(
        oslo(),
        cmd(
            "m",
            "2026-01-01",
            Action::MergeUnits(Merge {
                sources: vec![uid("alna"), uid("alna")],
                successor: Successor::Existing {
                    unit: uid("grorud"),
                },
            }),
        ),
        DomainError::InvalidInput {
            field: "action.sources".into(),
            reason: "alna is listed twice".into(),
        },
    );
    // Merging the parent into its own child would make the child its own ancestor? No: the child is
    // lifted; but merging into a new unit placed under a merged unit is refused.
    let mut succ = unit("n", District, Some("grorud"), &[]);
    succ.name = "N".into();
    refuses(
        oslo(),
        cmd(
            "m",
            "2026-01-01",
            Action::MergeUnits(Merge {
                sources: vec![uid("grorud"), uid("stovner")],
                successor: Successor::New(succ),
            }),
        ),
        DomainError::InvalidInput {
            field: "action.successor.parent".into(),
            reason: "the successor's parent cannot be one of the merged units".into(),
        },
    );
}

#[test]
fn merging_a_parent_into_its_child_lifts_the_child() {
    // A service area absorbed by its one remaining department, which keeps its id.
    let mut given = oslo();
    for (id, kind, parent) in [
        ("omsorg", ServiceArea, "oslo"),
        ("omsorg-avd", Department, "omsorg"),
        ("omsorg-kontor", Department, "omsorg"),
    ] {
        given.push(ev(
            id,
            "2020-01-01",
            Change::UnitEstablished(unit(id, kind, Some(parent), &[])),
        ));
    }
    let c = cmd(
        "m",
        "2026-01-01",
        Action::MergeUnits(Merge {
            sources: vec![uid("omsorg")],
            successor: Successor::Existing {
                unit: uid("omsorg-avd"),
            },
        }),
    );
    let mut t = timeline(given);
    run(&mut t, c).unwrap();
    let s = t.state_at(d("2026-01-01"));
    assert_eq!(s.units[&uid("omsorg-avd")].parent, Some(uid("oslo")));
    assert_eq!(
        s.units[&uid("omsorg-kontor")].parent,
        Some(uid("omsorg-avd"))
    );
    assert!(!s.has_cycle());
}

#[test]
fn a_municipality_is_merged_only_into_a_municipality() {
    // Oslo into one of its own districts: nonsense, refused whatever the successor.
    refuses(
        oslo(),
        cmd(
            "m",
            "2026-01-01",
            Action::MergeUnits(Merge {
                sources: vec![uid("oslo")],
                successor: Successor::Existing { unit: uid("alna") },
            }),
        ),
        DomainError::WrongUnitKind {
            unit: uid("alna"),
            kind: District,
            expected: "municipality to absorb the municipality oslo".into(),
        },
    );
    let mut succ = unit("ny", CentralAgency, None, &[]);
    succ.name = "Ny".into();
    refuses(
        oslo(),
        cmd(
            "m",
            "2026-01-01",
            Action::MergeUnits(Merge {
                sources: vec![uid("oslo")],
                successor: Successor::New(succ),
            }),
        ),
        DomainError::WrongUnitKind {
            unit: uid("ny"),
            kind: CentralAgency,
            expected: "municipality to absorb the municipality oslo".into(),
        },
    );
    // Into a new municipality (Asker, Røyken and Hurum into the new Asker): accepted.
    let mut succ = unit("stor-oslo", Municipality, None, &[]);
    succ.name = "Stor-Oslo".into();
    accepts(
        oslo(),
        cmd(
            "m",
            "2026-01-01",
            Action::MergeUnits(Merge {
                sources: vec![uid("oslo")],
                successor: Successor::New(succ),
            }),
        ),
    );
}

// ---------------------------------------------------------------- split

#[test]
fn split_into_existing_units_moves_areas_and_responsibilities() {
    // Snillfjord split between Heim, Hitra and Orkland: the parts are existing units.
    let mut given = oslo();
    given.push(ev(
        "sn",
        "2020-01-01",
        Change::UnitEstablished(unit(
            "snillfjord",
            Municipality,
            None,
            &[
                ("a1", "Krokstadøra"),
                ("a2", "Hemnskjel"),
                ("a3", "Vennastranda"),
            ],
        )),
    ));
    given.push(ev(
        "as",
        "2020-01-01",
        assign("snillfjord", &["a1", "a2", "a3"]),
    ));
    let part = |u: &str, a: &str| SplitPart {
        target: PartTarget::Existing { unit: uid(u) },
        areas: vec![ac(a)],
        carved_areas: vec![],
        children: vec![],
    };
    let c = cmd(
        "s",
        "2026-01-01",
        Action::SplitUnit(Split {
            source: uid("snillfjord"),
            parts: vec![
                part("grorud", "a1"),
                part("stovner", "a2"),
                part("alna", "a3"),
            ],
        }),
    );
    accepts(given.clone(), c.clone());
    let mut t = timeline(given);
    run(&mut t, c).unwrap();
    let s = t.state_at(d("2026-01-01"));
    assert_eq!(
        s.responsible(&sc("home-care"), &ac("a2")),
        Some(&uid("stovner"))
    );
    assert_eq!(s.areas_of(&uid("alna")), vec![ac("030112"), ac("a3")]);
    assert_eq!(
        s.units[&uid("snillfjord")].dissolved_on,
        Some(d("2026-01-01"))
    );
    assert_eq!(
        s.units[&uid("snillfjord")].succeeded_by,
        vec![uid("grorud"), uid("stovner"), uid("alna")]
    );
}

#[test]
fn split_with_the_source_continuing() {
    let mut given = oslo();
    given.push(ev(
        "two",
        "2020-01-01",
        Change::UnitEstablished(unit(
            "big",
            District,
            Some("oslo"),
            &[("b1", "B1"), ("b2", "B2")],
        )),
    ));
    let mut newdef = unit("small", District, Some("oslo"), &[]);
    newdef.name = "Small".into();
    let c = cmd(
        "s",
        "2026-01-01",
        Action::SplitUnit(Split {
            source: uid("big"),
            parts: vec![
                SplitPart {
                    target: PartTarget::Source,
                    areas: vec![ac("b1")],
                    carved_areas: vec![],
                    children: vec![],
                },
                SplitPart {
                    target: PartTarget::New(newdef),
                    areas: vec![ac("b2")],
                    carved_areas: vec![],
                    children: vec![],
                },
            ],
        }),
    );
    let mut t = timeline(given);
    run(&mut t, c).unwrap();
    let s = t.state_at(d("2026-01-01"));
    assert!(s.units[&uid("big")].is_live());
    assert_eq!(s.areas_of(&uid("big")), vec![ac("b1")]);
    assert_eq!(s.areas_of(&uid("small")), vec![ac("b2")]);
}

#[test]
fn splitting_a_single_area_unit_divides_the_area() {
    let mut given = oslo();
    // The agency is responsible for another service in Alna's area; the district for home care.
    given.push(ev(
        "lib",
        "2020-01-01",
        Change::ServiceRegistered(ServiceDef {
            service: sc("library"),
            name: "Bibliotek".into(),
            category: "library".into(),
        }),
    ));
    given.push(ev(
        "libas",
        "2020-01-01",
        Change::ResponsibilityAssigned(Assignment {
            service: sc("library"),
            unit: uid("helseetaten"),
            areas: vec![ac("030112")],
        }),
    ));
    let carve = |code: &str| AreaDef {
        code: ac(code),
        name: format!("Alna {code}"),
        carved_from: Some(ac("030112")),
    };
    let mut north = unit("alna-nord", District, Some("oslo"), &[]);
    north.name = "Alna nord".into();
    let c = cmd(
        "s",
        "2026-01-01",
        Action::SplitUnit(Split {
            source: uid("alna"),
            parts: vec![
                SplitPart {
                    target: PartTarget::Source,
                    areas: vec![],
                    carved_areas: vec![carve("030112s")],
                    children: vec![],
                },
                SplitPart {
                    target: PartTarget::New(north),
                    areas: vec![],
                    carved_areas: vec![carve("030112n")],
                    children: vec![],
                },
            ],
        }),
    );
    accepts(given.clone(), c.clone());
    let mut t = timeline(given);
    run(&mut t, c).unwrap();
    let s = t.state_at(d("2026-01-01"));
    assert_eq!(s.areas[&ac("030112")].retired_on, Some(d("2026-01-01")));
    assert_eq!(s.areas[&ac("030112n")].carved_from, Some(ac("030112")));
    // Home care follows the area to each part; the agency keeps the library in both new areas.
    assert_eq!(
        s.responsible(&sc("home-care"), &ac("030112n")),
        Some(&uid("alna-nord"))
    );
    assert_eq!(
        s.responsible(&sc("home-care"), &ac("030112s")),
        Some(&uid("alna"))
    );
    assert_eq!(
        s.responsible(&sc("library"), &ac("030112n")),
        Some(&uid("helseetaten"))
    );
    assert_eq!(
        s.responsible(&sc("library"), &ac("030112s")),
        Some(&uid("helseetaten"))
    );
    assert_eq!(s.responsible(&sc("home-care"), &ac("030112")), None);
}

#[test]
fn split_refusals() {
    let only_source = Action::SplitUnit(Split {
        source: uid("alna"),
        parts: vec![SplitPart {
            target: PartTarget::Source,
            areas: vec![],
            carved_areas: vec![],
            children: vec![],
        }],
    });
    refuses(
        oslo(),
        cmd("s", "2026-01-01", only_source),
        DomainError::InvalidInput {
            field: "action.parts".into(),
            reason: "name at least one part other than the source itself".into(),
        },
    );
    // The source does not continue and keeps an area nobody receives.
    let incomplete = Action::SplitUnit(Split {
        source: uid("alna"),
        parts: vec![SplitPart {
            target: PartTarget::Existing {
                unit: uid("grorud"),
            },
            areas: vec![],
            carved_areas: vec![],
            children: vec![],
        }],
    });
    refuses(
        oslo(),
        cmd("s", "2026-01-01", incomplete),
        DomainError::InvalidInput {
            field: "action.parts".into(),
            reason: "area 030112 of alna is given to no part, and the source does not continue"
                .into(),
        },
    );
    let foreign = Action::SplitUnit(Split {
        source: uid("alna"),
        parts: vec![SplitPart {
            target: PartTarget::Existing {
                unit: uid("grorud"),
            },
            areas: vec![ac("030111")],
            carved_areas: vec![],
            children: vec![],
        }],
    });
    refuses(
        oslo(),
        cmd("s", "2026-01-01", foreign),
        DomainError::AreaHeldByOther {
            area: ac("030111"),
            holder: Some(uid("stovner")),
            assumed: Some(uid("alna")),
        },
    );
}

// ---------------------------------------------------------------- areas

#[test]
fn transfer_area_moves_the_givers_responsibilities() {
    let c = cmd(
        "t",
        "2025-01-01",
        Action::TransferArea(AreaTransfer {
            area: ac("030111"),
            from: uid("stovner"),
            to: uid("grorud"),
        }),
    );
    accepts(oslo(), c.clone());
    let mut t = timeline(oslo());
    run(&mut t, c).unwrap();
    assert_eq!(holder(&t, "2025-01-01", "030111"), Some(uid("grorud")));
    assert_eq!(holder(&t, "2024-12-31", "030111"), Some(uid("stovner")));
    refuses(
        oslo(),
        cmd(
            "t",
            "2025-01-01",
            Action::TransferArea(AreaTransfer {
                area: ac("030111"),
                from: uid("alna"),
                to: uid("grorud"),
            }),
        ),
        DomainError::AreaHeldByOther {
            area: ac("030111"),
            holder: Some(uid("stovner")),
            assumed: Some(uid("alna")),
        },
    );
    refuses(
        oslo(),
        cmd(
            "t",
            "2025-01-01",
            Action::TransferArea(AreaTransfer {
                area: ac("999999"),
                from: uid("alna"),
                to: uid("grorud"),
            }),
        ),
        DomainError::UnknownArea { area: ac("999999") },
    );
}

// ---------------------------------------------------------------- services

#[test]
fn register_and_retire_service() {
    let reg = cmd(
        "r",
        "2021-01-01",
        Action::RegisterService(ServiceDef {
            service: sc("library"),
            name: "Bibliotek".into(),
            category: "library".into(),
        }),
    );
    accepts(oslo(), reg.clone());
    refuses(
        oslo(),
        cmd(
            "r",
            "2021-01-01",
            Action::RegisterService(ServiceDef {
                service: sc("home-care"),
                name: "x".into(),
                category: String::new(),
            }),
        ),
        DomainError::DuplicateService {
            service: sc("home-care"),
        },
    );
    let retire = cmd(
        "x",
        "2022-01-01",
        Action::RetireService(ServiceRetirement {
            service: sc("home-care"),
        }),
    );
    accepts(oslo(), retire.clone());
    let mut t = timeline(oslo());
    run(&mut t, retire).unwrap();
    assert_eq!(holder(&t, "2022-01-01", "030110"), None);
    assert_eq!(holder(&t, "2021-12-31", "030110"), Some(uid("grorud")));
    refuses(
        t_events(&t),
        cmd(
            "a",
            "2022-06-01",
            Action::AssignResponsibility(Assignment {
                service: sc("home-care"),
                unit: uid("grorud"),
                areas: vec![ac("030110")],
            }),
        ),
        DomainError::ServiceRetired {
            service: sc("home-care"),
            retired_on: d("2022-01-01"),
        },
    );
}

// ---------------------------------------------------------------- responsibilities

#[test]
fn assign_transfer_withdraw_responsibility() {
    let mut t = timeline(oslo());
    refuses(
        oslo(),
        cmd(
            "a",
            "2021-01-01",
            Action::AssignResponsibility(Assignment {
                service: sc("home-care"),
                unit: uid("helseetaten"),
                areas: vec![ac("030110")],
            }),
        ),
        DomainError::PairAlreadyHeld {
            service: sc("home-care"),
            area: ac("030110"),
            holder: uid("grorud"),
        },
    );
    let assign_sentrum = cmd(
        "a",
        "2021-01-01",
        Action::AssignResponsibility(Assignment {
            service: sc("home-care"),
            unit: uid("helseetaten"),
            areas: vec![ac("030116")],
        }),
    );
    accepts(oslo(), assign_sentrum.clone());
    run(&mut t, assign_sentrum).unwrap();
    let transfer = cmd(
        "t",
        "2022-01-01",
        Action::TransferResponsibility(ResponsibilityTransfer {
            service: sc("home-care"),
            from: uid("grorud"),
            to: uid("stovner"),
            areas: None,
        }),
    );
    run(&mut t, transfer).unwrap();
    assert_eq!(holder(&t, "2022-01-01", "030110"), Some(uid("stovner")));
    let err = t
        .decide(cmd(
            "t2",
            "2022-02-01",
            Action::TransferResponsibility(ResponsibilityTransfer {
                service: sc("home-care"),
                from: uid("grorud"),
                to: uid("alna"),
                areas: Some(vec![ac("030110")]),
            }),
        ))
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::NotResponsible {
            unit: uid("grorud"),
            service: sc("home-care"),
            area: ac("030110"),
        }
    );
    let withdraw = cmd(
        "w",
        "2023-01-01",
        Action::WithdrawResponsibility(Withdrawal {
            service: sc("home-care"),
            unit: uid("helseetaten"),
            areas: Some(vec![ac("030116")]),
        }),
    );
    run(&mut t, withdraw).unwrap();
    assert_eq!(holder(&t, "2023-01-01", "030116"), None);
    assert_eq!(holder(&t, "2022-12-31", "030116"), Some(uid("helseetaten")));
}

#[test]
fn centralise_and_decentralise() {
    let cz = cmd(
        "cz",
        "2025-01-01",
        Action::CentraliseService(Centralisation {
            service: sc("home-care"),
            agency: uid("helseetaten"),
        }),
    );
    accepts(oslo(), cz.clone());
    let mut t = timeline(oslo());
    run(&mut t, cz).unwrap();
    for a in ["030110", "030111", "030112"] {
        assert_eq!(holder(&t, "2025-01-01", a), Some(uid("helseetaten")));
        assert_eq!(holder(&t, "2024-12-31", a), holder(&t, "2020-01-01", a));
    }
    // Centralising again: no district holds it any more.
    let err = t
        .decide(cmd(
            "cz2",
            "2025-06-01",
            Action::CentraliseService(Centralisation {
                service: sc("home-care"),
                agency: uid("helseetaten"),
            }),
        ))
        .unwrap_err();
    assert_eq!(err.rule(), "nothing-to-change");
    let dz = cmd(
        "dz",
        "2027-01-01",
        Action::DecentraliseService(Decentralisation {
            service: sc("home-care"),
            agency: Some(uid("helseetaten")),
        }),
    );
    run(&mut t, dz).unwrap();
    assert_eq!(holder(&t, "2027-01-01", "030111"), Some(uid("stovner")));
    refuses(
        oslo(),
        cmd(
            "cz",
            "2025-01-01",
            Action::CentraliseService(Centralisation {
                service: sc("home-care"),
                agency: uid("grorud"),
            }),
        ),
        DomainError::WrongUnitKind {
            unit: uid("grorud"),
            kind: District,
            expected: "central_agency or municipal_enterprise".into(),
        },
    );
    refuses(
        oslo(),
        cmd(
            "cz",
            "2025-01-01",
            Action::CentraliseService(Centralisation {
                service: sc("nope"),
                agency: uid("helseetaten"),
            }),
        ),
        DomainError::UnknownService {
            service: sc("nope"),
        },
    );
}

// ---------------------------------------------------------------- service points

#[test]
fn service_points_open_change_and_close() {
    let open = cmd(
        "o",
        "2021-01-01",
        Action::OpenServicePoint(ServicePointDef {
            point: pid("torg-grorud"),
            name: "Innbyggertorg Grorud".into(),
            unit: uid("grorud"),
            area: Some(ac("030110")),
            services: vec![sc("home-care")],
        }),
    );
    accepts(oslo(), open.clone());
    let mut t = timeline(oslo());
    run(&mut t, open.clone()).unwrap();
    refuses(
        t_events(&t),
        TimelineCommand {
            context: ctx("o2", "2021-02-01"),
            action: open.action.clone(),
        },
        DomainError::DuplicateServicePoint {
            point: pid("torg-grorud"),
        },
    );
    run(
        &mut t,
        cmd(
            "s",
            "2022-01-01",
            Action::SetServicePointServices(ServicePointServices {
                point: pid("torg-grorud"),
                services: vec![],
            }),
        ),
    )
    .unwrap();
    assert!(
        t.state_at(d("2022-01-01")).service_points[&pid("torg-grorud")]
            .services
            .is_empty()
    );
    run(
        &mut t,
        cmd(
            "c",
            "2023-01-01",
            Action::CloseServicePoint(ServicePointClosure {
                point: pid("torg-grorud"),
            }),
        ),
    )
    .unwrap();
    let err = t
        .decide(cmd(
            "close-again",
            "2023-06-01",
            Action::CloseServicePoint(ServicePointClosure {
                point: pid("torg-grorud"),
            }),
        ))
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::ServicePointClosed {
            point: pid("torg-grorud"),
            closed_on: d("2023-01-01"),
        }
    );
    refuses(
        oslo(),
        cmd(
            "c",
            "2023-01-01",
            Action::CloseServicePoint(ServicePointClosure { point: pid("none") }),
        ),
        DomainError::UnknownServicePoint { point: pid("none") },
    );
}

// ---------------------------------------------------------------- bitemporal

#[test]
fn a_change_that_breaks_a_later_scheduled_change_is_refused_naming_it() {
    let mut t = timeline(oslo());
    // Scheduled: rename Grorud in 2027.
    run(
        &mut t,
        cmd(
            "later",
            "2027-01-01",
            Action::RenameUnit(Rename {
                unit: uid("grorud"),
                name: Some("Groruddalen".into()),
                code: None,
            }),
        ),
    )
    .unwrap();
    // Now, recorded later but effective earlier: merge Grorud away in 2026.
    let err = t.decide(cmd("m", "2026-01-01", merge_new())).unwrap_err();
    assert_eq!(
        err,
        DomainError::ConflictsWithLaterChange {
            later_command: CommandId::new("later").unwrap(),
            later_case: "case/later".into(),
            later_effective: d("2027-01-01"),
            reason: Box::new(DomainError::UnitDissolved {
                unit: uid("grorud"),
                dissolved_on: d("2026-01-01"),
            }),
        }
    );
    // Nothing was recorded by the refusal.
    assert_eq!(t.version(), 11);
}

#[test]
fn a_change_recorded_late_is_carried_by_a_merge_already_scheduled() {
    let mut t = timeline(oslo());
    run(&mut t, cmd("m", "2026-01-01", merge_new())).unwrap();
    // Recorded after the merge, effective before it: Stovner gets Sentrum too.
    run(
        &mut t,
        cmd(
            "a",
            "2025-01-01",
            Action::AssignResponsibility(Assignment {
                service: sc("home-care"),
                unit: uid("stovner"),
                areas: vec![ac("030116")],
            }),
        ),
    )
    .unwrap();
    assert_eq!(
        holder(&t, "2026-01-01", "030116"),
        Some(uid("grorud-stovner"))
    );
    // As known before that record, Sentrum had nobody.
    assert_eq!(
        t.state_at_as_known(d("2026-01-01"), 11)
            .responsible(&sc("home-care"), &ac("030116")),
        None
    );
}

// ---------------------------------------------------------------- revocation

#[test]
fn revoking_a_decision_withdraws_its_changes_and_keeps_the_old_belief() {
    let mut t = timeline(oslo());
    let mut m = cmd("m", "2026-01-01", merge_new());
    m.context.decision.case_number = "25/100".into();
    run(&mut t, m).unwrap();
    let v_before = t.version();
    let rv = cmd(
        "rv",
        "2025-06-01",
        Action::RevokeDecision(Revocation {
            case_number: "25/100".into(),
            command_ids: None,
        }),
    );
    let e = run(&mut t, rv).unwrap().unwrap();
    assert_eq!(
        e.change,
        Change::DecisionRevoked(Revoked {
            case_number: "25/100".into(),
            revoked: vec![CommandId::new("m").unwrap()],
        })
    );
    assert!(t.state_at(d("2026-06-01")).units[&uid("grorud")].is_live());
    // As believed before the revocation, the merge stood.
    assert!(!t.state_at_as_known(d("2026-06-01"), v_before).units[&uid("grorud")].is_live());
    // The old event is still there, only marked.
    assert!(t
        .records()
        .iter()
        .any(|r| r.event.context.command_id.as_str() == "m" && r.revoked_by == Some(t.version())));
    // Revoking again: nothing in force under that decision.
    let again = t
        .decide(cmd(
            "rv2",
            "2025-06-01",
            Action::RevokeDecision(Revocation {
                case_number: "25/100".into(),
                command_ids: None,
            }),
        ))
        .unwrap_err();
    assert_eq!(
        again,
        DomainError::UnknownDecision {
            case_number: "25/100".into()
        }
    );
}

#[test]
fn revocation_is_refused_when_later_changes_depend_on_it() {
    let mut t = timeline(oslo());
    let mut e = cmd(
        "e",
        "2021-01-01",
        Action::EstablishUnit(unit("bjerke", District, Some("oslo"), &[])),
    );
    e.context.decision.case_number = "21/1".into();
    run(&mut t, e).unwrap();
    run(
        &mut t,
        cmd(
            "r",
            "2022-01-01",
            Action::RenameUnit(Rename {
                unit: uid("bjerke"),
                name: Some("Bjerke bydel".into()),
                code: None,
            }),
        ),
    )
    .unwrap();
    let err = t
        .decide(cmd(
            "rv",
            "2023-01-01",
            Action::RevokeDecision(Revocation {
                case_number: "21/1".into(),
                command_ids: None,
            }),
        ))
        .unwrap_err();
    let DomainError::RevocationBlocked {
        case_number,
        dependents,
    } = err
    else {
        panic!("expected RevocationBlocked, got {err:?}");
    };
    assert_eq!(case_number, "21/1");
    assert_eq!(dependents.len(), 1);
    assert!(
        dependents[0].starts_with("r (decision case/r, effective 2022-01-01): unknown unit bjerke")
    );
}

// ---------------------------------------------------------------- exactly once

#[test]
fn a_retried_command_is_applied_once_and_a_reused_id_is_refused() {
    let c = cmd(
        "e",
        "2021-01-01",
        Action::EstablishUnit(unit("bjerke", District, Some("oslo"), &[])),
    );
    let mut t = timeline(oslo());
    run(&mut t, c.clone()).unwrap();
    Tf::with(())
        .given(t_events(&t))
        .when(c.clone())
        .then_expect_events(vec![]);
    let mut other = c;
    other.action = Action::EstablishUnit(unit("other", District, None, &[]));
    Tf::with(())
        .given(t_events(&t))
        .when(other)
        .then_expect_error(DomainError::CommandIdReused {
            command_id: CommandId::new("e").unwrap(),
            differs: "its change".into(),
        });
}

#[test]
fn applied_in_substance_ignores_who_and_why_but_not_what_when_or_on_whose_authority() {
    let c = cmd(
        "e",
        "2021-01-01",
        Action::EstablishUnit(unit("bjerke", District, Some("oslo"), &[])),
    );
    let mut t = timeline(oslo());
    assert!(!t.applied_in_substance(&c, false), "not applied yet");
    run(&mut t, c.clone()).unwrap();
    assert!(t.applied_in_substance(&c, false));
    let mut moved = c.clone();
    moved.context.actor = "someone-else".into();
    moved.context.rationale = "imported from CSV line 9".into();
    assert!(t.applied_in_substance(&moved, false));
    // ... while decide still refuses the id reused for another request, saying what differs.
    assert_eq!(
        t.decide(moved),
        Err(DomainError::CommandIdReused {
            command_id: CommandId::new("e").unwrap(),
            differs: "its actor, its rationale".into(),
        })
    );
    let mut later = c.clone();
    later.context.effective_from = d("2021-02-01");
    assert!(!t.applied_in_substance(&later, false));
    let mut other_decision = c.clone();
    other_decision.context.decision.case_number = "99/1".into();
    assert!(!t.applied_in_substance(&other_decision, false));
    let mut other_unit = c.clone();
    other_unit.action = Action::EstablishUnit(unit("other", District, Some("oslo"), &[]));
    assert!(!t.applied_in_substance(&other_unit, false));
    // Under another id: found by what it says only when asked to look past the id.
    let mut renumbered = c;
    renumbered.context.command_id = CommandId::new("e-other").unwrap();
    assert!(!t.applied_in_substance(&renumbered, false));
    assert!(t.applied_in_substance(&renumbered, true));
}

#[test]
fn lists_are_compared_as_sets_in_substance() {
    let mut t = timeline(oslo());
    let revoked = |ids: &[&str]| {
        cmd(
            "rv",
            "2022-01-01",
            Action::RevokeDecision(Revocation {
                case_number: "case/a".into(),
                command_ids: Some(ids.iter().map(|i| CommandId::new(*i).unwrap()).collect()),
            }),
        )
    };
    for id in ["a", "b"] {
        let c = ctx_case(id, "2021-01-01", "case/a");
        let mut e = cmd(
            id,
            "2021-01-01",
            Action::EstablishUnit(unit(&format!("u{id}"), District, Some("oslo"), &[])),
        );
        e.context = c;
        run(&mut t, e).unwrap();
    }
    run(&mut t, revoked(&["a", "b"])).unwrap();
    assert!(t.applied_in_substance(&revoked(&["b", "a"]), false));
    assert!(!t.applied_in_substance(&revoked(&["a"]), false));
}

#[test]
fn context_is_validated() {
    let mut c = cmd(
        "e",
        "2021-01-01",
        Action::EstablishUnit(unit("bjerke", District, None, &[])),
    );
    c.context.actor = String::new();
    refuses(
        oslo(),
        c.clone(),
        DomainError::InvalidInput {
            field: "actor".into(),
            reason: "must not be empty".into(),
        },
    );
    c.context.actor = "a".into();
    c.context.decision.case_number = " ".into();
    refuses(
        oslo(),
        c.clone(),
        DomainError::InvalidInput {
            field: "decision.case_number".into(),
            reason: "must not be empty".into(),
        },
    );
    // References are compared as written: " 21/1" would be another case than "21/1".
    c.context.decision.case_number = "21/1".into();
    for field in [
        "actor",
        "decision.case_number",
        "decision.body",
        "decision.title",
        "decision.link",
    ] {
        let mut padded = c.clone();
        let ctx = &mut padded.context;
        match field {
            "actor" => ctx.actor = " a".into(),
            "decision.case_number" => ctx.decision.case_number = "21/1 ".into(),
            "decision.body" => ctx.decision.body = "\tBystyret".into(),
            "decision.title" => ctx.decision.title = "Vedtak\n".into(),
            _ => ctx.decision.link = Some(" https://example.org/sak/21-1".into()),
        }
        refuses(
            oslo(),
            padded,
            DomainError::InvalidInput {
                field: field.into(),
                reason: "must not begin or end with whitespace".into(),
            },
        );
    }
    // Inner spaces and free text with spaces around it stay as they are.
    c.context.decision.title = "Ny bydelsinndeling".into();
    c.context.rationale = " why ".into();
    accepts(oslo(), c);
}

#[test]
fn names_and_codes_of_a_new_change_have_no_whitespace_around_them() {
    let padded = |field: &str, action: Action| {
        refuses(
            oslo(),
            cmd("p", "2021-01-01", action),
            DomainError::InvalidInput {
                field: field.into(),
                reason: "must not begin or end with whitespace".into(),
            },
        )
    };
    let mut bjerke = unit("bjerke", District, Some("oslo"), &[("030199", " Bjerke")]);
    padded(
        "action.areas[0].name",
        Action::EstablishUnit(bjerke.clone()),
    );
    bjerke.areas.clear();
    bjerke.code = Some("030199 ".into());
    padded("action.code", Action::EstablishUnit(bjerke.clone()));
    bjerke.code = None;
    bjerke.name = "Bydel Bjerke ".into();
    padded("action.name", Action::EstablishUnit(bjerke));
    padded(
        "action.name",
        Action::RenameUnit(Rename {
            unit: uid("oslo"),
            name: Some("\tOslo".into()),
            code: None,
        }),
    );
    padded(
        "action.code",
        Action::RenameUnit(Rename {
            unit: uid("oslo"),
            name: None,
            code: Some(" 0301".into()),
        }),
    );
    padded(
        "action.name",
        Action::RegisterService(ServiceDef {
            service: sc("library"),
            name: "Bibliotek ".into(),
            category: "library".into(),
        }),
    );
    // A blank name is still "must not be empty", and the same names written plainly pass.
    refuses(
        oslo(),
        cmd(
            "p",
            "2021-01-01",
            Action::RegisterService(ServiceDef {
                service: sc("library"),
                name: "  ".into(),
                category: "library".into(),
            }),
        ),
        DomainError::InvalidInput {
            field: "action.name".into(),
            reason: "must not be empty".into(),
        },
    );
    accepts(
        oslo(),
        cmd(
            "p",
            "2021-01-01",
            Action::RenameUnit(Rename {
                unit: uid("oslo"),
                name: Some("Oslo kommune".into()),
                code: Some("0301".into()),
            }),
        ),
    );
}

// ---------------------------------------------------------------- fork

#[test]
fn a_fork_starts_from_its_parents_events_and_diverges() {
    let base = oslo();
    let (mut s, _) = scenario();
    assert_eq!(s.version(), 1);
    assert_eq!(
        s.info().unwrap().forked_from,
        Some((TimelineId::new("oslo").unwrap(), 10))
    );
    assert_eq!(
        s.state_at(d("2024-01-01")),
        timeline(base).state_at(d("2024-01-01"))
    );
    run(
        &mut s,
        cmd(
            "cz",
            "2025-01-01",
            Action::CentraliseService(Centralisation {
                service: sc("home-care"),
                agency: uid("helseetaten"),
            }),
        ),
    )
    .unwrap();
    assert_eq!(holder(&s, "2025-01-01", "030110"), Some(uid("helseetaten")));
    // A fork whose base does not match its declared version is refused.
    refuses(
        vec![],
        cmd(
            "f",
            "2024-01-01",
            Action::ForkTimeline(Fork {
                name: "bad".into(),
                parent: TimelineId::new("oslo").unwrap(),
                parent_version: 3,
                base: oslo(),
            }),
        ),
        DomainError::InvalidInput {
            field: "action.base".into(),
            reason: "holds 10 events but parent_version is 3".into(),
        },
    );
}

/// A scenario forked from `oslo` at its version 10, and the events it recorded.
fn scenario() -> (Timeline, Vec<TimelineEvent>) {
    let base = oslo();
    let mut s = Timeline::default();
    let fork = run(
        &mut s,
        cmd(
            "f",
            "2024-01-01",
            Action::ForkTimeline(Fork {
                name: "Alternative 1".into(),
                parent: TimelineId::new("oslo").unwrap(),
                parent_version: base.len() as u64,
                base,
            }),
        ),
    )
    .unwrap()
    .unwrap();
    (s, vec![fork])
}

fn adoption(into: &str, into_version: u64) -> Action {
    Action::RecordAdoption(Adoption {
        into: TimelineId::new(into).unwrap(),
        into_version,
    })
}

#[test]
fn only_a_scenario_records_its_adoption_and_only_into_its_parent() {
    let (mut s, _) = scenario();
    let refused = run(&mut s, cmd("a", "2024-02-01", adoption("bergen", 12))).unwrap_err();
    assert_eq!(
        refused,
        DomainError::InvalidInput {
            field: "action.into".into(),
            reason: "is not the timeline this one was forked from: bergen".into(),
        }
    );
    let event = run(&mut s, cmd("a", "2024-02-01", adoption("oslo", 12)))
        .unwrap()
        .unwrap();
    assert_eq!(
        s.info().unwrap().adopted_into,
        Some((TimelineId::new("oslo").unwrap(), 12))
    );
    // A record about this timeline: no organisational change, nothing to adopt or ask again.
    assert!(!event.change.is_org_change());
    assert_eq!(event.change.to_action(), None);
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(
        json["change"],
        serde_json::json!({"type": "ScenarioAdopted", "into": "oslo", "into_version": 12})
    );
    assert_eq!(
        serde_json::from_value::<TimelineEvent>(json).unwrap(),
        event
    );
    // A later adoption (of changes made since) replaces it.
    run(&mut s, cmd("b", "2024-03-01", adoption("oslo", 14))).unwrap();
    assert_eq!(
        s.info().unwrap().adopted_into,
        Some((TimelineId::new("oslo").unwrap(), 14))
    );
    // A baseline has no parent to be adopted into.
    refuses(
        oslo(),
        cmd("a", "2024-02-01", adoption("oslo", 12)),
        DomainError::InvalidInput {
            field: "action.into".into(),
            reason: "is not the timeline this one was forked from: oslo".into(),
        },
    );
}

#[test]
fn a_scenario_of_an_adopted_scenario_is_not_adopted() {
    let (mut s, mut events) = scenario();
    events.extend(run(&mut s, cmd("a", "2024-02-01", adoption("oslo", 12))).unwrap());
    let mut child = Timeline::default();
    run(
        &mut child,
        cmd(
            "g",
            "2024-03-01",
            Action::ForkTimeline(Fork {
                name: "Alternative 1b".into(),
                parent: TimelineId::new("alt").unwrap(),
                parent_version: events.len() as u64,
                base: events,
            }),
        ),
    )
    .unwrap();
    assert_eq!(child.info().unwrap().adopted_into, None);
    assert_eq!(
        child.info().unwrap().forked_from,
        Some((TimelineId::new("alt").unwrap(), 2))
    );
}

#[test]
fn events_round_trip_through_json() {
    for e in oslo() {
        let json = serde_json::to_string(&e).unwrap();
        let back: TimelineEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(back, e);
    }
    let c = cmd("m", "2026-01-01", merge_new());
    let v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["action"]["type"], "MergeUnits");
    assert_eq!(v["effective_from"], "2026-01-01");
    assert_eq!(serde_json::from_value::<TimelineCommand>(v).unwrap(), c);
    // Ids are validated while parsing.
    let bad = serde_json::json!({"type": "DissolveUnit", "unit": ""});
    assert!(serde_json::from_value::<Action>(bad).is_err());
}

#[test]
fn states_on_or_after_lists_each_change_date_from_the_given_one() {
    let mut t = timeline(oslo());
    run(&mut t, cmd("m", "2026-01-01", merge_new())).unwrap();
    run(
        &mut t,
        cmd(
            "cz",
            "2025-01-01",
            Action::CentraliseService(Centralisation {
                service: sc("home-care"),
                agency: uid("helseetaten"),
            }),
        ),
    )
    .unwrap();
    let dates = |from: &str| -> Vec<NaiveDate> {
        t.states_on_or_after(d(from))
            .into_iter()
            .map(|(x, _)| x)
            .collect()
    };
    assert_eq!(
        dates("2019-01-01"),
        vec![
            d("2019-01-01"),
            d("2020-01-01"),
            d("2025-01-01"),
            d("2026-01-01")
        ]
    );
    assert_eq!(
        dates("2024-06-01"),
        vec![d("2024-06-01"), d("2025-01-01"), d("2026-01-01")]
    );
    assert_eq!(dates("2025-01-01"), vec![d("2025-01-01"), d("2026-01-01")]);
    assert_eq!(dates("2030-01-01"), vec![d("2030-01-01")]);
    for (date, state) in t.states_on_or_after(d("2019-01-01")) {
        assert_eq!(state, t.state_at(date), "state on {date}");
    }
}

#[test]
fn retired_and_duplicate_areas_are_refused() {
    // Divide Alna's only area, then try to use the old area and to reuse a carved code.
    let mut t = timeline(oslo());
    let carve = |code: &str| AreaDef {
        code: ac(code),
        name: format!("Alna {code}"),
        carved_from: Some(ac("030112")),
    };
    let mut north = unit("alna-nord", District, Some("oslo"), &[]);
    north.name = "Alna nord".into();
    run(
        &mut t,
        cmd(
            "s",
            "2026-01-01",
            Action::SplitUnit(Split {
                source: uid("alna"),
                parts: vec![
                    SplitPart {
                        target: PartTarget::Source,
                        areas: vec![],
                        carved_areas: vec![carve("030112s")],
                        children: vec![],
                    },
                    SplitPart {
                        target: PartTarget::New(north),
                        areas: vec![],
                        carved_areas: vec![carve("030112n")],
                        children: vec![],
                    },
                ],
            }),
        ),
    )
    .unwrap();
    let err = t
        .decide(cmd(
            "a",
            "2026-06-01",
            Action::AssignResponsibility(Assignment {
                service: sc("home-care"),
                unit: uid("helseetaten"),
                areas: vec![ac("030112")],
            }),
        ))
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::AreaRetired {
            area: ac("030112"),
            retired_on: d("2026-01-01")
        }
    );
    let mut again = unit("alna-sor", District, Some("oslo"), &[]);
    again.name = "Alna sør".into();
    let err = t
        .decide(cmd(
            "s2",
            "2026-06-01",
            Action::SplitUnit(Split {
                source: uid("alna"),
                parts: vec![
                    SplitPart {
                        target: PartTarget::Source,
                        areas: vec![],
                        carved_areas: vec![AreaDef {
                            code: ac("030112x"),
                            name: "x".into(),
                            carved_from: Some(ac("030112s")),
                        }],
                        children: vec![],
                    },
                    SplitPart {
                        target: PartTarget::New(again),
                        areas: vec![],
                        carved_areas: vec![AreaDef {
                            code: ac("030112n"),
                            name: "n".into(),
                            carved_from: Some(ac("030112s")),
                        }],
                        children: vec![],
                    },
                ],
            }),
        ))
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::DuplicateArea {
            area: ac("030112n")
        }
    );
}

#[test]
fn a_split_that_ends_the_source_cannot_orphan_its_other_responsibilities() {
    // Helseetaten runs home care in Sentrum, an area it does not hold; splitting it away entirely
    // would leave that pair with nobody.
    let mut given = oslo();
    given.push(ev(
        "sentrum",
        "2020-01-01",
        assign("helseetaten", &["030116"]),
    ));
    refuses(
        given,
        cmd(
            "s",
            "2026-01-01",
            Action::SplitUnit(Split {
                source: uid("helseetaten"),
                parts: vec![SplitPart {
                    target: PartTarget::Existing {
                        unit: uid("grorud"),
                    },
                    areas: vec![],
                    carved_areas: vec![],
                    children: vec![],
                }],
            }),
        ),
        DomainError::PairLeftWithoutResponsible {
            service: sc("home-care"),
            area: ac("030116"),
            unit: uid("helseetaten"),
        },
    );
}

#[test]
fn dates_outside_years_1_to_9999_and_nul_characters_are_invalid_input() {
    let mut c = cmd(
        "e",
        "2021-01-01",
        Action::EstablishUnit(unit("bjerke", District, None, &[])),
    );
    c.context.effective_from = NaiveDate::from_ymd_opt(-4714, 1, 1).unwrap();
    refuses(
        oslo(),
        c.clone(),
        DomainError::InvalidInput {
            field: "effective_from".into(),
            reason: "-4714-01-01 is outside the years 1 to 9999".into(),
        },
    );
    c.context.effective_from = d("2021-01-01");
    c.context.decision.decision_date = NaiveDate::from_ymd_opt(10000, 1, 1).unwrap();
    refuses(
        oslo(),
        c.clone(),
        DomainError::InvalidInput {
            field: "decision.decision_date".into(),
            reason: "+10000-01-01 is outside the years 1 to 9999".into(),
        },
    );
    c.context.decision.decision_date = d("2020-06-01");
    c.context.decision.title = "Vedtak\0".into();
    refuses(
        oslo(),
        c.clone(),
        DomainError::InvalidInput {
            field: "decision.title".into(),
            reason: "must not contain the NUL character".into(),
        },
    );
    // Ids refuse control characters (NUL among them) when they are parsed.
    assert!(UnitId::new("a\0b").is_err());
}

#[test]
fn names_refuse_bidirectional_controls_that_reorder_what_is_shown() {
    // "Bydel Alna" with an override that shows the rest of the name reversed.
    let mut u = unit("bjerke", District, None, &[]);
    u.name = "Bydel \u{202E}anlA".into();
    refuses(
        oslo(),
        cmd("e", "2021-01-01", Action::EstablishUnit(u.clone())),
        DomainError::InvalidInput {
            field: "action.name".into(),
            reason: "must not contain the bidirectional control character U+202E".into(),
        },
    );
    let mut c = cmd("e", "2021-01-01", Action::EstablishUnit(u.clone()));
    u.name = "Bydel Bjerke".into();
    c.action = Action::EstablishUnit(u.clone());
    c.context.decision.title = "Vedtak \u{2067}x\u{2069}".into();
    refuses(
        oslo(),
        c,
        DomainError::InvalidInput {
            field: "decision.title".into(),
            reason: "must not contain the bidirectional control character U+2067".into(),
        },
    );
    // A right-to-left mark only affects neutral characters around it: allowed.
    u.name = "Bydel Bjerke\u{200F}".into();
    let mut t = timeline(oslo());
    run(&mut t, cmd("e", "2021-01-01", Action::EstablishUnit(u))).unwrap();
}

#[test]
fn free_text_fields_refuse_nul_too() {
    let mut u = unit("bjerke", District, None, &[]);
    u.attributes
        .insert("population".into(), "33\u{0}000".into());
    refuses(
        oslo(),
        cmd("e", "2021-01-01", Action::EstablishUnit(u)),
        DomainError::InvalidInput {
            field: "action.attributes.population".into(),
            reason: "must not contain the NUL character".into(),
        },
    );
    refuses(
        oslo(),
        cmd(
            "r",
            "2021-01-01",
            Action::RegisterService(ServiceDef {
                service: sc("x"),
                name: "X".into(),
                category: "a\0".into(),
            }),
        ),
        DomainError::InvalidInput {
            field: "action.category".into(),
            reason: "must not contain the NUL character".into(),
        },
    );
}

#[test]
fn a_change_that_changes_nothing_is_refused() {
    let rename = |name: &str| {
        Action::RenameUnit(Rename {
            unit: uid("alna"),
            name: Some(name.into()),
            code: None,
        })
    };
    let mut t = timeline(oslo());
    let current = t.state_at(d("2026-01-01")).units[&uid("alna")].name.clone();
    let parent = t.state_at(d("2026-01-01")).units[&uid("alna")]
        .parent
        .clone();
    for (action, says) in [
        (rename(&current), "is already named"),
        (
            Action::MoveUnit(Move {
                unit: uid("alna"),
                new_parent: parent,
            }),
            "is already under",
        ),
    ] {
        match t.decide(cmd("noop", "2026-01-01", action)) {
            Err(DomainError::NothingToChange { reason }) => {
                assert!(reason.contains(says), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
    // Renamed in 2027 to what it will be called from 2026: nothing to change then either, even
    // though it is recorded after; before the earlier rename took effect it is a change.
    run(&mut t, cmd("r1", "2026-01-01", rename("Bydel Alna (ny)"))).unwrap();
    assert!(matches!(
        t.decide(cmd("r2", "2027-01-01", rename("Bydel Alna (ny)"))),
        Err(DomainError::NothingToChange { .. })
    ));
    run(&mut t, cmd("r3", "2025-01-01", rename("Bydel Alna (ny)"))).unwrap();
}

#[test]
fn a_merge_into_a_new_unit_may_keep_a_sources_code() {
    let mut given = oslo();
    given.push(ev(
        "code",
        "2020-01-01",
        Change::UnitRenamed(Rename {
            unit: uid("grorud"),
            name: None,
            code: Some("030110".into()),
        }),
    ));
    let mut succ = unit("grorud-stovner", District, Some("oslo"), &[]);
    succ.name = "Grorud og Stovner".into();
    succ.code = Some("030110".into());
    let merge = |succ: UnitDef, sources: Vec<UnitId>| {
        Action::MergeUnits(Merge {
            sources,
            successor: Successor::New(succ),
        })
    };
    accepts(
        given.clone(),
        cmd(
            "m",
            "2026-01-01",
            merge(succ.clone(), vec![uid("grorud"), uid("stovner")]),
        ),
    );
    // Not the code of a unit that lives on.
    refuses(
        given,
        cmd(
            "m",
            "2026-01-01",
            merge(succ, vec![uid("alna"), uid("stovner")]),
        ),
        DomainError::DuplicateCode {
            code: "030110".into(),
            holder: uid("grorud"),
        },
    );
}

#[test]
fn an_area_held_by_another_says_whose_the_command_took_it_for() {
    let e = DomainError::AreaHeldByOther {
        area: ac("030111"),
        holder: Some(uid("stovner")),
        assumed: Some(uid("alna")),
    };
    assert_eq!(e.to_string(), "area 030111 is held by stovner, not by alna");
    let free = DomainError::AreaHeldByOther {
        area: ac("030110"),
        holder: Some(uid("grorud")),
        assumed: None,
    };
    assert_eq!(free.to_string(), "area 030110 is held by grorud");
}

#[test]
fn a_service_point_is_handed_to_another_unit_with_its_services() {
    let transfer = |id: &str, date: &str, from: &str, to: &str| {
        cmd(
            id,
            date,
            Action::TransferServicePoint(ServicePointTransfer {
                point: pid("torg-grorud"),
                from: uid(from),
                to: uid(to),
            }),
        )
    };
    let mut t = timeline(oslo());
    run(
        &mut t,
        cmd(
            "o",
            "2021-01-01",
            Action::OpenServicePoint(ServicePointDef {
                point: pid("torg-grorud"),
                name: "Innbyggertorg Grorud".into(),
                unit: uid("grorud"),
                area: Some(ac("030110")),
                services: vec![sc("home-care")],
            }),
        ),
    )
    .unwrap();
    let given = t_events(&t);
    accepts(
        given.clone(),
        transfer("t", "2022-01-01", "grorud", "stovner"),
    );
    // Written against a stale chart: the giver is not who runs it.
    refuses(
        given.clone(),
        transfer("t", "2022-01-01", "alna", "stovner"),
        DomainError::ServicePointRunByOther {
            point: pid("torg-grorud"),
            runner: uid("grorud"),
            assumed: uid("alna"),
        },
    );
    // To a unit that does not exist (yet), or to the giver itself.
    refuses(
        given.clone(),
        transfer("t", "2022-01-01", "grorud", "nowhere"),
        DomainError::UnknownUnit {
            unit: uid("nowhere"),
        },
    );
    refuses(
        given.clone(),
        transfer("t", "2022-01-01", "alna", "alna"),
        DomainError::InvalidInput {
            field: "action.to".into(),
            reason: "the receiving unit must differ from the giving unit".into(),
        },
    );
    // Before it opens, it is not there to hand over, and the refusal says when it opens.
    refuses(
        given.clone(),
        transfer("t", "2020-06-01", "grorud", "stovner"),
        DomainError::ServicePointNotYetOpened {
            point: pid("torg-grorud"),
            opened_on: d("2021-01-01"),
            date: d("2020-06-01"),
        },
    );
    // Handing it to the unit that runs it changes nothing; giving and receiving unit the same
    // is malformed whoever runs it (422, as for areas and responsibilities).
    let same = t.decide(transfer("t", "2022-01-01", "alna", "grorud"));
    assert!(
        matches!(&same, Err(DomainError::NothingToChange { reason }) if reason == "service point torg-grorud is already run by grorud"),
        "{same:?}"
    );
    let same = t.decide(transfer("t", "2022-01-01", "grorud", "grorud"));
    assert!(
        matches!(&same, Err(DomainError::InvalidInput { field, .. }) if field == "action.to"),
        "{same:?}"
    );

    run(&mut t, transfer("t", "2022-01-01", "grorud", "stovner")).unwrap();
    let before = t.state_at(d("2021-12-31"));
    let after = t.state_at(d("2022-01-01"));
    assert_eq!(
        before.service_points[&pid("torg-grorud")].unit,
        uid("grorud")
    );
    let moved = &after.service_points[&pid("torg-grorud")];
    assert_eq!(moved.unit, uid("stovner"));
    // Only the runner changes: name, area, services and opening date stay.
    assert_eq!(moved.area, Some(ac("030110")));
    assert_eq!(moved.opened_on, d("2021-01-01"));
    assert!(moved.services.contains(&sc("home-care")));
    // The giver can now be dissolved (as far as points go); the receiver cannot.
    assert!(after.points_of(&uid("grorud")).is_empty());
    assert_eq!(after.points_of(&uid("stovner")), vec![pid("torg-grorud")]);
    // A back-dated transfer to a unit a later change dissolves breaks that later change.
    run(
        &mut t,
        cmd(
            "dissolve",
            "2023-01-01",
            Action::DissolveUnit(Dissolve {
                unit: uid("helseetaten"),
            }),
        ),
    )
    .unwrap();
    let err = t
        .decide(cmd(
            "back",
            "2022-06-01",
            Action::TransferServicePoint(ServicePointTransfer {
                point: pid("torg-grorud"),
                from: uid("stovner"),
                to: uid("helseetaten"),
            }),
        ))
        .unwrap_err();
    assert_eq!(
        err,
        DomainError::ConflictsWithLaterChange {
            later_command: CommandId::new("dissolve").unwrap(),
            later_case: "case/dissolve".into(),
            later_effective: d("2023-01-01"),
            reason: Box::new(DomainError::UnitRunsServicePoints {
                unit: uid("helseetaten"),
                points: vec![pid("torg-grorud")],
            }),
        }
    );
}
