//! # omorg-projections
//!
//! Read models rebuilt from the event log, kept in SQL (PostgreSQL or SQLite), with checkpoints:
//! bitemporal versions of units, areas, services, responsibilities and service points; lineage
//! edges; the decision log; a change feed. And the queries the API exposes over them.
//!
//! # Layout
//! - [`advance`]: pure: one timeline's projection in memory and how an event advances it.
//! - [`touched`]: which entities a change can touch (the fast path of [`advance`]).
//! - [`history`]: pure: effective histories as segments and how an event rewrites them.
//! - [`projector`]: follows the log from a checkpoint and writes the rows, exactly once.
//! - [`runner`]: the projector as a background task, and read-your-writes for queries.
//! - [`queries`]: org chart, responsibility matrix, histories, lineage, decision log, changes.
//! - [`writes`]: a batch's row writes, sent at its end in a few statements.
//! - [`sql`]: one SQL text for both databases.
//! - [`error`]: what can go wrong ([`ProjectionError`]).

#![forbid(unsafe_code)]

pub mod advance;
pub mod error;
pub mod history;
pub mod projector;
pub mod queries;
pub mod runner;
pub mod sql;
pub mod touched;
pub mod writes;

pub use error::ProjectionError;
pub use projector::{Progress, Projector};
pub use runner::ProjectionRunner;
