//! # omorg-api
//!
//! What users touch: the HTTP API (axum) and the `omorg` command line, on top of the domain
//! (`omorg-domain`), the event store (`omorg-store`) and the read models (`omorg-projections`).
//!
//! # Layout
//! - [`routes`]: [`app`], the router, one handler per route, and the OpenAPI document.
//! - [`service`]: [`Omorg`], the application layer shared by HTTP and CLI: create and fork
//!   timelines, run commands (a batch is all or nothing), read the event log, verify.
//! - [`batch`]: the timeline aggregate commanded with a *list* of commands, which is how a batch
//!   is appended in one transaction.
//! - `adoption`: which commands a scenario's own changes become when it is adopted into its
//!   parent (pure; [`Omorg::adopt`] runs them and records the adoption on the scenario).
//! - [`queries`]: every read query (org chart, responsibilities, histories, decisions, changes,
//!   change feed, compare), answered from the projections after a read-your-writes sync.
//! - [`render`]: CSV, Graphviz DOT and Mermaid renderings.
//! - [`error`]: [`ApiError`], one HTTP status per variant, as `application/problem+json`; the
//!   JSON body extractor whose rejections are problems too.
//! - [`auth`]: bearer tokens and roles (planner, auditor, reader, admin).
//! - [`metrics`]: Prometheus counters.
//! - [`config`]: the command line and environment ([`config::Cli`]).
//! - [`cli`]: the `omorg` subcommands (serve, migrate, import, export, org-chart, decisions,
//!   verify, adopt, demo, rebuild).
//! - [`import`]: reading command files (YAML/JSON) and CSV tables into commands.
//! - [`demo`]: the demo data set (Oslo's districts, the new Asker) as commands.
//! - [`state`]: [`AppState`], what every handler gets.
#![forbid(unsafe_code)]

pub mod access;
pub(crate) mod adoption;
pub mod auth;
pub mod batch;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod import;
pub mod metrics;
pub mod queries;
pub mod render;
pub mod routes;
pub mod schemas;
pub mod service;
pub mod state;

pub use error::ApiError;
pub use routes::{app, listen};
pub use service::Omorg;
pub use state::AppState;
