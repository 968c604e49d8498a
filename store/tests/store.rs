//! The store's behaviour, each case against PostgreSQL and against SQLite.

mod common;

use common::*;
use cqrs_es::{CqrsFramework, EventStore as _};
use omorg_store::testing::fresh_database;
use omorg_store::{
    Backend, BreakKind, ChainBreak, Checkpoint, CommandError, CommandMetadata, Database, Outcome,
    StoreError, Upcaster, Upcasters,
};
use serde_json::json;
use std::collections::HashMap;

type LedgerOutcome = Outcome<LedgerEvent>;

fn meta(id: &str) -> CommandMetadata {
    CommandMetadata::new(id)
        .with_actor("tester")
        .with_correlation_id("corr-1")
        .with_decision(json!({"case": "17/6", "body": "bystyret"}))
}

fn open(owner: &str) -> LedgerCommand {
    LedgerCommand::Open {
        owner: owner.to_owned(),
    }
}

fn deposit(amount: i64) -> LedgerCommand {
    LedgerCommand::Deposit { amount }
}

/// Opens ledger `stream` with command id `<stream>-open`.
async fn opened(db: &Database, stream: &str) -> LedgerOutcome {
    ledger_store(db)
        .execute(stream, open("kari"), meta(&format!("{stream}-open")))
        .await
        .expect("open")
}

on_both_databases!(
    execute_commits_events_with_positions_and_metadata,
    cqrs_framework_runs_on_the_store,
    events_are_append_only,
    racing_writers_one_wins_the_other_gets_a_conflict,
    many_racing_writers_lose_and_duplicate_nothing,
    a_retried_command_id_returns_the_original_outcome,
    a_refusal_stands_when_the_aggregate_knows_its_retries,
    concurrent_submissions_of_one_command_id_store_one_set,
    a_command_id_is_scoped_to_its_stream,
    verify_names_edited_command_columns,
    stream_ids_lists_every_stream_of_the_log,
    verify_passes_an_intact_chain,
    verify_names_an_altered_event,
    verify_names_a_deleted_event,
    verify_names_a_deleted_tail,
    verify_names_a_relinked_event,
    the_global_reader_pages_through_every_event_in_order,
    the_reader_neither_skips_nor_passes_a_held_transaction,
    snapshot_plus_tail_equals_full_replay,
    an_undeserialisable_snapshot_is_replayed_and_overwritten,
    the_cache_spares_the_reload,
    a_stale_cache_yields_a_conflict_not_a_lost_event,
    an_upcaster_loads_an_old_event_version,
    a_large_command_appends_every_event_in_order,
    commands_on_one_stream_through_one_store_queue_instead_of_conflicting,
    hashes_survive_what_the_database_does_to_json,
);

async fn execute_commits_events_with_positions_and_metadata(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = ledger_store(&db);
    let first = opened(&db, "acc-1").await;
    assert_eq!(first.version, 1);
    assert!(!first.duplicate);
    let outcome = store
        .execute(
            "acc-1",
            LedgerCommand::DepositMany {
                amounts: vec![5, 7],
            },
            meta("c2"),
        )
        .await
        .expect("deposit");
    assert_eq!(outcome.version, 3);
    let versions: Vec<u64> = outcome
        .events
        .iter()
        .map(|c| c.record.stream_version)
        .collect();
    assert_eq!(versions, [2, 3]);
    assert_eq!(
        outcome
            .events
            .iter()
            .map(|c| c.event.clone())
            .collect::<Vec<_>>(),
        [
            LedgerEvent::Deposited { amount: 5 },
            LedgerEvent::Deposited { amount: 7 }
        ]
    );
    let positions: Vec<i64> = outcome.events.iter().map(|c| c.record.position).collect();
    assert!(positions[0] > first.events[0].record.position);
    assert!(positions[1] > positions[0]);
    assert_eq!(
        outcome.events[1].record.prev_hash,
        outcome.events[0].record.hash
    );
    assert_eq!(outcome.events[0].record.command_metadata(), meta("c2"));
    assert_eq!(outcome.events[0].record.event_version, "2");

    // What is stored is what was returned.
    let stored = store.load_stream("acc-1").await.expect("load");
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1..], outcome.events[..]);

    // A refused command writes nothing.
    let refused = store
        .execute("acc-1", LedgerCommand::Withdraw { amount: 100 }, meta("c3"))
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Rejected(LedgerError::InsufficientFunds))
    ));
    // A command that changes nothing writes nothing.
    let touched = store
        .execute("acc-1", LedgerCommand::Touch, meta("c4"))
        .await
        .expect("touch");
    assert!(touched.events.is_empty());
    assert_eq!(touched.version, 3);
    assert_eq!(scalar(&db, "SELECT count(*) FROM events").await, 3);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM events WHERE command_id IS NOT NULL"
        )
        .await,
        2
    );
    // A command id is required.
    let missing = store
        .execute("acc-1", deposit(1), CommandMetadata::new(""))
        .await;
    assert!(matches!(
        missing,
        Err(CommandError::Store(StoreError::MissingCommandId))
    ));
}

async fn cqrs_framework_runs_on_the_store(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let cqrs = CqrsFramework::new(ledger_store(&db), vec![], ());
    cqrs.execute("acc", open("ola")).await.expect("open");
    let mut metadata = HashMap::new();
    metadata.insert("command_id".to_owned(), "fw-1".to_owned());
    metadata.insert("actor".to_owned(), "ola".to_owned());
    cqrs.execute_with_metadata("acc", deposit(3), metadata.clone())
        .await
        .expect("deposit");
    // The same command id through the framework does not apply twice.
    cqrs.execute_with_metadata("acc", deposit(3), metadata)
        .await
        .expect("retry");
    let store = ledger_store(&db);
    let envelopes = store.load_events("acc").await.expect("load events");
    assert_eq!(envelopes.len(), 2);
    assert_eq!(envelopes[1].sequence, 2);
    assert_eq!(
        envelopes[1].metadata.get("actor").map(String::as_str),
        Some("ola")
    );
    let mut context = store.load_aggregate("acc").await.expect("load aggregate");
    let aggregate = cqrs_es::AggregateContext::aggregate(&mut context);
    assert_eq!(aggregate.balance, 3);
    assert!(db.verify("acc").await.expect("verify").is_intact());
}

async fn events_are_append_only(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    opened(&db, "acc").await;
    for sql in [
        "UPDATE events SET event_type = 'X'",
        "DELETE FROM events",
        "UPDATE events SET command_id = NULL, command_events = NULL",
    ] {
        let error = exec(&db, sql).await.expect_err(sql);
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    if backend == Backend::Postgres {
        for sql in ["TRUNCATE events"] {
            let error = exec(&db, sql).await.expect_err(sql);
            assert!(error.to_string().contains("append-only"), "{sql}: {error}");
        }
    }
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM events WHERE event_type = 'Opened'"
        )
        .await,
        1
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM events WHERE command_id IS NOT NULL"
        )
        .await,
        1
    );
}

async fn racing_writers_one_wins_the_other_gets_a_conflict(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    opened(&db, "acc").await;
    // Two independent stores (two API instances), both holding the stream at version 1.
    let (a, b) = (ledger_store(&db), ledger_store(&db));
    for s in [&a, &b] {
        s.load_context("acc")
            .await
            .map(|c| assert_eq!(c.version(), 1))
            .expect("load");
    }
    // Put them back in their caches by running a no-op command.
    for s in [&a, &b] {
        s.execute("acc", LedgerCommand::Touch, meta("noop"))
            .await
            .expect("touch");
    }
    let ta = tokio::spawn(async move { a.execute("acc", deposit(1), meta("a")).await });
    let tb = tokio::spawn(async move { b.execute("acc", deposit(2), meta("b")).await });
    let results = [ta.await.expect("join a"), tb.await.expect("join b")];
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    let conflict = results
        .iter()
        .find_map(|r| r.as_ref().err())
        .expect("one loser");
    match conflict {
        CommandError::Store(StoreError::Conflict {
            stream,
            expected_version,
        }) => {
            assert_eq!(stream, "acc");
            assert_eq!(*expected_version, 1);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(scalar(&db, "SELECT count(*) FROM events").await, 2);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM events WHERE command_id IS NOT NULL"
        )
        .await,
        2
    );
    // The loser retries and succeeds on top of the winner.
    let loser = if results[0].is_err() {
        ("a", 1)
    } else {
        ("b", 2)
    };
    let store = ledger_store(&db);
    let retried = store
        .execute("acc", deposit(loser.1), meta(loser.0))
        .await
        .expect("retry");
    assert_eq!(retried.version, 3);
    assert_eq!(store.load_context("acc").await.expect("load").version(), 3);
    assert!(db.verify("acc").await.expect("verify").is_intact());
}

async fn many_racing_writers_lose_and_duplicate_nothing(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    opened(&db, "acc").await;
    const WRITERS: i64 = 4;
    const EACH: i64 = 10;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = ledger_store(&db);
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for i in 0..EACH {
                let id = format!("w{w}-{i}");
                loop {
                    match store.execute("acc", deposit(w * 100 + i), meta(&id)).await {
                        Ok(_) => break,
                        Err(CommandError::Store(StoreError::Conflict { .. })) => conflicts += 1,
                        Err(other) => panic!("{id}: {other:?}"),
                    }
                }
            }
            conflicts
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let expected: i64 = (0..WRITERS)
        .flat_map(|w| (0..EACH).map(move |i| w * 100 + i))
        .sum();
    let events = ledger_store(&db).load_stream("acc").await.expect("load");
    assert_eq!(events.len() as i64, 1 + WRITERS * EACH);
    for (i, c) in events.iter().enumerate() {
        assert_eq!(c.record.stream_version, i as u64 + 1);
    }
    let ledger = Ledger::replay(events.iter().map(|c| &c.event));
    assert_eq!(ledger.balance, expected);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM events WHERE command_id IS NOT NULL"
        )
        .await,
        1 + WRITERS * EACH
    );
    assert!(db.verify("acc").await.expect("verify").is_intact());
}

async fn a_retried_command_id_returns_the_original_outcome(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = ledger_store(&db);
    let original = opened(&db, "acc").await;
    let deposit_outcome = store
        .execute("acc", deposit(5), meta("d1"))
        .await
        .expect("d1");
    // Retried through the same store (cache warm) and through a fresh one (cache cold).
    for s in [store.clone(), ledger_store(&db)] {
        let again = s
            .execute("acc", deposit(5), meta("d1"))
            .await
            .expect("retry");
        assert!(again.duplicate);
        assert_eq!(again.events, deposit_outcome.events);
        assert_eq!(again.version, deposit_outcome.version);
    }
    // A retry the domain itself would refuse ("already open") still gets its outcome.
    let reopen = store
        .execute("acc", open("kari"), meta("acc-open"))
        .await
        .expect("reopen");
    assert!(reopen.duplicate);
    assert_eq!(reopen.events, original.events);
    // The same command under a new id is a new command, and is refused.
    let fresh = store.execute("acc", open("kari"), meta("other")).await;
    assert!(matches!(
        fresh,
        Err(CommandError::Rejected(LedgerError::AlreadyOpen))
    ));
    assert_eq!(scalar(&db, "SELECT count(*) FROM events").await, 2);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM events WHERE command_id IS NOT NULL"
        )
        .await,
        2
    );
}

/// With `refusals_are_final`, the aggregate's refusal of a command whose id was applied is the
/// answer: such an aggregate tells a retry (no events) from a reused id (a refusal) itself.
async fn a_refusal_stands_when_the_aggregate_knows_its_retries(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = ledger_store(&db).with_config(omorg_store::StoreConfig {
        refusals_are_final: true,
        ..omorg_store::StoreConfig::default()
    });
    store
        .execute("acc", open("kari"), meta("acc-open"))
        .await
        .expect("open");
    let reopen = store.execute("acc", open("kari"), meta("acc-open")).await;
    assert!(
        matches!(
            reopen,
            Err(CommandError::Rejected(LedgerError::AlreadyOpen))
        ),
        "{reopen:?}"
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM events").await, 1);
}

async fn concurrent_submissions_of_one_command_id_store_one_set(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    opened(&db, "acc").await;
    let (a, b) = (ledger_store(&db), ledger_store(&db));
    for s in [&a, &b] {
        s.execute("acc", LedgerCommand::Touch, meta("noop"))
            .await
            .expect("warm");
    }
    let command = || LedgerCommand::DepositMany {
        amounts: vec![1, 2],
    };
    let ta = tokio::spawn(async move { a.execute("acc", command(), meta("same")).await });
    let tb = tokio::spawn(async move { b.execute("acc", command(), meta("same")).await });
    let ra = ta.await.expect("join").expect("a");
    let rb = tb.await.expect("join").expect("b");
    assert_eq!(ra.events, rb.events, "both see the same committed events");
    assert_eq!(ra.events.len(), 2);
    assert_eq!(
        [ra.duplicate, rb.duplicate].iter().filter(|d| **d).count(),
        1,
        "exactly one of them wrote"
    );
    assert_eq!(scalar(&db, "SELECT count(*) FROM events").await, 3);
    assert_eq!(
        scalar(
            &db,
            "SELECT count(*) FROM events WHERE command_id IS NOT NULL"
        )
        .await,
        2
    );
}

/// A command id is scoped to its stream: the same id on another stream is another command (a
/// planner applies one prepared change set to two scenarios), and a retry on either stream is
/// recognised there.
async fn a_command_id_is_scoped_to_its_stream(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    opened(&db, "acc").await;
    let store = ledger_store(&db);
    let other = store
        .execute("other", open("x"), meta("acc-open"))
        .await
        .expect("the same id on another stream applies there");
    assert_eq!((other.version, other.duplicate), (1, false));
    for stream in ["acc", "other"] {
        let retry = store
            .execute(stream, open("x"), meta("acc-open"))
            .await
            .expect("a retry");
        assert_eq!((retry.version, retry.duplicate), (1, true), "{stream}");
        assert_eq!(retry.events[0].record.stream_id, stream);
    }
    assert_eq!(scalar(&db, "SELECT count(*) FROM events").await, 2);
}

/// A stream `acc` with versions 1..=5.
async fn five_events(db: &Database) {
    opened(db, "acc").await;
    ledger_store(db)
        .execute(
            "acc",
            LedgerCommand::DepositMany {
                amounts: vec![1, 2, 3, 4],
            },
            meta("many"),
        )
        .await
        .expect("deposits");
    opened(db, "neighbour").await;
}

async fn verify_passes_an_intact_chain(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    five_events(&db).await;
    let report = db.verify("acc").await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, 5);
    let last = ledger_store(&db).load_stream("acc").await.expect("load");
    assert_eq!(report.head, Some((5, last[4].record.hash.clone())));
    let empty = db.verify("nothing").await.expect("verify empty");
    assert!(empty.is_intact());
    assert_eq!(empty.head, None);
}

async fn verify_names_an_altered_event(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    five_events(&db).await;
    tamper(
        &db,
        r#"UPDATE events SET payload = '{"Deposited":{"amount":1000}}'
           WHERE stream_id = 'acc' AND stream_version = 3"#,
    )
    .await;
    let report = db.verify("acc").await.expect("verify");
    let broken = report.first_break.expect("a break");
    assert_eq!((broken.stream_id.as_str(), broken.version), ("acc", 3));
    assert_eq!(broken.kind, BreakKind::Altered);
    assert!(db.verify("neighbour").await.expect("verify").is_intact());
}

/// On SQLite the event columns are text, so an edit can leave a row that no longer decodes at
/// all (PostgreSQL's `jsonb` and `timestamptz` refuse such values). `verify` is the tool an
/// auditor runs to find such an edit: it names the event instead of failing with an error.
#[tokio::test]
async fn verify_names_an_event_that_no_longer_decodes() {
    for (version, dml) in [
        (3, "UPDATE events SET payload = 'not json' WHERE stream_id = 'acc' AND stream_version = 3"),
        (2, "UPDATE events SET metadata = '{' WHERE stream_id = 'acc' AND stream_version = 2"),
        (4, "UPDATE events SET recorded_at = 'yesterday' WHERE stream_id = 'acc' AND stream_version = 4"),
        // A member given twice: the hash (over the parsed value, last one kept) would still
        // match, while SQLite's json_extract reads the first.
        (
            3,
            r#"UPDATE events SET payload = '{"Deposited":{"amount":1000,"amount":2}}'
               WHERE stream_id = 'acc' AND stream_version = 3"#,
        ),
    ] {
        let (db, _) = fresh_database(Backend::Sqlite).await;
        five_events(&db).await;
        tamper(&db, dml).await;
        let report = db.verify("acc").await.expect("verify answers, naming the event");
        let broken = report.first_break.expect("a break");
        assert_eq!((broken.stream_id.as_str(), broken.version), ("acc", version), "{dml}");
        assert_eq!(broken.kind, BreakKind::Altered, "{dml}");
        assert_eq!(report.events_checked, version, "{dml}");
        assert!(db.verify("neighbour").await.expect("verify").is_intact());
    }
}

async fn verify_names_a_deleted_event(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    five_events(&db).await;
    tamper(
        &db,
        "DELETE FROM events WHERE stream_id = 'acc' AND stream_version = 2",
    )
    .await;
    let broken = db
        .verify("acc")
        .await
        .expect("verify")
        .first_break
        .expect("a break");
    assert_eq!(broken.version, 2);
    assert_eq!(broken.kind, BreakKind::Missing { found: Some(3) });
}

async fn verify_names_a_deleted_tail(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    five_events(&db).await;
    let head = db
        .verify("acc")
        .await
        .expect("verify")
        .head
        .expect("a head");
    assert!(db
        .verify_against("acc", &head)
        .await
        .expect("verify")
        .is_intact());
    // A cut inside a command shows without a head: the command's size says what is missing.
    tamper(
        &db,
        "DELETE FROM events WHERE stream_id = 'acc' AND stream_version >= 4",
    )
    .await;
    let broken = db.verify("acc").await.expect("verify").first_break;
    assert!(
        matches!(
            broken,
            Some(ChainBreak {
                version: 4,
                kind: BreakKind::CommandAltered { .. },
                ..
            })
        ),
        "{broken:?}"
    );
    // Whole commands cut from the end leave a shorter chain, intact in itself; the recorded
    // head shows what is gone.
    tamper(
        &db,
        "DELETE FROM events WHERE stream_id = 'acc' AND stream_version >= 2",
    )
    .await;
    assert!(db.verify("acc").await.expect("verify").is_intact());
    let broken = db
        .verify_against("acc", &head)
        .await
        .expect("verify")
        .first_break
        .expect("a break");
    assert_eq!(broken.version, 2);
    assert_eq!(broken.kind, BreakKind::Missing { found: None });
}

async fn verify_names_a_relinked_event(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    five_events(&db).await;
    // Rewrite event 2 consistently (content and its own hash) — only event 3's link shows it.
    let events = ledger_store(&db).load_stream("acc").await.expect("load");
    let e2 = &events[1].record;
    let payload = json!({"Deposited": {"amount": 999}});
    let forged = omorg_store::hash::event_hash(&omorg_store::hash::HashInput {
        stream_id: "acc",
        stream_version: 2,
        event_type: &e2.event_type,
        event_version: &e2.event_version,
        payload: &omorg_store::hash::canonical_json(&payload),
        metadata: &omorg_store::hash::canonical_json(&e2.metadata),
        recorded_at: &e2.recorded_at,
        prev_hash: &e2.prev_hash,
    });
    tamper(
        &db,
        &format!(
            "UPDATE events SET payload = '{payload}', hash = '{forged}' \
             WHERE stream_id = 'acc' AND stream_version = 2"
        ),
    )
    .await;
    let broken = db
        .verify("acc")
        .await
        .expect("verify")
        .first_break
        .expect("a break");
    assert_eq!(broken.version, 3);
    assert_eq!(broken.kind, BreakKind::Relinked);
}

/// The command columns are not hashed (they are how a retry finds its original outcome), but
/// they must agree with the hashed metadata and with each other: an edit to them would have a
/// retry answered with another command's events, so `verify` names it.
async fn verify_names_edited_command_columns(backend: Backend) {
    // `acc`: version 1 is command `acc-open`, versions 2..=5 command `many`.
    for (dml, version, says) in [
        (
            "UPDATE events SET command_id = 'cX' WHERE stream_id = 'acc' AND stream_version = 1",
            1,
            "command id cX",
        ),
        (
            "UPDATE events SET command_events = 2 WHERE stream_id = 'acc' AND stream_version = 2",
            2,
            "the command's size was edited",
        ),
        (
            "UPDATE events SET command_id = 'x', command_events = 1 \
             WHERE stream_id = 'acc' AND stream_version = 3",
            3,
            "more event(s) to come",
        ),
        (
            "UPDATE events SET command_events = 5 WHERE stream_id = 'acc' AND stream_version = 2",
            6,
            "more event(s) than the stream holds",
        ),
        (
            "UPDATE events SET command_id = NULL, command_events = NULL \
             WHERE stream_id = 'acc' AND stream_version = 1",
            1,
            "records nothing for its command id",
        ),
    ] {
        let (db, _) = fresh_database(backend).await;
        five_events(&db).await;
        assert!(db.verify("acc").await.expect("verify").is_intact());
        tamper(&db, dml).await;
        let report = db.verify("acc").await.expect("verify");
        let broken = report.first_break.expect("a break");
        assert_eq!(
            (broken.stream_id.as_str(), broken.version),
            ("acc", version),
            "{dml}"
        );
        match &broken.kind {
            BreakKind::CommandAltered { detail } => assert!(detail.contains(says), "{detail}"),
            other => panic!("{dml}: {other:?}"),
        }
        assert!(db.verify("neighbour").await.expect("verify").is_intact());
    }
}

/// Every stream of the log is listed for a whole-log verification, whatever the read models hold.
async fn stream_ids_lists_every_stream_of_the_log(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    assert!(db.stream_ids().await.expect("ids").is_empty());
    five_events(&db).await;
    assert_eq!(db.stream_ids().await.expect("ids"), ["acc", "neighbour"]);
}

async fn the_global_reader_pages_through_every_event_in_order(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = ledger_store(&db);
    let mut written = Vec::new();
    for s in ["a", "b", "c"] {
        written.extend(opened(&db, s).await.events);
    }
    for (i, s) in ["b", "a", "c", "a"].iter().enumerate() {
        let o = store
            .execute(s, deposit(i as i64), meta(&format!("d{i}")))
            .await
            .expect("deposit");
        written.extend(o.events);
    }
    let read = read_pages(&db, Checkpoint::START, 2, written.len()).await;
    let at = read.last().expect("events").checkpoint;
    let expected: Vec<_> = written.iter().map(|c| c.record.clone()).collect();
    assert_eq!(read, expected, "every event, once, in commit order");
    // Checkpoints survive a round trip through text and JSON.
    let text = at.to_string();
    assert_eq!(text.parse::<Checkpoint>().expect("parse"), at);
    let as_json = serde_json::to_string(&at).expect("json");
    assert_eq!(
        serde_json::from_str::<Checkpoint>(&as_json).expect("json"),
        at
    );
    assert!("nonsense".parse::<Checkpoint>().is_err());
    assert!(db.read_all_after(&at, 10).await.expect("read").is_empty());
}

/// Reads everything after `from`, retrying while the reader is held back (on PostgreSQL by any
/// transaction in flight on the server, including other tests'), until `want` events arrived.
async fn read_until(
    db: &Database,
    from: Checkpoint,
    want: usize,
) -> Vec<omorg_store::RecordedEvent> {
    read_pages(db, from, 100, want).await
}

/// [`read_until`] in pages of at most `limit` events.
async fn read_pages(
    db: &Database,
    from: Checkpoint,
    limit: u32,
    want: usize,
) -> Vec<omorg_store::RecordedEvent> {
    let mut read = Vec::new();
    let mut at = from;
    for _ in 0..600 {
        let page = db.read_all_after(&at, limit).await.expect("read");
        assert!(page.len() <= limit as usize);
        if let Some(last) = page.last() {
            at = last.checkpoint;
        }
        let empty = page.is_empty();
        read.extend(page);
        if read.len() >= want {
            break;
        }
        if empty {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    read
}

async fn the_reader_neither_skips_nor_passes_a_held_transaction(backend: Backend) {
    let (db, url) = fresh_database(backend).await;
    let store = ledger_store(&db);
    let a = opened(&db, "a").await.events[0].record.clone();

    // A second connection begins an append and holds it open (as a slow writer would).
    const HELD_INSERT_PG: &str = "INSERT INTO events (stream_id, stream_version, event_type, \
        event_version, payload, metadata, recorded_at, prev_hash, hash) VALUES ('held', 1, \
        'Opened', '1', '{\"Opened\":{\"owner\":\"slow\"}}', '{}', now(), 'x', 'y')";
    const HELD_INSERT_SQLITE: &str = "INSERT INTO events (stream_id, stream_version, event_type, \
        event_version, payload, metadata, recorded_at, prev_hash, hash) VALUES ('held', 1, \
        'Opened', '1', '{\"Opened\":{\"owner\":\"slow\"}}', '{}', '2026-01-01T00:00:00.000000Z', \
        'x', 'y')";
    use sqlx::{Connection, Executor};
    enum Held {
        Pg(sqlx::PgConnection),
        Lite(sqlx::SqliteConnection),
    }
    let mut held = match backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
            c.execute("BEGIN").await.expect("begin");
            c.execute(HELD_INSERT_PG).await.expect("held insert");
            Held::Pg(c)
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&url)
                .await
                .expect("connect");
            c.execute("BEGIN IMMEDIATE").await.expect("begin");
            c.execute(HELD_INSERT_SQLITE).await.expect("held insert");
            Held::Lite(c)
        }
    };

    // Later appends. On PostgreSQL they commit while the held one is open. On SQLite they wait
    // for the write lock (writers are serialised), so they run in the background.
    let later = {
        let store = store.clone();
        tokio::spawn(async move {
            for s in ["b", "c"] {
                store
                    .execute(s, open("fast"), meta(&format!("{s}-open")))
                    .await
                    .expect("append");
            }
        })
    };
    let later = if backend == Backend::Postgres {
        later.await.expect("later appends");
        // They are committed and visible to ordinary queries…
        assert_eq!(
            scalar(
                &db,
                "SELECT count(*) FROM events WHERE stream_id IN ('b', 'c')"
            )
            .await,
            2
        );
        None
    } else {
        Some(later)
    };

    // …but the reader returns only what precedes the held transaction: it neither skips the
    // held event nor reads past it.
    let before = read_until(&db, Checkpoint::START, 1).await;
    let streams: Vec<&str> = before.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(streams, ["a"], "nothing past the held transaction");
    assert_eq!(before[0], a);
    // Still nothing more while it is held.
    assert!(db
        .read_all_after(&a.checkpoint, 100)
        .await
        .expect("read")
        .is_empty());

    match &mut held {
        Held::Pg(c) => c.execute("COMMIT").await.map(|_| ()),
        Held::Lite(c) => c.execute("COMMIT").await.map(|_| ()),
    }
    .expect("commit held");
    if let Some(later) = later {
        later.await.expect("later appends");
    }

    // After it commits, the reader continues from its checkpoint and gets the held event first,
    // then the later ones: nothing skipped, nothing twice.
    let after = read_until(&db, a.checkpoint, 3).await;
    let streams: Vec<&str> = after.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(streams[0], "held");
    let mut rest = streams[1..].to_vec();
    rest.sort_unstable();
    assert_eq!(rest, ["b", "c"]);
    assert!(db
        .read_all_after(&after[2].checkpoint, 100)
        .await
        .expect("read")
        .is_empty());
}

async fn snapshot_plus_tail_equals_full_replay(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let writer = ledger_store_with(&db, 3);
    writer
        .execute("acc", open("kari"), meta("open"))
        .await
        .expect("open");
    for i in 0..10 {
        writer
            .execute("acc", deposit(i + 1), meta(&format!("d{i}")))
            .await
            .expect("deposit");
    }
    // Versions 1..=11; snapshots were due at 3, 6, 9: one row, at 9, holding the state after
    // commit (not the events applied twice).
    assert_eq!(scalar(&db, "SELECT count(*) FROM snapshots").await, 1);
    assert_eq!(scalar(&db, "SELECT stream_version FROM snapshots").await, 9);
    let reader = ledger_store_with(&db, 3);
    let from_snapshot = reader.load_context("acc").await.expect("load");
    assert_eq!(from_snapshot.version(), 11);
    let events = reader.load_stream("acc").await.expect("stream");
    let full = Ledger::replay(events.iter().map(|c| &c.event));
    let mut from_snapshot = from_snapshot;
    assert_eq!(
        *cqrs_es::AggregateContext::aggregate(&mut from_snapshot),
        full
    );
    assert_eq!(full.balance, 55);
    assert_eq!(full.entries, 11);
    // The snapshot row itself equals the replay of its first 9 events.
    let nine = Ledger::replay(events[..9].iter().map(|c| &c.event));
    let state: serde_json::Value = match &db {
        Database::Postgres(p) => sqlx::query_scalar("SELECT state FROM snapshots")
            .fetch_one(p)
            .await
            .expect("state"),
        Database::Sqlite(p) => {
            let text: String = sqlx::query_scalar("SELECT state FROM snapshots")
                .fetch_one(p)
                .await
                .expect("state");
            serde_json::from_str(&text).expect("json")
        }
    };
    assert_eq!(
        serde_json::from_value::<Ledger>(state).expect("ledger"),
        nine
    );
    // Commands keep working on top of a snapshot-loaded aggregate.
    reader
        .execute("acc", LedgerCommand::Withdraw { amount: 55 }, meta("w"))
        .await
        .expect("withdraw");
    assert!(db.verify("acc").await.expect("verify").is_intact());
}

async fn an_undeserialisable_snapshot_is_replayed_and_overwritten(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let writer = ledger_store_with(&db, 2);
    writer
        .execute("acc", open("kari"), meta("open"))
        .await
        .expect("open");
    writer
        .execute("acc", deposit(4), meta("d"))
        .await
        .expect("deposit");
    writer
        .execute("acc", deposit(6), meta("e"))
        .await
        .expect("deposit");
    assert_eq!(scalar(&db, "SELECT stream_version FROM snapshots").await, 2);
    // The aggregate type "changed": the stored state no longer fits it.
    exec(
        &db,
        r#"UPDATE snapshots SET state = '{"balance": "not a number"}'"#,
    )
    .await
    .expect("corrupt");
    let reader = ledger_store_with(&db, 2);
    let mut context = reader.load_context("acc").await.expect("load by replay");
    assert_eq!(context.version(), 3);
    assert_eq!(
        cqrs_es::AggregateContext::aggregate(&mut context).balance,
        10
    );
    // Overwritten in place at the current version: still one row, and it loads now.
    assert_eq!(scalar(&db, "SELECT count(*) FROM snapshots").await, 1);
    assert_eq!(scalar(&db, "SELECT stream_version FROM snapshots").await, 3);
    let again = ledger_store_with(&db, 2)
        .load_context("acc")
        .await
        .expect("load");
    assert_eq!(again.version(), 3);
}

async fn the_cache_spares_the_reload(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = ledger_store(&db);
    store
        .execute("acc", open("kari"), meta("o"))
        .await
        .expect("open");
    for i in 0..5 {
        store
            .execute("acc", deposit(1), meta(&format!("d{i}")))
            .await
            .expect("deposit");
    }
    let stats = store.cache_stats();
    assert_eq!(
        (stats.misses, stats.hits),
        (1, 5),
        "only the first command read the stream"
    );
    // A command refused before writing anything keeps the entry: the next one is a hit.
    store
        .execute("acc", LedgerCommand::Withdraw { amount: 99 }, meta("w"))
        .await
        .expect_err("insufficient funds");
    store
        .execute("acc", deposit(1), meta("d8"))
        .await
        .expect("deposit");
    assert_eq!(store.cache_stats().misses, 1);
    // One refused after writing an event drops it (the aggregate holds a deposit that was
    // never stored): the next command reloads, and the unstored deposit is not there.
    store
        .execute(
            "acc",
            LedgerCommand::DepositMany {
                amounts: vec![100, -1],
            },
            meta("dm"),
        )
        .await
        .expect_err("not positive");
    store
        .execute("acc", deposit(1), meta("d9"))
        .await
        .expect("deposit");
    assert_eq!(store.cache_stats().misses, 2);
    // Reading through with_aggregate keeps the entry: the next command still hits the cache.
    let (balance, version) = store
        .with_aggregate("acc", |ledger, version| (ledger.balance, version))
        .await
        .expect("read");
    assert_eq!((balance, version), (7, 8));
    store
        .execute("acc", deposit(1), meta("d10"))
        .await
        .expect("deposit");
    assert_eq!(store.cache_stats().misses, 2);
    // load_context hands the aggregate over, so the next command reloads.
    let mut context = store.load_context("acc").await.expect("load");
    assert_eq!(
        cqrs_es::AggregateContext::aggregate(&mut context).balance,
        8
    );
    store
        .execute("acc", deposit(1), meta("d11"))
        .await
        .expect("deposit");
    // (The load itself was a hit; the command after it is the third miss.)
    assert_eq!(store.cache_stats().misses, 3);
}

async fn a_stale_cache_yields_a_conflict_not_a_lost_event(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let (one, two) = (ledger_store(&db), ledger_store(&db));
    one.execute("acc", open("kari"), meta("o"))
        .await
        .expect("open");
    one.execute("acc", deposit(1), meta("d1"))
        .await
        .expect("warm one");
    // Another instance writes; `one`'s cache is now stale.
    two.execute("acc", deposit(10), meta("d2"))
        .await
        .expect("two writes");
    let stale = one.execute("acc", deposit(100), meta("d3")).await;
    assert!(
        matches!(
            &stale,
            Err(CommandError::Store(StoreError::Conflict {
                expected_version: 2,
                ..
            }))
        ),
        "{stale:?}"
    );
    // The retry reloads and includes the other instance's event.
    let ok = one
        .execute("acc", deposit(100), meta("d3"))
        .await
        .expect("retry");
    assert_eq!(ok.version, 4);
    let events = one.load_stream("acc").await.expect("load");
    assert_eq!(Ledger::replay(events.iter().map(|c| &c.event)).balance, 111);
}

async fn an_upcaster_loads_an_old_event_version(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    // Written by the earlier release, as `Deposited { sum }` v1.
    let old: omorg_store::Store<OldLedger> = omorg_store::Store::new(db.clone(), ());
    old.execute(
        "acc",
        OldLedgerEvent::Opened {
            owner: "kari".into(),
        },
        meta("o"),
    )
    .await
    .expect("old open");
    old.execute("acc", OldLedgerEvent::Deposited { sum: 42 }, meta("d"))
        .await
        .expect("old deposit");

    // Without an upcaster today's type cannot read it.
    let plain = ledger_store(&db);
    assert!(matches!(
        plain.load_stream("acc").await,
        Err(StoreError::Deserialization { version: 2, .. })
    ));

    let upcasters = Upcasters::new().with(Upcaster::new("Deposited", "1", "2", |mut v| {
        if let Some(body) = v.get_mut("Deposited").and_then(|b| b.as_object_mut()) {
            if let Some(sum) = body.remove("sum") {
                body.insert("amount".to_owned(), sum);
            }
        }
        v
    }));
    let today = ledger_store(&db).with_upcasters(upcasters);
    let events = today.load_stream("acc").await.expect("upcast");
    assert_eq!(events[1].event, LedgerEvent::Deposited { amount: 42 });
    assert_eq!(
        events[1].record.event_version, "1",
        "the stored row is unchanged"
    );
    today
        .execute("acc", deposit(8), meta("new"))
        .await
        .expect("new deposit");
    let mut context = ledger_store(&db)
        .with_upcasters(Upcasters::new().with(Upcaster::new(
            "Deposited",
            "1",
            "2",
            |v| json!({"Deposited": {"amount": v["Deposited"]["sum"]}}),
        )))
        .load_context("acc")
        .await
        .expect("load");
    assert_eq!(
        cqrs_es::AggregateContext::aggregate(&mut context).balance,
        50
    );
    assert!(db.verify("acc").await.expect("verify").is_intact());
}

#[tokio::test]
async fn an_in_memory_sqlite_database_works() {
    let db = Database::connect("sqlite::memory:").await.expect("connect");
    db.migrate().await.expect("migrate");
    let store = ledger_store(&db);
    store
        .execute("acc", open("kari"), meta("o"))
        .await
        .expect("open");
    store
        .execute("acc", deposit(3), meta("d"))
        .await
        .expect("deposit");
    let read = db
        .read_all_after(&Checkpoint::START, 10)
        .await
        .expect("read");
    assert_eq!(read.len(), 2);
    assert!(db.verify("acc").await.expect("verify").is_intact());
}

#[tokio::test]
async fn an_unknown_url_is_refused() {
    let error = Database::connect("mysql://u:secret@h/db")
        .await
        .expect_err("refused");
    assert!(matches!(error, StoreError::UnsupportedUrl(_)));
    assert!(!error.to_string().contains("secret"), "{error}");
}

async fn a_large_command_appends_every_event_in_order(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store = ledger_store(&db);
    opened(&db, "acc").await;
    // Both append forms on PostgreSQL: multi-row VALUES (small) and arrays (large).
    for (id, n) in [("small", 32_i64), ("large", 300)] {
        let outcome = store
            .execute(
                "acc",
                LedgerCommand::DepositMany {
                    amounts: (1..=n).collect(),
                },
                meta(id),
            )
            .await
            .expect("deposit many");
        assert_eq!(outcome.events.len() as i64, n);
        for pair in outcome.events.windows(2) {
            assert_eq!(
                pair[1].record.stream_version,
                pair[0].record.stream_version + 1
            );
            assert!(pair[1].record.checkpoint > pair[0].record.checkpoint);
            assert_eq!(pair[1].record.prev_hash, pair[0].record.hash);
        }
    }
    assert_eq!(store.load_stream("acc").await.expect("load").len(), 333);
    let read = read_until(&db, Checkpoint::START, 333).await;
    let versions: Vec<u64> = read.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=333).collect::<Vec<u64>>());
    assert!(db.verify("acc").await.expect("verify").is_intact());
}

async fn commands_on_one_stream_through_one_store_queue_instead_of_conflicting(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    opened(&db, "acc").await;
    let store = ledger_store(&db);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .execute("acc", deposit(i), meta(&format!("q{i}")))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await
            .expect("join")
            .expect("no conflict within one store");
    }
    let events = store.load_stream("acc").await.expect("load");
    assert_eq!(events.len(), 9);
    assert_eq!(Ledger::replay(events.iter().map(|c| &c.event)).balance, 28);
    // One database read for the whole queue: the rest came from the cache.
    assert!(store.cache_stats().misses <= 2, "{:?}", store.cache_stats());
}

async fn hashes_survive_what_the_database_does_to_json(backend: Backend) {
    let (db, _) = fresh_database(backend).await;
    let store: omorg_store::Store<Notebook> = omorg_store::Store::new(db.clone(), ());
    // jsonb reorders keys (shorter first), rewrites numbers (1e-7 → 0.0000001, -0.0 → 0.0) and
    // drops whitespace; the canonical form must not care.
    let values = [
        json!({"zz": 1, "a": 2, "mm": {"b": [3, {"y": null, "x": true}]}}),
        json!([
            1e-7,
            0.1,
            1e20,
            -0.0,
            2.5,
            3.0,
            1e300,
            5e-324,
            123456.789e-300
        ]),
        json!([u64::MAX, i64::MIN, 0, -1]),
        json!("quote \" backslash \\ tab \t newline \n control \u{1f} del \u{7f}"),
        json!({"é": "ø", "日本": "語", "emoji": "🦀", "sep": "\u{2028}\u{2029}", "/": "</script>"}),
        json!({"": "", "a b": [[], {}], "nested": {"deeper": {"deepest": [1, [2, [3]]]}}}),
    ];
    for (i, value) in values.iter().enumerate() {
        store
            .execute("notes", value.clone(), meta(&format!("n{i}")))
            .await
            .unwrap_or_else(|e| panic!("{value}: {e:?}"));
    }
    let report = db.verify("notes").await.expect("verify");
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.events_checked, values.len() as u64);
    // The values come back equal (numbers as numbers), through a fresh store.
    let fresh: omorg_store::Store<Notebook> = omorg_store::Store::new(db.clone(), ());
    let stored = fresh.load_stream("notes").await.expect("load");
    for (c, value) in stored.iter().zip(&values) {
        let NoteEvent::Noted { value: got } = &c.event;
        assert_eq!(
            omorg_store::hash::canonical_json(got),
            omorg_store::hash::canonical_json(value)
        );
    }
}

/// omorg's statements are all short; JIT compilation on an overestimated plan cost far more than
/// the query itself (about 200 ms on the benchmark's matrix), so the pool turns it off.
#[tokio::test]
async fn postgres_connections_run_without_jit() {
    let (db, _) = fresh_database(Backend::Postgres).await;
    let Database::Postgres(pool) = &db else {
        unreachable!()
    };
    let jit: String = sqlx::query_scalar("SHOW jit")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(jit, "off");
}
