//! The `omorg` subcommands. Each returns a [`CliError`] rather than panicking; `main` prints it
//! on standard error and exits non-zero.

use crate::auth::AuthConfig;
use crate::config::{
    AdoptArgs, ChartFormat, Cli, Command, DecisionsArgs, ExportArgs, ImportArgs, LogFormat,
    OrgChartArgs, ReplayArgs, ReplayFormat, RestoreArgs, ServeArgs, TableFormat, VerifyArgs,
};
use crate::error::ApiError;
use crate::queries::{AsOf, OrgChart, Queries, UnitNode};
use crate::service::{AdoptRequest, CreateTimelineRequest, Omorg};
use crate::state::AppState;
use omorg_projections::{ProjectionError, ProjectionRunner, Projector};
use omorg_store::Database;
use std::io::{IsTerminal, Write};
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The invocation or configuration is wrong. Exit code 2.
    #[error("{0}")]
    Usage(String),
    /// An input file is unreadable or malformed. Exit code 1.
    #[error("{0}")]
    Input(String),
    /// The application refused or failed. Exit code 1.
    #[error("{}", describe(.0))]
    Api(#[from] ApiError),
    /// The store failed (connecting, migrating). Exit code 1.
    #[error("{}", chain(.0))]
    Store(#[from] omorg_store::StoreError),
    /// Reading or writing a file or socket failed. Exit code 1.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The hash chain of a timeline is broken. Exit code 3.
    #[error("{0}")]
    Broken(String),
    /// Projecting the log failed (rebuild, catching up). Exit code 1.
    #[error("{}", chain(.0))]
    Projection(#[from] ProjectionError),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => 2,
            Self::Broken(_) => 3,
            _ => 1,
        }
    }
}

/// An error and its causes on one line (the CLI user is the operator: causes are shown).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        // Some errors (sqlx's) repeat their source in their own message: say it once.
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

fn describe(e: &ApiError) -> String {
    let p = e.problem();
    let mut s = match e {
        ApiError::Internal(_) | ApiError::Unavailable(_) => chain(e),
        _ => p.detail.clone(),
    };
    if let Some(rule) = p.rule {
        s.push_str(&format!(" [rule: {rule}]"));
    }
    if let Some(field) = p.field {
        s.push_str(&format!(" [field: {field}]"));
    }
    s
}

/// An argument the API would refuse with 422, as a usage error naming `option` (the API's
/// field names, e.g. `id`, mean nothing on the command line).
pub(crate) fn invalid_argument(option: &str, e: ApiError) -> CliError {
    match e {
        ApiError::Invalid { reason, .. } => CliError::Usage(format!("{option}: {reason}")),
        other => other.into(),
    }
}

/// Checks a `--timeline` value as the API checks a timeline id, so that an invalid one is
/// reported as such rather than as a timeline not found.
fn check_timeline(id: &str) -> Result<(), CliError> {
    crate::service::timeline_id(id)
        .map(drop)
        .map_err(|e| invalid_argument(&format!("--timeline {id:?}"), e))
}

/// Sets up `tracing` logs on standard error: `RUST_LOG` filters (default `default`).
pub fn init_logging(format: LogFormat, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // Colour codes only on a terminal: in a file, a pipe or a journal they are noise (and
    // formatting them costs every span).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // `try_init`: a second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let default_log = if matches!(cli.command, Command::Serve(_)) {
        "info,sqlx=warn"
    } else {
        // sqlx warns of slow statements with their whole SQL (a large import's is thousands
        // of lines): noise for a one-off command, whose own errors are reported anyway.
        "warn,sqlx=error"
    };
    init_logging(cli.log_format, default_log);
    // Commands that only read the event log never change the database: no migration, no new
    // file, and a role that may only SELECT is enough (an auditor's).
    let reads_only = matches!(cli.command, Command::Export(_) | Command::Verify(_));
    // An input file is read and checked before the database is opened: a file that cannot be
    // imported or restored (a mistyped path, bad JSON, the wrong encoding) must not leave a new,
    // empty database behind.
    let mut cli = cli;
    let (mut import_file, mut export_file) = (None, None);
    match &mut cli.command {
        Command::Import(args) => import_file = Some(read_import(args)?),
        Command::Restore(args) => export_file = Some(read_export(args)?),
        _ => {}
    }
    let db = connect(
        cli.database_url.expose(),
        &cli.database_url.redacted(),
        reads_only,
    )
    .await?;
    let app = Omorg::new(db.clone());
    // Commands that write leave the read models current before they return, as a server
    // would: plain-SQL readers (reporting) otherwise saw none of it until something projected.
    let writes = matches!(
        cli.command,
        Command::Import(_) | Command::Restore(_) | Command::Adopt(_) | Command::Demo
    );
    let result = match cli.command {
        Command::Serve(args) => serve(app.clone(), args).await,
        Command::Migrate => {
            eprintln!("migrated {}", cli.database_url);
            Ok(())
        }
        // Both were read above (the `match` before `connect`), so `take` finds them.
        Command::Import(args) => match import_file.take() {
            Some(parsed) => import(&app, args, parsed).await,
            None => Err(CliError::Input("the import file was not read".into())),
        },
        Command::Export(args) => export(&app, args).await,
        Command::Restore(args) => match export_file.take() {
            Some(all) => restore(&app, args, all).await,
            None => Err(CliError::Input("the export file was not read".into())),
        },
        Command::OrgChart(args) => org_chart(&app, args).await,
        Command::Decisions(args) => decisions(&app, args).await,
        Command::Adopt(args) => adopt(&app, args).await,
        Command::Verify(args) => verify(&app, args).await,
        Command::Replay(args) => replay(&app, args).await,
        Command::Demo => {
            let report = crate::demo::load(&app).await?;
            eprintln!("{report}");
            Ok(())
        }
        Command::Rebuild => rebuild(app.db()).await,
    };
    let result = match result {
        Ok(()) if writes => caught_up(&app).await.map(drop),
        other => other,
    };
    db.close().await;
    result
}

/// Connects and migrates, or, for a command that only reads, connects read-only and checks
/// that the schema is current.
async fn connect(url: &str, shown: &str, read_only: bool) -> Result<Database, CliError> {
    let opened = if read_only {
        Database::connect_read_only(url).await
    } else {
        Database::connect(url).await
    };
    let db = opened
        .map_err(|e| CliError::Usage(format!("cannot open database {shown}: {}", chain(&e))))?;
    if read_only {
        db.check_schema().await?;
    } else {
        db.migrate().await?;
    }
    Ok(db)
}

/// Checks the auth configuration against the listen address.
pub fn auth_for(args: &ServeArgs) -> Result<AuthConfig, CliError> {
    match (&args.tokens, args.no_auth) {
        (Some(_), true) => Err(CliError::Usage(
            "give either OMORG_TOKENS/--tokens or --no-auth, not both".into(),
        )),
        (Some(tokens), false) => Ok(tokens.clone()),
        (None, true) if args.listen.is_loopback() => Ok(AuthConfig::disabled()),
        (None, true) => Err(CliError::Usage(format!(
            "--no-auth is only allowed on a loopback address, not {}; configure OMORG_TOKENS",
            args.listen
        ))),
        (None, false) => Err(CliError::Usage(
            "no tokens configured: set OMORG_TOKENS=\"token:role,…\" (roles planner, auditor, \
             reader, admin), or use --no-auth for a local trial on 127.0.0.1"
                .into(),
        )),
    }
}

async fn serve(app: Omorg, args: ServeArgs) -> Result<(), CliError> {
    let auth = auth_for(&args)?;
    if args.demo {
        match crate::demo::load(&app).await {
            Ok(report) => tracing::info!(%report, "demo data loaded"),
            // The database holds the demo as an earlier release loaded it: serve that, and say
            // how to get the current one (`omorg demo` fails with the same message).
            Err(
                e @ ApiError::Conflict {
                    rule: "command-id-reused" | "timeline-already-started",
                    ..
                },
            ) => {
                tracing::warn!(error = %e, "serving the demo data already in the database");
            }
            Err(e) => return Err(e.into()),
        }
    }
    if auth.is_disabled() {
        tracing::warn!("authentication is OFF (--no-auth): every caller is admin");
    }
    let listener = crate::listen(args.listen.addrs())
        .await
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.listen)))?;
    // One projector per server: it catches up now, then after every accepted command (the
    // handlers nudge it) and every poll interval (events written by other instances).
    let (runner, projector) = ProjectionRunner::spawn_gathering(
        app.db().clone(),
        Duration::from_millis(args.projector_gather_ms),
    );
    // Serving starts at once, also while the projector replays a long log (after an upgrade
    // that empties the read models, say): `/healthz` answers, `/readyz` says 503
    // `projection-catching-up` until the events committed before the start are projected, and
    // the runner logs when they are.
    let queries = Queries::new(
        app.db().clone(),
        runner,
        Duration::from_millis(args.sync_patience_ms),
    );
    // The address bound too: a host name may resolve to several.
    let bound = axum::serve::Listener::local_addr(&listener).ok();
    tracing::info!(listen = %args.listen, ?bound, backend = ?app.db().backend(), "omorg serving");
    let served = axum::serve(
        listener,
        crate::app(AppState::with_queries(app, auth, queries.clone())),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    // Stop the projector after its current round (a round is one transaction per batch, so
    // stopping never leaves half a batch), then wait for it.
    queries.shutdown();
    if let Err(e) = projector.await {
        tracing::error!(error = %e, "projector task failed");
    }
    served?;
    tracing::info!("omorg stopped");
    Ok(())
}

/// Resolves on ctrl-c or SIGTERM: in-flight requests finish, new connections are refused.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// An import file read and parsed before any database is opened (a file that cannot be
/// imported must not leave a new, empty database behind).
fn read_import(args: &mut ImportArgs) -> Result<crate::import::ImportFile, CliError> {
    check_timeline(&args.timeline)?;
    args.actor = crate::config::actor(args.actor_given.as_deref()).map_err(CliError::Usage)?;
    let bytes = std::fs::read(&args.file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", args.file.display())))?;
    let text = crate::import::decode(&args.file, bytes)?;
    let parsed = crate::import::parse_file(&args.file, &text, args)?;
    if parsed.commands.is_empty() {
        return Err(CliError::Input(format!(
            "{}: holds no commands: nothing to import",
            args.file.display()
        )));
    }
    Ok(parsed)
}

async fn import(
    app: &Omorg,
    args: ImportArgs,
    parsed: crate::import::ImportFile,
) -> Result<(), CliError> {
    let actor = args.actor.clone();
    let crate::import::ImportFile { commands, origins } = parsed;
    let n = commands.len();
    let file = args.file.display();
    let exists = match app.summary(&args.timeline).await {
        Ok(summary) => {
            // Said, not silently skipped: the user may have meant a new timeline.
            if let Some(name) = &args.create {
                eprintln!(
                    "timeline {} exists (named {:?}): --create {name:?} creates nothing, the \
                     file goes into it",
                    args.timeline, summary.name
                );
            }
            true
        }
        Err(ApiError::NotFound { .. }) => false,
        Err(e) => return Err(e.into()),
    };
    let creating = args.create.is_some() && !exists;
    // Rows already in the timeline in substance (same id, change, date and decision) are left
    // out, whoever imported them and whatever line they were on then: a file edited and
    // imported again, or imported by a colleague first, applies only what is new. A row whose
    // id is recorded for something else still goes in, and is refused naming its line.
    let (commands, origins) = if exists {
        let timeline = app.load(&args.timeline).await?;
        let (mut kept, mut kept_origins) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for (command, origin) in commands.into_iter().zip(origins) {
            // A CSV row's id is omorg's derivation (which has changed for responsibilities split
            // over rows, and rows imported under the old ids are the same decisions), so a row
            // is found by what it says; a command list's ids are the author's, so a command by
            // its id.
            let any_id = matches!(origin, crate::import::Origin::Line(_));
            if !timeline.applied_in_substance(&command, any_id) {
                kept.push(command);
                kept_origins.push(origin);
            }
        }
        if kept.is_empty() {
            eprintln!(
                "{file} was already imported into {} (duplicate): nothing written, the \
                 timeline stays at version {} (all {n} commands were applied before)",
                args.timeline,
                timeline.version()
            );
            return Ok(());
        }
        (kept, kept_origins)
    } else {
        (commands, origins)
    };
    let result = match &args.create {
        // Created in the same batch as the file's commands: a refused import creates nothing.
        Some(name) if !exists => {
            let id = crate::service::timeline_id(&args.timeline)?;
            let create = CreateTimelineRequest {
                id: Some(id),
                name: name.clone(),
                description: String::new(),
                command_id: None,
                // The timeline begins where the file's history does, not on the day of the
                // import: a replay or an org chart then shows no creation after its changes.
                effective_from: commands.iter().map(|c| c.context.effective_from).min(),
                // The decision the file's history begins with (a CSV's is the one given on
                // the command line), not a placeholder.
                decision: commands
                    .iter()
                    .min_by_key(|c| c.context.effective_from)
                    .map(|c| c.context.decision.clone()),
                rationale: format!("created by omorg import of {}", args.file.display()),
            };
            app.create_with(create, commands, &actor).await
        }
        _ => app.execute(&args.timeline, commands, true, &actor).await,
    }
    .map_err(|e| placed(e, &args.file, &origins))?;
    if result.duplicate {
        eprintln!(
            "{file} was already imported into {} (duplicate): nothing written, the timeline \
             stays at version {}",
            args.timeline, result.version
        );
    } else {
        // One event per command; a command of the file applied before (by an earlier import
        // of an overlapping file) writes none. The creation is one more.
        let new = result.events.len() - usize::from(creating);
        if creating {
            eprintln!("created timeline {}", args.timeline);
        }
        let earlier = match n.saturating_sub(new) {
            0 => String::new(),
            1 => " (1 command was already applied)".to_owned(),
            k => format!(" ({k} commands were already applied)"),
        };
        eprintln!(
            "imported {} from {file} into {}: {}{earlier}, now at version {}",
            counted(n, "command"),
            args.timeline,
            counted(new, "new event"),
            result.version
        );
    }
    Ok(())
}

/// `e` without its batch index (nor the `commands[i].` it puts before a field), for a
/// message that says where in its own terms.
fn without_index(e: ApiError) -> ApiError {
    match e {
        ApiError::Refused { source, .. } => ApiError::Refused {
            source,
            index: None,
        },
        ApiError::Invalid {
            field,
            reason,
            index,
        } => ApiError::Invalid {
            field: ApiError::field_in_command(field, index),
            reason,
            index: None,
        },
        other => other,
    }
}

/// A refusal of one command of an import, placed in its file: `FILE: line 2: …` for a CSV
/// row, `FILE: command 0: …` for an entry of a command list.
fn placed(e: ApiError, file: &std::path::Path, origins: &[crate::import::Origin]) -> CliError {
    let Some(origin) = e.problem().index.and_then(|i| origins.get(i)) else {
        return e.into();
    };
    // Without the index: the origin says where, in the file's own terms.
    let e = without_index(e);
    // A CSV row's new area without a name: said in the sheet's terms.
    let hint = match (&e, origin) {
        (ApiError::Invalid { field, .. }, crate::import::Origin::Line(_))
            if field.starts_with("action.areas[") && field.ends_with("].name") =>
        {
            " (column areas: write a new area as code=Name, e.g. 030101=Gamle Oslo)"
        }
        _ => "",
    };
    CliError::Input(format!(
        "{}: {origin}: {}{hint}",
        file.display(),
        describe(&e)
    ))
}

/// `omorg adopt`: what `POST /timelines/{id}/adopt` does, reported on standard output.
async fn adopt(app: &Omorg, args: AdoptArgs) -> Result<(), CliError> {
    check_timeline(&args.timeline)?;
    let actor = crate::config::actor(args.actor.as_deref()).map_err(CliError::Usage)?;
    let scenario = crate::service::timeline_id(&args.scenario)
        .map_err(|e| invalid_argument(&format!("--scenario {:?}", args.scenario), e))?;
    let command_id = args
        .command_id
        .as_deref()
        .map(|c| {
            omorg_domain::CommandId::new(c)
                .map_err(|e| CliError::Usage(format!("--command-id {c:?}: {e}")))
        })
        .transpose()?;
    crate::service::check_date_range("--decision-date", args.decision_date)
        .map_err(|e| invalid_argument("--decision-date", e))?;
    let request = AdoptRequest {
        scenario,
        decision: omorg_domain::DecisionRef {
            case_number: args.case_number,
            body: args.body,
            decision_date: args.decision_date,
            title: args.title,
            link: args.link,
        },
        command_id,
        rationale: args.rationale,
    };
    let result = match app.adopt(&args.timeline, request, &actor).await {
        Ok(result) => result,
        Err(e) => {
            // The refusal's index counts the scenario's own changes, records of earlier
            // adoptions aside: name the change by its version in the scenario.
            let versions: Vec<u64> = app
                .load(&args.scenario)
                .await
                .map(|t| {
                    t.records()
                        .iter()
                        .filter(|r| {
                            r.version > 0
                                && !matches!(
                                    r.event.change,
                                    omorg_domain::Change::TimelineForked(_)
                                        | omorg_domain::Change::TimelineCreated(_)
                                        | omorg_domain::Change::ScenarioAdopted(_)
                                )
                        })
                        .map(|r| r.version)
                        .collect()
                })
                .unwrap_or_default();
            return Err(adoption_refused(e, &args.scenario, &versions));
        }
    };
    let mut out = std::io::stdout().lock();
    if result.duplicate {
        writeln!(
            out,
            "scenario {} was already adopted into {} (duplicate): nothing written, the timeline \
             stays at version {}",
            args.scenario, result.timeline, result.version
        )?;
    } else {
        writeln!(
            out,
            "adopted scenario {} into {}: {}, now at version {}",
            args.scenario,
            result.timeline,
            counted(result.events.len(), "new event"),
            result.version
        )?;
        for e in &result.events {
            writeln!(out, "  v{} {} ({})", e.version, e.event_type, e.command_id)?;
        }
    }
    Ok(())
}

/// An adoption's refusal in the command line's terms: an invalid part of the adopting decision
/// names its option (a usage error), and a change of the scenario that no longer fits is named
/// by its version in the scenario rather than by its index in the adopted batch.
fn adoption_refused(e: ApiError, scenario: &str, versions: &[u64]) -> CliError {
    if let ApiError::Invalid { field, reason, .. } = &e {
        let option = match field.as_str() {
            "decision.case_number" => Some("--case-number"),
            "decision.body" => Some("--body"),
            "decision.title" => Some("--title"),
            "decision.link" => Some("--link"),
            "actor" => Some("--actor"),
            "command_id" => Some("--command-id"),
            _ => None,
        };
        if let Some(option) = option {
            return CliError::Usage(format!("{option}: {reason}"));
        }
    }
    let Some(index) = e.problem().index else {
        return e.into();
    };
    let e = without_index(e);
    // The scenario's own changes start at version 2 (1 is the fork).
    let version = versions.get(index).copied().unwrap_or(index as u64 + 2);
    CliError::Input(format!(
        "change {version} of scenario {scenario}: {}",
        describe(&e)
    ))
}

async fn export(app: &Omorg, args: ExportArgs) -> Result<(), CliError> {
    let events = match &args.timeline {
        Some(timeline) => {
            check_timeline(timeline)?;
            let events = app
                .store
                .load_stream(timeline)
                .await
                .map_err(ApiError::from)?;
            if events.is_empty() {
                return Err(ApiError::timeline_not_found(timeline).into());
            }
            events.into_iter().map(|e| e.record).collect()
        }
        None => all_events(app.db()).await?,
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| CliError::Input(format!("cannot create {}: {e}", path.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    for e in &events {
        let line = serde_json::to_string(e).map_err(ApiError::internal)?;
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    // An export copies the log as it is, broken or not; but a broken chain is said now, not
    // found out when `restore` refuses the file.
    let mut streams: Vec<&str> = events.iter().map(|e| e.stream_id.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    for stream in streams {
        if let Some(b) = app.db().verify(stream).await?.first_break {
            eprintln!(
                "warning: {stream}: the chain is broken at version {}: {}; the file holds the \
                 log as it is, and `omorg restore` will refuse that timeline (run `omorg verify`)",
                b.version,
                describe_break(&b.kind, b.version, None)
            );
        }
    }
    Ok(())
}

/// Every event of the log, in the global order (a scenario's fork after its parent's events up
/// to it, which is the order a restore needs).
async fn all_events(db: &Database) -> Result<Vec<omorg_store::RecordedEvent>, CliError> {
    let mut all = Vec::new();
    let mut after = omorg_store::Checkpoint::START;
    loop {
        let page = db.read_all_after(&after, 1000).await?;
        let Some(last) = page.last() else {
            return Ok(all);
        };
        after = last.checkpoint;
        all.extend(page);
    }
}

/// `omorg restore FILE`: every event of an export, checked and written in the file's order in
/// one transaction by the store ([`Database::restore`]). A scenario needs the timeline it was
/// forked from here or earlier in the file: its decision log starts with that timeline's.
/// An export read and checked before any database is opened (a file that cannot be restored
/// must not leave a new, empty database behind): the events in the file's order, each what
/// omorg writes.
fn read_export(args: &RestoreArgs) -> Result<Vec<omorg_store::RecordedEvent>, CliError> {
    let shown = args.file.display().to_string();
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| CliError::Input(format!("cannot read {shown}: {e}")))?;
    // The events in the file's order, which the restore keeps.
    let mut all: Vec<omorg_store::RecordedEvent> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        all.push(serde_json::from_str(line).map_err(|e| {
            CliError::Input(format!(
                "{shown}: line {}: not an event as `omorg export` writes it: {e}",
                i + 1
            ))
        })?);
    }
    if all.is_empty() {
        return Err(CliError::Input(format!("{shown}: holds no events")));
    }
    written_by_omorg(&all, &crate::service::timeline_upcasters())
        .map_err(|e| CliError::Input(format!("{shown}: {e}; nothing was written")))?;
    Ok(all)
}

async fn restore(
    app: &Omorg,
    args: RestoreArgs,
    all: Vec<omorg_store::RecordedEvent>,
) -> Result<(), CliError> {
    let db = app.db();
    let shown = args.file.display().to_string();
    // Each timeline's first event, in the order the file first names it.
    let mut streams: Vec<&omorg_store::RecordedEvent> = Vec::new();
    for e in &all {
        if !streams.iter().any(|f| f.stream_id == e.stream_id) {
            streams.push(e);
        }
    }
    // A scenario's decision log starts with its parent's: the parent must be here already, or
    // come before it in the file.
    for (n, first) in streams.iter().enumerate() {
        let id = &first.stream_id;
        let parent = Some(first)
            .filter(|e| e.event_type == "TimelineForked")
            .and_then(|e| e.payload.pointer("/change/parent"))
            .and_then(serde_json::Value::as_str);
        if let Some(parent) = parent {
            let earlier = streams[..n].iter().any(|f| f.stream_id == parent);
            if !earlier && db.stream_events(parent, 1, 1).await?.is_empty() {
                let later = streams[n..].iter().any(|f| f.stream_id == parent);
                return Err(CliError::Input(format!(
                    "{shown}: {id} is a scenario forked from {parent}, which {}: nothing was \
                     written",
                    if later {
                        format!(
                            "comes after it in the file; put {parent}'s events first (as \
                             `omorg export --all` does)"
                        )
                    } else {
                        format!(
                            "this database does not hold and the file does not have: restore \
                             {parent} first, or export with --all"
                        )
                    }
                )));
            }
        }
    }
    let done = db.restore(&all).await.map_err(|e| match e {
        omorg_store::restore::RestoreError::Store(e) => CliError::Store(e),
        refused => CliError::Input(format!("{shown}: {refused}; nothing was written")),
    })?;
    let mut out = std::io::stdout().lock();
    for r in &done {
        // The head restored, to check against the source's `omorg verify`: a file that lost its
        // last lines is still a valid chain, only a shorter one.
        let head = all
            .iter()
            .rfind(|e| e.stream_id == r.stream_id)
            .map(|e| {
                format!(
                    "; head: --head-version {} --head-hash {}",
                    e.stream_version, e.hash
                )
            })
            .unwrap_or_default();
        writeln!(
            out,
            "{}: {} events restored{}{head}",
            r.stream_id,
            r.written,
            if r.kept > 0 {
                format!(" ({} were here already)", r.kept)
            } else {
                String::new()
            }
        )?;
    }
    Ok(())
}

/// Whether an export's events are what omorg writes, beyond the intact chain the store checks
/// (a chain can be recomputed over anything): each event decodes as a timeline event of the
/// type its row names, a timeline starts with its creation or fork and has no other, and
/// recorded times never go back within a timeline (an "as known on" answer depends on them).
/// Names the first event that is not.
fn written_by_omorg(
    all: &[omorg_store::RecordedEvent],
    upcasters: &omorg_store::Upcasters,
) -> Result<(), String> {
    use cqrs_es::DomainEvent;
    let mut last_recorded: std::collections::HashMap<&str, chrono::DateTime<chrono::Utc>> =
        std::collections::HashMap::new();
    let mut commands: std::collections::HashSet<(&str, &str)> = Default::default();
    for e in all {
        let at = format!("{}@{}", e.stream_id, e.stream_version);
        let event: omorg_domain::TimelineEvent = e.decode(upcasters).map_err(|err| {
            format!(
                "{at} is not a timeline event omorg can read: {}",
                chain(&err)
            )
        })?;
        let kind = event.event_type();
        if kind != e.event_type {
            return Err(format!(
                "{at} says it is a {}, but its payload is a {kind}",
                e.event_type
            ));
        }
        // Without an upcaster for it, a stored event is what omorg writes for it: its current
        // version, and no member omorg does not write (a reader would drop it, and the hash
        // would still cover it). A `null` where omorg leaves a member out is fine.
        if !upcasters.applies(&e.event_type, &e.event_version) {
            if e.event_version != event.event_version() {
                return Err(format!(
                    "{at} is a {kind} of version {:?}, which omorg does not write (it writes \
                     version {:?})",
                    e.event_version,
                    event.event_version()
                ));
            }
            if let Err(unknown) =
                crate::error::refuse_unknown_members(&e.payload, &event, "payload")
            {
                let member = unknown.problem().field.unwrap_or_default();
                return Err(format!(
                    "{at}: its payload holds {member}, which omorg does not write for a {kind}"
                ));
            }
        }
        // A command id names one command of a timeline.
        if e.command_events.is_some() {
            let id = e.metadata["command_id"].as_str().unwrap_or_default();
            if !commands.insert((e.stream_id.as_str(), id)) {
                return Err(format!(
                    "{at} starts a second command under the id {id:?} in this timeline"
                ));
            }
        }
        let starts = matches!(
            event.change,
            omorg_domain::Change::TimelineCreated(_) | omorg_domain::Change::TimelineForked(_)
        );
        if starts != (e.stream_version == 1) {
            return Err(if starts {
                format!("{at} starts the timeline again ({kind}) after its first event")
            } else {
                format!(
                    "{at} is the timeline's first event, but a {kind}, not its creation or fork"
                )
            });
        }
        if let Some(before) = last_recorded.insert(&e.stream_id, e.recorded_at) {
            if e.recorded_at < before {
                return Err(format!(
                    "{at} is recorded at {}, before the event ahead of it ({before})",
                    e.recorded_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                ));
            }
        }
    }
    Ok(())
}

/// How long the CLI waits for transactions in flight elsewhere on the database server.
const CLI_PATIENCE: Duration = Duration::from_secs(30);

/// Brings the read models up to date with the log, so that a one-off command sees every event
/// committed before it (a server, if one runs, may have done most of the work already).
async fn caught_up(app: &Omorg) -> Result<Queries, CliError> {
    let mut projector = Projector::new(app.db().clone());
    let mut attempt = 0;
    loop {
        match projector.catch_up_to_head(CLI_PATIENCE, |_| {}).await {
            Ok(_) => return Ok(Queries::offline(app.db().clone())),
            // A server projecting the same SQLite file can make a batch fail with "database is
            // locked" (SQLite refuses a lock upgrade without waiting). A failed batch wrote
            // nothing and the projector is exactly-once, so trying again is safe.
            Err(ProjectionError::Database(e)) if attempt < 5 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "catching up failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `omorg replay`: the steps page by page (a long history is never held whole), each printed
/// as it comes.
async fn replay(app: &Omorg, args: ReplayArgs) -> Result<(), CliError> {
    check_timeline(&args.timeline)?;
    if args.limit == Some(0) {
        return Err(CliError::Usage("--limit must be at least 1".into()));
    }
    if i64::try_from(args.after_version).is_err() {
        return Err(CliError::Usage(format!(
            "--after-version must be at most {}",
            i64::MAX
        )));
    }
    let queries = caught_up(app).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut after, mut left) = (args.after_version, args.limit.map(u64::from));
    loop {
        let page = u32::try_from(left.unwrap_or(u64::MAX).min(100)).unwrap_or(100);
        if page == 0 {
            break;
        }
        let replay = queries.replay(&args.timeline, after, page).await?;
        if replay.steps.is_empty() {
            break;
        }
        for step in &replay.steps {
            match args.format {
                ReplayFormat::Json => {
                    serde_json::to_writer(&mut out, step).map_err(ApiError::internal)?;
                    writeln!(out)?;
                }
                ReplayFormat::Text => out.write_all(replay_text(step).as_bytes())?,
            }
        }
        after = replay.next;
        left = left.map(|l| l.saturating_sub(replay.steps.len() as u64));
    }
    out.flush()?;
    Ok(())
}

/// One replay step for reading: the event and its decision, then each change on its date.
/// What differs between two versions of a unit, for a replay line: `name A -> B; parent …`.
fn unit_differences(
    b: &omorg_projections::queries::UnitVersion,
    a: &omorg_projections::queries::UnitVersion,
) -> String {
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
    let mut parts = Vec::new();
    for (what, before, after) in [
        ("name", b.name.clone(), a.name.clone()),
        ("code", shown(&b.code), shown(&a.code)),
        ("kind", b.kind.clone(), a.kind.clone()),
        ("parent", shown(&b.parent_id), shown(&a.parent_id)),
        ("areas", b.areas.join(", "), a.areas.join(", ")),
    ] {
        if before != after {
            parts.push(format!("{what} {before} -> {after}"));
        }
    }
    if b.attributes != a.attributes {
        parts.push("attributes".to_owned());
    }
    if parts.is_empty() {
        "unchanged".to_owned()
    } else {
        parts.join("; ")
    }
}

fn replay_text(step: &crate::queries::ReplayStep) -> String {
    let d = &step.event;
    let revoked = d
        .revoked_at
        .map(|t| format!(" [revoked {}]", t.date_naive()))
        .unwrap_or_default();
    let mut s = format!(
        "v{} {} effective {}: {} {} {} ({}), recorded {}{revoked}\n",
        d.stream_version,
        d.event_type,
        d.effective_from,
        d.decision_date,
        d.body,
        d.case_number,
        d.title,
        d.recorded_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let name = |id: &Option<String>, name: &Option<String>| match (id, name) {
        (Some(id), Some(name)) => format!("{name} ({id})"),
        (Some(id), None) => id.clone(),
        _ => "nobody".to_owned(),
    };
    for c in &step.changes {
        s.push_str(&format!("  on {}:\n", c.as_of));
        for u in &c.units {
            let line = match (&u.before, &u.after) {
                (None, Some(a)) => format!("+ {} {} ({})", u.unit_id, a.name, a.kind),
                (Some(b), None) => format!("- {} {}", u.unit_id, b.name),
                (Some(b), Some(a)) => format!("~ {} {}", u.unit_id, unit_differences(b, a)),
                (None, None) => continue,
            };
            s.push_str(&format!("    {line}\n"));
        }
        for p in &c.service_points {
            let line = match (&p.before, &p.after) {
                (None, Some(a)) => format!(
                    "+ point {} {} ({}; {})",
                    p.point_id,
                    a.name,
                    a.unit_id,
                    a.services.join(", ")
                ),
                (Some(b), None) => format!("- point {} {}", p.point_id, b.name),
                (Some(b), Some(a)) => format!(
                    "~ point {} {} ({}; {}) -> {} ({}; {})",
                    p.point_id,
                    b.name,
                    b.unit_id,
                    b.services.join(", "),
                    a.name,
                    a.unit_id,
                    a.services.join(", ")
                ),
                (None, None) => continue,
            };
            s.push_str(&format!("    {line}\n"));
        }
        for r in &c.responsibilities {
            s.push_str(&format!(
                "    {} in {} {}: {} -> {}\n",
                r.service_code,
                r.area_code,
                r.area_name,
                name(&r.before_unit_id, &r.before_unit_name),
                name(&r.after_unit_id, &r.after_unit_name)
            ));
        }
    }
    s
}

/// What a break in a hash chain means, for the auditor reading `omorg verify`. A break at the
/// head given on the command line may also be a head copied wrong, so it says both.
fn describe_break(
    kind: &omorg_store::verify::BreakKind,
    version: u64,
    head: Option<u64>,
) -> String {
    use omorg_store::verify::BreakKind;
    match kind {
        BreakKind::Altered => {
            "the event was altered: its content no longer hashes to its stored hash".into()
        }
        BreakKind::Relinked if head == Some(version) => {
            "the event there does not have the hash given (--head-hash): the history up to it \
             was rewritten, or the head was copied wrong"
                .into()
        }
        BreakKind::Relinked => "the event does not link to the one before it: the earlier event \
                                was replaced, or this one re-chained"
            .into(),
        BreakKind::Missing { found: Some(found) } => {
            format!("the event is missing: version {found} comes in its place")
        }
        BreakKind::Missing { found: None } => {
            "the chain ends before this version, the head given (--head-version): events were \
             deleted from its end, or the head was copied wrong"
                .into()
        }
        BreakKind::CommandAltered { detail } => {
            format!("the log's command id or size for the event was edited: {detail}")
        }
    }
}

/// `omorg rebuild`: a progress bar on a terminal, plain lines otherwise (logs, CI).
async fn rebuild(db: &Database) -> Result<(), CliError> {
    let head = omorg_projections::projector::log_head(db).await?;
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let bar = indicatif::ProgressBar::new(u64::try_from(head).unwrap_or(0));
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "rebuilding {bar:40} {pos}/{len} positions ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        eprintln!("rebuilding the read models from the event log (head position {head})");
        None
    };
    let result = Projector::new(db.clone())
        .rebuild(|p| match &bar {
            Some(bar) => bar.set_position(u64::try_from(p.position).unwrap_or(0)),
            None => eprintln!(
                "rebuild: {} events applied (position {})",
                p.applied, p.position
            ),
        })
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let done = result.map_err(|e| {
        CliError::Input(format!(
            "rebuild failed: {}; run `omorg rebuild` again to resume where it stopped",
            chain(&e)
        ))
    })?;
    // A timeline stopped on an event that cannot be projected is skipped, not fatal to the
    // others; but the rebuild did not do its job for it, so it fails, naming each (and says
    // nothing of success on standard output).
    let mut failed: Vec<_> = omorg_projections::projector::failures(db)
        .await?
        .into_values()
        .collect();
    if failed.is_empty() {
        writeln!(
            std::io::stdout(),
            "rebuilt the read models from {} events",
            done.applied
        )?;
        return Ok(());
    }
    failed.sort_by(|a, b| a.timeline_id.cmp(&b.timeline_id));
    let each: Vec<String> = failed
        .iter()
        .map(|f| {
            format!(
                "{} stopped at version {} (position {}): {}",
                f.timeline_id, f.stream_version, f.position, f.error
            )
        })
        .collect();
    Err(CliError::Input(format!(
        "rebuild failed for {} timeline(s) ({} events applied to the others), which queries \
         refuse until it succeeds: {}; fix the \
         cause (see docs/operations.md, \"An event that cannot be projected\") and run `omorg \
         rebuild` again",
        failed.len(),
        done.applied,
        each.join("; ")
    )))
}

async fn decisions(app: &Omorg, args: DecisionsArgs) -> Result<(), CliError> {
    check_timeline(&args.timeline)?;
    let filter = omorg_projections::queries::DecisionFilter {
        case_number: args.case_number,
        body: args.body,
        decided_from: None,
        decided_to: None,
    };
    let log = caught_up(app)
        .await?
        .decisions(&args.timeline, &filter)
        .await?;
    if log.decisions.is_empty() && args.format == TableFormat::Text {
        // Said on standard error, so that the output stays empty for a script.
        eprintln!("no decision of {} matches", args.timeline);
    }
    let text = match args.format {
        TableFormat::Json => serde_json::to_string_pretty(&log).map_err(ApiError::internal)? + "\n",
        TableFormat::Csv => crate::render::decisions_csv(&log).map_err(ApiError::internal)?,
        TableFormat::Text => log
            .decisions
            .iter()
            .map(|d| {
                let revoked = d
                    .revoked_at
                    .map(|t| format!(" [revoked {}]", t.date_naive()))
                    .unwrap_or_default();
                // An inherited entry names the timeline whose version it is.
                let version = match &d.inherited_from {
                    Some(t) => format!("{t}@v{}", d.stream_version),
                    None => format!("v{}", d.stream_version),
                };
                format!(
                    "{version:<5} {} {} {}: {} ({}, effective {}){revoked}\n",
                    d.decision_date, d.body, d.case_number, d.title, d.event_type, d.effective_from
                )
            })
            .collect(),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

async fn org_chart(app: &Omorg, args: OrgChartArgs) -> Result<(), CliError> {
    check_timeline(&args.timeline)?;
    let date = match args.as_of {
        Some(d) => crate::service::check_date_range("--as-of", d)
            .map_err(|e| invalid_argument("--as-of", e))?,
        None => crate::service::today(),
    };
    let at = AsOf {
        date,
        known_version: args.known_version,
        known_at: None,
    };
    let chart = caught_up(app)
        .await?
        .org_chart(&args.timeline, at)
        .await
        .map_err(|e| match e {
            // A version the timeline has not reached is the option's fault: a usage error.
            ApiError::Invalid { ref field, .. } if field == "known_version" => {
                invalid_argument("--known-version", e)
            }
            other => other.into(),
        })?;
    let text = match args.format {
        ChartFormat::Text => text_tree(&chart),
        ChartFormat::Json => {
            serde_json::to_string_pretty(&chart).map_err(ApiError::internal)? + "\n"
        }
        ChartFormat::Csv => crate::render::org_chart_csv(&chart).map_err(ApiError::internal)?,
        ChartFormat::Dot => crate::render::org_chart_dot(&chart),
        ChartFormat::Mermaid => crate::render::org_chart_mermaid(&chart),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// An indented tree for the terminal.
fn text_tree(chart: &OrgChart) -> String {
    fn walk(nodes: &[UnitNode], depth: usize, out: &mut String) {
        for n in nodes {
            let code = n
                .code
                .as_deref()
                .map(|c| format!(" [{c}]"))
                .unwrap_or_default();
            let areas: Vec<&str> = n.areas.iter().map(|a| a.code.as_str()).collect();
            let areas = if areas.is_empty() {
                String::new()
            } else {
                format!(" areas: {}", areas.join(", "))
            };
            out.push_str(&format!(
                "{}{}{code} ({}){areas}\n",
                "  ".repeat(depth),
                n.name,
                n.kind
            ));
            // The service points it runs, before its children: who runs an innbyggertorg is
            // part of the chart (a handover shows here as it does in the other formats).
            for p in &n.service_points {
                let mut about: Vec<String> = p.area.iter().map(|a| format!("area {a}")).collect();
                about.push(if p.services.is_empty() {
                    "no services".to_owned()
                } else {
                    p.services.join(", ")
                });
                out.push_str(&format!(
                    "{}- point {} {} ({})\n",
                    "  ".repeat(depth + 1),
                    p.id,
                    p.name,
                    about.join("; ")
                ));
            }
            walk(&n.children, depth + 1, out);
        }
    }
    let mut out = format!(
        "{} as of {} (known version {})\n",
        chart.timeline, chart.as_of, chart.known_version
    );
    walk(&chart.units, 0, &mut out);
    out
}

async fn verify(app: &Omorg, args: VerifyArgs) -> Result<(), CliError> {
    let all = args.timeline.is_none();
    let ids: Vec<String> = match args.timeline {
        Some(id) => {
            check_timeline(&id)?;
            vec![id]
        }
        // Every stream of the log itself, not the timelines of the read models: a stream whose
        // timeline row is gone (or that never had one) is walked too.
        None => app.db().stream_ids().await?,
    };
    let head = match (args.head_version, args.head_hash) {
        (Some(version), Some(hash)) => {
            if version == 0 {
                return Err(CliError::Usage("--head-version must be at least 1".into()));
            }
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(CliError::Usage(format!(
                    "--head-hash must be 64 hexadecimal digits, not {} characters{}",
                    hash.chars().count(),
                    if hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                        ""
                    } else {
                        " with non-hexadecimal ones"
                    }
                )));
            }
            Some((version, hash.to_ascii_lowercase()))
        }
        _ => None,
    };
    let mut broken = Vec::new();
    let mut out = std::io::stdout().lock();
    for id in &ids {
        let v = if all {
            // As the log has it: an id the API would refuse is reported, not an error.
            app.db().verify(id).await.map_err(CliError::Store)?
        } else {
            app.verify(id, head.as_ref()).await?
        };
        match &v.first_break {
            None => match &v.head {
                Some((version, hash)) => writeln!(
                    out,
                    "{id}: intact ({} events; head: --head-version {version} --head-hash {hash})",
                    v.events_checked
                )?,
                None => writeln!(out, "{id}: intact ({} events)", v.events_checked)?,
            },
            Some(b) => {
                let at_head = head.as_ref().map(|(v, _)| *v);
                writeln!(
                    out,
                    "{id}: BROKEN at version {}: {}",
                    b.version,
                    describe_break(&b.kind, b.version, at_head)
                )?;
                broken.push(id.clone());
            }
        }
    }
    if all {
        writeln!(
            out,
            "{} stream(s) checked, {} broken",
            ids.len(),
            broken.len()
        )?;
    }
    if broken.is_empty() {
        Ok(())
    } else {
        Err(CliError::Broken(format!(
            "hash chain broken in: {}",
            broken.join(", ")
        )))
    }
}

/// `n` things, in the singular for one: "1 command", "2 commands".
fn counted(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}
