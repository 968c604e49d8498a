//! The scripted history of issue 4, on PostgreSQL and on SQLite: districts and a central agency,
//! home care run by each district, centralised effective 2025-01-01, two districts merged
//! effective 2026-01-01, then a correction recorded later (the merge decision revoked and a
//! different merge decided). Every query is checked at dates before, between and after, and as
//! known before and after the correction; then a rebuild must reproduce the tables row for row.

mod common;

use common::*;
use omorg_domain::*;
use omorg_projections::queries::{self, AsOf, DecisionFilter};
use omorg_projections::Projector;
use omorg_store::{Backend, Database};

/// Responsibility for home care per area as of a date, as "area=unit" strings.
async fn home_care(db: &Database, at: AsOf) -> Vec<String> {
    queries::responsibility_matrix(db, T, at)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.service_code == "home-care")
        .map(|r| format!("{}={}", r.area_code, r.unit_id))
        .collect()
}

async fn districts(db: &Database, at: AsOf) -> Vec<String> {
    let chart = queries::org_chart(db, T, at).await.unwrap();
    assert_eq!(chart.len(), 1, "one root: the municipality");
    assert_eq!(chart[0].unit.unit_id, "oslo");
    chart[0]
        .children
        .iter()
        .map(|n| n.unit.unit_id.clone())
        .collect()
}

async fn scripted_history(backend: Backend) {
    let (db, store, merged_at) = oslo_until_merge(backend).await;
    let mut projector = Projector::new(db.clone());
    let progress = projector.catch_up_to_head(PATIENCE, |_| {}).await.unwrap();
    assert_eq!(progress.applied, 12);

    // Before the correction.
    let (before, between, after) = (d("2024-06-01"), d("2025-06-01"), d("2026-06-01"));
    assert_eq!(
        home_care(&db, AsOf::now(before)).await,
        ["030110=grorud", "030111=stovner", "030112=alna"]
    );
    assert_eq!(
        home_care(&db, AsOf::now(between)).await,
        [
            "030110=helseetaten",
            "030111=helseetaten",
            "030112=helseetaten"
        ]
    );
    assert_eq!(
        home_care(&db, AsOf::now(after)).await,
        [
            "030110=helseetaten",
            "030111=helseetaten",
            "030112=helseetaten"
        ]
    );
    assert_eq!(
        districts(&db, AsOf::now(between)).await,
        ["alna", "grorud", "stovner", "helseetaten"]
    );
    assert_eq!(
        districts(&db, AsOf::now(after)).await,
        ["alna", "grorud-stovner", "helseetaten"]
    );

    // The correction, recorded later: the merge decision is revoked and Grorud merges with Alna.
    run(
        &store,
        cmd(
            "rv",
            "2025-10-01",
            "25/150",
            Action::RevokeDecision(Revocation {
                case_number: "25/100".into(),
                command_ids: None,
            }),
        ),
    )
    .await;
    run(
        &store,
        cmd(
            "m2",
            "2026-01-01",
            "25/151",
            merge("grorud-alna", "Bydel Grorud og Alna", "grorud", "alna"),
        ),
    )
    .await;
    let progress = projector.catch_up_to_head(PATIENCE, |_| {}).await.unwrap();
    assert_eq!(progress.applied, 2);

    // As known now.
    assert_eq!(
        districts(&db, AsOf::now(before)).await,
        ["alna", "grorud", "stovner", "helseetaten"]
    );
    assert_eq!(
        districts(&db, AsOf::now(after)).await,
        ["grorud-alna", "stovner", "helseetaten"]
    );
    assert_eq!(
        home_care(&db, AsOf::now(before)).await,
        ["030110=grorud", "030111=stovner", "030112=alna"]
    );
    assert_eq!(
        home_care(&db, AsOf::now(after)).await,
        [
            "030110=helseetaten",
            "030111=helseetaten",
            "030112=helseetaten"
        ]
    );
    let units_after = queries::units(&db, T, AsOf::now(after)).await.unwrap();
    let ga = units_after
        .iter()
        .find(|u| u.unit_id == "grorud-alna")
        .expect("grorud-alna");
    assert_eq!(ga.areas, ["030110", "030112"]);
    assert_eq!(ga.effective_from, d("2026-01-01"));

    // As known right after the first merge was recorded: the first merge stood.
    let then = AsOf::known_at(after, merged_at);
    assert_eq!(
        districts(&db, then).await,
        ["alna", "grorud-stovner", "helseetaten"]
    );
    let then_units = queries::units(&db, T, then).await.unwrap();
    assert_eq!(
        then_units
            .iter()
            .find(|u| u.unit_id == "grorud-stovner")
            .unwrap()
            .areas,
        ["030110", "030111"]
    );
    // The same by stream version: after event 12 (the merge) and before it.
    assert_eq!(
        districts(&db, AsOf::known_at_version(after, 12)).await,
        ["alna", "grorud-stovner", "helseetaten"]
    );
    assert_eq!(
        districts(&db, AsOf::known_at_version(after, 11)).await,
        ["alna", "grorud", "stovner", "helseetaten"]
    );
    assert_eq!(
        districts(&db, AsOf::known_at_version(after, 14)).await,
        ["grorud-alna", "stovner", "helseetaten"]
    );
    // The matrix by stream version: before event 11 (the centralisation) the districts still
    // ran home care in 2025, named as they were then.
    assert_eq!(
        home_care(&db, AsOf::known_at_version(between, 10)).await,
        ["030110=grorud", "030111=stovner", "030112=alna"]
    );
    assert_eq!(
        home_care(&db, AsOf::known_at_version(between, 11)).await,
        [
            "030110=helseetaten",
            "030111=helseetaten",
            "030112=helseetaten"
        ]
    );
    let cells = queries::responsibility_matrix(&db, T, AsOf::known_at_version(between, 10))
        .await
        .unwrap();
    let grorud = cells.iter().find(|c| c.area_code == "030110").unwrap();
    assert_eq!(
        (grorud.unit_name.as_str(), grorud.unit_kind.as_str()),
        ("Bydel Grorud", "district")
    );
    assert_eq!(grorud.area_name, "Grorud");
    // By recorded instant: right after the merge was recorded, and before anything was.
    assert_eq!(
        home_care(&db, AsOf::known_at(before, merged_at)).await,
        ["030110=grorud", "030111=stovner", "030112=alna"]
    );
    assert!(home_care(
        &db,
        AsOf::known_at(before, "2000-01-01T00:00:00Z".parse().unwrap())
    )
    .await
    .is_empty());
    // And before it was recorded at all, nobody had heard of a merge.
    let earlier = AsOf::known_at(after, merged_at - chrono::Duration::microseconds(1));
    assert_eq!(
        districts(&db, earlier).await,
        ["alna", "grorud", "stovner", "helseetaten"]
    );

    // Lineage, both directions, only the decision in force.
    let h = queries::unit_history(&db, T, "grorud").await.unwrap();
    assert_eq!(
        h.successors
            .iter()
            .map(|e| (e.kind.as_str(), e.to_id.as_str()))
            .collect::<Vec<_>>(),
        [("merged_into", "grorud-alna")]
    );
    assert_eq!(h.versions.len(), 1);
    assert_eq!(h.versions[0].effective_to, Some(d("2026-01-01")));
    let h = queries::unit_history(&db, T, "grorud-alna").await.unwrap();
    let mut preds: Vec<_> = h.predecessors.iter().map(|e| e.from_id.clone()).collect();
    preds.sort();
    assert_eq!(preds, ["alna", "grorud"]);

    // Service history: district, then agency, per area.
    let sh = queries::service_history(&db, T, "home-care").await.unwrap();
    let grorud: Vec<_> = sh
        .responsibilities
        .iter()
        .filter(|r| r.area_code == "030110")
        .map(|r| (r.unit_id.as_str(), r.effective_from, r.effective_to))
        .collect();
    assert_eq!(
        grorud,
        [
            ("grorud", d("2020-01-01"), Some(d("2025-01-01"))),
            ("helseetaten", d("2025-01-01"), None)
        ]
    );

    // Decision log: the revoked merge is still there, marked.
    let log = queries::decision_log(
        &db,
        T,
        &DecisionFilter {
            case_number: Some("25/100".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(log.len(), 1);
    assert!(log[0].revoked_at.is_some());
    let by_body = queries::decision_log(
        &db,
        T,
        &DecisionFilter {
            body: Some("Bystyret".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_body.len(), 14);
    let none = queries::decision_log(
        &db,
        T,
        &DecisionFilter {
            decided_from: Some(d("2030-01-01")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(none.is_empty());

    // Changes between two dates.
    let ch = queries::changes_between(&db, T, d("2025-06-01"), d("2026-06-01"))
        .await
        .unwrap();
    assert_eq!(
        ch.decisions
            .iter()
            .map(|x| x.command_id.as_str())
            .collect::<Vec<_>>(),
        ["m2"]
    );
    assert_eq!(ch.units_added, ["grorud-alna"]);
    assert_eq!(ch.units_removed, ["alna", "grorud"]);
    let ch = queries::changes_between(&db, T, d("2024-06-01"), d("2025-06-01"))
        .await
        .unwrap();
    assert_eq!(ch.responsibilities_after.len(), 3);
    assert!(ch
        .responsibilities_after
        .iter()
        .all(|r| r.unit_id == "helseetaten"));

    // Errors in the user's terms.
    assert!(matches!(
        queries::org_chart(&db, "nope", AsOf::now(after)).await,
        Err(omorg_projections::ProjectionError::UnknownTimeline(_))
    ));
    assert!(queries::changes_between(&db, T, after, before)
        .await
        .is_err());

    // A rebuild gives the same rows, row for row.
    let snapshot = dump(&db).await;
    let rebuilt = projector.rebuild(|_| {}).await.unwrap();
    assert_eq!(rebuilt.applied, 14);
    assert_eq!(dump(&db).await, snapshot);
}

/// Every read-model row, with recorded instants replaced by the stream version that wrote them
/// (a rebuild writes the same content but, naturally, keeps recorded times from the events).
async fn dump(db: &Database) -> Vec<String> {
    let mut out = Vec::new();
    for table in [
        "unit_versions",
        "area_versions",
        "service_versions",
        "responsibility_versions",
        "service_point_versions",
        "lineage_edges",
        "decisions",
        "change_feed",
        "timelines",
    ] {
        let rows: Vec<String> = match db {
            Database::Postgres(p) => {
                let sql =
                    format!("SELECT to_jsonb(t) - 'updated_at' AS j FROM {table} t ORDER BY 1");
                sqlx::query_scalar::<_, serde_json::Value>(&sql)
                    .fetch_all(p)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|v| v.to_string())
                    .collect()
            }
            Database::Sqlite(p) => {
                let cols: Vec<String> = sqlx::query_scalar(&format!(
                    "SELECT name FROM pragma_table_info('{table}') WHERE name <> 'updated_at'"
                ))
                .fetch_all(p)
                .await
                .unwrap();
                let sql = format!(
                    "SELECT {} FROM {table} ORDER BY 1",
                    cols.iter()
                        .map(|c| format!("quote({c})"))
                        .collect::<Vec<_>>()
                        .join(" || '|' || ")
                );
                sqlx::query_scalar::<_, String>(&sql)
                    .fetch_all(p)
                    .await
                    .unwrap()
            }
        };
        let mut rows = rows;
        rows.sort();
        out.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    out
}

#[tokio::test]
async fn scripted_history_postgres() {
    scripted_history(Backend::Postgres).await;
}

#[tokio::test]
async fn scripted_history_sqlite() {
    scripted_history(Backend::Sqlite).await;
}
