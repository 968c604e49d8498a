//! `Store::execute_linked`: two commands on two streams, written in one transaction. Each case
//! against PostgreSQL and against SQLite.

mod common;

use common::*;
use omorg_store::testing::fresh_database;
use omorg_store::{Backend, CommandError, CommandMetadata, Database, Store, StoreError};
use std::time::Duration;

fn meta(id: &str) -> CommandMetadata {
    CommandMetadata::new(id).with_actor("tester")
}

/// Ledgers `from` (balance 50, version 2) and `to` (balance 0, version 1).
async fn two_ledgers(db: &Database) -> Store<Ledger> {
    let store = ledger_store(db);
    for (stream, command, id) in [
        (
            "from",
            LedgerCommand::Open { owner: "a".into() },
            "from-open",
        ),
        ("from", LedgerCommand::Deposit { amount: 50 }, "from-50"),
        ("to", LedgerCommand::Open { owner: "b".into() }, "to-open"),
    ] {
        store.execute(stream, command, meta(id)).await.expect(id);
    }
    store
}

/// The transfer the tests link: withdraw `amount` from `from`, then deposit it on `to` under an
/// id naming the version `from` reached.
async fn transfer(
    store: &Store<Ledger>,
    id: &str,
    amount: i64,
) -> Result<
    (
        omorg_store::Outcome<LedgerEvent>,
        omorg_store::Outcome<LedgerEvent>,
    ),
    CommandError<LedgerError>,
> {
    store
        .execute_linked(
            "from",
            LedgerCommand::Withdraw { amount },
            meta(id),
            "to",
            |reached, _to| {
                Ok((
                    LedgerCommand::Deposit { amount },
                    meta(&format!("{id}/{reached}")),
                ))
            },
        )
        .await
}

/// Balance and version of a stream as stored (a fresh store: no cache).
async fn stored(db: &Database, stream: &str) -> (i64, u64) {
    let events = ledger_store(db).load_stream(stream).await.expect("load");
    (
        Ledger::replay(events.iter().map(|c| &c.event)).balance,
        events.len() as u64,
    )
}

on_both_databases!(
    a_linked_pair_commits_in_one_transaction,
    a_refused_second_command_writes_neither,
    a_refusal_by_follow_writes_neither,
    a_conflict_on_the_second_stream_writes_neither,
    a_resent_pair_is_answered_with_its_original_outcome,
    a_first_command_written_alone_is_completed,
    linked_pairs_in_both_directions_do_not_deadlock,
    linked_commands_on_one_stream_are_refused,
);

async fn a_linked_pair_commits_in_one_transaction(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = two_ledgers(&db).await;
    let (first, second) = transfer(&store, "t1", 30).await.expect("transfer");
    assert_eq!((first.version, second.version), (3, 2));
    assert!(!first.duplicate && !second.duplicate);
    // `follow` saw the version the first stream reached.
    assert_eq!(
        second.events[0].record.command_metadata().command_id,
        "t1/3"
    );
    let (a, b) = (&first.events[0].record, &second.events[0].record);
    assert_eq!(b.position, a.position + 1, "adjacent in the global order");
    let tx = |c: &omorg_store::Checkpoint| c.to_string().split('-').next().map(str::to_owned);
    assert_eq!(tx(&a.checkpoint), tx(&b.checkpoint), "one transaction");
    assert_eq!(stored(&db, "from").await, (20, 3));
    assert_eq!(stored(&db, "to").await, (30, 2));
    // The cached aggregates moved on with the write: the next command on each is current.
    let next = store
        .execute("to", LedgerCommand::Withdraw { amount: 30 }, meta("to-w"))
        .await
        .expect("next");
    assert_eq!(next.version, 3);
    for stream in ["from", "to"] {
        let verified = db.verify(stream).await.expect("verify");
        assert!(verified.first_break.is_none(), "{verified:?}");
    }
}

async fn a_refused_second_command_writes_neither(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = two_ledgers(&db).await;
    let refused = store
        .execute_linked(
            "from",
            LedgerCommand::Withdraw { amount: 10 },
            meta("t1"),
            "to",
            |_, _| Ok((LedgerCommand::Withdraw { amount: 10 }, meta("t1/to"))),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(CommandError::Rejected(LedgerError::InsufficientFunds))
        ),
        "{refused:?}"
    );
    assert_eq!(stored(&db, "from").await, (50, 2));
    assert_eq!(stored(&db, "to").await, (0, 1));
    // The first stream's aggregate, which had the unwritten withdrawal applied, was not kept.
    let next = store
        .execute("from", LedgerCommand::Withdraw { amount: 50 }, meta("w"))
        .await
        .expect("the whole balance is still there");
    assert_eq!(next.version, 3);
}

async fn a_refusal_by_follow_writes_neither(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = two_ledgers(&db).await;
    let refused = store
        .execute_linked(
            "from",
            LedgerCommand::Withdraw { amount: 10 },
            meta("t1"),
            "to",
            |_, _| Err(LedgerError::NotPositive),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(CommandError::Rejected(LedgerError::NotPositive))
        ),
        "{refused:?}"
    );
    assert_eq!(stored(&db, "from").await, (50, 2));
    assert_eq!(stored(&db, "to").await, (0, 1));
}

async fn a_conflict_on_the_second_stream_writes_neither(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = two_ledgers(&db).await;
    // Another process writes to `to`: this store's cached `to` is stale, so the pair's second
    // insert is refused by the version key, after the first one went into the transaction.
    ledger_store(&db)
        .execute("to", LedgerCommand::Deposit { amount: 5 }, meta("other"))
        .await
        .expect("other writer");
    let conflict = transfer(&store, "t1", 30).await;
    assert!(
        matches!(
            &conflict,
            Err(CommandError::Store(StoreError::Conflict { stream, expected_version: 1 }))
                if stream == "to"
        ),
        "{conflict:?}"
    );
    assert_eq!(
        stored(&db, "from").await,
        (50, 2),
        "the first was not written"
    );
    // A retry reloads both and goes through.
    let (first, second) = transfer(&store, "t1", 30).await.expect("retry");
    assert_eq!((first.version, second.version), (3, 3));
    assert_eq!(stored(&db, "to").await, (35, 3));
}

async fn a_resent_pair_is_answered_with_its_original_outcome(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let (first, second) = transfer(&two_ledgers(&db).await, "t1", 30)
        .await
        .expect("transfer");
    // Resent through another store (another process: nothing cached).
    let (again_first, again_second) = transfer(&ledger_store(&db), "t1", 30)
        .await
        .expect("resent");
    assert!(again_first.duplicate && again_second.duplicate);
    assert_eq!(again_first.events, first.events);
    assert_eq!(again_second.events, second.events);
    assert_eq!(stored(&db, "from").await, (20, 3));
    assert_eq!(stored(&db, "to").await, (30, 2));
}

async fn a_first_command_written_alone_is_completed(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = two_ledgers(&db).await;
    // The first half written on its own (as two separate writes did before they were linked).
    store
        .execute("from", LedgerCommand::Withdraw { amount: 30 }, meta("t1"))
        .await
        .expect("first half");
    let (first, second) = transfer(&ledger_store(&db), "t1", 30)
        .await
        .expect("completed");
    assert!(first.duplicate && !second.duplicate);
    assert_eq!(
        second.events[0].record.command_metadata().command_id,
        "t1/3"
    );
    assert_eq!(stored(&db, "from").await, (20, 3));
    assert_eq!(stored(&db, "to").await, (30, 2));
}

async fn linked_pairs_in_both_directions_do_not_deadlock(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = two_ledgers(&db).await;
    store
        .execute("to", LedgerCommand::Deposit { amount: 50 }, meta("to-50"))
        .await
        .expect("fund to");
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let (a, b) = if i % 2 == 0 {
                ("from", "to")
            } else {
                ("to", "from")
            };
            store
                .execute_linked(
                    a,
                    LedgerCommand::Withdraw { amount: 1 },
                    meta(&format!("p{i}")),
                    b,
                    move |_, _| {
                        Ok((
                            LedgerCommand::Deposit { amount: 1 },
                            meta(&format!("p{i}/d")),
                        ))
                    },
                )
                .await
        }));
    }
    // A liveness guard, not a timing assertion: a lock-order deadlock would hang forever.
    let all = tokio::time::timeout(Duration::from_secs(60), async {
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("task"));
        }
        results
    })
    .await
    .expect("linked pairs in opposite directions deadlocked");
    assert!(all.iter().all(Result::is_ok), "{all:?}");
    // Every pair moved 1 one way or the other: the total is kept, every event is there.
    let ((fb, fv), (tb, tv)) = (stored(&db, "from").await, stored(&db, "to").await);
    assert_eq!(fb + tb, 100);
    assert_eq!((fv, tv), (12, 12));
}

async fn linked_commands_on_one_stream_are_refused(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = two_ledgers(&db).await;
    let refused = store
        .execute_linked(
            "from",
            LedgerCommand::Withdraw { amount: 1 },
            meta("t1"),
            "from",
            |_, _| Ok((LedgerCommand::Deposit { amount: 1 }, meta("t1/d"))),
        )
        .await;
    assert!(
        matches!(refused, Err(CommandError::Store(StoreError::LinkedSameStream(ref s))) if s == "from"),
        "{refused:?}"
    );
    assert_eq!(stored(&db, "from").await, (50, 2));
}
