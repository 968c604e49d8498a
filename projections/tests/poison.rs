//! An event that can never be projected (here a row stored without the validation the store
//! applies now, whose payload is not a timeline event) stops only its own timeline: it is
//! recorded in `projection_failures`, that timeline's later events are skipped, and every other
//! timeline goes on being projected. A rebuild tries again and records the same failure.

mod common;

use common::*;
use omorg_domain::*;
use omorg_projections::projector::failure_of;
use omorg_projections::{queries, Projector};
use omorg_store::{Backend, Database};

/// Stores a raw event row for `junk` whose payload is not a timeline event.
async fn store_junk(db: &Database, version: i64) {
    let (payload, metadata) = (r#"{"not": "a timeline event"}"#, "{}");
    let zeros = "0".repeat(64);
    let id = format!("junk-{version}");
    match db {
        Database::Postgres(p) => {
            sqlx::query("INSERT INTO events (stream_id, stream_version, event_type, event_version, payload, metadata, recorded_at, prev_hash, hash, command_id, command_events) \
                         VALUES ('junk', $1, 'UnitEstablished', '1', $2::jsonb, $3::jsonb, now(), $4, $4, $5, 1)")
                .bind(version).bind(payload).bind(metadata).bind(&zeros).bind(&id)
                .execute(p).await.unwrap();
        }
        Database::Sqlite(p) => {
            sqlx::query("INSERT INTO events (stream_id, stream_version, event_type, event_version, payload, metadata, recorded_at, prev_hash, hash, command_id, command_events) \
                         VALUES ('junk', ?1, 'UnitEstablished', '1', ?2, ?3, '2026-11-23T12:00:00.000000Z', ?4, ?4, ?5, 1)")
                .bind(version).bind(payload).bind(metadata).bind(&zeros).bind(&id)
                .execute(p).await.unwrap();
        }
    }
}

/// The version of the junk timeline's recorded failure.
async fn junk_failed_at(db: &Database) -> i64 {
    failure_of(db, "junk")
        .await
        .unwrap()
        .expect("the junk timeline's failure is recorded")
        .stream_version
}

fn rename(id: &str, name: &str) -> TimelineCommand {
    cmd(
        id,
        "2027-01-01",
        "27/1",
        Action::RenameUnit(Rename {
            unit: UnitId::new("helseetaten").unwrap(),
            name: Some(name.into()),
            code: None,
        }),
    )
}

async fn a_poison_event_stops_only_its_timeline(backend: Backend) {
    let (db, store, _) = oslo_until_merge(backend).await;
    store_junk(&db, 1).await;
    run(&store, rename("after-junk", "Helseetaten (ny)")).await;

    let mut projector = Projector::new(db.clone());
    let done = projector.catch_up_to_head(PATIENCE, |_| {}).await.unwrap();
    assert_eq!(
        done.applied, 14,
        "12 + the junk event (recorded) + the rename"
    );
    let oslo = queries::timeline(&db, T).await.unwrap();
    assert_eq!(oslo.version, 13, "oslo went on past the junk event");
    let f = failure_of(&db, "junk")
        .await
        .unwrap()
        .expect("the failure is recorded");
    assert_eq!(f.stream_version, 1);
    assert!(f.error.contains("deserialise"), "{}", f.error);
    assert!(failure_of(&db, T).await.unwrap().is_none());

    // The junk timeline's later events change nothing; its failure stays the first one.
    store_junk(&db, 2).await;
    run(&store, rename("after-junk-2", "Helseetaten")).await;
    let done = projector.catch_up_to_head(PATIENCE, |_| {}).await.unwrap();
    assert_eq!(done.applied, 2, "both events passed the checkpoint");
    assert_eq!(queries::timeline(&db, T).await.unwrap().version, 14);
    assert_eq!(junk_failed_at(&db).await, 1);

    // A rebuild tries again from scratch, and ends with the same rows and the same failure.
    let expected = dump(&db).await;
    Projector::new(db.clone()).rebuild(|_| {}).await.unwrap();
    assert_eq!(dump(&db).await, expected);
    assert_eq!(junk_failed_at(&db).await, 1);
}

#[tokio::test]
async fn a_poison_event_stops_only_its_timeline_postgres() {
    a_poison_event_stops_only_its_timeline(Backend::Postgres).await;
}

#[tokio::test]
async fn a_poison_event_stops_only_its_timeline_sqlite() {
    a_poison_event_stops_only_its_timeline(Backend::Sqlite).await;
}

/// A failure recorded by another projector instance (here written directly, as that instance
/// would) is honoured by this one from its next batch: the timeline's new events are skipped.
async fn a_failure_recorded_elsewhere_stops_the_timeline_here(backend: Backend) {
    let (db, store, _) = oslo_until_merge(backend).await;
    let mut projector = Projector::new(db.clone());
    projector.catch_up_to_head(PATIENCE, |_| {}).await.unwrap();
    let before = queries::timeline(&db, T).await.unwrap().version;
    let sql = "INSERT INTO projection_failures (timeline_id, stream_version, position, error, failed_at) \
               VALUES ($1, 99, 99, 'recorded by another instance', $2)";
    match &db {
        Database::Postgres(p) => sqlx::query(sql)
            .bind(T)
            .bind(chrono::Utc::now())
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
        Database::Sqlite(p) => sqlx::query(&omorg_projections::sql::lite(sql))
            .bind(T)
            .bind("2026-11-23T12:00:00.000000Z")
            .execute(p)
            .await
            .map(|r| r.rows_affected()),
    }
    .unwrap();
    run(&store, rename("after-failure", "Helseetaten (ny)")).await;
    let done = projector.catch_up_to_head(PATIENCE, |_| {}).await.unwrap();
    assert_eq!(done.applied, 1, "the event passed the checkpoint");
    assert_eq!(
        queries::timeline(&db, T).await.unwrap().version,
        before,
        "but was not applied"
    );
}

#[tokio::test]
async fn a_failure_recorded_elsewhere_stops_the_timeline_here_postgres() {
    a_failure_recorded_elsewhere_stops_the_timeline_here(Backend::Postgres).await;
}

#[tokio::test]
async fn a_failure_recorded_elsewhere_stops_the_timeline_here_sqlite() {
    a_failure_recorded_elsewhere_stops_the_timeline_here(Backend::Sqlite).await;
}
