//! Runs every SQL example of docs/reporting.md against the scripted Oslo history on PostgreSQL,
//! so the documentation cannot drift from the schema; and checks the views answer what the Rust
//! queries answer.

mod common;

use common::*;
use omorg_projections::queries::{self, AsOf};
use omorg_projections::Projector;
use omorg_store::{Backend, Database};

fn examples() -> Vec<String> {
    let doc = include_str!("../../docs/reporting.md");
    doc.split("```sql")
        .skip(1)
        .map(|block| {
            block
                .split("```")
                .next()
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect()
}

#[tokio::test]
async fn every_documented_example_runs_and_answers() {
    let (db, _store, _) = oslo_until_merge(Backend::Postgres).await;
    Projector::new(db.clone())
        .catch_up_to_head(PATIENCE, |_| {})
        .await
        .unwrap();
    let Database::Postgres(pool) = &db else {
        unreachable!()
    };
    let blocks = examples();
    assert!(blocks.len() >= 6, "docs/reporting.md lost its examples");
    for sql in &blocks {
        let rows = sqlx::query(sql)
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| panic!("documented example failed: {e}\n{sql}"));
        assert!(
            !rows.is_empty(),
            "documented example returned nothing:\n{sql}"
        );
    }
    // The first example's answer, checked exactly.
    let first: Vec<(String, String, String)> =
        sqlx::query_as(&blocks[0]).fetch_all(pool).await.unwrap();
    assert_eq!(
        first,
        [
            ("030110".into(), "Grorud".into(), "Bydel Grorud".into()),
            ("030111".into(), "Stovner".into(), "Bydel Stovner".into()),
            ("030112".into(), "Alna".into(), "Bydel Alna".into()),
        ]
    );
}

#[tokio::test]
async fn sql_functions_agree_with_the_rust_queries() {
    let (db, _store, merged_at) = oslo_until_merge(Backend::Postgres).await;
    Projector::new(db.clone())
        .catch_up_to_head(PATIENCE, |_| {})
        .await
        .unwrap();
    let Database::Postgres(pool) = &db else {
        unreachable!()
    };
    for date in ["2019-01-01", "2024-06-01", "2025-06-01", "2026-06-01"] {
        for known in [None, Some(merged_at - chrono::Duration::microseconds(1))] {
            let at = match known {
                None => AsOf::now(d(date)),
                Some(k) => AsOf::known_at(d(date), k),
            };
            let mut rust: Vec<(String, String, String)> =
                queries::responsibility_matrix(&db, T, at)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.service_code, r.area_code, r.unit_id))
                    .collect();
            rust.sort();
            let mut sql: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT service_code, area_code, unit_id FROM responsibilities_as_of($1, $2) WHERE timeline_id = $3",
            )
            .bind(d(date))
            .bind(known)
            .bind(T)
            .fetch_all(pool)
            .await
            .unwrap();
            sql.sort();
            assert_eq!(rust, sql, "as of {date}, known {known:?}");
            let mut rust_units: Vec<String> = queries::units(&db, T, at)
                .await
                .unwrap()
                .into_iter()
                .map(|u| u.unit_id)
                .collect();
            rust_units.sort();
            let mut sql_units: Vec<String> = sqlx::query_scalar(
                "SELECT unit_id FROM org_chart_as_of($1, $2) WHERE timeline_id = $3",
            )
            .bind(d(date))
            .bind(known)
            .bind(T)
            .fetch_all(pool)
            .await
            .unwrap();
            sql_units.sort();
            assert_eq!(rust_units, sql_units, "units as of {date}, known {known:?}");
        }
    }
}

#[tokio::test]
async fn sqlite_has_the_current_views() {
    let (db, _store, _) = oslo_until_merge(Backend::Sqlite).await;
    Projector::new(db.clone())
        .catch_up_to_head(PATIENCE, |_| {})
        .await
        .unwrap();
    let Database::Sqlite(pool) = &db else {
        unreachable!()
    };
    // Today is after every date in the history, so Helseetaten holds home care everywhere.
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT area_code, unit_id FROM current_responsibilities WHERE timeline_id = 'oslo' ORDER BY area_code")
        .fetch_all(pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|(_, u)| u == "helseetaten"));
    let units: Vec<String> = sqlx::query_scalar(
        "SELECT unit_id FROM current_org_chart WHERE timeline_id = 'oslo' ORDER BY unit_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(units, ["alna", "grorud-stovner", "helseetaten", "oslo"]);
}
