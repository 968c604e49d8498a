//! Typed configuration: command-line flags, each with an environment variable (`clap` with
//! `env`). Secrets (the database URL's password, tokens) never print: see [`DatabaseUrl`] and
//! [`crate::auth::Token`].

use crate::auth::AuthConfig;
use chrono::NaiveDate;
use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// `omorg`: an event-sourced backend for reorganising public-service responsibilities.
#[derive(Debug, Parser)]
#[command(name = "omorg", version, about, propagate_version = true)]
pub struct Cli {
    /// Database: `sqlite://FILE` (default `sqlite://omorg.db`, created if missing) or
    /// `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://omorg.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,
    /// Log format.
    #[arg(long, env = "OMORG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A database URL. `Debug`/`Display` hide the password.
#[derive(Clone)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The full URL, for connecting only.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The URL with any password replaced by `***`, for logs and messages.
    pub fn redacted(&self) -> String {
        let s = &self.0;
        match (s.find("://"), s.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let userinfo = &s[scheme + 3..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => format!("{}{user}:***{}", &s[..scheme + 3], &s[at..]),
                    None => s.clone(),
                }
            }
            _ => s.clone(),
        }
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.starts_with("sqlite:")
            || s.starts_with("postgres://")
            || s.starts_with("postgresql://")
        {
            Ok(Self(s.to_owned()))
        } else {
            Err("expected sqlite://FILE or postgres://… ".into())
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The address `omorg serve` listens on, as given (`IP:PORT` or `HOST:PORT`) and as resolved
/// once, at start.
#[derive(Debug, Clone)]
pub struct ListenAddr {
    given: String,
    addrs: Vec<SocketAddr>,
}

impl ListenAddr {
    /// The resolved addresses (one for an `IP:PORT`); the server binds the first it can.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Whether every address is a loopback one: only then may authentication be off (a name
    /// that also resolves to another address could be reached from elsewhere).
    pub fn is_loopback(&self) -> bool {
        self.addrs.iter().all(|a| a.ip().is_loopback())
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // An IP address needs no resolver.
        let addrs = match s.parse::<SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => s
                .to_socket_addrs()
                .map_err(|e| format!("expected IP:PORT or HOST:PORT: {e}"))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{s} resolves to no address"));
        }
        Ok(Self {
            given: s.to_owned(),
            addrs,
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.given)
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (migrates the database first).
    Serve(ServeArgs),
    /// Apply the database migrations and exit.
    Migrate,
    /// Import a file into a timeline: a YAML or JSON list of commands, or a CSV of units,
    /// services or responsibilities.
    Import(ImportArgs),
    /// Write a timeline's events (or every timeline's) as JSON lines, with their hashes.
    Export(ExportArgs),
    /// Write the events of an export into this database as they are (hashes, command ids,
    /// recorded times), after checking their chains: to move a database, or rebuild one.
    Restore(RestoreArgs),
    /// Print a timeline's org chart on a date (from the projections, caught up first).
    OrgChart(OrgChartArgs),
    /// Print a timeline's decision log (from the projections, caught up first).
    Decisions(DecisionsArgs),
    /// Adopt a scenario into the timeline it was forked from: its own changes, all or
    /// nothing, under the adopting decision (as `POST /timelines/{id}/adopt`).
    Adopt(AdoptArgs),
    /// Replay a timeline's decision history step by step: each event with its decision and
    /// what it changed (the organisation just before and just after it).
    Replay(ReplayArgs),
    /// Verify the hash chain of one timeline or of all of them.
    Verify(VerifyArgs),
    /// Load the demo data (Oslo's districts, the new Asker, two scenarios). Idempotent.
    Demo,
    /// Drop every read model and rebuild it from the event log, showing progress; an
    /// interrupted rebuild resumes when run again.
    Rebuild,
}

/// `omorg serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on: `IP:PORT` or `HOST:PORT`.
    #[arg(long, env = "OMORG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: ListenAddr,
    /// Bearer tokens as `token:role[:name],…` (roles: planner, auditor, reader, admin).
    #[arg(long, env = "OMORG_TOKENS", hide_env_values = true, value_parser = AuthConfig::parse)]
    pub tokens: Option<AuthConfig>,
    /// Turn authentication off (every caller is admin). Refused unless listening on loopback.
    /// The environment variable takes 1/0, yes/no, true/false, on/off.
    #[arg(long, env = "OMORG_NO_AUTH", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub no_auth: bool,
    /// Load the demo data before serving.
    #[arg(long)]
    pub demo: bool,
    /// How long a query waits for the projector to apply every event committed before it
    /// (read-your-writes) before answering 503 with `Retry-After`, in milliseconds.
    #[arg(long, env = "OMORG_SYNC_PATIENCE_MS", default_value_t = 5000)]
    pub sync_patience_ms: u64,
    /// How long the projector lets commands gather after one wakes it, in milliseconds: larger
    /// batches cost less per event. API reads never wait for it (they wake the projector at
    /// once); plain-SQL readers of the read models see a command up to this much later.
    #[arg(long, env = "OMORG_PROJECTOR_GATHER_MS", default_value_t = omorg_projections::runner::GATHER.as_millis() as u64)]
    pub projector_gather_ms: u64,
}

/// `omorg import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file: `.yaml`/`.yml`/`.json` (a list of commands) or `.csv`.
    pub file: PathBuf,
    /// The timeline to import into (must exist, except with `--create`).
    #[arg(long)]
    pub timeline: String,
    /// Create the timeline with this name first if it does not exist.
    #[arg(long)]
    pub create: Option<String>,
    /// Who imports (recorded as the commands' actor when the file does not say); default
    /// `$USER`, or `omorg-cli` when that is unset or empty.
    #[arg(long = "actor", value_name = "ACTOR")]
    pub actor_given: Option<String>,
    /// The actor the import records: `--actor` resolved by [`actor`] before the file is read.
    #[arg(skip)]
    pub actor: String,
    /// CSV only: the effective date of every row without one.
    #[arg(long, value_parser = omorg_domain::date::parse_date)]
    pub effective_from: Option<NaiveDate>,
    /// CSV only: decision case number.
    #[arg(long)]
    pub case_number: Option<String>,
    /// CSV only: deciding body.
    #[arg(long)]
    pub body: Option<String>,
    /// CSV only: decision date (default: the effective date).
    #[arg(long, value_parser = omorg_domain::date::parse_date)]
    pub decision_date: Option<NaiveDate>,
    /// CSV only: decision title.
    #[arg(long)]
    pub title: Option<String>,
}

/// `omorg adopt`: the options are the fields of the API's adoption request.
#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The timeline the scenario was forked from, which takes its changes.
    #[arg(long)]
    pub timeline: String,
    /// The scenario to adopt.
    #[arg(long)]
    pub scenario: String,
    /// The adopting decision's case number.
    #[arg(long)]
    pub case_number: String,
    /// The deciding body.
    #[arg(long)]
    pub body: String,
    /// The date of the decision (YYYY-MM-DD).
    #[arg(long, value_parser = omorg_domain::date::parse_date)]
    pub decision_date: NaiveDate,
    /// The decision's title.
    #[arg(long)]
    pub title: String,
    /// A link to the decision document.
    #[arg(long)]
    pub link: Option<String>,
    /// Why this alternative; prefixed to each adopted change's own rationale.
    #[arg(long, default_value = "")]
    pub rationale: String,
    /// Command id of the adoption (default `adopt:<scenario>`); the adopted changes get
    /// `<command-id>/<version>`, so running the same adoption again is a no-op.
    #[arg(long)]
    pub command_id: Option<String>,
    /// Who adopts (recorded as the changes' actor); default `$USER`, or `omorg-cli` when that
    /// is unset or empty.
    #[arg(long)]
    pub actor: Option<String>,
}

/// The actor a CLI command records: `--actor` as given (an empty one is an error naming it),
/// else `$USER` when set and not blank, else `omorg-cli`. An empty `$USER` (a service account, a
/// container) is no reason to refuse the command.
pub fn actor(given: Option<&str>) -> Result<String, String> {
    match given {
        Some(a) if a.trim().is_empty() => Err("--actor must not be empty".into()),
        Some(a) => Ok(a.to_owned()),
        None => Ok(std::env::var("USER")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| "omorg-cli".to_owned())),
    }
}

/// `omorg export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The timeline.
    #[arg(long, required_unless_present = "all", conflicts_with = "all")]
    pub timeline: Option<String>,
    /// Every timeline, in the order their events were recorded (what `omorg restore` takes to
    /// move a whole database).
    #[arg(long)]
    pub all: bool,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// `omorg restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// JSON lines as `omorg export` writes them (one timeline, or all with `--all`).
    pub file: PathBuf,
}

/// `omorg org-chart`.
#[derive(Debug, Args)]
pub struct OrgChartArgs {
    /// The timeline.
    #[arg(long)]
    pub timeline: String,
    /// Effective date (default: today).
    #[arg(long, value_parser = omorg_domain::date::parse_date)]
    pub as_of: Option<NaiveDate>,
    /// Only the timeline's first N events (as known then).
    #[arg(long, value_parser = digits::<u64>)]
    pub known_version: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ChartFormat::Text)]
    pub format: ChartFormat,
}

/// `omorg decisions`.
#[derive(Debug, Args)]
pub struct DecisionsArgs {
    /// The timeline.
    #[arg(long)]
    pub timeline: String,
    /// Only this case number.
    #[arg(long = "case")]
    pub case_number: Option<String>,
    /// Only this deciding body.
    #[arg(long)]
    pub body: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableFormat::Text)]
    pub format: TableFormat,
}

/// `omorg replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The timeline.
    #[arg(long)]
    pub timeline: String,
    /// Start after this version (0: from the beginning).
    #[arg(long, default_value_t = 0, value_parser = digits::<u64>)]
    pub after_version: u64,
    /// At most this many steps (all when absent).
    #[arg(long, value_parser = digits::<u32>)]
    pub limit: Option<u32>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Text)]
    pub format: ReplayFormat,
}

/// Output formats of `omorg replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    /// A step per paragraph, for reading.
    Text,
    /// JSON lines: one step per line, as the API's steps.
    Json,
}

/// Output formats of tabular commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TableFormat {
    /// Aligned lines for the terminal.
    Text,
    /// JSON (as the API).
    Json,
    /// CSV (as the API).
    Csv,
}

/// Output formats of `omorg org-chart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChartFormat {
    /// An indented tree.
    Text,
    /// JSON (as the API).
    Json,
    /// CSV.
    Csv,
    /// Graphviz DOT.
    Dot,
    /// Mermaid.
    Mermaid,
}

/// `omorg verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The timeline; when absent, every stream the log holds (timelines, and any stream without
    /// a timeline row).
    #[arg(long)]
    pub timeline: Option<String>,
    /// With `--head-hash`: the head an earlier verification printed, which the timeline's chain
    /// must still reach with the same hash (a deleted tail is caught).
    #[arg(long, requires_all = ["timeline", "head_hash"], value_parser = digits::<u64>)]
    pub head_version: Option<u64>,
    /// The hash at `--head-version` (64 hexadecimal digits).
    #[arg(long, requires = "head_version")]
    pub head_hash: Option<String>,
}

/// A count or version as the API reads it: decimal digits only (Rust's parsers also take a
/// leading `+`, which the API refuses).
fn digits<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{s:?} is not a non-negative integer (digits only)"));
    }
    s.parse::<T>().map_err(|_| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_hides_the_password() {
        let url: DatabaseUrl = "postgres://omorg:s3cret@db:5432/omorg".parse().unwrap();
        assert_eq!(url.redacted(), "postgres://omorg:***@db:5432/omorg");
        assert!(!format!("{url:?}").contains("s3cret"));
        let url: DatabaseUrl = "sqlite://omorg.db".parse().unwrap();
        assert_eq!(url.to_string(), "sqlite://omorg.db");
    }

    #[test]
    fn cli_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// `omorg --help` opens with the crate's description, which names the subcommands: all of
    /// them, so that it does not go stale when one is added.
    #[test]
    fn the_about_text_names_every_subcommand() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let about = cli.get_about().map(|a| a.to_string()).unwrap_or_default();
        for sub in cli.get_subcommands() {
            let name = sub.get_name();
            assert!(
                about.contains(name),
                "the about text {about:?} misses {name}"
            );
        }
    }

    /// The projector's gathering defaults to the runner's own default and can be set.
    #[test]
    fn serve_takes_the_projector_gathering() {
        use clap::Parser;
        let gather = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Serve(serve) => serve.projector_gather_ms,
            _ => unreachable!(),
        };
        assert_eq!(
            gather(&["omorg", "serve"]),
            omorg_projections::runner::GATHER.as_millis() as u64
        );
        assert_eq!(gather(&["omorg", "serve", "--projector-gather-ms", "5"]), 5);
        assert!(Cli::try_parse_from(["omorg", "serve", "--projector-gather-ms", "soon"]).is_err());
    }

    /// A host name is resolved; only a name whose every address is loopback counts as loopback.
    #[test]
    fn listen_takes_a_host_name() {
        let listen: ListenAddr = "localhost:8080".parse().unwrap();
        assert!(!listen.addrs().is_empty() && listen.is_loopback());
        assert!(listen.addrs().iter().all(|a| a.port() == 8080));
        assert_eq!(listen.to_string(), "localhost:8080");
        let listen: ListenAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(listen.addrs(), ["127.0.0.1:8080".parse().unwrap()]);
        assert!(!"0.0.0.0:8080".parse::<ListenAddr>().unwrap().is_loopback());
        let mixed = ListenAddr {
            given: "both:8080".into(),
            addrs: vec![
                "127.0.0.1:8080".parse().unwrap(),
                "10.0.0.1:8080".parse().unwrap(),
            ],
        };
        assert!(!mixed.is_loopback());
        assert!(
            "localhost".parse::<ListenAddr>().is_err(),
            "a port is required"
        );
    }
}
