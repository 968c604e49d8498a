//! Projection benchmarks (issue 4): full rebuild rate as a ratio of the raw rate of reading the
//! log and inserting as many rows in the same run, and p50/p99 latency of the as-of org chart and
//! responsibility matrix queries on an Oslo-sized timeline and on a large generated one.

use chrono::{Days, NaiveDate};
use cqrs_es::Aggregate;
use omorg_api::batch::{Commands, TimelineBatch};
use omorg_domain::*;
use omorg_projections::queries::{self, AsOf};
use omorg_projections::Projector;
use omorg_store::{CommandMetadata, Database, Store, StoreConfig};
use sqlx::PgPool;
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The shape of a generated timeline.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Districts, each holding `areas_per_district` areas.
    pub districts: usize,
    /// Areas per district.
    pub areas_per_district: usize,
    /// Central agencies.
    pub agencies: usize,
    /// Total units (the rest are departments under districts).
    pub units: usize,
    /// Services, each assigned to every district for its areas.
    pub services: usize,
    /// Accepted events to reach (setup included).
    pub events: usize,
}

/// Roughly Oslo: 15 districts, 60 units, 100 services.
pub const OSLO: Shape = Shape {
    districts: 15,
    areas_per_district: 1,
    agencies: 20,
    units: 60,
    services: 100,
    events: 3_000,
};
/// The large timeline of the issue: 2,000 units and 100,000 events.
pub const LARGE: Shape = Shape {
    districts: 40,
    areas_per_district: 5,
    agencies: 10,
    units: 2_000,
    services: 100,
    events: 100_000,
};

fn ctx(n: usize, date: NaiveDate) -> ChangeContext {
    ChangeContext {
        command_id: CommandId::new(format!("gen-{n}")).expect("id"),
        effective_from: date,
        decision: DecisionRef {
            case_number: format!("{}/{}", 20 + n / 10_000, n % 10_000),
            body: "Bystyret".into(),
            decision_date: date,
            title: "generated".into(),
            link: None,
        },
        actor: "bench".into(),
        rationale: String::new(),
    }
}

fn unit(i: usize) -> UnitId {
    UnitId::new(format!("u{i}")).expect("id")
}

/// Generates commands for `shape`, keeping only those the domain accepts, in order: a baseline
/// organisation on 2000-01-01, then a stream of renames, moves, centralisations and
/// decentralisations, about twenty per effective day.
pub fn generate(shape: Shape) -> Vec<TimelineCommand> {
    let base = NaiveDate::from_ymd_opt(2000, 1, 1).expect("date");
    let mut t = Timeline::default();
    let mut out = Vec::with_capacity(shape.events);
    let mut n = 0usize;
    let mut push =
        |t: &mut Timeline, out: &mut Vec<TimelineCommand>, date: NaiveDate, action: Action| {
            let cmd = TimelineCommand {
                context: ctx(n, date),
                action,
            };
            n += 1;
            if let Ok(Some(e)) = t.decide(cmd.clone()) {
                t.apply(e);
                out.push(cmd);
            }
        };
    push(
        &mut t,
        &mut out,
        base,
        Action::CreateTimeline(TimelineDef {
            name: "generated".into(),
            description: String::new(),
        }),
    );
    let def =
        |id: UnitId, name: String, kind, parent: Option<UnitId>, areas: Vec<AreaDef>| UnitDef {
            unit: id,
            code: None,
            name,
            kind,
            parent,
            areas,
            attributes: Default::default(),
        };
    push(
        &mut t,
        &mut out,
        base,
        Action::EstablishUnit(def(
            unit(0),
            "Kommune".into(),
            UnitKind::Municipality,
            None,
            vec![],
        )),
    );
    let area = |d: usize, a: usize| AreaCode::new(format!("a{d}-{a}")).expect("code");
    for d in 1..=shape.districts {
        let areas = (0..shape.areas_per_district)
            .map(|a| AreaDef {
                code: area(d, a),
                name: format!("Area {d}-{a}"),
                carved_from: None,
            })
            .collect();
        push(
            &mut t,
            &mut out,
            base,
            Action::EstablishUnit(def(
                unit(d),
                format!("District {d}"),
                UnitKind::District,
                Some(unit(0)),
                areas,
            )),
        );
    }
    let first_agency = shape.districts + 1;
    for i in first_agency..first_agency + shape.agencies {
        push(
            &mut t,
            &mut out,
            base,
            Action::EstablishUnit(def(
                unit(i),
                format!("Agency {i}"),
                UnitKind::CentralAgency,
                Some(unit(0)),
                vec![],
            )),
        );
    }
    let first_dept = first_agency + shape.agencies;
    for i in first_dept..shape.units {
        push(
            &mut t,
            &mut out,
            base,
            Action::EstablishUnit(def(
                unit(i),
                format!("Department {i}"),
                UnitKind::Department,
                Some(unit(1 + i % shape.districts)),
                vec![],
            )),
        );
    }
    for s in 0..shape.services {
        let sc = ServiceCode::new(format!("s{s}")).expect("code");
        push(
            &mut t,
            &mut out,
            base,
            Action::RegisterService(ServiceDef {
                service: sc.clone(),
                name: format!("Service {s}"),
                category: "generated".into(),
            }),
        );
        for d in 1..=shape.districts {
            let areas = (0..shape.areas_per_district).map(|a| area(d, a)).collect();
            push(
                &mut t,
                &mut out,
                base,
                Action::AssignResponsibility(Assignment {
                    service: sc.clone(),
                    unit: unit(d),
                    areas,
                }),
            );
        }
    }
    let depts = shape.units.saturating_sub(first_dept).max(1);
    let mut k = 0usize;
    while out.len() < shape.events {
        let date = base + Days::new(1 + (k / 20) as u64);
        let s = ServiceCode::new(format!("s{}", k % shape.services)).expect("code");
        let action = match k % 4 {
            0 => Action::RenameUnit(Rename {
                unit: unit(first_dept + k % depts),
                name: Some(format!("Department v{k}")),
                code: None,
            }),
            1 => Action::CentraliseService(Centralisation {
                service: s,
                agency: unit(first_agency + k % shape.agencies),
            }),
            2 => Action::DecentraliseService(Decentralisation {
                service: s,
                agency: None,
            }),
            _ => Action::MoveUnit(Move {
                unit: unit(first_dept + k % depts),
                new_parent: Some(unit(1 + (k / 7) % shape.districts)),
            }),
        };
        push(&mut t, &mut out, date, action);
        k += 1;
    }
    out
}

/// Loads commands into `stream`, 1,000 per transaction.
pub async fn load(
    db: &Database,
    stream: &str,
    commands: Vec<TimelineCommand>,
) -> Result<(), BoxError> {
    // Snapshots off: rewriting a growing 100 000-event snapshot every 100 events would dominate
    // the set-up, which is not what this bench measures.
    let store: Store<TimelineBatch> = Store::new(db.clone(), ()).with_config(StoreConfig {
        snapshot_every: 0,
        ..StoreConfig::default()
    });
    for (i, chunk) in commands.chunks(1_000).enumerate() {
        store
            .execute(
                stream,
                Commands {
                    commands: chunk.to_vec(),
                    is_batch: true,
                    adopted: false,
                },
                CommandMetadata::new(format!("{stream}-load-{i}")),
            )
            .await
            .map_err(|e| format!("loading {stream}: {e:?}"))?;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Unmeasured queries before each latency measurement.
const WARM_UP: usize = 10;

/// p50 and p99 of `n` runs of a query at dates spread over the timeline (after [`WARM_UP`]).
async fn latency<F, Fut>(
    n: usize,
    days: u64,
    mut query: F,
) -> Result<(Duration, Duration), BoxError>
where
    F: FnMut(NaiveDate) -> Fut,
    Fut: std::future::Future<Output = Result<usize, BoxError>>,
{
    let base = NaiveDate::from_ymd_opt(2000, 1, 1).expect("date");
    // Warm-up, not measured: every pooled connection prepares each statement once, and a
    // server would have done so long before.
    for i in 0..WARM_UP {
        query(base + Days::new((i as u64 * 104_729) % days.max(1))).await?;
    }
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let date = base + Days::new((i as u64 * 7919) % days.max(1));
        let start = Instant::now();
        let rows = query(date).await?;
        times.push(start.elapsed());
        if rows == 0 {
            return Err(format!("query on {date} returned nothing").into());
        }
    }
    times.sort();
    Ok((percentile(&times, 0.5), percentile(&times, 0.99)))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Measures query latency on one timeline and prints it against the target.
async fn queries_on(
    db: &Database,
    stream: &str,
    shape: Shape,
    target: Duration,
) -> Result<(), BoxError> {
    let days = (shape.events / 20) as u64 + 1;
    let (p50, p99) = latency(200, days, |d| async move {
        Ok(queries::org_chart(db, stream, AsOf::now(d))
            .await
            .map_err(|e| e.to_string())?
            .len())
    })
    .await?;
    println!(
        "  org chart as of D      ({stream}): p50 {}  p99 {}  (target p99 <= {})  {}",
        ms(p50),
        ms(p99),
        ms(target),
        verdict(p99 <= target)
    );
    let (p50, p99) = latency(200, days, |d| async move {
        Ok(queries::responsibility_matrix(db, stream, AsOf::now(d))
            .await
            .map_err(|e| e.to_string())?
            .len())
    })
    .await?;
    println!(
        "  responsibility matrix  ({stream}): p50 {}  p99 {}  (target p99 <= {})  {}",
        ms(p50),
        ms(p99),
        ms(target),
        verdict(p99 <= target)
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// The raw limit for a rebuild: read the whole log in pages of 500 and insert `rows` rows of a
/// read-model shape (into a table without indexes), one multi-row INSERT and one transaction
/// per page; returns events/s.
async fn raw_rebuild_rate(pool: &PgPool, events: usize, rows: usize) -> Result<f64, BoxError> {
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_raw_rows (timeline_id text, unit_id text, name text, areas jsonb, effective_from date, effective_to date, recorded_from timestamptz, recorded_from_version bigint)")
        .execute(pool)
        .await?;
    sqlx::query("TRUNCATE bench_raw_rows").execute(pool).await?;
    let per_event = rows as f64 / events.max(1) as f64;
    let start = Instant::now();
    let mut after = 0i64;
    let mut written = 0usize;
    let mut seen = 0usize;
    loop {
        let page: Vec<(i64, serde_json::Value)> = sqlx::query_as(
            "SELECT position, payload FROM events WHERE position > $1 ORDER BY position LIMIT 500",
        )
        .bind(after)
        .fetch_all(pool)
        .await?;
        let Some(last) = page.last() else { break };
        after = last.0;
        seen += page.len();
        let target = ((seen as f64) * per_event).round() as usize;
        // One multi-row INSERT per page, in its own transaction: the fastest plain way to write
        // the rows, as the projector now writes a batch's rows at its end.
        let ids: Vec<String> = (written..target).map(|i| format!("u{i}")).collect();
        let versions: Vec<i64> = (written..target).map(|i| i as i64).collect();
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO bench_raw_rows SELECT 't', u, 'Department name', '[\"a1-0\"]'::jsonb, DATE '2000-01-01', NULL, now(), v \
             FROM UNNEST($1::text[], $2::int8[]) AS r(u, v)",
        )
        .bind(&ids)
        .bind(&versions)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        written = target;
    }
    let rate = seen as f64 / start.elapsed().as_secs_f64();
    // Dropped at once, so that autovacuum does not work through it beside the query latencies.
    sqlx::query("DROP TABLE bench_raw_rows")
        .execute(pool)
        .await?;
    Ok(rate)
}

async fn read_model_rows(pool: &PgPool) -> Result<usize, BoxError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM unit_versions) + (SELECT count(*) FROM area_versions) + (SELECT count(*) FROM service_versions) \
         + (SELECT count(*) FROM responsibility_versions) + (SELECT count(*) FROM service_point_versions) + (SELECT count(*) FROM lineage_edges) \
         + (SELECT count(*) FROM decisions) + (SELECT count(*) FROM change_feed)",
    )
    .fetch_one(pool)
    .await?;
    Ok(n as usize)
}

/// Runs the projection benchmarks on the (fresh, migrated) PostgreSQL database `db`.
pub async fn run(db: &Database, large: Shape) -> Result<(), BoxError> {
    let Database::Postgres(pool) = db else {
        return Err("the projection benchmark runs on PostgreSQL".into());
    };
    println!("\n== projections ==");
    let t = Instant::now();
    load(db, "oslo-sized", generate(OSLO)).await?;
    let big = generate(large);
    let events = big.len() + OSLO.events;
    load(db, "large", big).await?;
    println!(
        "  loaded {events} events ({} + {}) in {:.1} s",
        OSLO.events,
        large.events,
        t.elapsed().as_secs_f64()
    );

    cold_load(db, "large").await?;

    let mut projector = Projector::new(db.clone());
    let start = Instant::now();
    let done = projector.rebuild(|_| {}).await?;
    let ours = done.applied as f64 / start.elapsed().as_secs_f64();
    let rows = read_model_rows(pool).await?;
    let raw = raw_rebuild_rate(pool, done.applied as usize, rows).await?;
    println!("  full rebuild: {} events -> {rows} rows, {ours:.0} events/s; raw read+insert of as many rows {raw:.0} events/s; ratio {:.2} (target >= 0.50)  {}",
        done.applied, ours / raw, verdict(ours / raw >= 0.5));

    quiesce(pool).await?;
    queries_on(db, "oslo-sized", OSLO, Duration::from_millis(5)).await?;
    queries_on(db, "large", large, Duration::from_millis(50)).await?;

    // One unit's long history written at once (an import of its past): each event rewrites the
    // end of the same history, the case that was cubic in the number of events.
    load(db, "one-unit", one_unit_history(ONE_UNIT_RENAMES)).await?;
    let start = Instant::now();
    let done = projector
        .catch_up_to_head(Duration::from_secs(60), |_| {})
        .await?;
    let rate = done.applied as f64 / start.elapsed().as_secs_f64();
    println!(
        "  one unit renamed {ONE_UNIT_RENAMES} times on successive dates, projected: {} events, {rate:.0} events/s; {:.2} of the rebuild's raw rate",
        done.applied,
        rate / raw
    );
    Ok(())
}

/// Renames in the one-unit history of [`run`].
const ONE_UNIT_RENAMES: usize = 3_000;

/// A timeline with one unit renamed `renames` times, a day apart.
fn one_unit_history(renames: usize) -> Vec<TimelineCommand> {
    let base = NaiveDate::from_ymd_opt(2000, 1, 1).expect("date");
    let mut out = vec![
        TimelineCommand {
            context: ctx(0, base),
            action: Action::CreateTimeline(TimelineDef {
                name: "one unit".into(),
                description: String::new(),
            }),
        },
        TimelineCommand {
            context: ctx(1, base),
            action: Action::EstablishUnit(UnitDef {
                unit: unit(0),
                code: None,
                name: "Bydel 0".into(),
                kind: UnitKind::District,
                parent: None,
                areas: Vec::new(),
                attributes: Default::default(),
            }),
        },
    ];
    for i in 1..=renames {
        out.push(TimelineCommand {
            context: ctx(1 + i, base + Days::new(i as u64)),
            action: Action::RenameUnit(Rename {
                unit: unit(0),
                name: Some(format!("Bydel {i}")),
                code: None,
            }),
        });
    }
    out
}

/// Waits (up to a minute) until no autovacuum worker runs on the server, after vacuuming this
/// database's event log: the set-up wrote some 100 000 events here (and the store section as
/// many elsewhere), and autovacuum working through them beside the queries doubled their
/// latency in some runs. The latencies are those of a settled server.
async fn quiesce(pool: &PgPool) -> Result<(), BoxError> {
    sqlx::query("VACUUM (ANALYZE) events").execute(pool).await?;
    let start = Instant::now();
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'",
        )
        .fetch_one(pool)
        .await?;
        if busy == 0 || start.elapsed() > Duration::from_secs(60) {
            println!(
                "  settled after {:.1} s ({busy} autovacuum workers still running)",
                start.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a snapshot buys for a timeline: the aggregate holds the whole history (every as-of
/// question needs it), so a snapshot is as large as the log it replaces. Measures a cold load
/// from the log, the cost of writing one snapshot (one command with `snapshot_every: 1`), and a
/// cold load from that snapshot.
async fn cold_load(db: &Database, stream: &str) -> Result<(), BoxError> {
    let fresh = |every| {
        Store::<TimelineBatch>::new(db.clone(), ()).with_config(StoreConfig {
            snapshot_every: every,
            ..StoreConfig::default()
        })
    };
    let start = Instant::now();
    let version = fresh(0).with_aggregate(stream, |_, v| v).await?;
    let from_log = start.elapsed();
    // One more command through a store that snapshots after every event.
    let store = fresh(1);
    store.with_aggregate(stream, |_, _| ()).await?;
    let unit = UnitId::new("u1").expect("id");
    let start = Instant::now();
    store
        .execute(
            stream,
            Commands {
                commands: vec![TimelineCommand {
                    context: ctx(
                        9_000_000,
                        NaiveDate::from_ymd_opt(2030, 1, 1).expect("date"),
                    ),
                    action: Action::RenameUnit(Rename {
                        unit,
                        name: Some("Renamed for the snapshot".into()),
                        code: None,
                    }),
                }],
                is_batch: false,
                adopted: false,
            },
            CommandMetadata::new(format!("{stream}-snapshot")),
        )
        .await
        .map_err(|e| format!("snapshot command: {e:?}"))?;
    let with_snapshot = start.elapsed();
    let start = Instant::now();
    fresh(0).with_aggregate(stream, |_, _| ()).await?;
    let from_snapshot = start.elapsed();
    let Database::Postgres(pool) = db else {
        return Err("PostgreSQL only".into());
    };
    let bytes: i64 = sqlx::query_scalar(
        "SELECT pg_column_size(state)::bigint FROM snapshots WHERE stream_id = $1",
    )
    .bind(stream)
    .fetch_one(pool)
    .await?;
    println!(
        "  cold load of {stream} ({version} events): from the log {}; one command writing a snapshot ({:.1} MB stored) {}; from the snapshot {}",
        ms(from_log),
        bytes as f64 / 1e6,
        ms(with_snapshot),
        ms(from_snapshot)
    );
    Ok(())
}

/// Only the query latencies, on a database an earlier run loaded and kept (`BENCH_KEEP=1`,
/// then `BENCH_QUERIES_ON=<name>`): for iterating on the queries without reloading.
pub async fn queries_only(db: &Database) -> Result<(), BoxError> {
    println!("\n== projection queries (kept database) ==");
    queries_on(db, "oslo-sized", OSLO, Duration::from_millis(5)).await?;
    queries_on(db, "large", LARGE, Duration::from_millis(50)).await?;
    Ok(())
}
