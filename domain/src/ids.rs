//! Identifiers and codes.
//!
//! Every id in a command is chosen by the client (a planner's import file, an API caller), so the
//! domain can stay deterministic and free of IO: the same commands always give the same events.
//! Ids are validated when they are parsed, so a malformed id is refused at the edge with the field
//! name, never deep inside a rule.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest id or code accepted; long enough for a case number or a slug, short enough for an index.
pub const MAX_ID_LEN: usize = 120;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is empty or only whitespace.
    #[error("must not be empty")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`] characters.
    #[error("must be at most {MAX_ID_LEN} characters")]
    TooLong,
    /// The id has leading/trailing whitespace or control characters.
    #[error("must not contain control characters or leading/trailing whitespace")]
    BadCharacters,
}

fn check_id(s: &str) -> Result<(), IdError> {
    if s.trim().is_empty() {
        return Err(IdError::Empty);
    }
    if s.chars().count() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if s.trim() != s || s.chars().any(char::is_control) {
        return Err(IdError::BadCharacters);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        // 1 to MAX_ID_LEN characters, no control characters, no whitespace at either end.
        #[cfg_attr(feature = "openapi", schema(value_type = String,
            pattern = r"^[^\s\x00-\x1f\x7f-\x9f](?:[^\x00-\x1f\x7f-\x9f]{0,118}[^\s\x00-\x1f\x7f-\x9f])?$"))]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id.
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_id(&s)?;
                Ok(Self(s))
            }
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

id_type!(
    /// Stable internal id of a unit. Never changes, unlike the unit's official code.
    UnitId
);
id_type!(
    /// Stable code of an area, e.g. Oslo's district code `030101`.
    AreaCode
);
id_type!(
    /// Stable code of a service, e.g. `home-care`.
    ServiceCode
);
id_type!(
    /// Stable id of a service point, e.g. an innbyggertorg.
    ServicePointId
);
id_type!(
    /// Client-chosen id of a command; a retried command with the same id is applied once.
    CommandId
);
id_type!(
    /// Id of a timeline (an event stream): the baseline or a scenario.
    TimelineId
);
