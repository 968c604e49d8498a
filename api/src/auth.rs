//! Bearer-token authentication and role-based permissions.
//!
//! Tokens come from configuration (`OMORG_TOKENS="token1:planner,token2:auditor"`). A token is a
//! secret: [`Token`] never prints its value. Each handler states the [`Permission`] it needs and
//! asks the [`Caller`] extractor for it, so the rule for a route is readable at the route.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use utoipa::ToSchema;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Submits commands (and creates and forks timelines); reads projections.
    Planner,
    /// Reads everything, including the event log and the hash-chain verification.
    Auditor,
    /// Reads projection queries only (org charts, responsibilities, timeline list).
    Reader,
    /// Everything.
    Admin,
}

/// A kind of access a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Projection queries and timeline metadata.
    Query,
    /// Commands, timeline creation and forks.
    Write,
    /// The event log and verification.
    Audit,
}

impl Permission {
    /// What the permission lets one do, for the 403 message.
    pub fn action(self) -> &'static str {
        match self {
            Self::Query => "read projections",
            Self::Write => "submit commands",
            Self::Audit => "read the event log or verify it",
        }
    }
}

impl Role {
    /// True when this role has `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Self::Admin => true,
            Self::Planner => matches!(permission, Query | Write),
            Self::Auditor => matches!(permission, Query | Audit),
            Self::Reader => matches!(permission, Query),
        }
    }

    /// The role's name as configured.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planner => "planner",
            Self::Auditor => "auditor",
            Self::Reader => "reader",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "planner" => Ok(Self::Planner),
            "auditor" => Ok(Self::Auditor),
            "reader" => Ok(Self::Reader),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role {other:?} (expected planner, auditor, reader or admin)"
            )),
        }
    }
}

/// A bearer token. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Token(String);

impl Token {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret value, for comparing with a request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The configured tokens, or none at all (`--no-auth`).
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Token → (role, name). `None` means authentication is off: every caller is an admin.
    tokens: Option<HashMap<Token, (Role, String)>>,
}

impl AuthConfig {
    /// Authentication off: every request acts as `admin` (only for loopback; checked at start).
    pub fn disabled() -> Self {
        Self { tokens: None }
    }

    /// True when authentication is off.
    pub fn is_disabled(&self) -> bool {
        self.tokens.is_none()
    }

    /// Parses `token:role[:name],…`. The optional name is recorded as the actor of commands.
    /// Error messages never include a token value.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut tokens = HashMap::new();
        for (i, entry) in spec.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let mut parts = entry.splitn(3, ':');
            let token = parts.next().unwrap_or("").trim();
            let role = parts.next().ok_or_else(|| {
                format!("token entry {} has no role (expected token:role)", i + 1)
            })?;
            let role: Role = role.trim().parse()?;
            let name = parts
                .next()
                .map(|n| n.trim().to_owned())
                .unwrap_or_else(|| role.as_str().to_owned());
            if token.len() < 8 {
                return Err(format!(
                    "token entry {} is shorter than 8 characters; use a long random token",
                    i + 1
                ));
            }
            // A token listed twice would act with whichever entry the map kept: refused, so
            // that a token meant to be a reader's never silently keeps an admin's role.
            if tokens.insert(Token::new(token), (role, name)).is_some() {
                return Err(format!(
                    "token entry {} repeats the token of an earlier entry; give each token once",
                    i + 1
                ));
            }
        }
        if tokens.is_empty() {
            return Err("no tokens configured".into());
        }
        Ok(Self {
            tokens: Some(tokens),
        })
    }

    /// The role and name of a presented token.
    fn lookup(&self, presented: &str) -> Option<(Role, String)> {
        // HashMap lookup hashes the presented value; a timing side channel on the hash of a
        // random 8+-character token is not a practical attack on this service.
        self.tokens
            .as_ref()?
            .get(&Token::new(presented))
            .map(|(r, n)| (*r, n.clone()))
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's role.
    pub role: Role,
    /// The name the token is configured with (or the role), recorded as the commands' actor.
    pub name: String,
}

impl Caller {
    /// Succeeds when the caller's role has `permission`, else a 403.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.role.allows(permission) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                role: self.role,
                action: permission.action(),
            })
        }
    }
}

/// A caller allowed to write (planner or admin), checked before the request body is read: a
/// caller who may not write gets 403 whatever the body holds, and the body is never parsed.
#[derive(Debug, Clone)]
pub struct Writer(pub Caller);

impl FromRequestParts<AppState> for Writer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(Permission::Write)?;
        Ok(Writer(caller))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.auth.is_disabled() {
            return Ok(Caller {
                role: Role::Admin,
                name: "local".into(),
            });
        }
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let (role, name) = state.auth.lookup(presented).ok_or(ApiError::Unauthorized)?;
        Ok(Caller { role, name })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tokens_and_hides_them() {
        let auth = AuthConfig::parse("secret-one:planner, secret-two:auditor:revisjon").unwrap();
        assert_eq!(auth.lookup("secret-one").unwrap().0, Role::Planner);
        assert_eq!(auth.lookup("secret-two").unwrap().1, "revisjon");
        assert!(auth.lookup("nope").is_none());
        assert!(!format!("{auth:?}").contains("secret"));
    }

    #[test]
    fn refuses_bad_specs_without_echoing_tokens() {
        let e = AuthConfig::parse("secret-one:boss").unwrap_err();
        assert!(e.contains("boss") && !e.contains("secret-one"));
        assert!(AuthConfig::parse("short:admin").is_err());
        assert!(AuthConfig::parse("").is_err());
    }

    #[test]
    fn refuses_a_token_listed_twice() {
        let e =
            AuthConfig::parse("secret-one:reader,secret-two:planner,secret-one:admin").unwrap_err();
        assert!(e.contains("entry 3") && !e.contains("secret-one"), "{e}");
    }

    #[test]
    fn roles_have_their_permissions() {
        use Permission::*;
        assert!(Role::Planner.allows(Write) && !Role::Planner.allows(Audit));
        assert!(Role::Auditor.allows(Audit) && !Role::Auditor.allows(Write));
        assert!(Role::Reader.allows(Query) && !Role::Reader.allows(Audit));
        assert!([Query, Write, Audit].iter().all(|p| Role::Admin.allows(*p)));
    }
}
