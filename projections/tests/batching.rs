//! The projector gathers a batch's row writes and sends them at its end (`writes.rs`): versions
//! opened and closed within one batch, closes of stored versions, revocations in the middle of a
//! batch. Whatever the batch size, the rows must be the same: random histories are projected one
//! event per batch and then rebuilt in a single batch, on PostgreSQL and SQLite, and every row
//! of every read model is compared.

mod common;

use common::dump;
use omorg_domain::testing::{build_commands, ops};
use omorg_domain::Timeline;
use omorg_projections::Projector;
use omorg_store::testing::fresh_database;
use omorg_store::{Backend, CommandMetadata, Store};
use proptest::prelude::*;

async fn same_rows_whatever_the_batch(
    backend: Backend,
    commands: Vec<omorg_domain::TimelineCommand>,
) -> Result<(), TestCaseError> {
    let (db, _) = fresh_database(backend).await;
    let store: Store<Timeline> = Store::new(db.clone(), ());
    for c in commands {
        let id = c.context.command_id.to_string();
        store
            .execute("prop", c, CommandMetadata::new(id))
            .await
            .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    }
    Projector::new(db.clone())
        .with_batch_size(1)
        .catch_up_to_head(common::PATIENCE, |_| {})
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let one_by_one = dump(&db).await;
    Projector::new(db.clone())
        .with_batch_size(100_000)
        .rebuild(|_| {})
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let all_at_once = dump(&db).await;
    db.close().await;
    prop_assert_eq!(one_by_one, all_at_once);
    Ok(())
}

fn run(backend: Backend, ops: Vec<(omorg_domain::testing::Op, u64)>) -> Result<(), TestCaseError> {
    let (_, _, commands) = build_commands(&ops)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(same_rows_whatever_the_batch(backend, commands))
}

proptest! {
    // Each case creates a database and projects its history twice: few cases, long histories.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn batch_size_does_not_change_the_rows_postgres(ops in ops()) {
        run(Backend::Postgres, ops)?;
    }

    #[test]
    fn batch_size_does_not_change_the_rows_sqlite(ops in ops()) {
        run(Backend::Sqlite, ops)?;
    }
}
