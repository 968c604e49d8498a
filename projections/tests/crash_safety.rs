//! The projector applies each event exactly once, even when it stops between or inside batches,
//! and an interrupted rebuild resumes instead of starting over. Each case ends by comparing the
//! rows with a clean rebuild.

mod common;

use common::*;
use omorg_projections::Projector;
use omorg_store::{Backend, Database};

async fn clean_rebuild(db: &Database) -> Vec<String> {
    Projector::new(db.clone()).rebuild(|_| {}).await.unwrap();
    dump(db).await
}

async fn stops_between_batches(backend: Backend) {
    let (db, _store, _) = oslo_until_merge(backend).await;
    wait_readable(&db, 12).await;
    let mut first = Projector::new(db.clone()).with_batch_size(5);
    assert_eq!(first.step().await.unwrap(), 5);
    drop(first); // a crash between two batches: memory is gone, the checkpoint is not
    let mut second = Projector::new(db.clone()).with_batch_size(5);
    assert_eq!(
        second
            .catch_up_to_head(PATIENCE, |_| {})
            .await
            .unwrap()
            .applied,
        7
    );
    assert_eq!(
        second
            .catch_up_to_head(PATIENCE, |_| {})
            .await
            .unwrap()
            .applied,
        0,
        "nothing is applied twice"
    );
    let incremental = dump(&db).await;
    assert_eq!(incremental, clean_rebuild(&db).await);
}

async fn fails_inside_a_batch(backend: Backend) {
    let (db, _store, _) = oslo_until_merge(backend).await;
    wait_readable(&db, 12).await;
    let mut p = Projector::new(db.clone()).with_batch_size(8);
    p.fail_next_batch_after(6);
    assert!(p.step().await.is_err());
    assert!(
        dump(&db).await.is_empty(),
        "a failed batch leaves no rows behind"
    );
    assert_eq!(
        p.catch_up_to_head(PATIENCE, |_| {}).await.unwrap().applied,
        12
    );
    let incremental = dump(&db).await;
    assert_eq!(incremental, clean_rebuild(&db).await);
}

async fn rebuild_resumes(backend: Backend) {
    let (db, _store, _) = oslo_until_merge(backend).await;
    Projector::new(db.clone())
        .catch_up_to_head(PATIENCE, |_| {})
        .await
        .unwrap();
    let expected = dump(&db).await;
    wait_readable(&db, 12).await;
    let mut interrupted = Projector::new(db.clone()).with_batch_size(4);
    interrupted.start_rebuild_only().await.unwrap();
    assert_eq!(interrupted.step().await.unwrap(), 4);
    drop(interrupted);
    let mut progress = Vec::new();
    let done = Projector::new(db.clone())
        .with_batch_size(4)
        .rebuild(|p| progress.push(p.applied))
        .await
        .unwrap();
    assert_eq!(
        done.applied, 8,
        "the rebuild resumed after the 4 events already applied"
    );
    assert_eq!(progress, [4, 8]);
    assert_eq!(dump(&db).await, expected);
}

#[tokio::test]
async fn stops_between_batches_postgres() {
    stops_between_batches(Backend::Postgres).await;
}
#[tokio::test]
async fn stops_between_batches_sqlite() {
    stops_between_batches(Backend::Sqlite).await;
}
#[tokio::test]
async fn fails_inside_a_batch_postgres() {
    fails_inside_a_batch(Backend::Postgres).await;
}
#[tokio::test]
async fn fails_inside_a_batch_sqlite() {
    fails_inside_a_batch(Backend::Sqlite).await;
}
#[tokio::test]
async fn rebuild_resumes_postgres() {
    rebuild_resumes(Backend::Postgres).await;
}
#[tokio::test]
async fn rebuild_resumes_sqlite() {
    rebuild_resumes(Backend::Sqlite).await;
}

/// A rebuild run while a server's runner is projecting and commands keep arriving ends with the
/// same rows as a clean rebuild afterwards.
async fn rebuild_beside_a_running_runner(backend: Backend) {
    use omorg_domain::*;
    let (db, store, _) = oslo_until_merge(backend).await;
    let (runner, task) = omorg_projections::ProjectionRunner::spawn(db.clone());
    runner.sync(PATIENCE).await.unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                run(
                    &store,
                    cmd(
                        &format!("rn{i}"),
                        "2027-01-01",
                        "26/9",
                        Action::RenameUnit(Rename {
                            unit: UnitId::new("alna").unwrap(),
                            name: Some(format!("Bydel Alna {i}")),
                            code: None,
                        }),
                    ),
                )
                .await;
            }
        })
    };
    Projector::new(db.clone())
        .with_batch_size(3)
        .rebuild(|_| {})
        .await
        .unwrap();
    writer.await.unwrap();
    runner.sync(PATIENCE).await.unwrap();
    runner.shutdown();
    task.await.unwrap();
    let live = dump(&db).await;
    assert_eq!(
        live.iter().filter(|r| r.starts_with("decisions:")).count(),
        32
    );
    assert_eq!(live, clean_rebuild(&db).await);
}

#[tokio::test]
async fn rebuild_beside_a_running_runner_postgres() {
    rebuild_beside_a_running_runner(Backend::Postgres).await;
}
#[tokio::test]
async fn rebuild_beside_a_running_runner_sqlite() {
    rebuild_beside_a_running_runner(Backend::Sqlite).await;
}

/// A rebuild replaces every row at once, so it leaves fresh planner statistics behind (without
/// them PostgreSQL planned the as-of queries for empty tables: seconds instead of milliseconds
/// on the large benchmark timeline) and, on PostgreSQL, vacuumed tables (no autovacuum catch-up
/// beside the first queries).
#[tokio::test]
async fn a_rebuild_leaves_planner_statistics_postgres() {
    let (db, _store, _) = oslo_until_merge(Backend::Postgres).await;
    Projector::new(db.clone()).rebuild(|_| {}).await.unwrap();
    let Database::Postgres(pool) = &db else {
        unreachable!()
    };
    let unanalysed: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_stat_user_tables \
         WHERE relname IN ('unit_versions', 'responsibility_versions', 'area_versions', 'service_versions') \
           AND ((last_analyze IS NULL AND last_autoanalyze IS NULL) \
                OR (last_vacuum IS NULL AND last_autovacuum IS NULL))",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(unanalysed.is_empty(), "not analysed: {unanalysed:?}");
}

#[tokio::test]
async fn a_rebuild_leaves_planner_statistics_sqlite() {
    let (db, _store, _) = oslo_until_merge(Backend::Sqlite).await;
    Projector::new(db.clone()).rebuild(|_| {}).await.unwrap();
    let Database::Sqlite(pool) = &db else {
        unreachable!()
    };
    let analysed: Vec<String> = sqlx::query_scalar("SELECT DISTINCT tbl FROM sqlite_stat1")
        .fetch_all(pool)
        .await
        .unwrap();
    for table in ["unit_versions", "responsibility_versions"] {
        assert!(analysed.iter().any(|t| t == table), "{table} not analysed");
    }
}
