//! `queries::compare`: the scripted Oslo baseline against a scenario that merges Grorud with
//! Alna instead of Stovner and never centralises home care, on PostgreSQL and SQLite.

mod common;

use common::*;
use omorg_domain::*;
use omorg_projections::queries::{self, AsOf};
use omorg_projections::{ProjectionError, Projector};
use omorg_store::{Backend, CommandMetadata, Store};

/// The scenario's commands, on timeline "alt" (command ids are unique across timelines).
fn scenario() -> Vec<TimelineCommand> {
    let create = Action::CreateTimeline(TimelineDef {
        name: "Alternativ".into(),
        description: String::new(),
    });
    let mut out = vec![
        cmd("alt-c0", "2020-01-01", "20/1", create),
        cmd(
            "alt-c1",
            "2020-01-01",
            "20/1",
            unit("oslo", "Oslo kommune", UnitKind::Municipality, None, None),
        ),
    ];
    for (i, (id, name, area, area_name)) in [
        ("grorud", "Bydel Grorud", "030110", "Grorud"),
        ("stovner", "Bydel Stovner", "030111", "Stovner"),
        ("alna", "Bydel Alna", "030112", "Alna"),
    ]
    .into_iter()
    .enumerate()
    {
        out.push(cmd(
            &format!("alt-u{i}"),
            "2020-01-01",
            "20/1",
            unit(
                id,
                name,
                UnitKind::District,
                Some("oslo"),
                Some((area, area_name)),
            ),
        ));
    }
    out.push(cmd(
        "alt-c5",
        "2020-01-01",
        "20/1",
        unit(
            "helseetaten",
            "Helseetaten",
            UnitKind::CentralAgency,
            Some("oslo"),
            None,
        ),
    ));
    out.push(cmd(
        "alt-c6",
        "2020-01-01",
        "20/1",
        Action::RegisterService(ServiceDef {
            service: ServiceCode::new("home-care").unwrap(),
            name: "Hjemmetjenester".into(),
            category: "home care".into(),
        }),
    ));
    for (i, (u, a)) in [
        ("grorud", "030110"),
        ("stovner", "030111"),
        ("alna", "030112"),
    ]
    .iter()
    .enumerate()
    {
        out.push(cmd(
            &format!("alt-a{i}"),
            "2020-01-01",
            "20/1",
            Action::AssignResponsibility(Assignment {
                service: ServiceCode::new("home-care").unwrap(),
                unit: UnitId::new(*u).unwrap(),
                areas: vec![AreaCode::new(*a).unwrap()],
            }),
        ));
    }
    out.push(cmd(
        "alt-m1",
        "2026-01-01",
        "25/900",
        merge("grorud-alna", "Bydel Grorud og Alna", "grorud", "alna"),
    ));
    out
}

async fn compare_baseline_and_scenario(backend: Backend) {
    let (db, _store, _) = oslo_until_merge(backend).await;
    let alt: Store<Timeline> = Store::new(db.clone(), ());
    for c in scenario() {
        let id = c.context.command_id.to_string();
        alt.execute("alt", c, CommandMetadata::new(id.clone()))
            .await
            .unwrap_or_else(|e| panic!("{id} refused: {e:?}"));
    }
    Projector::new(db.clone())
        .catch_up_to_head(PATIENCE, |_| {})
        .await
        .unwrap();

    // Before 2025 both say the same: nothing differs.
    let same = queries::compare(&db, T, "alt", AsOf::now(d("2024-06-01")))
        .await
        .unwrap();
    assert!(same.responsibilities.is_empty(), "{same:?}");
    assert!(same.units.is_empty(), "{same:?}");

    // In mid-2026: the baseline centralised home care and merged Grorud with Stovner; the
    // scenario kept home care in the districts and merged Grorud with Alna.
    let c = queries::compare(&db, T, "alt", AsOf::now(d("2026-06-01")))
        .await
        .unwrap();
    assert_eq!((c.a.as_str(), c.b.as_str()), (T, "alt"));
    let rows: Vec<String> = c
        .responsibilities
        .iter()
        .map(|r| {
            format!(
                "{} {} ({}): {} | {}",
                r.service_code,
                r.area_code,
                r.area_name,
                r.a_unit_id.as_deref().unwrap_or("-"),
                r.b_unit_id.as_deref().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            "home-care 030110 (Grorud): helseetaten | grorud-alna",
            "home-care 030111 (Stovner): helseetaten | stovner",
            "home-care 030112 (Alna): helseetaten | grorud-alna",
        ]
    );
    let units: Vec<(String, bool, bool)> = c
        .units
        .iter()
        .map(|u| (u.unit_id.clone(), u.a.is_some(), u.b.is_some()))
        .collect();
    assert_eq!(
        units,
        [
            ("alna".to_owned(), true, false),
            ("grorud-alna".to_owned(), false, true),
            ("grorud-stovner".to_owned(), true, false),
            ("stovner".to_owned(), false, true),
        ]
    );

    // An unknown timeline on either side is an error in the user's terms.
    assert!(matches!(
        queries::compare(&db, T, "nope", AsOf::now(d("2026-06-01"))).await,
        Err(ProjectionError::UnknownTimeline(id)) if id == "nope"
    ));
}

#[tokio::test]
async fn compare_postgres() {
    compare_baseline_and_scenario(Backend::Postgres).await;
}

#[tokio::test]
async fn compare_sqlite() {
    compare_baseline_and_scenario(Backend::Sqlite).await;
}
