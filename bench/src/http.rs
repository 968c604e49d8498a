//! Commands through HTTP (issue 5, item 9): how close `POST /timelines/{id}/commands` on the real
//! server comes to PostgreSQL's raw single-row commit rate.
//!
//! The server is the one `omorg serve` runs — [`omorg_api::app`] with bearer-token auth on, and
//! its [`ProjectionRunner`] projecting every accepted command — started in this process on
//! 127.0.0.1 port 0, on a fresh database of its own (the projector reads every stream as a
//! timeline, so it cannot share the store bench's database). N = 1, 2, 8 clients, each with its
//! own keep-alive connection and its own timeline, send single `RenameUnit` commands with unique
//! command ids. The raw side is the same single-row INSERT as the store bench, into a table of
//! the same database, with N connections; the two alternate in rounds ([`crate::paired`]).
//!
//! The *HTTP floor* is measured the same way: a bare axum handler that reads the request body and
//! does the raw side's INSERT, behind the same kind of socket. It is what any HTTP service on
//! this machine pays to turn a request into a commit, so the gap between it and omorg is omorg's
//! own work (auth, parsing, the domain, the events row, tracing), and the gap between it and the
//! raw rate is the network and HTTP itself.

use crate::{paired, report, BoxError, RawWriters, Scratch, RAW_TABLE, WRITERS};
use omorg_api::auth::AuthConfig;
use omorg_api::queries::Queries;
use omorg_api::{AppState, Omorg};
use omorg_projections::ProjectionRunner;
use omorg_store::Database;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The planner token the bench configures and presents (auth is on, as users run the server).
const TOKEN: &str = "bench-planner-token-0123456789";

/// Districts established on every timeline (each client renames the first one).
const DISTRICTS: [(&str, &str, &str); 3] = [
    ("alna", "030112", "Bydel Alna"),
    ("grorud", "030110", "Bydel Grorud"),
    ("stovner", "030111", "Bydel Stovner"),
];

/// Read-your-writes patience of the server's queries: `omorg serve`'s default
/// (`OMORG_SYNC_PATIENCE_MS`).
const SYNC_PATIENCE: Duration = Duration::from_millis(5000);

/// Runs the HTTP section in its own database on the server named by `DATABASE_URL`, dropping
/// the database afterwards whatever happened. `window` is the time per side per measurement.
pub async fn run(window: Duration) -> Result<(), BoxError> {
    let scratch = Scratch::create("bench_http").await?;
    let result = measure_all(&scratch.url, window).await;
    scratch.drop().await?;
    result
}

/// The running in-process server and what it takes to stop it.
struct Server {
    /// The service behind the API, for the in-process measurement.
    app: Omorg,
    base: String,
    db: Database,
    runner: ProjectionRunner,
    queries: Queries,
    projector: tokio::task::JoinHandle<()>,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Builds the server state as `omorg serve` does (cli.rs `serve`): default pool, migrations,
/// one projector caught up before serving, queries with the default patience, tokens.
async fn start(url: &str) -> Result<Server, BoxError> {
    // `omorg serve`'s log subscriber and filter as a service runs it, logging to a journal or a
    // file, not a terminal (its spans and events cost the same here), with the output thrown
    // away. Global from here on, which is why this section runs last.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info,sqlx=warn"))
        .with_ansi(false)
        .with_writer(std::io::sink)
        .try_init();
    let db = Database::connect(url).await?;
    db.migrate().await?;
    let app = Omorg::new(db.clone());
    let auth = AuthConfig::parse(&format!("{TOKEN}:planner:bench"))?;
    // BENCH_GATHER_MS: the projector's gathering (`omorg serve --projector-gather-ms`), for
    // measuring what the projector running beside the commands costs them.
    let gather = std::env::var("BENCH_GATHER_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(omorg_projections::runner::GATHER, Duration::from_millis);
    let (runner, projector) = ProjectionRunner::spawn_gathering(db.clone(), gather);
    runner.sync(Duration::from_secs(30)).await?;
    let queries = Queries::new(db.clone(), runner.clone(), SYNC_PATIENCE);
    let router = omorg_api::app(AppState::with_queries(app.clone(), auth, queries.clone()));
    let listener = omorg_api::listen("127.0.0.1:0").await?;
    let base = format!("http://{}", axum::serve::Listener::local_addr(&listener)?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    Ok(Server {
        app,
        base,
        db,
        runner,
        queries,
        projector,
        stop,
        served,
    })
}

impl Server {
    /// Stops serving, then the projector after its current round, as `omorg serve` does.
    async fn stop(self) -> Result<(), BoxError> {
        let _ = self.stop.send(());
        self.served.await??;
        self.queries.shutdown();
        self.projector.await?;
        self.db.close().await;
        Ok(())
    }
}

/// A client: one keep-alive HTTP/1.1 connection of its own, on which it writes each request and
/// reads the response itself, in the calling task, as load generators such as `wrk` do and as
/// sqlx drives the raw side's connection. Requests on it go one at a time.
///
/// Why not hyper's client: its connection is a separate future fed through a channel, so a task
/// that sends a request wakes itself, and tokio answers every such self-wake by waking a parked
/// worker thread (on a 2-vCPU VM, an inter-processor interrupt per request). Measured with
/// `perf`: that wake was ~6 % of the process's CPU at one client, a cost of the load generator
/// that the raw side does not pay. (A full client such as reqwest, with its pool and its own
/// connection task, cost about 20 % of the rate.)
struct Client {
    conn: tokio::sync::Mutex<Conn>,
    host: String,
}

/// The socket and what has been read from it but not yet consumed.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// The most response header lines the client reads.
const MAX_HEADERS: usize = 32;

impl Client {
    /// Connects to `base` (`http://host:port`), with TCP_NODELAY as any HTTP client sets.
    async fn connect(base: &str) -> Result<Self, BoxError> {
        let host = base.trim_start_matches("http://").to_owned();
        let stream = TcpStream::connect(&host).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            conn: tokio::sync::Mutex::new(Conn {
                stream,
                buf: Vec::with_capacity(4096),
            }),
            host,
        })
    }

    /// POSTs `body` (JSON text) to `path` with the planner token and reads the whole response;
    /// any status but 2xx is an error carrying the response body.
    async fn post(&self, path: &str, body: String) -> Result<(), BoxError> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        let mut conn = self.conn.lock().await;
        conn.stream.write_all(request.as_bytes()).await?;
        let (status, text) = conn.read_response().await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("POST {path}: {status}: {}", String::from_utf8_lossy(&text)).into())
        }
    }
}

impl Conn {
    /// Reads one response: its status and its body (by `Content-Length`, which the server sets
    /// on every response the bench asks for).
    async fn read_response(&mut self) -> Result<(u16, Vec<u8>), BoxError> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head) = response.parse(&self.buf)? {
                let status = response.code.ok_or("a response without a status")?;
                let mut length = None;
                for h in response.headers.iter() {
                    if h.name.eq_ignore_ascii_case("content-length") {
                        length = Some(std::str::from_utf8(h.value)?.trim().parse::<usize>()?);
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        return Err(
                            "a chunked response: the bench client reads Content-Length only".into(),
                        );
                    }
                }
                let length = length.ok_or("a response without Content-Length")?;
                while self.buf.len() < head + length {
                    self.fill().await?;
                }
                let body = self.buf[head..head + length].to_vec();
                self.buf.drain(..head + length);
                return Ok((status, body));
            }
            self.fill().await?;
        }
    }

    /// Reads more of the socket into the buffer; the connection closing is an error.
    async fn fill(&mut self) -> Result<(), BoxError> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err("the server closed the connection".into());
        }
        Ok(())
    }
}

/// The client counts to measure: [`WRITERS`], or those `BENCH_CLIENTS` lists (`1` or `1,8`),
/// for an A/B comparison of one level that need not wait for the others.
fn client_counts() -> Result<Vec<usize>, BoxError> {
    match std::env::var("BENCH_CLIENTS") {
        Err(_) => Ok(WRITERS.to_vec()),
        Ok(list) => list
            .split(',')
            .map(|n| match n.trim().parse::<usize>() {
                Ok(n) if (1..=WRITERS[WRITERS.len() - 1]).contains(&n) => Ok(n),
                _ => Err(format!(
                    "BENCH_CLIENTS: {n:?} is not a client count from 1 to {}",
                    WRITERS[WRITERS.len() - 1]
                )
                .into()),
            })
            .collect(),
    }
}

/// The decision every bench command carries.
fn decision() -> serde_json::Value {
    json!({"case_number": "25/17", "body": "Bystyret", "decision_date": "2025-06-18",
           "title": "Navneendring"})
}

/// Creates timeline `id` with a small organisation: a municipality, its districts, a service
/// the districts are responsible for.
async fn create_timeline(client: &Client, id: &str) -> Result<(), BoxError> {
    let created = json!({"id": id, "name": "Oslo kommune (bench)", "effective_from": "2004-01-01",
        "decision": {"case_number": "04/1", "body": "Bystyret", "decision_date": "2003-06-18",
                     "title": "Bydelsreformen"}});
    client.post("/timelines", created.to_string()).await?;
    // Command ids are unique across timelines: prefix them with the timeline's.
    let context = |command_id: &str| {
        json!({"command_id": format!("{id}-{command_id}"), "effective_from": "2004-01-01", "actor": "bench",
               "decision": {"case_number": "04/1", "body": "Bystyret",
                            "decision_date": "2003-06-18", "title": "Bydelsreformen"}})
    };
    let with_action = |command_id: &str, action: serde_json::Value| {
        let mut c = context(command_id);
        c["action"] = action;
        c
    };
    let mut commands = vec![with_action(
        "est-oslo",
        json!({"type": "EstablishUnit", "unit": "oslo", "code": "0301", "name": "Oslo kommune",
               "kind": "municipality"}),
    )];
    for (unit, code, name) in DISTRICTS {
        commands.push(with_action(
            &format!("est-{unit}"),
            json!({"type": "EstablishUnit", "unit": unit, "code": code, "name": name,
                   "kind": "district", "parent": "oslo",
                   "areas": [{"code": code, "name": name}]}),
        ));
    }
    commands.push(with_action(
        "reg-home-care",
        json!({"type": "RegisterService", "service": "home-care", "name": "Hjemmetjenester",
               "category": "home care"}),
    ));
    for (unit, code, _) in DISTRICTS {
        commands.push(with_action(
            &format!("assign-home-care-{unit}"),
            json!({"type": "AssignResponsibility", "service": "home-care", "unit": unit,
                   "areas": [code]}),
        ));
    }
    client
        .post(
            &format!("/timelines/{id}/batch"),
            json!({ "commands": commands }).to_string(),
        )
        .await
}

/// One client's next command: renames its timeline's first district, alternating between two
/// names (a rename to the current name is refused as changing nothing), under a fresh command
/// id.
fn rename_body(timeline: &str, seq: u64, decision: &str) -> String {
    let (unit, _, name) = DISTRICTS[0];
    // The first renames away from the name the district was created with.
    let name = if seq % 2 == 0 {
        format!("{name} (nytt navn)")
    } else {
        name.to_owned()
    };
    format!(
        r#"{{"command_id":"{timeline}-rename-{seq}","effective_from":"2026-01-01","actor":"bench","decision":{decision},"rationale":"benchmark","action":{{"type":"RenameUnit","unit":"{unit}","name":"{name}"}}}}"#
    )
}

async fn measure_all(url: &str, window: Duration) -> Result<(), BoxError> {
    let server = start(url).await?;
    let result = measure_with(&server, url, window).await;
    let stopped = server.stop().await;
    result.and(stopped)
}

/// The HTTP floor: a bare axum server whose one route, `POST /floor/{writer}`, reads the body and
/// runs the raw single-row INSERT on that writer's connection. Served on port 0 until dropped.
struct Floor {
    base: String,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Floor {
    /// Starts the floor server with its own `writers` (the raw side's connections, not shared)
    /// and `rows` (the ceiling's connections).
    async fn start(writers: &RawWriters, rows: &EventsRows) -> Result<Self, BoxError> {
        use axum::extract::Path;
        use axum::http::StatusCode;
        let insert = writers.single();
        let floor = move |Path(w): Path<usize>, body: axum::body::Bytes| {
            let insert = insert.clone();
            async move {
                // The body is read, as any command's is, but not parsed: parsing is omorg's work.
                let _ = body.len();
                match insert(w).await {
                    Ok(_) => (StatusCode::CREATED, r#"{"written":1}"#.to_owned()),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            }
        };
        let rows = rows.clone();
        let ceiling = move |Path(w): Path<usize>, body: axum::body::Bytes| {
            let rows = rows.clone();
            async move {
                let _ = body.len();
                match rows.append(w).await {
                    Ok(()) => (StatusCode::CREATED, r#"{"written":1}"#.to_owned()),
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                }
            }
        };
        let router = axum::Router::new()
            .route("/floor/{w}", axum::routing::post(floor))
            .route("/ceiling/{w}", axum::routing::post(ceiling));
        // The same listener as omorg's (TCP_NODELAY on every connection).
        let listener = omorg_api::listen("127.0.0.1:0").await?;
        let base = format!("http://{}", axum::serve::Listener::local_addr(&listener)?);
        let served = tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Self { base, served })
    }
}

/// The ceiling's writes: one row per request in a table defined exactly as omorg's `events`
/// (`LIKE events INCLUDING ALL`: its columns, defaults, identity, checks and three indexes), with
/// the sizes omorg writes for a rename, by the statement shape the store uses (one autocommit
/// INSERT returning the checkpoint). No omorg code runs: it is the least any design that keeps
/// this row and this HTTP stack can cost, so omorg's ratio cannot exceed it.
#[derive(Clone)]
struct EventsRows {
    conns: Arc<Vec<tokio::sync::Mutex<sqlx::PgConnection>>>,
    /// The next stream version of each writer's stream.
    versions: Arc<Vec<AtomicU64>>,
    payload: Arc<str>,
    metadata: Arc<str>,
}

/// The ceiling's table (see [`EventsRows`]); the migrated `events` table must exist.
const EVENTS_SHAPE_TABLE: &str = "CREATE TABLE bench_events_shape (LIKE events INCLUDING ALL)";

const EVENTS_SHAPE_INSERT: &str = "INSERT INTO bench_events_shape (stream_id, stream_version, \
    event_type, event_version, payload, metadata, recorded_at, prev_hash, hash, command_id, \
    command_events) VALUES ($1, $2, 'UnitRenamed', '1', $3::jsonb, $4::jsonb, $5, $6, $7, $8, 1) \
    RETURNING tx_id::text::bigint, position, stream_version";

impl EventsRows {
    /// Opens `n` connections to `url`; the rows carry a rename's payload and metadata as the
    /// service writes them (the same decision, actor and rationale as the bench's commands).
    async fn connect(url: &str, n: usize) -> Result<Self, BoxError> {
        use sqlx::Connection;
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            conns.push(tokio::sync::Mutex::new(
                sqlx::PgConnection::connect(url).await?,
            ));
        }
        let command_id = "ceiling-0-rename-000000";
        let payload = json!({"actor": "bench", "change": {"name": "Bydel Alna", "type": "UnitRenamed",
            "unit": "alna"}, "decision": decision(), "rationale": "benchmark",
            "command_id": command_id, "effective_from": "2026-01-01"});
        let metadata = json!({"actor": "bench", "decision": decision(), "command_id": command_id,
            "correlation_id": null});
        Ok(Self {
            conns: Arc::new(conns),
            versions: Arc::new((0..n).map(|_| AtomicU64::new(1)).collect()),
            payload: payload.to_string().into(),
            metadata: metadata.to_string().into(),
        })
    }

    /// Writer `w` appends the next version of its stream under a fresh command id.
    async fn append(&self, w: usize) -> Result<(), BoxError> {
        let version = self.versions[w].fetch_add(1, Ordering::Relaxed);
        let command_id = format!("ceiling-{w}-{version}");
        let mut conn = self.conns[w].lock().await;
        sqlx::query(EVENTS_SHAPE_INSERT)
            .bind(format!("ceiling-{w}"))
            .bind(i64::try_from(version)?)
            .bind(&*self.payload)
            .bind(&*self.metadata)
            .bind(chrono::Utc::now())
            .bind(crate::HASH)
            .bind(crate::HASH)
            .bind(command_id)
            .fetch_one(&mut *conn)
            .await?;
        Ok(())
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.served.abort();
    }
}

async fn measure_with(server: &Server, url: &str, window: Duration) -> Result<(), BoxError> {
    // The raw side: a table in the same database, one dedicated connection per writer, as in
    // the store section.
    let Database::Postgres(server_pool) = &server.db else {
        return Err("the bench needs PostgreSQL".into());
    };
    sqlx::raw_sql(RAW_TABLE).execute(server_pool).await?;
    let payload = serde_json::to_string(&crate::BenchEvent::Recorded {
        text: crate::TEXT.to_owned(),
    })?;
    let most = WRITERS[WRITERS.len() - 1];
    let raw = RawWriters::connect(url, most, &payload).await?;
    sqlx::raw_sql(EVENTS_SHAPE_TABLE)
        .execute(server_pool)
        .await?;
    let floor = Floor::start(
        &RawWriters::connect(url, most, &payload).await?,
        &EventsRows::connect(url, most).await?,
    )
    .await?;
    println!(
        "\ncommands through HTTP: POST /timelines/{{id}}/commands (RenameUnit), bearer auth, \
         projector running; one client per timeline, keep-alive"
    );
    for n in client_counts()? {
        let (raw_rate, ours, ratio, lag) = measure_http(server, &raw, n, window).await?;
        let label = format!("HTTP, {n} client(s), own timelines (projected +{lag} ms)");
        report_paired(n, raw_rate, &label, ours, "cmds/s", ratio);
        let (raw_rate, direct, ratio) = measure_direct(server, &raw, n, window).await?;
        let label = format!("  same commands, in process (no HTTP), {n} caller(s)");
        report_paired(n, raw_rate, &label, direct, "cmds/s", ratio);
        let (raw_rate, bare, ratio) = measure_floor(&floor, "floor", &raw, n, window).await?;
        let label = format!("  HTTP floor: bare axum handler + raw INSERT, {n} client(s)");
        report_paired(n, raw_rate, &label, bare, "req/s", ratio);
        let (raw_rate, bare, ratio) = measure_floor(&floor, "ceiling", &raw, n, window).await?;
        let label = format!("  HTTP ceiling: bare axum handler + an events row, {n} client(s)");
        report_paired(n, raw_rate, &label, bare, "req/s", ratio);
    }
    Ok(())
}

/// Prints one paired measurement: the raw rate of its rounds, then the measured line with its
/// ratio.
fn report_paired(n: usize, raw: f64, label: &str, rate: f64, unit: &str, ratio: f64) {
    report(
        &format!("raw INSERT commit, {n} connection(s)"),
        raw,
        "rows/s",
        None,
    );
    report(label, rate, unit, Some(ratio));
}

/// Commands through omorg's HTTP API from `n` clients, paired with `n` raw writers. Returns the
/// raw rate, the command rate, their ratio ([`paired`]) and how long the projector then took to
/// catch up (ms).
async fn measure_http(
    server: &Server,
    raw: &RawWriters,
    n: usize,
    window: Duration,
) -> Result<(f64, f64, f64, u128), BoxError> {
    let mut clients = Vec::with_capacity(n);
    let (mut ids, mut urls) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for w in 0..n {
        let client = Client::connect(&server.base).await?;
        let id = format!("bench-{n}-{w}");
        create_timeline(&client, &id).await?;
        urls.push(format!("/timelines/{id}/commands"));
        ids.push(id);
        clients.push(client);
    }
    let seqs: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let (clients, urls, ids) = (Arc::new(clients), Arc::new(urls), Arc::new(ids));
    let decision = decision().to_string();
    let seqs_ = seqs.clone();
    let http_op = move |w: usize| {
        let (clients, urls) = (clients.clone(), urls.clone());
        let body = rename_body(&ids[w], seqs[w].fetch_add(1, Ordering::Relaxed), &decision);
        async move { clients[w].post(&urls[w], body).await.map(|()| 1) }
    };
    // Warm each client's connection and the server's aggregate cache, as in production.
    for w in 0..n {
        http_op.clone()(w).await?;
    }
    let (raw_rate, ours, ratio) = paired(window, n, raw.single(), http_op).await?;
    let sent: u64 = seqs_.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    check_written(server, &format!("bench-{n}-%"), sent).await?;
    // How far the projector is behind when the clients stop.
    let start = Instant::now();
    server.runner.sync(Duration::from_secs(60)).await?;
    Ok((raw_rate, ours, ratio, start.elapsed().as_millis()))
}

/// The same commands from `n` callers of [`Omorg::execute`] in this process, each on its own
/// timeline: the body parsed as the API parses it, then the service, store and database as
/// behind the API, with no HTTP and no middleware. Returns the raw rate, the rate, the ratio.
async fn measure_direct(
    server: &Server,
    raw: &RawWriters,
    n: usize,
    window: Duration,
) -> Result<(f64, f64, f64), BoxError> {
    let client = Client::connect(&server.base).await?;
    let mut ids = Vec::with_capacity(n);
    for w in 0..n {
        let id = format!("direct-{n}-{w}");
        create_timeline(&client, &id).await?;
        ids.push(id);
    }
    let seqs: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let ids = Arc::new(ids);
    let decision = decision().to_string();
    let (app, seqs_) = (server.app.clone(), seqs.clone());
    let direct_op = move |w: usize| {
        let (app, ids) = (app.clone(), ids.clone());
        let body = rename_body(&ids[w], seqs[w].fetch_add(1, Ordering::Relaxed), &decision);
        async move {
            let command = omorg_api::error::read_command(body.as_bytes())?;
            app.execute(&ids[w], vec![command], false, "bench").await?;
            Ok(1)
        }
    };
    for w in 0..n {
        direct_op.clone()(w).await?;
    }
    let measured = paired(window, n, raw.single(), direct_op).await?;
    let sent: u64 = seqs_.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    check_written(server, &format!("direct-{n}-%"), sent).await?;
    server.runner.sync(Duration::from_secs(60)).await?;
    Ok(measured)
}

/// The [`Floor`]'s `route` (`floor`: the raw INSERT; `ceiling`: an events row) from `n`
/// clients sending the same bodies, paired with `n` raw writers.
async fn measure_floor(
    floor: &Floor,
    route: &'static str,
    raw: &RawWriters,
    n: usize,
    window: Duration,
) -> Result<(f64, f64, f64), BoxError> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(Client::connect(&floor.base).await?);
    }
    let clients = Arc::new(clients);
    let decision = decision().to_string();
    let floor_op = move |w: usize| {
        let clients = clients.clone();
        let body = rename_body(route, w as u64, &decision);
        async move {
            clients[w]
                .post(&format!("/{route}/{w}"), body)
                .await
                .map(|()| 1)
        }
    };
    for w in 0..n {
        floor_op.clone()(w).await?;
    }
    paired(window, n, raw.single(), floor_op).await
}

/// Fails unless the streams matching `pattern` hold exactly `sent` renames: every 2xx (or Ok)
/// must have written its event, since a no-op answer would flatter the rate.
async fn check_written(server: &Server, pattern: &str, sent: u64) -> Result<(), BoxError> {
    let Database::Postgres(pool) = &server.db else {
        return Err("the bench needs PostgreSQL".into());
    };
    let written: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE stream_id LIKE $1 AND event_type = 'UnitRenamed'",
    )
    .bind(pattern)
    .fetch_one(pool)
    .await?;
    if u64::try_from(written).ok() != Some(sent) {
        return Err(format!("{pattern}: {sent} renames answered, {written} events written").into());
    }
    Ok(())
}
