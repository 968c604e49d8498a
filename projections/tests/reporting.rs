//! Runs every SQL example of docs/reporting.md against the scripted Oslo history on PostgreSQL,
//! so the documentation cannot drift from the schema; and checks the views answer what the Rust
//! queries answer.

mod common;

use common::*;
use omorg_domain::{
    Action, AreaCode, Assignment, ServiceCode, ServiceDef, ServicePointDef, ServicePointId, UnitId,
    UnitKind,
};
use omorg_projections::queries::{self, AsOf};
use omorg_projections::Projector;
use omorg_store::{Backend, Database};

/// Where a documented example runs.
#[derive(Clone, Copy, Debug, PartialEq)]
enum On {
    /// Plain SQL: on both databases, with the same answer.
    Both,
    /// The PostgreSQL form (functions); the next block is its SQLite twin.
    Postgres,
    /// The SQLite twin of the previous block.
    Sqlite,
}

/// The SQL blocks of docs/reporting.md in order: ```` ```sql ````, ```` ```sql postgres ```` and
/// ```` ```sql sqlite ````.
fn examples() -> Vec<(On, String)> {
    let doc = include_str!("../../docs/reporting.md");
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(i) = rest.find("```sql") {
        let after = &rest[i + "```sql".len()..];
        let (tag, body) = after.split_once('\n').expect("an unterminated fence");
        let on = match tag.trim() {
            "" => On::Both,
            "postgres" => On::Postgres,
            "sqlite" => On::Sqlite,
            other => panic!("unknown SQL block tag {other:?} in docs/reporting.md"),
        };
        let (sql, tail) = body.split_once("```").expect("an unterminated fence");
        out.push((on, sql.trim().to_string()));
        rest = tail;
    }
    out
}

/// The examples as questions: each with the SQL to run on PostgreSQL and on SQLite.
fn questions() -> Vec<(String, String)> {
    let blocks = examples();
    let mut out = Vec::new();
    let mut i = 0;
    while i < blocks.len() {
        match &blocks[i] {
            (On::Both, sql) => out.push((sql.clone(), sql.clone())),
            (On::Postgres, pg) => match blocks.get(i + 1) {
                Some((On::Sqlite, lite)) => {
                    out.push((pg.clone(), lite.clone()));
                    i += 1;
                }
                _ => panic!("a `sql postgres` block without its `sql sqlite` twin:\n{pg}"),
            },
            (On::Sqlite, lite) => {
                panic!("a `sql sqlite` block without a `sql postgres` one:\n{lite}")
            }
        }
        i += 1;
    }
    out
}

/// A recorded instant in the SQLite form (`2026-01-01T00:00:00.000000Z`).
fn is_instant(s: &str) -> bool {
    s.len() == 27
        && s.as_bytes()[10] == b'T'
        && s.ends_with('Z')
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// One cell as text both databases can be compared on: JSON re-serialised, booleans as 0/1,
/// and recorded instants (which differ between two runs of the history) as `<instant>`.
fn normalised(text: String) -> String {
    if is_instant(&text) {
        return "<instant>".into();
    }
    if text.starts_with('[') || text.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
            return v.to_string();
        }
    }
    text
}

fn pg_cells(row: &sqlx::postgres::PgRow) -> Vec<String> {
    use sqlx::{Column, Row, TypeInfo, ValueRef};
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            if row.try_get_raw(i).unwrap().is_null() {
                return "NULL".to_string();
            }
            let text = match col.type_info().name() {
                "TEXT" | "VARCHAR" | "NAME" => row.get::<String, _>(i),
                "INT8" => row.get::<i64, _>(i).to_string(),
                "INT4" => row.get::<i32, _>(i).to_string(),
                "BOOL" => u8::from(row.get::<bool, _>(i)).to_string(),
                "DATE" => row.get::<chrono::NaiveDate, _>(i).to_string(),
                "TIMESTAMPTZ" => "<instant>".to_string(),
                "JSONB" | "JSON" => row.get::<serde_json::Value, _>(i).to_string(),
                other => panic!("column {} of type {other}: add it here", col.name()),
            };
            normalised(text)
        })
        .collect()
}

fn sqlite_cells(row: &sqlx::sqlite::SqliteRow) -> Vec<String> {
    use sqlx::{Row, TypeInfo, ValueRef};
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i).unwrap();
            if raw.is_null() {
                return "NULL".to_string();
            }
            let text = match raw.type_info().name() {
                "INTEGER" => row.get::<i64, _>(i).to_string(),
                _ => row.get::<String, _>(i),
            };
            normalised(text)
        })
        .collect()
}

/// A service point in Grorud offering home care (from 2024-01-01), so that the service-point
/// examples have something to find.
fn service_point() -> omorg_domain::TimelineCommand {
    cmd(
        "sp1",
        "2024-01-01",
        "23/9",
        Action::OpenServicePoint(ServicePointDef {
            point: ServicePointId::new("grorud-torg").unwrap(),
            name: "Grorud innbyggertorg".into(),
            unit: UnitId::new("grorud").unwrap(),
            area: Some(AreaCode::new("030110").unwrap()),
            services: vec![ServiceCode::new("home-care").unwrap()],
        }),
    )
}

#[tokio::test]
async fn every_documented_example_runs_and_answers_the_same_on_both_databases() {
    let (pg_db, pg_store, _) = oslo_until_merge(Backend::Postgres).await;
    let (lite_db, lite_store, _) = oslo_until_merge(Backend::Sqlite).await;
    for store in [&pg_store, &lite_store] {
        run(store, service_point()).await;
    }
    for db in [&pg_db, &lite_db] {
        Projector::new(db.clone())
            .catch_up_to_head(PATIENCE, |_| {})
            .await
            .unwrap();
    }
    let (Database::Postgres(pg), Database::Sqlite(lite)) = (&pg_db, &lite_db) else {
        unreachable!()
    };
    let questions = questions();
    assert!(questions.len() >= 7, "docs/reporting.md lost its examples");
    assert!(
        examples().iter().any(|(on, _)| *on == On::Sqlite),
        "docs/reporting.md lost its SQLite forms"
    );
    let mut answers = Vec::new();
    for (pg_sql, lite_sql) in &questions {
        let on_pg: Vec<Vec<String>> = sqlx::query(pg_sql)
            .fetch_all(pg)
            .await
            .unwrap_or_else(|e| panic!("documented example failed on PostgreSQL: {e}\n{pg_sql}"))
            .iter()
            .map(pg_cells)
            .collect();
        let on_lite: Vec<Vec<String>> = sqlx::query(lite_sql)
            .fetch_all(lite)
            .await
            .unwrap_or_else(|e| panic!("documented example failed on SQLite: {e}\n{lite_sql}"))
            .iter()
            .map(sqlite_cells)
            .collect();
        assert!(
            !on_pg.is_empty(),
            "documented example returned nothing:\n{pg_sql}"
        );
        assert_eq!(
            on_pg, on_lite,
            "the databases disagree on a documented example:\n{pg_sql}\n---\n{lite_sql}"
        );
        answers.push(on_pg);
    }
    // The first example's answer, checked exactly.
    assert_eq!(
        answers[0],
        [
            ["030110", "Grorud", "Bydel Grorud"],
            ["030111", "Stovner", "Bydel Stovner"],
            ["030112", "Alna", "Bydel Alna"],
        ]
    );
}

#[test]
fn instants_are_recognised_only_in_the_stored_form() {
    assert!(is_instant("2026-11-24T09:47:05.673318Z"));
    assert!(!is_instant("2026-11-24 09:47:05.673318+00"));
    assert!(!is_instant("Bydel Grorud"));
}

#[tokio::test]
async fn sql_functions_agree_with_the_rust_queries() {
    let (db, store, merged_at) = oslo_until_merge(Backend::Postgres).await;
    // Opened after the merge was recorded: "known" just before it must not see the point, and
    // the merge hands it from Grorud to the merged district on 2026-01-01.
    run(&store, service_point()).await;
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
            let rust_points: Vec<(String, String)> = queries::service_points(&db, T, at)
                .await
                .unwrap()
                .into_iter()
                .map(|p| (p.point_id, p.unit_id))
                .collect();
            let sql_points: Vec<(String, String)> = sqlx::query_as(
                "SELECT point_id, unit_id FROM service_points_as_of($1, $2) WHERE timeline_id = $3 ORDER BY point_id",
            )
            .bind(d(date))
            .bind(known)
            .bind(T)
            .fetch_all(pool)
            .await
            .unwrap();
            assert_eq!(
                rust_points, sql_points,
                "points as of {date}, known {known:?}"
            );
            if date == "2026-06-01" && known.is_none() {
                assert_eq!(
                    sql_points,
                    [("grorud-torg".to_owned(), "grorud-stovner".to_owned())]
                );
            }
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

/// The PostgreSQL "current" views take today in UTC, like the API's default date and the SQLite
/// views, whatever the session's time zone. At any instant one of UTC−12 and UTC+14 has another
/// date than UTC: the first is still on yesterday before noon UTC, the second already on tomorrow
/// from 10:00 UTC; views on CURRENT_DATE showed yesterday's or tomorrow's organisation there.
#[tokio::test]
async fn current_views_on_postgres_take_today_in_utc_in_any_session_time_zone() {
    let (db, store, _) = oslo_until_merge(Backend::Postgres).await;
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today.succ_opt().unwrap();
    for (unit_id, area, service, on) in [
        ("today-unit", "039901", "today-service", today),
        ("tomorrow-unit", "039902", "tomorrow-service", tomorrow),
    ] {
        let on = on.to_string();
        run(
            &store,
            cmd(
                &format!("{unit_id}-est"),
                &on,
                "26/1",
                unit(
                    unit_id,
                    unit_id,
                    UnitKind::District,
                    Some("oslo"),
                    Some((area, area)),
                ),
            ),
        )
        .await;
        run(
            &store,
            cmd(
                &format!("{unit_id}-svc"),
                &on,
                "26/1",
                Action::RegisterService(ServiceDef {
                    service: ServiceCode::new(service).unwrap(),
                    name: service.into(),
                    category: "test".into(),
                }),
            ),
        )
        .await;
        run(
            &store,
            cmd(
                &format!("{unit_id}-assign"),
                &on,
                "26/1",
                Action::AssignResponsibility(Assignment {
                    service: ServiceCode::new(service).unwrap(),
                    unit: UnitId::new(unit_id).unwrap(),
                    areas: vec![AreaCode::new(area).unwrap()],
                }),
            ),
        )
        .await;
    }
    Projector::new(db.clone())
        .catch_up_to_head(PATIENCE, |_| {})
        .await
        .unwrap();
    let Database::Postgres(pool) = &db else {
        unreachable!()
    };
    let mut conn = pool.acquire().await.unwrap();
    for zone in ["UTC", "Etc/GMT+12", "Etc/GMT-14", "Europe/Oslo"] {
        sqlx::query(&format!("SET TIME ZONE '{zone}'"))
            .execute(&mut *conn)
            .await
            .unwrap();
        for (view, sql, expected) in [
            (
                "current_org_chart",
                "SELECT unit_id FROM current_org_chart WHERE timeline_id = 'oslo' AND unit_id LIKE '%-unit' ORDER BY unit_id",
                "today-unit",
            ),
            (
                "current_responsibilities",
                "SELECT service_code FROM current_responsibilities WHERE timeline_id = 'oslo' AND service_code LIKE '%-service' ORDER BY service_code",
                "today-service",
            ),
        ] {
            let rows: Vec<String> = sqlx::query_scalar(sql)
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            assert_eq!(rows, [expected], "{view} in time zone {zone}");
        }
    }
}
