//! The background runner projects new events and `sync` gives read-your-writes.

mod common;

use common::*;
use omorg_domain::*;
use omorg_projections::queries::{self, AsOf};
use omorg_projections::ProjectionRunner;
use omorg_store::Backend;

async fn runner_catches_up_and_syncs(backend: Backend) {
    let (db, store, _) = oslo_until_merge(backend).await;
    let (runner, task) = ProjectionRunner::spawn(db.clone());
    runner.sync(PATIENCE).await.unwrap();
    assert_eq!(queries::timeline(&db, T).await.unwrap().version, 12);
    // A write, then a read: the read sees the write.
    run(
        &store,
        cmd(
            "rn",
            "2027-01-01",
            "26/9",
            Action::RenameUnit(Rename {
                unit: UnitId::new("alna").unwrap(),
                name: Some("Bydel Alna og Furuset".into()),
                code: None,
            }),
        ),
    )
    .await;
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
