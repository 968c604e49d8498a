//! [`ApiError`]: every way a request can fail, as one `application/problem+json` answer each
//! (RFC 9457), and [`JsonBody`], the JSON extractor whose rejections are problems too.
//!
//! Status per variant is fixed and documented on the variant. Server faults (5xx) are logged
//! here, once, inside the request's span, and never echoed: the client sees a generic detail.

use crate::auth::Role;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::{PathRejection, RawPathParamsRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use omorg_domain::{Action, ChangeContext, DomainError, TimelineCommand};
use omorg_store::{CommandError, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request body or a query parameter is malformed (not JSON, wrong shape, unknown
    /// command type). **400.**
    #[error("{detail}")]
    BadRequest {
        /// What is wrong, for a human.
        detail: String,
        /// Where, when known (a JSON path or a parameter name).
        field: Option<String>,
    },
    /// No bearer token, or one that is not configured. **401.**
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The token's role may not do this. **403.**
    #[error("role {role} may not {action}")]
    Forbidden {
        /// The caller's role.
        role: Role,
        /// What was attempted, e.g. "submit commands".
        action: &'static str,
    },
    /// The timeline (or other named resource) does not exist. **404.**
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of thing, e.g. "timeline".
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// Another writer changed the timeline meanwhile, or a command id was reused on another
    /// timeline. Nothing was written. **409.**
    #[error("{detail}")]
    Conflict {
        /// Stable name of the conflict (e.g. `concurrent-modification`).
        rule: &'static str,
        /// What happened.
        detail: String,
    },
    /// The domain refused a command: a rule would be broken. Nothing was written. **409.**
    #[error("{source}")]
    Refused {
        /// The domain's refusal; its `rule()` is reported.
        source: DomainError,
        /// For a batch: the 0-based index of the refused command.
        index: Option<usize>,
    },
    /// The request body is larger than the server accepts. **413.**
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request target (path and query) is longer than the server reads. **414.**
    #[error("the request target is {length} bytes long; the server reads at most {limit}")]
    UriTooLong {
        /// The target's length, in bytes.
        length: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The request's headers together are larger than the server reads. **431.**
    #[error("the request headers take {size} bytes; the server reads at most {limit}")]
    HeadersTooLarge {
        /// Their size, in bytes (each name and value, plus `: ` and the line end).
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The route exists but not with this HTTP method. **405** (with `Allow`).
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The request path.
        path: String,
    },
    /// A value is well-formed but invalid (an empty id, an impossible date, …). **422.**
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The offending field (JSON path or parameter name).
        field: String,
        /// What is wrong with it.
        reason: String,
        /// For a batch: the 0-based index of the offending command.
        index: Option<usize>,
    },
    /// The database cannot be reached. **503.** The cause is logged, not echoed.
    #[error("the database is unavailable")]
    Unavailable(#[source] StoreError),
    /// The projections did not catch up with the log within the configured patience, so a
    /// query cannot promise to show the caller's own writes. **503** with `Retry-After`.
    #[error("the read models lag behind the event log (waited {waited:?}); retry shortly")]
    Lagging {
        /// How long the query waited.
        waited: std::time::Duration,
    },
    /// The server started recently and its projector has not yet projected the events committed
    /// before it started (a long replay after an upgrade, say): `/readyz` answers this. **503**
    /// with `Retry-After`.
    #[error("the read models are still catching up with the event log this server started with; retry shortly")]
    CatchingUp,
    /// An event of this timeline cannot be projected (it no longer decodes, or the database
    /// refuses its rows): the timeline's read models stop before it until a rebuild after a fix.
    /// **500**, naming the event; every other timeline is unaffected.
    #[error("the read models of timeline {timeline} stop before its event {version} (global position {position}), which cannot be projected; an operator must fix it and run `omorg rebuild`")]
    ProjectionFailed {
        /// The timeline.
        timeline: String,
        /// The event's version in the timeline.
        version: i64,
        /// Its global position.
        position: i64,
    },
    /// A stored event cannot be read as stored: only an edit behind the store's back (on SQLite,
    /// whose columns are text) leaves such a row. **500**, naming the row, so that an auditor
    /// knows what to look at; `verify` names every altered event.
    #[error("the event log holds a row that cannot be read ({0}); GET /timelines/{{id}}/verify names every altered event")]
    EventUnreadable(String),
    /// Anything else that is the server's fault. **500.** The cause is logged, not echoed.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The body of every error answer (RFC 9457 problem details plus omorg's extensions).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem, e.g. `urn:omorg:problem:rule-refused`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What happened, for a human.
    pub detail: String,
    /// The offending field, for 400 and 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The refused rule (kebab-case, stable), for 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// For a batch: the 0-based index of the command that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

impl ApiError {
    /// A 400 without a field.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            field: None,
        }
    }

    /// A 422 for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.into(),
            reason: reason.into(),
            index: None,
        }
    }

    /// A 404 for an unknown timeline.
    pub fn timeline_not_found(id: &str) -> Self {
        Self::NotFound {
            what: "timeline",
            id: id.to_owned(),
        }
    }

    /// A 500 wrapping any error.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }

    /// `field` without the `commands[index].` a batch puts before it, for a request that has no
    /// `commands` member (an adoption, whose changes are numbered in the scenario) or a message
    /// that says where in its own terms (an import).
    pub fn field_in_command(field: String, index: Option<usize>) -> String {
        let prefix = index.map(|i| format!("commands[{i}]."));
        match prefix.as_deref().and_then(|p| field.strip_prefix(p)) {
            Some(inner) => inner.to_owned(),
            None => field,
        }
    }

    /// A domain refusal (409) or invalid input (422), with the batch index if any.
    pub fn from_domain(source: DomainError, index: Option<usize>) -> Self {
        match source {
            DomainError::InvalidInput { field, reason } => Self::Invalid {
                // In a batch the field is named within the request, as the body's own checks
                // name it (`commands[2].action.to`).
                field: match index {
                    Some(i) => format!("commands[{i}].{field}"),
                    None => field,
                },
                reason,
                index,
            },
            source => Self::Refused { source, index },
        }
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Conflict { .. } | Self::Refused { .. } => StatusCode::CONFLICT,
            Self::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) | Self::Lagging { .. } | Self::CatchingUp => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) | Self::ProjectionFailed { .. } | Self::EventUnreadable(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The problem document for this error. 5xx details are generic on purpose.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let (slug, title) = match self {
            Self::BadRequest { .. } => ("malformed-request", "Malformed request"),
            Self::Unauthorized => ("unauthorized", "Authentication required"),
            Self::Forbidden { .. } => ("forbidden", "Not allowed for this role"),
            Self::NotFound { .. } => ("not-found", "Not found"),
            Self::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed"),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Request body too large"),
            Self::UriTooLong { .. } => ("uri-too-long", "Request target too long"),
            Self::HeadersTooLarge { .. } => ("headers-too-large", "Request headers too large"),
            Self::Conflict { .. } => ("conflict", "Conflict"),
            Self::Refused { .. } => ("rule-refused", "Refused by a domain rule"),
            Self::Invalid { .. } => ("invalid-value", "Invalid value"),
            Self::Unavailable(_) => ("unavailable", "Service unavailable"),
            Self::Lagging { .. } => ("projection-lagging", "Read models lagging"),
            Self::CatchingUp => ("projection-catching-up", "Read models catching up"),
            Self::ProjectionFailed { .. } => ("projection-failed", "Timeline cannot be projected"),
            Self::EventUnreadable(_) => ("event-unreadable", "Event cannot be read"),
            Self::Internal(_) => ("internal", "Internal server error"),
        };
        let (field, rule, index) = match self {
            // A malformed command of a batch is named within the request (`commands[1].…`):
            // its index is said too, as for the batch's other errors.
            Self::BadRequest { field, .. } => {
                (field.clone(), None, field.as_deref().and_then(batch_index))
            }
            Self::Invalid { field, index, .. } => (Some(field.clone()), None, *index),
            Self::Refused { source, index } => (None, Some(source.rule().to_owned()), *index),
            Self::Conflict { rule, .. } => (None, Some((*rule).to_owned()), None),
            _ => (None, None, None),
        };
        let detail = match (self, index) {
            (Self::Refused { source, .. }, Some(i)) => format!("command {i}: {source}"),
            // The field already names the command (`commands[1].action.type`): said once.
            (Self::Invalid { field, reason, .. }, Some(i))
                if !field.starts_with(&format!("commands[{i}]")) =>
            {
                format!("command {i}: invalid {field}: {reason}")
            }
            _ => self.to_string(),
        };
        Problem {
            kind: format!("urn:omorg:problem:{slug}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            field,
            rule,
            index,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Not ready yet is what a readiness probe asks about, not a failure.
        if status.is_server_error() && !matches!(self, Self::CatchingUp) {
            // Logged once, here, inside the request span; the body stays generic.
            let cause: &dyn std::error::Error = match &self {
                Self::Unavailable(e) => e,
                Self::Internal(e) => e.as_ref(),
                other => other,
            };
            tracing::error!(error = %cause, source = ?std::error::Error::source(cause), "request failed");
        }
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut response = (status, [(header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response();
        match self {
            // The projector usually catches up within a second or two.
            Self::Lagging { .. } | Self::CatchingUp => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            // RFC 6750: a 401 says which scheme to authenticate with.
            Self::Unauthorized => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer realm=\"omorg\""),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => Self::Conflict {
                rule: "concurrent-modification",
                detail: format!("{e}; nothing was written, reload and retry"),
            },
            StoreError::MissingCommandId => Self::invalid("command_id", "is required"),
            StoreError::InvalidCheckpoint(s) => Self::BadRequest {
                detail: format!(
                    "invalid checkpoint {s:?}: pass the `next` of an earlier page (<tx>-<position>)"
                ),
                field: Some("after".into()),
            },
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                Self::Unavailable(e)
            }
            other => Self::internal(other),
        }
    }
}

impl From<CommandError<crate::batch::BatchRefusal>> for ApiError {
    fn from(e: CommandError<crate::batch::BatchRefusal>) -> Self {
        match e {
            CommandError::Rejected(r) => Self::from_domain(r.error, r.index),
            CommandError::Store(s) => s.into(),
        }
    }
}

/// A JSON request body whose every rejection is a problem document.
///
/// Not JSON, wrong content type, or a syntax error → 400. Valid JSON of the wrong shape (missing
/// field, wrong type, unknown command `type`) → 400 with the `field` path. Valid shape but an
/// invalid value (an empty id, an impossible date, a string holding U+0000) → 422 with the
/// `field` path. A body over the server's limit → 413.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Serialize> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let RawJson(value) = RawJson::from_request(req, state).await?;
        let read: T = from_value(value.clone())?;
        refuse_unknown_members(&value, &read, "")?;
        Ok(JsonBody(read))
    }
}

/// 400 naming the first member of `raw` (JSON as a client sent it) that reading it into `read`
/// dropped. serde ignores members a type does not have, so a misspelt *optional* member would
/// otherwise vanish without a word, and the request would do something else than was asked:
/// `"area": ["030101"]` for `"areas"` turns a transfer of one area into a transfer of all.
/// Found by writing `read` back (every type here writes what it reads, under the same names)
/// and looking for members of `raw` that did not come back; a `null` may be missing, since an
/// absent optional member is not written.
pub fn refuse_unknown_members<T: Serialize>(
    raw: &serde_json::Value,
    read: &T,
    prefix: &str,
) -> Result<(), ApiError> {
    let written = serde_json::to_value(read).map_err(ApiError::internal)?;
    let mut path = prefix.to_owned();
    if unknown_member(raw, &written, &mut path) {
        return Err(ApiError::BadRequest {
            detail: format!(
                "the body does not match the expected shape: unknown field `{path}` (check its spelling)"
            ),
            field: Some(path),
        });
    }
    Ok(())
}

/// Whether every member of the JSON text `bytes` came back, at the same place, when `read` is
/// written back, and none is given twice: the command path's cheap form of
/// [`refuse_unknown_members`] and of the duplicate check, without building either value (that
/// cost the one-client HTTP bench ~0.02 of the raw rate). Members `read` writes that the text
/// left out (an optional `rationale`, a default) are fine; anything else goes to the careful
/// check, which names the member.
///
/// Compared by full path (`decision` › `title`, `areas` › 0 › `code`), not by name alone: a
/// member misplaced into another object (`rationale` inside `action`) must not pass because
/// the same name is written elsewhere.
fn members_come_back<T: Serialize>(bytes: &[u8], read: &T) -> bool {
    let Ok(written) = serde_json::to_vec(read) else {
        return false;
    };
    let (mut given, mut back) = (member_paths(bytes), member_paths(&written));
    given.sort_unstable();
    if given.windows(2).any(|w| w[0] == w[1]) {
        return false;
    }
    back.sort_unstable();
    given.iter().all(|p| back.binary_search(p).is_ok())
}

/// The full path of every member of valid JSON text, as written (escapes kept): the names of
/// the objects and the indices of the arrays it sits in, then its own name, each segment
/// closed by 0xFF (a byte UTF-8 never holds, so no name can imitate two segments).
fn member_paths(text: &[u8]) -> Vec<Vec<u8>> {
    /// An open object (with the member whose value is being read) or array (with the index of
    /// the element being read).
    enum Open<'t> {
        Object(Option<&'t [u8]>),
        Array(usize),
    }
    let mut open: Vec<Open<'_>> = Vec::new();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'{' => open.push(Open::Object(None)),
            b'[' => open.push(Open::Array(0)),
            b'}' | b']' => {
                open.pop();
            }
            b',' => {
                if let Some(Open::Array(index)) = open.last_mut() {
                    *index += 1;
                }
            }
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < text.len() && text[j] != b'"' {
                    j += if text[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(text.len());
                let mut k = end + 1;
                while k < text.len() && text[k].is_ascii_whitespace() {
                    k += 1;
                }
                let is_name = text.get(k) == Some(&b':');
                if let (true, Some(Open::Object(member))) = (is_name, open.last_mut()) {
                    *member = Some(&text[start..end]);
                    let mut path = Vec::new();
                    for segment in &open {
                        match segment {
                            Open::Object(Some(name)) => path.extend_from_slice(name),
                            Open::Object(None) => {}
                            Open::Array(index) => {
                                path.extend_from_slice(index.to_string().as_bytes())
                            }
                        }
                        path.push(0xFF);
                    }
                    paths.push(path);
                }
                i = end;
            }
            _ => {}
        }
        i += 1;
    }
    paths
}

/// Whether `raw` has a member `written` lacks; if so, `path` ends at it.
fn unknown_member(raw: &serde_json::Value, written: &serde_json::Value, path: &mut String) -> bool {
    use serde_json::Value;
    let len = path.len();
    match (raw, written) {
        (Value::Object(raw), Value::Object(written)) => {
            for (key, value) in raw {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match written.get(key) {
                    Some(w) if unknown_member(value, w, path) => return true,
                    Some(_) => {}
                    None if value.is_null() => {}
                    None => return true,
                }
                path.truncate(len);
            }
            false
        }
        (Value::Array(raw), Value::Array(written)) if raw.len() == written.len() => {
            for (i, (r, w)) in raw.iter().zip(written).enumerate() {
                path.push_str(&format!("[{i}]"));
                if unknown_member(r, w, path) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        _ => false,
    }
}

/// A request body that is syntactically JSON, not yet checked against any shape: for handlers
/// that read its parts separately (commands, batches) so that errors name the command and
/// field. Rejections are those of [`JsonBody`] for content type, syntax and size.
#[derive(Debug, Clone)]
pub struct RawJson(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        parse_raw(&bytes).map(RawJson)
    }
}

/// The body of a request that must be JSON: the content type is checked and the body read
/// (within the server's limit).
async fn json_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<axum::body::Bytes, ApiError> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            // Media types are case-insensitive (RFC 9110, 8.3.1).
            let mime = v
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        });
    if !is_json {
        return Err(ApiError::bad_request(
            "expected a JSON body with Content-Type: application/json",
        ));
    }
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge {
                    limit: crate::routes::BODY_LIMIT,
                }
            } else {
                ApiError::bad_request(format!("could not read the body: {e}"))
            }
        })
}

/// `bytes` as a JSON value, or the 400 a syntax error gets.
fn parse_raw(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if let Some(path) = duplicate_member(bytes) {
        return Err(ApiError::BadRequest {
            detail: format!(
                "member `{path}` is given more than once: JSON readers keep only one of them, \
                 so what the request does would depend on which"
            ),
            field: Some(path),
        });
    }
    Ok(value)
}

/// The path of the first member that an object of the JSON text `bytes` holds twice, if any.
/// A `serde_json::Value` keeps the last of them without a word, as every typed read does: the
/// same silent loss of a client's input as an unknown member.
fn duplicate_member(bytes: &[u8]) -> Option<String> {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess};
    use std::cell::RefCell;

    /// Walks a value under `path`, recording the first duplicate in `found` (and stopping).
    struct Walk<'a> {
        path: String,
        found: &'a RefCell<Option<String>>,
    }
    impl<'a> Walk<'a> {
        fn at(&self, step: &str, index: bool) -> Walk<'a> {
            let path = match (self.path.is_empty(), index) {
                (_, true) => format!("{}[{step}]", self.path),
                (true, false) => step.to_owned(),
                (false, false) => format!("{}.{step}", self.path),
            };
            Walk {
                path,
                found: self.found,
            }
        }
    }
    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> serde::de::Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0usize;
            while seq
                .next_element_seed(self.at(&i.to_string(), true))?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                let inner = self.at(&key, false);
                if !seen.insert(key) {
                    *self.found.borrow_mut() = Some(inner.path);
                    return Err(A::Error::custom("duplicate member"));
                }
                map.next_value_seed(inner)?;
            }
            Ok(())
        }
    }
    let found = RefCell::new(None);
    let mut d = serde_json::Deserializer::from_slice(bytes);
    // Only a duplicate stops the walk early: the text was already read as valid JSON.
    let _ = Walk {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut d);
    found.into_inner()
}

/// The body of `POST /timelines/{id}/commands`: one [`TimelineCommand`].
///
/// A well-formed body is read straight into the command. Anything else goes the way of
/// [`RawJson`] and [`command_from_value`], whose errors name the field. The direct read skips
/// building a `serde_json::Value` and tracking a path that only an error needs: that was about
/// an eighth of the server's CPU per command (docs/benchmarks.md).
///
/// The direct read only ever accepts what the careful one accepts, with the same result
/// (`tests::direct_read_agrees_with_the_careful_one`):
/// - a body that escapes U+0000 anywhere takes the careful path, which refuses such strings;
/// - the careful path reads the context and the action separately, ignoring unknown fields,
///   as the flattened direct read does;
/// - a duplicate key, which the careful path settles (the last wins), fails the direct read.
#[derive(Debug, Clone)]
pub struct CommandBody(pub TimelineCommand);

impl<S: Send + Sync> FromRequest<S> for CommandBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = json_bytes(req, state).await?;
        read_command(&bytes).map(CommandBody)
    }
}

/// [`CommandBody`]'s reading of a body already read.
pub fn read_command(bytes: &[u8]) -> Result<TimelineCommand, ApiError> {
    if !escapes_nul(bytes) {
        if let Ok(command) = serde_json::from_slice::<TimelineCommand>(bytes) {
            if members_come_back(bytes, &command) {
                return Ok(command);
            }
            // A member did not come back (or a `null` one, or one spelt with escapes): the
            // careful path decides, and names an unknown member as it always does.
            return command_from_value(parse_raw(bytes)?);
        }
    }
    command_from_value(parse_raw(bytes)?)
}

/// Whether the JSON text may hold U+0000 (which can only be written as an escape): `\u0000`
/// anywhere, even where it is a literal backslash followed by `u0000`. Erring that way only
/// sends a body to the careful path.
fn escapes_nul(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
}

/// Path parameters whose every rejection is a problem document: a segment that is not UTF-8
/// → 400; a segment holding U+0000 (which PostgreSQL cannot store or compare) or breaking the
/// id rules (empty, longer than 120 characters, control characters, surrounding spaces) → 422;
/// each with the parameter's name as `field`.
#[derive(Debug, Clone)]
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(path_rejection)?;
        for (key, value) in &raw {
            if value.contains('\0') {
                return Err(ApiError::invalid(key, NUL_REASON));
            }
            // Every path parameter is an id (timeline, unit, service code): one that breaks the
            // id rules could never name anything, so it is invalid (422) on every route rather
            // than unknown (404) on some.
            if let Err(e) = omorg_domain::UnitId::new(value) {
                return Err(ApiError::invalid(key, e.to_string()));
            }
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(t)| PathParams(t))
            .map_err(path_rejection)
    }
}

/// A path rejection as a 400 problem naming the parameter when axum knows it.
fn path_rejection(e: impl Into<PathRejectionAny>) -> ApiError {
    let PathRejectionAny(detail, field) = e.into();
    ApiError::BadRequest {
        detail: format!("malformed path: {detail}"),
        field,
    }
}

/// A path rejection of either extractor, reduced to its text and the parameter it names.
struct PathRejectionAny(String, Option<String>);

impl From<PathRejection> for PathRejectionAny {
    fn from(e: PathRejection) -> Self {
        let field = match &e {
            PathRejection::FailedToDeserializePathParams(d) => error_kind_key(d.kind()),
            _ => None,
        };
        Self(e.body_text(), field)
    }
}

impl From<RawPathParamsRejection> for PathRejectionAny {
    fn from(e: RawPathParamsRejection) -> Self {
        let field = match &e {
            RawPathParamsRejection::InvalidUtf8InPathParam(_) => {
                // axum's text is "Invalid URL: Invalid UTF-8 in `key`".
                let text = e.body_text();
                text.split('`').nth(1).map(str::to_owned)
            }
            _ => None,
        };
        Self(e.body_text(), field)
    }
}

/// The parameter an axum path error names, if any.
fn error_kind_key(kind: &ErrorKind) -> Option<String> {
    match kind {
        ErrorKind::InvalidUtf8InPathParam { key }
        | ErrorKind::ParseErrorAtKey { key, .. }
        | ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
        _ => None,
    }
}

/// Why a string holding U+0000 is refused.
pub const NUL_REASON: &str =
    "must not contain the NUL character (U+0000), which the database cannot store";

/// The JSON path (serde_path_to_error style, e.g. `action.areas[0].name`) of the first string
/// or object key in `value` that holds U+0000, if any.
pub fn find_nul(value: &serde_json::Value) -> Option<String> {
    fn walk(value: &serde_json::Value, path: &mut String) -> bool {
        match value {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(items) => items.iter().enumerate().any(|(i, v)| {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                let found = walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            serde_json::Value::Object(map) => map.iter().any(|(k, v)| {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                let found = k.contains('\0') || walk(v, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then_some(path)
}

/// Parses JSON text into `T`, classifying failures as [`JsonBody`] documents.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    from_value(value)
}

/// Deserialises an already-parsed JSON value into `T`, naming the offending field.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    from_value_at(value, "")
}

/// Like [`from_value`] for a value found at `prefix` (e.g. `action`), so that the reported field
/// is the full path.
pub fn from_value_at<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    if let Some(path) = find_nul(&value) {
        let field = match (prefix.is_empty(), path.is_empty()) {
            (true, true) => "body".to_owned(),
            (true, false) => path,
            (false, true) => prefix.to_owned(),
            (false, false) => format!("{prefix}.{path}"),
        };
        return Err(ApiError::invalid(field, NUL_REASON));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix.is_empty(), path == ".") {
            (true, true) => None,
            (true, false) => Some(path),
            (false, true) => Some(prefix.to_owned()),
            (false, false) => Some(format!("{prefix}.{path}")),
        };
        let message = e.inner().to_string();
        // serde reports a missing or unknown member at its parent's path: name the member.
        let field = match named_member(&message) {
            Some(member) => Some(match field {
                Some(parent) => format!("{parent}.{member}"),
                None => member.to_owned(),
            }),
            None => field,
        };
        classify_data_error(field, message)
    })
}

/// The member a serde "missing field `x`", "unknown field `x`, expected …" or "duplicate field
/// `x`" message names.
fn named_member(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("missing field `")
        .or_else(|| message.strip_prefix("unknown field `"))
        .or_else(|| message.strip_prefix("duplicate field `"))?;
    rest.split_once('`').map(|(member, _)| member)
}

/// Reads a [`TimelineCommand`] from JSON, naming the offending field precisely.
///
/// The command's context is `#[serde(flatten)]`ed, and serde loses field paths through
/// `flatten`; so the context and the action are read separately, each with its own path.
pub fn command_from_value(value: serde_json::Value) -> Result<TimelineCommand, ApiError> {
    let serde_json::Value::Object(mut map) = value else {
        return Err(ApiError::BadRequest {
            detail: "a command must be a JSON object".into(),
            field: None,
        });
    };
    let action = map.remove("action").ok_or_else(|| ApiError::BadRequest {
        detail: "the body does not match the expected shape: missing field `action`".into(),
        field: Some("action".into()),
    })?;
    // An action only omorg writes is refused for that (422) even when the body would fail to
    // read for another reason: a partial one would otherwise be a 400 for a missing field. A
    // whole one reads, and the service refuses it the same way.
    let reserved = action
        .get("type")
        .and_then(serde_json::Value::as_str)
        .and_then(crate::service::reserved_action);
    let raw_context = serde_json::Value::Object(map);
    let read = (|| {
        let context: ChangeContext = from_value(raw_context.clone())?;
        let action_read: Action = from_value_at(action.clone(), "action")
            .map_err(unlist_reserved)
            .map_err(|e| within_action(e, &action))?;
        refuse_unknown_members(&raw_context, &context, "")?;
        refuse_unknown_members(&action, &action_read, "action")?;
        Ok(TimelineCommand {
            context,
            action: action_read,
        })
    })();
    match (read, reserved) {
        (Err(_), Some(reason)) => Err(ApiError::invalid("action.type", reason)),
        (read, _) => read,
    }
}

/// An error serde could only place at `action` (a value inside a tagged action is read from a
/// buffered copy, which loses its path: an empty `to`, an id with surrounding spaces) placed at
/// the member, by reading the action's own fields once more as the type it names.
fn within_action(e: ApiError, action: &serde_json::Value) -> ApiError {
    use omorg_domain::*;
    let at_action = match &e {
        ApiError::Invalid { field, .. } => field == "action",
        ApiError::BadRequest { field, .. } => field.as_deref() == Some("action"),
        _ => false,
    };
    let (true, Some(ty), Some(members)) = (
        at_action,
        action.get("type").and_then(serde_json::Value::as_str),
        action.as_object(),
    ) else {
        return e;
    };
    let mut members = members.clone();
    members.remove("type");
    let fields = serde_json::Value::Object(members);
    /// The path of the first error reading `fields` as `T`, if it is below the top.
    fn path_in<T: DeserializeOwned>(fields: serde_json::Value) -> Option<String> {
        let path = serde_path_to_error::deserialize::<_, T>(fields)
            .err()?
            .path()
            .to_string();
        (path != ".").then_some(path)
    }
    // One arm per client action type (`Action`'s variants, by their tag): a type without one
    // keeps the error at `action`, as before, so a new action needs its arm here.
    let path = match ty {
        "EstablishUnit" => path_in::<UnitDef>(fields),
        "RenameUnit" => path_in::<Rename>(fields),
        "MoveUnit" => path_in::<Move>(fields),
        "DissolveUnit" => path_in::<Dissolve>(fields),
        "MergeUnits" => path_in::<Merge>(fields),
        "SplitUnit" => path_in::<Split>(fields),
        "TransferArea" => path_in::<AreaTransfer>(fields),
        "RegisterService" => path_in::<ServiceDef>(fields),
        "RetireService" => path_in::<ServiceRetirement>(fields),
        "AssignResponsibility" => path_in::<Assignment>(fields),
        "TransferResponsibility" => path_in::<ResponsibilityTransfer>(fields),
        "WithdrawResponsibility" => path_in::<Withdrawal>(fields),
        "CentraliseService" => path_in::<Centralisation>(fields),
        "DecentraliseService" => path_in::<Decentralisation>(fields),
        "OpenServicePoint" => path_in::<ServicePointDef>(fields),
        "CloseServicePoint" => path_in::<ServicePointClosure>(fields),
        "SetServicePointServices" => path_in::<ServicePointServices>(fields),
        "TransferServicePoint" => path_in::<ServicePointTransfer>(fields),
        "RevokeDecision" => path_in::<Revocation>(fields),
        _ => None,
    };
    let Some(path) = path else {
        return e;
    };
    let field = format!("action.{path}");
    match e {
        ApiError::Invalid { reason, index, .. } => ApiError::Invalid {
            field,
            reason,
            index,
        },
        ApiError::BadRequest { detail, .. } => ApiError::BadRequest {
            detail,
            field: Some(field),
        },
        other => other,
    }
}

/// An unknown action type's error without the types only omorg writes in its list of expected
/// ones: a client offered `RecordAdoption` would try it and be refused.
fn unlist_reserved(e: ApiError) -> ApiError {
    match e {
        ApiError::BadRequest { detail, field } if detail.contains("unknown variant") => {
            let mut detail = detail;
            for reserved in ["CreateTimeline", "ForkTimeline", "RecordAdoption"] {
                detail = detail
                    .replace(&format!("`{reserved}`, "), "")
                    .replace(&format!(", `{reserved}`"), "");
            }
            ApiError::BadRequest { detail, field }
        }
        other => other,
    }
}

/// The index N of a field named within a batch (`commands[N]` or `commands[N].…`).
fn batch_index(field: &str) -> Option<usize> {
    let (index, rest) = field.strip_prefix("commands[")?.split_once(']')?;
    (rest.is_empty() || rest.starts_with('.'))
        .then(|| index.parse().ok())
        .flatten()
}

/// [`command_from_value`] for command `index` of a batch: errors carry the index.
pub fn batch_command_from_value(
    value: serde_json::Value,
    index: usize,
) -> Result<TimelineCommand, ApiError> {
    // Said before the command is read, whole or not: in a batch the first command in error is
    // the one reported, and a later malformed command must not come before this one.
    if let Some(reason) = value
        .pointer("/action/type")
        .and_then(serde_json::Value::as_str)
        .and_then(crate::service::reserved_action)
    {
        return Err(ApiError::Invalid {
            field: format!("commands[{index}].action.type"),
            reason: reason.into(),
            index: Some(index),
        });
    }
    command_from_value(value).map_err(|e| match e {
        ApiError::Invalid { field, reason, .. } => ApiError::Invalid {
            field: format!("commands[{index}].{field}"),
            reason,
            index: Some(index),
        },
        ApiError::BadRequest { detail, field } => ApiError::BadRequest {
            detail: format!("command {index}: {detail}"),
            field: Some(match field {
                Some(f) => format!("commands[{index}].{f}"),
                None => format!("commands[{index}]"),
            }),
        },
        other => other,
    })
}

/// Shape errors (serde's own wording) are 400; anything else is a value a type refused: 422.
fn classify_data_error(field: Option<String>, message: String) -> ApiError {
    const SHAPE: [&str; 6] = [
        "missing field",
        "unknown variant",
        "unknown field",
        "invalid type",
        "invalid length",
        "duplicate field",
    ];
    if SHAPE.iter().any(|p| message.starts_with(p)) {
        ApiError::BadRequest {
            detail: format!("the body does not match the expected shape: {message}"),
            field,
        }
    } else {
        ApiError::Invalid {
            field: field.unwrap_or_else(|| "body".into()),
            reason: date_reason(&message).unwrap_or(message),
            index: None,
        }
    }
}

/// chrono's date parse errors ("input is out of range", …) in the user's terms: every date in
/// a body is a calendar date written `YYYY-MM-DD`.
fn date_reason(message: &str) -> Option<String> {
    const CHRONO: [&str; 6] = [
        "input is out of range",
        "input contains invalid characters",
        "premature end of input",
        "trailing input",
        "input is not enough for unique date and time",
        "no possible date and time matching input",
    ];
    CHRONO.contains(&message).then(|| {
        format!("must be a date that exists, written YYYY-MM-DD (e.g. 2025-02-28): {message}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Probe {
        unit: omorg_domain::UnitId,
        date: chrono::NaiveDate,
    }

    #[test]
    fn batch_index_is_read_from_a_field_within_a_batch() {
        assert_eq!(batch_index("commands[3].action.to"), Some(3));
        assert_eq!(batch_index("commands[0]"), Some(0));
        assert_eq!(batch_index("commands"), None);
        assert_eq!(batch_index("commands[x].action"), None);
        assert_eq!(batch_index("commands[1]x"), None);
        assert_eq!(batch_index("action.to"), None);
    }

    #[test]
    fn syntax_error_is_400() {
        let e = parse_json::<Probe>(b"{not json").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn missing_field_is_400_and_bad_value_is_422_with_field() {
        let e = parse_json::<Probe>(br#"{"unit": "a"}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        let e = parse_json::<Probe>(br#"{"unit": "", "date": "2025-01-01"}"#).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(e.problem().field.as_deref(), Some("unit"));
        let e = parse_json::<Probe>(br#"{"unit": "a", "date": "2025-13-01"}"#).unwrap_err();
        assert_eq!(e.problem().field.as_deref(), Some("date"));
    }

    /// The careful reading of a command body: a JSON value, then the context and the action.
    fn careful(body: &str) -> Result<TimelineCommand, ApiError> {
        command_from_value(parse_raw(body.as_bytes())?)
    }

    /// A well-formed command body with `context` and `action` spliced in.
    fn body(context: &str, action: &str) -> String {
        format!(
            r#"{{"command_id":"c-1","effective_from":"2026-01-01","actor":"a",{context}"decision":{{"case_number":"25/1","body":"Bystyret","decision_date":"2025-06-18","title":"T"}},"action":{{"type":"RenameUnit","unit":"alna",{action}"name":"Bydel Alna"}}}}"#
        )
    }

    #[test]
    fn an_escaped_nul_is_found_wherever_it_is() {
        for (text, found) in [
            (&b"no escapes at all"[..], false),
            (b"\\u0000", true),
            (b"at the end: \\u0000", true),
            (b"upper case \\U0000 too", true),
            (b"\\\\u0000", true), // a literal backslash before u0000: erring towards careful
            (b"too short \\u000", false),
            (b"another escape \\u0041", false),
        ] {
            assert_eq!(
                escapes_nul(text),
                found,
                "{}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn direct_read_agrees_with_the_careful_one() {
        let cases = [
            body("", ""),
            // Unknown fields: serde alone ignores them; the extractor refuses them (400).
            body(r#""extra":1,"#, r#""colour":"red","#),
            body("", r#""colour":"red","#),
            // Duplicate keys: the careful reading keeps the last.
            body(r#""actor":"b","#, ""),
            body("", r#""unit":"bjerke","#),
            body("", r#""type":"RenameUnit","#),
            body("", "").replacen(
                r#""actor":"a","#,
                r#""action":{"type":"RenameUnit","unit":"x","name":"y"},"actor":"a","#,
                1,
            ),
            // U+0000, escaped (refused) and a literal backslash before `u0000` (allowed).
            body("", "").replace("Bydel Alna", "Bydel\\u0000Alna"),
            body("", "").replace("Bydel Alna", "Bydel\\\\u0000Alna"),
        ];
        for case in &cases {
            // Where the extractor reads directly, it must read what the careful path reads.
            let direct = (!escapes_nul(case.as_bytes()))
                .then(|| serde_json::from_slice::<TimelineCommand>(case.as_bytes()).ok())
                .flatten();
            let careful = careful(case);
            if let (Some(direct), Ok(careful)) = (&direct, &careful) {
                assert_eq!(careful, direct, "{case}");
            }
            // Whatever the direct reading made of it, the extractor answers as the careful one.
            match (read_command(case.as_bytes()), careful) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{case}"),
                (Err(a), Err(b)) => assert_eq!(
                    serde_json::to_value(a.problem()).unwrap(),
                    serde_json::to_value(b.problem()).unwrap(),
                    "{case}"
                ),
                (a, b) => panic!("{case}: {a:?} vs {b:?}"),
            }
        }
        // Unknown members are named, the context's first, then the action's.
        for (case, field) in [(&cases[1], "extra"), (&cases[2], "action.colour")] {
            assert!(serde_json::from_slice::<TimelineCommand>(case.as_bytes()).is_ok());
            let e = read_command(case.as_bytes()).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{case}");
            assert_eq!(e.problem().field.as_deref(), Some(field), "{case}");
        }
        // serde alone would take the escaped U+0000; the extractor refuses it naming the field,
        // as the careful path does.
        assert!(serde_json::from_slice::<TimelineCommand>(cases[7].as_bytes()).is_ok());
        let e = read_command(cases[7].as_bytes()).unwrap_err();
        assert_eq!(e.problem().field.as_deref(), Some("action.name"));
        assert!(read_command(cases[8].as_bytes()).is_ok());
    }

    /// The paths of `text`'s members, as text (`.` between segments), for assertions.
    fn paths(text: &str) -> Vec<String> {
        serde_json::from_str::<serde_json::Value>(text).expect("valid JSON");
        member_paths(text.as_bytes())
            .iter()
            .map(|p| {
                let segments: Vec<_> = p.split(|&b| b == 0xFF).collect();
                let segments = &segments[..segments.len() - 1];
                segments
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect::<Vec<_>>()
                    .join(".")
            })
            .collect()
    }

    #[test]
    fn member_paths_follow_objects_and_arrays() {
        // A value holding `\":`, a name holding an escaped quote, `:` inside a value, and
        // objects inside arrays.
        let text = r#"{"a" : "x\":y", "b":{"c\"d":[1,{"e":null}, {"e": [ {"f":1} ]}]},"g":"h:"}"#;
        assert_eq!(
            paths(text),
            [
                "a",
                "b",
                r#"b.c\"d"#,
                r#"b.c\"d.1.e"#,
                r#"b.c\"d.2.e"#,
                r#"b.c\"d.2.e.0.f"#,
                "g"
            ]
        );
        assert_eq!(paths("[]"), Vec::<String>::new());
        assert_eq!(
            paths(r#"[{"a":{}},{"a":{"b":[]}}]"#),
            ["0.a", "1.a", "1.a.b"]
        );
    }

    #[test]
    fn members_come_back_by_path_not_by_name() {
        let mut command = serde_json::json!({
            "command_id": "c-1", "effective_from": "2024-01-01", "actor": "a",
            "decision": {"case_number": "1", "body": "B", "decision_date": "2023-01-01", "title": "T"},
            "action": {"type": "RenameUnit", "unit": "u", "name": "U"}
        });
        let read = |v: &serde_json::Value| -> TimelineCommand {
            serde_json::from_value(v.clone()).expect("a command")
        };
        let check = |v: &serde_json::Value| members_come_back(v.to_string().as_bytes(), &read(v));
        // `rationale` left out (it is written back as ""): fine, no second reading.
        assert!(check(&command));
        command["rationale"] = "why".into();
        assert!(check(&command));
        // The same name in the wrong object: it would come back elsewhere, but not there.
        let mut misplaced = command.clone();
        misplaced.as_object_mut().unwrap().remove("rationale");
        misplaced["action"]["rationale"] = "why".into();
        assert!(!check(&misplaced));
        let e = read_command(misplaced.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.problem().field.as_deref(), Some("action.rationale"));
        // Spelt with an escape: the careful path reads it (and accepts it).
        let escaped = command.to_string().replace("\"actor\"", r#""\u0061ctor""#);
        assert!(!members_come_back(escaped.as_bytes(), &read(&command)));
        assert_eq!(read_command(escaped.as_bytes()).unwrap(), read(&command));
        // Given twice: serde keeps one, the check does not pass it.
        let twice = command
            .to_string()
            .replace("\"title\":\"T\"", r#""title":"T","title":"T2""#);
        assert!(twice.contains("T2"), "{twice}");
        assert!(!members_come_back(twice.as_bytes(), &read(&command)));
        let e = read_command(twice.as_bytes()).unwrap_err();
        assert_eq!(e.problem().field.as_deref(), Some("decision.title"));
    }

    proptest::proptest! {
        /// Every command the domain can produce reads back as itself through the extractor.
        #[test]
        fn commands_read_back_as_written(ops in omorg_domain::testing::ops()) {
            let (_, _, commands) = omorg_domain::testing::build_commands(&ops)?;
            for c in commands {
                let text = serde_json::to_string(&c).unwrap();
                proptest::prop_assert_eq!(&read_command(text.as_bytes()).unwrap(), &c);
                proptest::prop_assert_eq!(&careful(&text).unwrap(), &c);
            }
        }
    }

    #[test]
    fn internal_errors_are_not_echoed() {
        let e = ApiError::internal(std::io::Error::other("secret path /etc/x"));
        assert!(!e.problem().detail.contains("secret"));
    }
}
