//! omorg's event store: where events live.
//!
//! An event store for any [`cqrs_es::Aggregate`] on PostgreSQL (production) or SQLite (the
//! embedded default, a file or in memory), chosen by URL. It is append-only (database triggers),
//! hash-chained per stream ([`Database::verify`]), applies each command id exactly once, and
//! exposes a global order that a catch-up reader can follow without ever skipping a late
//! committer ([`Database::read_all_after`]).
//!
//! # Layout
//! - [`db`]: [`Database`], the connection pool of either backend, with [`Database::migrate`]
//!   and every SQL statement the store runs (one arm per dialect), including the catch-up reader.
//! - [`store`]: [`Store`], which loads aggregates (in-process cache → snapshot + tail → full
//!   replay), runs commands ([`Store::execute`], one at a time per stream), reads state
//!   ([`Store::with_aggregate`]) and implements [`cqrs_es::EventStore`] so that `CqrsFramework`
//!   runs on it.
//! - [`model`]: the values handed out: [`CommandMetadata`], [`RecordedEvent`], [`Committed`],
//!   [`Outcome`], [`Checkpoint`].
//! - [`hash`]: the canonical form of an event and its SHA-256 (the chain).
//! - [`verify`]: [`Database::verify`] and [`Database::verify_against`], which walk a chain and
//!   name the first event that does not match.
//! - [`upcast`]: [`Upcasters`], which rewrite old payload versions before deserialising.
//! - [`error`]: [`StoreError`] (with the HTTP status of each variant) and [`CommandError`].
//! - `testing` (feature `testing`): a fresh PostgreSQL database or SQLite file per test.
//!
//! The design is in `docs/store.md` and `docs/adr/`.
//!
//! # Example
//! ```ignore
//! let db = Database::connect("sqlite::memory:").await?;
//! db.migrate().await?;
//! let store: Store<Timeline> = Store::new(db, services);
//! let outcome = store
//!     .execute("oslo", command, CommandMetadata::new("cmd-42").with_actor("planner"))
//!     .await?;
//! let units = store.with_aggregate("oslo", |timeline, _version| timeline.unit_count()).await?;
//! let page = store.database().read_all_after(&Checkpoint::START, 500).await?;
//! ```
#![forbid(unsafe_code)]

mod committer;
mod db;
pub mod error;
pub mod hash;
pub mod model;
pub mod restore;
pub mod store;
pub mod upcast;
pub mod verify;

#[cfg(feature = "testing")]
pub mod testing;

pub use db::{pg_catch_up_after, sqlite_catch_up_after, Backend, Database};
pub use error::{CommandError, StoreError};
pub use model::{CatchUpEvent, Checkpoint, CommandMetadata, Committed, Outcome, RecordedEvent};
pub use store::{CacheStats, Linked, Store, StoreConfig, StoreContext};
pub use upcast::{Upcaster, Upcasters};
pub use verify::{BreakKind, ChainBreak, Verification};
