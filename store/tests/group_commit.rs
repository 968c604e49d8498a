//! Group commit on PostgreSQL: appends that arrive while every append connection is busy are
//! written together, in one statement and one transaction, and each command still gets exactly
//! the outcome it would have had alone.
//!
//! To make the grouping deterministic, a test holds a lock on `events` that blocks every INSERT:
//! the first append waits on it inside the database, the next ones queue in the store behind
//! it, and once the lock is released they are written as one group.

mod common;

use common::*;
use omorg_store::testing::fresh_database;
use omorg_store::{
    Backend, CommandError, CommandMetadata, Database, Store, StoreConfig, StoreError,
};
use sqlx::{Connection, PgConnection};
use std::time::Duration;

/// A store with one append connection, so that a second append already has to queue.
fn one_connection_store(db: &Database) -> Store<Ledger> {
    Store::new(db.clone(), ()).with_config(StoreConfig {
        append_connections: 1,
        ..StoreConfig::default()
    })
}

/// Opens ledger `stream` under command id `<stream>-open`.
async fn open(store: &Store<Ledger>, stream: &str) {
    store
        .execute(
            stream,
            LedgerCommand::Open {
                owner: "kari".into(),
            },
            CommandMetadata::new(format!("{stream}-open")),
        )
        .await
        .unwrap();
}

fn deposit(amount: i64) -> LedgerCommand {
    LedgerCommand::Deposit { amount }
}

/// A connection holding a lock on `events` that makes every INSERT wait.
async fn block_appends(db: &Database) -> PgConnection {
    let Database::Postgres(pool) = db else {
        panic!("group commit is PostgreSQL's")
    };
    let mut conn = PgConnection::connect_with(&pool.connect_options())
        .await
        .unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE events IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// Waits until an append is waiting on the lock inside the database.
async fn until_an_append_waits(db: &Database) {
    let Database::Postgres(pool) = db else {
        unreachable!()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO events%'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no append reached the database"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until an append is waiting on the lock, lets the others queue behind it, releases it.
async fn release_when_queued(db: &Database, mut blocker: PgConnection) {
    until_an_append_waits(db).await;
    // The other commands only need to run their (in-memory) handlers to reach the queue.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();
}

/// Transaction ids of the events with these command ids.
async fn transactions_of(db: &Database, command_ids: &[String]) -> Vec<i64> {
    let Database::Postgres(pool) = db else {
        unreachable!()
    };
    sqlx::query_scalar(
        "SELECT DISTINCT tx_id::text::bigint FROM events WHERE command_id = ANY($1) ORDER BY 1",
    )
    .bind(command_ids)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn appends_queued_behind_a_busy_connection_commit_as_one_group() {
    let (db, _name) = fresh_database(Backend::Postgres).await;
    let store = one_connection_store(&db);
    let streams: Vec<String> = (0..8).map(|i| format!("acc-{i}")).collect();
    for s in &streams {
        open(&store, s).await;
    }

    let blocker = block_appends(&db).await;
    let tasks: Vec<_> = streams
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (store, s) = (store.clone(), s.clone());
            tokio::spawn(async move {
                store
                    .execute(
                        &s,
                        deposit(10 + i as i64),
                        CommandMetadata::new(format!("{s}-dep")),
                    )
                    .await
            })
        })
        .collect();
    release_when_queued(&db, blocker).await;
    for task in tasks {
        let outcome = task.await.unwrap().unwrap();
        assert_eq!(outcome.version, 2);
        assert!(!outcome.duplicate);
    }

    // Normally two transactions: the append that waited on the lock, and one for all behind
    // it. A third is allowed for a command whose handler ran late on a loaded machine and
    // missed the group; without grouping there would be eight.
    let ids: Vec<String> = streams.iter().map(|s| format!("{s}-dep")).collect();
    let transactions = transactions_of(&db, &ids).await.len();
    assert!(
        (1..=3).contains(&transactions),
        "the queued appends were grouped: {transactions} transactions for 8 appends"
    );
    for (i, s) in streams.iter().enumerate() {
        let ledger = store.with_aggregate(s, |l, _| l.clone()).await.unwrap();
        assert_eq!(ledger.balance, 10 + i as i64, "{s}");
        let fresh = Store::<Ledger>::new(db.clone(), ());
        let reloaded = fresh
            .with_aggregate(s, |l, v| (l.clone(), v))
            .await
            .unwrap();
        assert_eq!(reloaded, (ledger, 2), "{s} as stored");
        assert!(db.verify(s).await.unwrap().is_intact(), "{s}");
    }
    // The catch-up reader sees every event. It never reads past a transaction still in flight
    // anywhere on the server (ADR 0001), and tests beside this one hold some, so wait for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let page = db
            .read_all_after(&omorg_store::Checkpoint::START, 100)
            .await
            .unwrap();
        if page.len() == 16 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reader saw {} of 16 events",
            page.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_refused_member_of_a_group_does_not_take_the_others_down() {
    let (db, _name) = fresh_database(Backend::Postgres).await;
    let store = one_connection_store(&db);
    for s in ["stale", "a", "b", "c", "reuser"] {
        open(&store, s).await;
    }
    // Another process moves "stale" on behind this store's cached copy.
    Store::<Ledger>::new(db.clone(), ())
        .execute("stale", deposit(1), CommandMetadata::new("elsewhere"))
        .await
        .unwrap();
    // A deposit on "reuser" that a retry below sends again (the ledger does not remember ids:
    // only the log's unique index recognises it).
    store
        .execute("reuser", deposit(5), CommandMetadata::new("reuser-dep"))
        .await
        .unwrap();

    let blocker = block_appends(&db).await;
    let submit = |stream: &str, id: &str| {
        let (store, stream, id) = (store.clone(), stream.to_owned(), id.to_owned());
        tokio::spawn(async move {
            store
                .execute(&stream, deposit(5), CommandMetadata::new(id))
                .await
        })
    };
    // They queue behind the lock and are written as a group (or two) that holds a conflict
    // (stale cache) and a retried command id (a unique violation on the id, not the version).
    let first = submit("a", "a-dep");
    let stale = submit("stale", "stale-dep");
    let b = submit("b", "b-dep");
    let reused = submit("reuser", "reuser-dep");
    let c = submit("c", "c-dep");
    release_when_queued(&db, blocker).await;

    for ok in [first, b, c] {
        assert_eq!(ok.await.unwrap().unwrap().version, 2);
    }
    match stale.await.unwrap() {
        Err(CommandError::Store(StoreError::Conflict {
            stream,
            expected_version,
        })) => {
            assert_eq!((stream.as_str(), expected_version), ("stale", 1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The retry is answered with its original outcome, and nothing is written for it.
    let retried = reused.await.unwrap().expect("a retry is not an error");
    assert_eq!((retried.version, retried.duplicate), (2, true));
    // Nothing of the refused commands was written; the other process's event is intact.
    let fresh = Store::<Ledger>::new(db.clone(), ());
    let balance = |s: &'static str| {
        let fresh = fresh.clone();
        async move {
            fresh
                .with_aggregate(s, |l, v| (l.balance, v))
                .await
                .unwrap()
        }
    };
    assert_eq!(balance("stale").await, (1, 2));
    assert_eq!(balance("reuser").await, (5, 2));
    for s in ["a", "b", "c"] {
        assert_eq!(balance(s).await, (5, 2), "{s}");
    }
}

/// The server ending an append connection (a restart, `pg_terminate_backend`) costs no command:
/// the committer notices, opens a new connection and writes the append there.
#[tokio::test]
async fn a_terminated_append_connection_is_replaced_without_failing_the_command() {
    let (db, _name) = fresh_database(Backend::Postgres).await;
    let store = one_connection_store(&db);
    open(&store, "acc").await;
    let Database::Postgres(pool) = &db else {
        unreachable!()
    };
    // The committer's connection is the one whose last statement appended events.
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
           AND query LIKE 'INSERT INTO events%'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(terminated, vec![true], "one append connection, terminated");

    let outcome = store
        .execute("acc", deposit(7), CommandMetadata::new("acc-dep"))
        .await
        .expect("the append is retried on a new connection");
    assert_eq!((outcome.version, outcome.duplicate), (2, false));
    let outcome = store
        .execute("acc", deposit(8), CommandMetadata::new("acc-dep-2"))
        .await
        .unwrap();
    assert_eq!(outcome.version, 3);
    let balance = Store::<Ledger>::new(db.clone(), ())
        .with_aggregate("acc", |l, _| l.balance)
        .await
        .unwrap();
    assert_eq!(balance, 15);
}

/// A command whose future is dropped while its append waits in the database (a client that
/// hung up) gives its connection back: the appends queued behind it are written, later commands
/// find a connection, and the dropped one, which may still have committed, is answered on retry.
#[tokio::test]
async fn a_command_dropped_mid_append_loses_no_connection_and_strands_no_queue() {
    let (db, _name) = fresh_database(Backend::Postgres).await;
    let store = one_connection_store(&db);
    for s in ["dropped", "queued-1", "queued-2", "later"] {
        open(&store, s).await;
    }
    let blocker = block_appends(&db).await;
    let submit = |stream: &'static str| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .execute(
                    stream,
                    deposit(3),
                    CommandMetadata::new(format!("{stream}-dep")),
                )
                .await
        })
    };
    // The first command takes the only connection and waits on the lock; two queue behind it.
    let dropped = submit("dropped");
    until_an_append_waits(&db).await;
    let queued = [submit("queued-1"), submit("queued-2")];
    tokio::time::sleep(Duration::from_millis(300)).await;
    dropped.abort();
    assert!(dropped.await.unwrap_err().is_cancelled());
    sqlx::raw_sql("COMMIT")
        .execute(&mut { blocker })
        .await
        .unwrap();

    for task in queued {
        let outcome = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a queued append hung");
        assert_eq!(outcome.unwrap().unwrap().version, 2);
    }
    let later = tokio::time::timeout(
        Duration::from_secs(30),
        store.execute("later", deposit(4), CommandMetadata::new("later-dep")),
    )
    .await
    .expect("the next command hung");
    assert_eq!(later.unwrap().version, 2);
    // The dropped command's INSERT was already sent: whether it committed or not, its retry
    // ends with the deposit applied exactly once.
    let retried = store
        .execute("dropped", deposit(3), CommandMetadata::new("dropped-dep"))
        .await
        .unwrap();
    assert_eq!(retried.version, 2);
    let balance = Store::<Ledger>::new(db.clone(), ())
        .with_aggregate("dropped", |l, v| (l.balance, v))
        .await
        .unwrap();
    assert_eq!(balance, (3, 2));
}
