//! # omorg-domain
//!
//! The organisation timeline of one municipality, as a pure event-sourced aggregate: no IO, no
//! clock, no database. Everything else in omorg (store, projections, API) stands on it.
//!
//! # Layout
//! - [`ids`]: validated ids and codes (units, areas, services, service points, commands, timelines).
//! - [`date`]: dates as users write them (`YYYY-MM-DD`, strictly).
//! - [`model`]: the organisation on one date ([`OrgState`]): units, areas, services,
//!   responsibilities, service points.
//! - [`change`]: commands ([`TimelineCommand`], [`Action`]) and events ([`TimelineEvent`],
//!   [`Change`]), sharing one payload type per kind of change.
//! - [`rules`]: how each change alters an [`OrgState`] and when it is refused.
//! - [`timeline`]: the [`Timeline`] aggregate: bitemporal validation, revocation, forks,
//!   `state_at(date)`.
//! - [`error`]: [`DomainError`], one variant per reason a command is refused.

#![forbid(unsafe_code)]

pub mod change;
pub mod date;
pub mod error;
pub mod ids;
pub mod model;
pub mod rules;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timeline;

pub use change::*;
pub use error::DomainError;
pub use ids::*;
pub use model::*;
pub use timeline::{established_units, Record, Timeline, TimelineInfo};
