//! The scripted Oslo history shared by the projection tests.

#![allow(dead_code)] // each test file uses a different part

use chrono::{DateTime, NaiveDate, Utc};
use omorg_domain::*;
use omorg_store::testing::fresh_database;
use omorg_store::{Backend, CommandMetadata, Database, Store};

/// How long tests wait for transactions other tests hold open on the shared server.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

pub const T: &str = "oslo";

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn cmd(id: &str, eff: &str, case: &str, action: Action) -> TimelineCommand {
    TimelineCommand {
        context: ChangeContext {
            command_id: CommandId::new(id).unwrap(),
            effective_from: d(eff),
            decision: DecisionRef {
                case_number: case.into(),
                body: "Bystyret".into(),
                decision_date: d("2024-06-19"),
                title: format!("Sak {case}"),
                link: None,
            },
            actor: "test".into(),
            rationale: String::new(),
        },
        action,
    }
}

pub fn unit(
    id: &str,
    name: &str,
    kind: UnitKind,
    parent: Option<&str>,
    area: Option<(&str, &str)>,
) -> Action {
    Action::EstablishUnit(UnitDef {
        unit: UnitId::new(id).unwrap(),
        code: None,
        name: name.into(),
        kind,
        parent: parent.map(|p| UnitId::new(p).unwrap()),
        areas: area
            .map(|(c, n)| AreaDef {
                code: AreaCode::new(c).unwrap(),
                name: n.into(),
                carved_from: None,
            })
            .into_iter()
            .collect(),
        attributes: Default::default(),
    })
}

pub fn merge(id: &str, name: &str, a: &str, b: &str) -> Action {
    let Action::EstablishUnit(def) = unit(id, name, UnitKind::District, Some("oslo"), None) else {
        unreachable!()
    };
    Action::MergeUnits(Merge {
        sources: vec![UnitId::new(a).unwrap(), UnitId::new(b).unwrap()],
        successor: Successor::New(def),
    })
}

pub async fn run(store: &Store<Timeline>, c: TimelineCommand) -> DateTime<Utc> {
    let id = c.context.command_id.to_string();
    let out = store
        .execute(T, c, CommandMetadata::new(id.clone()))
        .await
        .unwrap_or_else(|e| panic!("command {id} refused: {e:?}"));
    out.events
        .last()
        .map(|e| e.record.recorded_at)
        .expect("an event")
}

/// Builds the history up to the first merge (12 events): districts Grorud, Stovner and Alna with
/// their areas, Helseetaten, home care per district, centralised 2025-01-01, Grorud and Stovner
/// merged 2026-01-01 (decision 25/100). Returns the database, the store and when the merge was
/// recorded.
pub async fn oslo_until_merge(backend: Backend) -> (Database, Store<Timeline>, DateTime<Utc>) {
    let (db, _) = fresh_database(backend).await;
    let store: Store<Timeline> = Store::new(db.clone(), ());
    run(
        &store,
        cmd(
            "c0",
            "2020-01-01",
            "20/1",
            Action::CreateTimeline(TimelineDef {
                name: "Oslo kommune".into(),
                description: String::new(),
            }),
        ),
    )
    .await;
    run(
        &store,
        cmd(
            "c1",
            "2020-01-01",
            "20/1",
            unit("oslo", "Oslo kommune", UnitKind::Municipality, None, None),
        ),
    )
    .await;
    run(
        &store,
        cmd(
            "c2",
            "2020-01-01",
            "20/1",
            unit(
                "grorud",
                "Bydel Grorud",
                UnitKind::District,
                Some("oslo"),
                Some(("030110", "Grorud")),
            ),
        ),
    )
    .await;
    run(
        &store,
        cmd(
            "c3",
            "2020-01-01",
            "20/1",
            unit(
                "stovner",
                "Bydel Stovner",
                UnitKind::District,
                Some("oslo"),
                Some(("030111", "Stovner")),
            ),
        ),
    )
    .await;
    run(
        &store,
        cmd(
            "c4",
            "2020-01-01",
            "20/1",
            unit(
                "alna",
                "Bydel Alna",
                UnitKind::District,
                Some("oslo"),
                Some(("030112", "Alna")),
            ),
        ),
    )
    .await;
    run(
        &store,
        cmd(
            "c5",
            "2020-01-01",
            "20/1",
            unit(
                "helseetaten",
                "Helseetaten",
                UnitKind::CentralAgency,
                Some("oslo"),
                None,
            ),
        ),
    )
    .await;
    run(
        &store,
        cmd(
            "c6",
            "2020-01-01",
            "20/1",
            Action::RegisterService(ServiceDef {
                service: ServiceCode::new("home-care").unwrap(),
                name: "Hjemmetjenester".into(),
                category: "home care".into(),
            }),
        ),
    )
    .await;
    for (i, (u, a)) in [
        ("grorud", "030110"),
        ("stovner", "030111"),
        ("alna", "030112"),
    ]
    .iter()
    .enumerate()
    {
        run(
            &store,
            cmd(
                &format!("a{i}"),
                "2020-01-01",
                "20/1",
                Action::AssignResponsibility(Assignment {
                    service: ServiceCode::new("home-care").unwrap(),
                    unit: UnitId::new(*u).unwrap(),
                    areas: vec![AreaCode::new(*a).unwrap()],
                }),
            ),
        )
        .await;
    }
    run(
        &store,
        cmd(
            "cz",
            "2025-01-01",
            "24/200",
            Action::CentraliseService(Centralisation {
                service: ServiceCode::new("home-care").unwrap(),
                agency: UnitId::new("helseetaten").unwrap(),
            }),
        ),
    )
    .await;
    let merged_at = run(
        &store,
        cmd(
            "m1",
            "2026-01-01",
            "25/100",
            merge(
                "grorud-stovner",
                "Bydel Grorud og Stovner",
                "grorud",
                "stovner",
            ),
        ),
    )
    .await;

    (db, store, merged_at)
}

/// Waits until the catch-up reader can see `n` events: on a PostgreSQL server shared with other
/// tests, a transaction they hold open hides later commits from the reader for a while.
pub async fn wait_readable(db: &Database, n: usize) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let seen = db
            .read_all_after(&omorg_store::Checkpoint::START, n as u32)
            .await
            .expect("read the log")
            .len();
        if seen >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {seen} of {n} events readable after {PATIENCE:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Every read-model row as text, sorted (recorded instants included: they come from the events).
pub async fn dump(db: &Database) -> Vec<String> {
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
    ] {
        let mut rows: Vec<String> = match db {
            Database::Postgres(p) => sqlx::query_scalar::<_, serde_json::Value>(&format!(
                "SELECT to_jsonb(t) FROM {table} t"
            ))
            .fetch_all(p)
            .await
            .unwrap()
            .into_iter()
            .map(|v| v.to_string())
            .collect(),
            Database::Sqlite(p) => {
                let cols: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                        .fetch_all(p)
                        .await
                        .unwrap();
                let sql = format!(
                    "SELECT {} FROM {table}",
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
        rows.sort();
        out.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
    }
    out
}
