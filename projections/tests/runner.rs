//! The background runner projects new events and `sync` gives read-your-writes.

mod common;

use common::*;
use omorg_domain::*;
use omorg_projections::queries::{self, AsOf};
use omorg_projections::ProjectionRunner;
use omorg_store::Backend;

/// Renames Bydel Alna from 2027 (version 13 of the Oslo timeline).
fn rename_alna() -> TimelineCommand {
    cmd(
        "rn",
        "2027-01-01",
        "26/9",
        Action::RenameUnit(Rename {
            unit: UnitId::new("alna").unwrap(),
            name: Some("Bydel Alna og Furuset".into()),
            code: None,
        }),
    )
}

async fn runner_catches_up_and_syncs(backend: Backend) {
    let (db, store, _) = oslo_until_merge(backend).await;
    let (runner, task) = ProjectionRunner::spawn(db.clone());
    runner.sync(PATIENCE).await.unwrap();
    assert_eq!(queries::timeline(&db, T).await.unwrap().version, 12);
    // A write, then a read: the read sees the write.
    run(&store, rename_alna()).await;
    runner.sync(PATIENCE).await.unwrap();
    let units = queries::units(&db, T, AsOf::now(d("2027-06-01")))
        .await
        .unwrap();
    assert_eq!(
        units.iter().find(|u| u.unit_id == "alna").unwrap().name,
        "Bydel Alna og Furuset"
    );
    runner.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn runner_catches_up_and_syncs_postgres() {
    runner_catches_up_and_syncs(Backend::Postgres).await;
}

#[tokio::test]
async fn runner_catches_up_and_syncs_sqlite() {
    runner_catches_up_and_syncs(Backend::Sqlite).await;
}

/// After a command wakes it, the runner lets more commands gather before projecting (here for an
/// hour, so nothing but a reader can end the wait), and a reader waiting in `sync` ends the wait
/// at once.
async fn a_woken_runner_gathers_until_a_reader_waits(backend: Backend) {
    let (db, store, _) = oslo_until_merge(backend).await;
    let (runner, task) =
        ProjectionRunner::spawn_gathering(db.clone(), std::time::Duration::from_secs(3600));
    runner.sync(PATIENCE).await.unwrap();
    // A reader's wake-up can leave the runner one more (empty) round to run; let it, so that it
    // cannot pick up the command below.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    run(&store, rename_alna()).await;
    runner.nudge();
    // Long enough for a runner that ignored the gathering to have projected the command.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        queries::timeline(&db, T).await.unwrap().version,
        12,
        "still gathering"
    );
    runner.sync(PATIENCE).await.unwrap();
    assert_eq!(queries::timeline(&db, T).await.unwrap().version, 13);
    runner.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn a_woken_runner_gathers_until_a_reader_waits_postgres() {
    a_woken_runner_gathers_until_a_reader_waits(Backend::Postgres).await;
}

#[tokio::test]
async fn a_woken_runner_gathers_until_a_reader_waits_sqlite() {
    a_woken_runner_gathers_until_a_reader_waits(Backend::Sqlite).await;
}

/// Readiness: a runner started on a log it has not projected says it has caught up only once
/// every event committed before its start is in the read models, and never before.
async fn the_runner_says_when_it_has_caught_up(backend: Backend) {
    let (db, _store, _) = oslo_until_merge(backend).await;
    let head = omorg_projections::projector::log_head(&db).await.unwrap();
    let (runner, task) = ProjectionRunner::spawn(db.clone());
    // Polled, not timed: the flag must come, and whenever it is seen, the events are there.
    let mut seen = false;
    for _ in 0..600 {
        if runner.has_caught_up() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "the runner never said it had caught up");
    assert!(omorg_projections::projector::applied_up_to(&db, head)
        .await
        .unwrap());
    assert_eq!(queries::timeline(&db, T).await.unwrap().version, 12);
    runner.shutdown();
    task.await.unwrap();
}

#[tokio::test]
async fn the_runner_says_when_it_has_caught_up_postgres() {
    the_runner_says_when_it_has_caught_up(Backend::Postgres).await;
}

#[tokio::test]
async fn the_runner_says_when_it_has_caught_up_sqlite() {
    the_runner_says_when_it_has_caught_up(Backend::Sqlite).await;
}

/// What a reader checks before a query: the newest event of the timelines it reads, and
/// whether that is projected; an unknown timeline has nothing to wait for, and a checkpoint
/// that is not "tx-position" is named, on both databases.
async fn a_readers_check_is_the_head_of_its_timelines(backend: Backend) {
    use omorg_projections::projector::{log_head, streams_head_applied};
    use omorg_projections::ProjectionError;
    let (db, store, _) = oslo_until_merge(backend).await;
    let head = log_head(&db).await.unwrap();
    assert!(head > 0);
    assert_eq!(
        streams_head_applied(&db, &[T]).await.unwrap(),
        (head, false)
    );
    assert_eq!(
        streams_head_applied(&db, &["nope"]).await.unwrap(),
        (0, true)
    );
    assert_eq!(streams_head_applied(&db, &[]).await.unwrap(), (0, true));
    let (runner, task) = ProjectionRunner::spawn(db.clone());
    runner.sync(PATIENCE).await.unwrap();
    runner.shutdown();
    task.await.unwrap();
    assert_eq!(
        streams_head_applied(&db, &["nope", T]).await.unwrap(),
        (head, true)
    );
    run(&store, rename_alna()).await;
    let newer = log_head(&db).await.unwrap();
    assert!(newer > head);
    assert_eq!(
        streams_head_applied(&db, &[T, "nope"]).await.unwrap(),
        (newer, false)
    );
    let garbage = "UPDATE projection_checkpoints SET checkpoint = 'garbage'";
    match &db {
        omorg_store::Database::Postgres(p) => {
            sqlx::query(garbage).execute(p).await.unwrap();
        }
        omorg_store::Database::Sqlite(p) => {
            sqlx::query(garbage).execute(p).await.unwrap();
        }
    }
    assert!(matches!(
        streams_head_applied(&db, &[T]).await,
        Err(ProjectionError::BadCheckpoint(c)) if c == "garbage"
    ));
}

#[tokio::test]
async fn a_readers_check_is_the_head_of_its_timelines_postgres() {
    a_readers_check_is_the_head_of_its_timelines(Backend::Postgres).await;
}

#[tokio::test]
async fn a_readers_check_is_the_head_of_its_timelines_sqlite() {
    a_readers_check_is_the_head_of_its_timelines(Backend::Sqlite).await;
}
