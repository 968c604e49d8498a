//! `omorg-bench`: how close the event store comes to PostgreSQL's raw commit rate.
//!
//! In one run, against a fresh database on the server named by `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), it measures
//! - the raw limit: autocommit single-row INSERTs of a row shaped and sized like an event, with
//!   N = 1, 2, 8 connections; and multi-row batch INSERTs (rows/s);
//! - the store: single-event commands/s with N writers on distinct streams and on one stream,
//!   and batch appends (one command producing many events),
//!
//! and prints each store figure as a ratio of the matching raw one. Each measurement lasts
//! `BENCH_SECONDS` (default 3) seconds. Run with `cargo run --release -p omorg-bench`;
//! `BENCH_STORE=0`, `BENCH_HTTP=0` and `BENCH_PROJECTIONS=0` skip a section; `BENCH_CLIENTS=1,8`
//! measures only those client counts in the HTTP section, `BENCH_GATHER_MS` sets its projector's
//! gathering (e.g. `600000` keeps the projector out of the measurement); `BENCH_KEEP=1` keeps
//! the projection database and `BENCH_QUERIES_ON=<name>` measures only the queries on it.
//! Results are recorded in docs/benchmarks.md.

mod http;
mod projections;

/// The allocator `omorg` runs with (api/src/main.rs): the bench hosts the server in-process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use omorg_store::{CommandError, CommandMetadata, Database, Store, StoreConfig, StoreError};
use serde::{Deserialize, Serialize};
use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events per command in the batch measurements, and rows per raw batch INSERT.
const BATCH: usize = 100;

/// Writer counts measured for the single-row / single-event cases.
const WRITERS: [usize; 3] = [1, 2, 8];

/// The payload text: about the size of a typical omorg event (a unit change with its decision).
const TEXT: &str = "Innbyggerservice flyttes fra Bydel Grorud til Innbyggertorg Romsås-enheten; \
    vedtak i bystyret sak 99/1 (oppdiktet), ikrafttredelse 2026-01-01, begrunnelse: samlokalisering av \
    publikumstjenester i lokalsenteret og bedre åpningstider for innbyggerne i bydelen.";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A boxed, sendable future (the raw side's operations).
type BoxFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let window = Duration::from_secs(seconds);
    let scratch = Scratch::create("bench").await?;
    let result = run(&scratch.url, window).await;
    // Drop the bench database whatever happened.
    scratch.drop().await?;
    result
}

async fn run(url: &str, window: Duration) -> Result<(), BoxError> {
    let db = Database::connect_with_max_connections(url, 16).await?;
    db.migrate().await?;
    let Database::Postgres(pool) = &db else {
        return Err("the bench needs PostgreSQL".into());
    };
    describe(pool).await?;
    // The write side (issue 3); BENCH_STORE=0 skips it.
    if std::env::var("BENCH_STORE").as_deref() != Ok("0") {
        store_section(&db, pool, url, window).await?;
    }
    // The read side (issue 4): rebuild rate and query latency. BENCH_PROJECTIONS=0 skips it;
    // BENCH_LARGE_EVENTS sets the size of the large timeline (default 100 000).
    if let Ok(kept) = std::env::var("BENCH_QUERIES_ON") {
        // Only the query latencies, on a database kept by an earlier BENCH_KEEP=1 run.
        let proj_db =
            Database::connect_with_max_connections(&with_database_name(&server_url(), &kept), 4)
                .await?;
        projections::queries_only(&proj_db).await?;
        proj_db.close().await;
    } else if std::env::var("BENCH_PROJECTIONS").as_deref() != Ok("0") {
        let mut large = projections::LARGE;
        if let Some(n) = std::env::var("BENCH_LARGE_EVENTS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            large.events = n;
        }
        // Its own database: the projector reads every stream as a timeline, and the store
        // measurements above wrote streams of another aggregate.
        let scratch = Scratch::create("bench_proj").await?;
        let proj_db = Database::connect_with_max_connections(&scratch.url, 4).await?;
        proj_db.migrate().await?;
        let result = projections::run(&proj_db, large).await;
        proj_db.close().await;
        // BENCH_KEEP=1 keeps the loaded database for EXPLAIN work on the queries.
        if std::env::var("BENCH_KEEP").as_deref() == Ok("1") {
            println!("  kept database {}", scratch.name);
        } else {
            scratch.drop().await?;
        }
        result?;
    }
    // Commands through HTTP (issue 5), in a database of its own; BENCH_HTTP=0 skips it. Last,
    // because it installs `omorg serve`'s log subscriber for the rest of the process.
    if std::env::var("BENCH_HTTP").as_deref() != Ok("0") {
        http::run(window).await?;
    }
    db.close().await;
    Ok(())
}

/// The event store against raw single-row and batch commits.
async fn store_section(
    db: &Database,
    pool: &PgPool,
    url: &str,
    window: Duration,
) -> Result<(), BoxError> {
    sqlx::raw_sql(RAW_TABLE).execute(pool).await?;
    let payload = serde_json::to_string(&BenchEvent::Recorded {
        text: TEXT.to_owned(),
    })?;
    println!(
        "payload {} bytes; each measurement {} s per side, in {ROUNDS} alternating rounds",
        payload.len(),
        window.as_secs()
    );
    println!("ratio: median over rounds of store rate / raw rate of the round just before\n");
    println!(
        "{:<56} {:>10} {:<8} {:>6}",
        "measurement", "rate", "", "ratio"
    );
    // Default configuration (snapshot every 100 events), as the service runs.
    let store: Store<BenchTimeline> =
        Store::new(db.clone(), ()).with_config(StoreConfig::default());
    let run_id = Arc::new(AtomicU64::new(0));
    let raw_writers = RawWriters::connect(url, WRITERS[WRITERS.len() - 1], &payload).await?;

    // Single-event commands, writers on distinct streams, against single-row INSERT commits.
    // Raw and store alternate in rounds, so that load from elsewhere on the machine falls on
    // both alike.
    for n in WRITERS {
        let streams: Vec<String> = (0..n).map(|w| format!("distinct-{n}-{w}")).collect();
        for s in &streams {
            // Warm the cache, as a running service would be.
            command(&store, s, 1, &run_id).await?;
        }
        let (store_, run_id_) = (store.clone(), run_id.clone());
        let store_op = move |w: usize| {
            let (store, stream, run_id) = (store_.clone(), streams[w].clone(), run_id_.clone());
            async move { command(&store, &stream, 1, &run_id).await.map(|()| 1) }
        };
        let (raw, ours, ratio) = paired(window, n, raw_writers.single(), store_op).await?;
        report(
            &format!("raw INSERT commit, {n} connection(s)"),
            raw,
            "rows/s",
            None,
        );
        report(
            &format!("store, {n} writer(s), distinct streams"),
            ours,
            "cmds/s",
            Some(ratio),
        );
    }
    println!();

    // Writers on one stream through one store: they queue on the stream's lock (no conflicts
    // within a process), so this is bounded by one commit at a time.
    for n in WRITERS {
        let stream = format!("shared-{n}");
        command(&store, &stream, 1, &run_id).await?;
        let (store_, run_id_) = (store.clone(), run_id.clone());
        let store_op = move |_: usize| {
            let (store, stream, run_id) = (store_.clone(), stream.clone(), run_id_.clone());
            async move { command(&store, &stream, 1, &run_id).await.map(|()| 1) }
        };
        let (raw, ours, ratio) = paired(window, n, raw_writers.single(), store_op).await?;
        report(
            &format!("store, {n} writer(s), one stream (raw: {raw:.0}/s)"),
            ours,
            "cmds/s",
            Some(ratio),
        );
    }

    // Writers on one stream through separate stores (as separate API instances): they race,
    // losers get a conflict and retry after reloading. Only commits count.
    let conflicts = Arc::new(AtomicU64::new(0));
    for n in [2, 8] {
        let stream = format!("racing-{n}");
        command(&store, &stream, 1, &run_id).await?;
        conflicts.store(0, Ordering::Relaxed);
        let stores: Vec<Store<BenchTimeline>> = (0..n)
            .map(|_| Store::new(db.clone(), ()).with_config(StoreConfig::default()))
            .collect();
        let (stream_, run_id_, conflicts_) = (stream.clone(), run_id.clone(), conflicts.clone());
        let store_op = move |w: usize| {
            let (store, stream) = (stores[w].clone(), stream_.clone());
            let (run_id, conflicts) = (run_id_.clone(), conflicts_.clone());
            async move {
                loop {
                    match command(&store, &stream, 1, &run_id).await {
                        Ok(()) => return Ok(1),
                        Err(e) if is_conflict(&e) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        };
        let (raw, ours, ratio) = paired(window, n, raw_writers.single(), store_op).await?;
        let lost = conflicts.load(Ordering::Relaxed) as f64 / window.as_secs_f64();
        report(
            &format!("{n} stores racing on one stream ({lost:.0} conflicts/s, raw: {raw:.0}/s)"),
            ours,
            "cmds/s",
            Some(ratio),
        );
    }
    println!();

    // Batch appends: one command producing BATCH events, against BATCH-row INSERTs.
    command(&store, "batch", 1, &run_id).await?;
    let (store_, run_id_) = (store.clone(), run_id.clone());
    let store_batch_op = move |_: usize| {
        let (store, run_id) = (store_.clone(), run_id_.clone());
        async move {
            command(&store, "batch", BATCH, &run_id)
                .await
                .map(|()| BATCH as u64)
        }
    };
    let (raw, ours, ratio) = paired(window, 1, raw_writers.batch(), store_batch_op).await?;
    report(
        &format!("raw batch INSERT ({BATCH} rows), 1 connection"),
        raw,
        "rows/s",
        None,
    );
    report(
        &format!("store, batch append ({BATCH} events/command), 1 writer"),
        ours,
        "events/s",
        Some(ratio),
    );
    let verified = db.verify("distinct-8-0").await?;
    println!(
        "\nverify(distinct-8-0): {} events, intact: {}",
        verified.events_checked,
        verified.is_intact()
    );
    Ok(())
}

/// Rounds in which [`paired`] alternates the raw and the store measurement.
const ROUNDS: u32 = 20;

/// Measures `raw` and `ours` with `n` tasks each, alternating in [`ROUNDS`] rounds that together
/// last `window` per side. Returns (raw rate, store rate, ratio): the rates over all rounds, and
/// the median over rounds of the store's rate divided by the raw rate of the round just before
/// it — robust to the commit latency of a shared disk changing during the run.
async fn paired<R, RF, S, SF>(
    window: Duration,
    n: usize,
    raw: R,
    ours: S,
) -> Result<(f64, f64, f64), BoxError>
where
    R: Fn(usize) -> RF + Send + Sync + Clone + 'static,
    RF: Future<Output = Result<u64, BoxError>> + Send + 'static,
    S: Fn(usize) -> SF + Send + Sync + Clone + 'static,
    SF: Future<Output = Result<u64, BoxError>> + Send + 'static,
{
    let round = window / ROUNDS;
    let (mut raw_ops, mut raw_secs, mut our_ops, mut our_secs) = (0, 0.0, 0, 0.0);
    let mut ratios = Vec::with_capacity(ROUNDS as usize);
    for _ in 0..ROUNDS {
        let (r_ops, r_secs) = measure(round, n, raw.clone()).await?;
        let (o_ops, o_secs) = measure(round, n, ours.clone()).await?;
        raw_ops += r_ops;
        raw_secs += r_secs;
        our_ops += o_ops;
        our_secs += o_secs;
        if r_ops > 0 {
            ratios.push((o_ops as f64 / o_secs) / (r_ops as f64 / r_secs));
        }
    }
    ratios.sort_by(f64::total_cmp);
    let median = ratios.get(ratios.len() / 2).copied().unwrap_or(0.0);
    Ok((raw_ops as f64 / raw_secs, our_ops as f64 / our_secs, median))
}

/// Runs `n` tasks, each awaiting `op(task)` in a loop until `window` has passed; returns the
/// operations done (the sum of what the calls return) and the seconds it took.
async fn measure<F, Fut>(window: Duration, n: usize, op: F) -> Result<(u64, f64), BoxError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<u64, BoxError>> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let deadline = start + window;
    let mut handles = Vec::with_capacity(n);
    for w in 0..n {
        let op = Arc::clone(&op);
        handles.push(tokio::spawn(async move {
            let mut count = 0u64;
            while Instant::now() < deadline {
                count += op(w).await?;
            }
            Ok::<u64, BoxError>(count)
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h.await??;
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

fn report(what: &str, rate: f64, unit: &str, ratio: Option<f64>) {
    let ratio = ratio.map_or(String::new(), |r| format!("{r:.2}"));
    println!("{what:<56} {rate:>10.0} {unit:<8} {ratio:>6}");
}

/// Prints the server and machine the numbers belong to.
async fn describe(pool: &PgPool) -> Result<(), BoxError> {
    let version: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(pool)
        .await?;
    let mut settings = Vec::new();
    for name in [
        "fsync",
        "synchronous_commit",
        "wal_sync_method",
        "commit_delay",
        "shared_buffers",
    ] {
        let value: String = sqlx::query_scalar(&format!("SHOW {name}"))
            .fetch_one(pool)
            .await?;
        settings.push(format!("{name}={value}"));
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("server: {version}");
    println!("settings: {}", settings.join(" "));
    println!("client: {cpus} CPUs available");
    Ok(())
}

/// The raw table: the same columns and row size as `events`, with only a primary key.
const RAW_TABLE: &str = "CREATE TABLE bench_raw (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id text NOT NULL, stream_version bigint NOT NULL, event_type text NOT NULL,
    event_version text NOT NULL, payload jsonb NOT NULL, metadata jsonb NOT NULL,
    recorded_at timestamptz NOT NULL, prev_hash text NOT NULL, hash text NOT NULL)";

const RAW_INSERT: &str = "INSERT INTO bench_raw (stream_id, stream_version, event_type, \
    event_version, payload, metadata, recorded_at, prev_hash, hash) \
    VALUES ($1, $2, 'Recorded', '1', $3::jsonb, $4::jsonb, now(), $5, $6)";

/// The same metadata object size as the store writes.
fn metadata(command_id: &str) -> String {
    CommandMetadata::new(command_id)
        .with_actor("bench")
        .with_decision(serde_json::json!({"case": "17/6"}))
        .to_json()
        .to_string()
}

const HASH: &str = "5f2b8e0c3a1d4e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f";

/// The raw reference: one dedicated connection per writer, no pool, so that the figure is what
/// PostgreSQL itself allows. (A pool costs a round trip per use on top: sqlx pings every
/// connection it takes back. Measured through the pool, the raw rates came out 10–15 % lower,
/// which flattered every ratio against them.)
#[derive(Clone)]
struct RawWriters {
    conns: Arc<Vec<tokio::sync::Mutex<PgConnection>>>,
    payload: Arc<str>,
}

impl RawWriters {
    /// Opens `n` connections to `url` (the raw table must exist).
    async fn connect(url: &str, n: usize, payload: &str) -> Result<Self, BoxError> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(tokio::sync::Mutex::new(PgConnection::connect(url).await?));
        }
        Ok(Self {
            conns: Arc::new(conns),
            payload: payload.into(),
        })
    }

    /// Writer `w`'s operation: one single-row autocommit INSERT on its own connection.
    fn single(&self) -> impl Fn(usize) -> BoxFuture<'static, Result<u64, BoxError>> + Clone {
        let this = self.clone();
        move |w| {
            let this = this.clone();
            Box::pin(async move {
                let id = uuid::Uuid::new_v4().to_string();
                let mut conn = this.conns[w].lock().await;
                sqlx::query(RAW_INSERT)
                    .bind("raw")
                    .bind(1_i64)
                    .bind(&*this.payload)
                    .bind(metadata(&id))
                    .bind(HASH)
                    .bind(HASH)
                    .execute(&mut *conn)
                    .await?;
                Ok(1)
            })
        }
    }

    /// Writer `w`'s batch operation: one [`BATCH`]-row INSERT; counts rows.
    fn batch(&self) -> impl Fn(usize) -> BoxFuture<'static, Result<u64, BoxError>> + Clone {
        let this = self.clone();
        move |w| {
            let this = this.clone();
            Box::pin(async move {
                let meta = metadata(&uuid::Uuid::new_v4().to_string());
                let mut builder = sqlx::QueryBuilder::new(
                    "INSERT INTO bench_raw (stream_id, stream_version, event_type, event_version, \
                     payload, metadata, recorded_at, prev_hash, hash) ",
                );
                builder.push_values(0..BATCH, |mut row, i| {
                    row.push_bind("raw")
                        .push_bind(i as i64)
                        .push("'Recorded'")
                        .push("'1'")
                        .push_bind(&*this.payload)
                        .push_unseparated("::jsonb")
                        .push_bind(meta.clone())
                        .push_unseparated("::jsonb")
                        .push("now()")
                        .push_bind(HASH)
                        .push_bind(HASH);
                });
                let mut conn = this.conns[w].lock().await;
                builder.build().execute(&mut *conn).await?;
                Ok(BATCH as u64)
            })
        }
    }
}

/// One command on `stream` producing `events` events, with a fresh command id.
async fn command(
    store: &Store<BenchTimeline>,
    stream: &str,
    events: usize,
    run_id: &AtomicU64,
) -> Result<(), BoxError> {
    let id = format!("bench-{}", run_id.fetch_add(1, Ordering::Relaxed));
    let metadata = CommandMetadata::new(id)
        .with_actor("bench")
        .with_decision(serde_json::json!({"case": "17/6"}));
    match store
        .execute(stream, BenchCommand::Record { events }, metadata)
        .await
    {
        Ok(_) => Ok(()),
        Err(CommandError::Store(e)) => Err(Box::new(e)),
        Err(CommandError::Rejected(e)) => match e {},
    }
}

fn is_conflict(e: &BoxError) -> bool {
    matches!(
        e.downcast_ref::<StoreError>(),
        Some(StoreError::Conflict { .. })
    )
}

/// A minimal aggregate: counts what it recorded.
#[derive(Debug, Default, Serialize, Deserialize)]
struct BenchTimeline {
    recorded: u64,
}

/// Record `events` events.
#[derive(Debug)]
enum BenchCommand {
    Record { events: usize },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum BenchEvent {
    Recorded { text: String },
}

impl DomainEvent for BenchEvent {
    fn event_type(&self) -> String {
        "Recorded".to_owned()
    }
    fn event_version(&self) -> String {
        "1".to_owned()
    }
}

/// The bench aggregate never refuses a command.
#[derive(Debug)]
enum Never {}

impl std::fmt::Display for Never {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

impl std::error::Error for Never {}

impl Aggregate for BenchTimeline {
    const TYPE: &'static str = "bench_timeline";
    type Command = BenchCommand;
    type Event = BenchEvent;
    type Error = Never;
    type Services = ();

    async fn handle(
        &mut self,
        command: BenchCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Never> {
        let BenchCommand::Record { events } = command;
        for _ in 0..events {
            sink.write(
                BenchEvent::Recorded {
                    text: TEXT.to_owned(),
                },
                self,
            )
            .await;
        }
        Ok(())
    }

    fn apply(&mut self, _event: BenchEvent) {
        self.recorded += 1;
    }
}

/// The PostgreSQL server the bench runs against: `DATABASE_URL`, or the local one.
fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of the bench's own on [`server_url`], created for one section and dropped after.
struct Scratch {
    admin: PgConnection,
    name: String,
    /// Its URL.
    url: String,
}

impl Scratch {
    /// Creates `omorg_<prefix>_<random>`.
    async fn create(prefix: &str) -> Result<Self, BoxError> {
        let server = server_url();
        let name = format!("omorg_{prefix}_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&server).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let url = with_database_name(&server, &name);
        Ok(Self { admin, name, url })
    }

    /// Drops it, closing any connection still open to it.
    async fn drop(mut self) -> Result<(), BoxError> {
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut self.admin)
        .await?;
        Ok(())
    }
}

/// `url` with its database name (the path) replaced by `name`, keeping any query string.
fn with_database_name(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = base[authority..]
        .find('/')
        .map_or(base, |slash| &base[..authority + slash]);
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}
