//! The HTTP routes: [`app`] builds the router; one handler per route, each stating the
//! permission it needs. Handlers only translate HTTP to [`crate::service::Omorg`] calls and back.

use crate::auth::{Caller, Permission, Writer};
use crate::error::{
    batch_command_from_value, ApiError, CommandBody, JsonBody, PathParams, Problem, RawJson,
    NUL_REASON,
};
use crate::queries::{
    AsOf, Changes, Comparison, DecisionLog, FeedPage, OrgChart, Replay, ReplayStep,
    Responsibilities, ResponsibilityChange, ServiceHistory, ServicePointChange, ServicePointDiff,
    ServiceVersion, StepChange, UnitChange, UnitHistory,
};
use crate::render::{self, Format};
use crate::service::{
    AdoptRequest, CommandResult, CreateTimelineRequest, EventPage, ForkRequest, StreamEventPage,
    TimelineSummary,
};
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use omorg_domain::TimelineCommand;
use omorg_projections::queries::DecisionFilter;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{OpenApi, ToSchema};

/// Largest request body accepted (a large batch or a fork request is well below this).
pub(crate) const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// What [`listen`] gives: a TCP listener whose connections have `TCP_NODELAY` set.
pub type Listener = axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)>;

/// Binds `addr` for [`axum::serve`], with `TCP_NODELAY` on every accepted connection (axum leaves
/// it off): without it, a response written in more than one piece waits for the client's
/// acknowledgement of the first (Nagle's algorithm), which a client may delay by up to 40 ms.
pub async fn listen(addr: impl tokio::net::ToSocketAddrs) -> std::io::Result<Listener> {
    use axum::serve::ListenerExt;
    fn no_delay(tcp: &mut tokio::net::TcpStream) {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
    }
    Ok(tokio::net::TcpListener::bind(addr)
        .await?
        .tap_io(no_delay as fn(&mut tokio::net::TcpStream)))
}

/// The router of the whole API on `state`. Tests serve it on port 0.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/timelines", post(create_timeline).get(list_timelines))
        .route("/timelines/{id}", get(show_timeline))
        .route("/timelines/{id}/fork", post(fork_timeline))
        .route("/timelines/{id}/adopt", post(adopt_scenario))
        .route("/timelines/{id}/commands", post(submit_command))
        .route("/timelines/{id}/batch", post(submit_batch))
        .route("/timelines/{id}/org-chart", get(org_chart))
        .route("/timelines/{id}/responsibilities", get(responsibilities))
        .route("/timelines/{id}/units/{unit}/history", get(unit_history))
        .route(
            "/timelines/{id}/services/{code}/history",
            get(service_history),
        )
        .route("/timelines/{id}/decisions", get(decisions))
        .route("/timelines/{id}/changes", get(changes))
        .route("/timelines/{id}/change-feed", get(change_feed))
        .route("/timelines/{id}/replay", get(replay))
        .route("/compare", get(compare))
        .route("/timelines/{id}/events", get(timeline_events))
        .route("/timelines/{id}/verify", get(verify))
        .route("/events", get(all_events))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        // Request id, span, count and log line (one layer: see access.rs for why).
        .layer(crate::access::AccessLayer)
        .with_state(state)
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "omorg", description = "Reorganising which public bodies are responsible for which services: timelines, scenarios, commands, org charts."),
    paths(
        create_timeline, list_timelines, show_timeline, fork_timeline, adopt_scenario, submit_command,
        submit_batch, org_chart, responsibilities, unit_history, service_history, decisions,
        changes, change_feed, replay, compare, timeline_events, all_events, verify, healthz,
        readyz, metrics
    ),
    components(schemas(crate::schemas::Command, crate::schemas::Decision, crate::schemas::RecordedEvent, crate::schemas::VerifyReport, Problem, TimelineSummary, CommandResult, CreateTimelineRequest, ForkRequest, AdoptRequest, BatchRequest, Created, OrgChart, Responsibilities, UnitHistory, ServiceHistory, ServiceVersion, DecisionLog, Changes, FeedPage, Replay, ReplayStep, StepChange, ResponsibilityChange, UnitChange, ServicePointChange, ServicePointDiff, Comparison, EventPage, StreamEventPage, Format)),
    modifiers(&BearerAuth, &ProblemResponses),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// Adds the bearer-token security scheme.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Makes every error response of the description say what the server does: every status of
/// 400 and above is `application/problem+json` with a [`Problem`] body, and every operation
/// lists the errors any request to it can meet:
///
/// - 401 and 403 where a token is needed; 500 everywhere but `/healthz` and `/metrics`, and 503
///   (database unreachable, read models lagging) there too;
/// - 400 (a path segment that is not UTF-8) and 422 (a value with U+0000, an invalid id) for
///   operations with path parameters; 422 for operations with query parameters;
/// - 400, 413 and 422 for operations with a request body;
/// - 414 and 431 everywhere (a request target or headers over the limits).
struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = || {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = matches!(path.as_str(), "/healthz" | "/metrics" | "/readyz");
            let infallible = matches!(path.as_str(), "/healthz" | "/metrics");
            for op in [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                let params = op.parameters.as_deref().unwrap_or_default();
                let has_path = params
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path));
                let has_query = params
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Query));
                let mut wanted: Vec<(&str, &str)> = Vec::new();
                if has_path || op.request_body.is_some() {
                    wanted.push((
                        "400",
                        "Malformed request (path not UTF-8, body not JSON or of the wrong shape)",
                    ));
                }
                if !public {
                    wanted.push(("401", "No token or an unknown token"));
                    wanted.push(("403", "The token's role may not do this"));
                }
                if op.request_body.is_some() {
                    wanted.push(("413", "The request body is over the size limit (16 MiB)"));
                }
                if has_path || has_query || op.request_body.is_some() {
                    wanted.push(("422", "An invalid value (named in `field`)"));
                }
                // Any request: checked before the route (access.rs).
                wanted.push(("414", "The request target is over the limit (16 KiB)"));
                wanted.push((
                    "431",
                    "The request headers are over the limit (64 KiB together)",
                ));
                if !infallible {
                    wanted.push(("500", "The server's fault (the cause is in the server log)"));
                    wanted.push((
                        "503",
                        "The database is unreachable or the read models lag (`Retry-After`)",
                    ));
                }
                for (code, description) in wanted {
                    op.responses
                        .responses
                        .entry(code.to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(description)
                                    .content("application/problem+json", problem())
                                    .build(),
                            )
                        });
                }
                for (code, response) in op.responses.responses.iter_mut() {
                    let is_error = code.parse::<u16>().is_ok_and(|c| c >= 400);
                    if let (true, RefOr::T(response)) = (is_error, response) {
                        if let Some(content) = response.content.shift_remove("application/json") {
                            response
                                .content
                                .insert("application/problem+json".to_owned(), content);
                        }
                    }
                }
            }
        }
    }
}

/// A batch of commands, applied all or nothing.
///
/// Documentation only: the handler reads each command separately so that errors name the
/// command's index and field.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BatchRequest {
    /// The commands, in order; each is decided against the state the earlier ones leave.
    #[schema(value_type = Vec<crate::schemas::Command>)]
    pub commands: Vec<TimelineCommand>,
}

/// A timeline just created or forked, and the command's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct Created {
    /// The timeline.
    pub timeline: TimelineSummary,
    /// The command's outcome.
    pub result: CommandResult,
}

/// Query-string parameters, decoded leniently so that each one's error names it.
#[derive(Debug, Default)]
struct Params(HashMap<String, String>);

/// The name of the first parameter of a raw query string whose name or value does not decode
/// to UTF-8 (`case_number=%FF`): the form decoder would put U+FFFD in its place and the query
/// would silently ask for something else.
fn not_utf8(raw: &str) -> Option<String> {
    fn decode(part: &str) -> Vec<u8> {
        let bytes = part.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            let escaped = match bytes.get(i..i + 3) {
                Some([b'%', h, l]) => hex(*h).zip(hex(*l)),
                _ => None,
            };
            match escaped {
                // Two hex digits make at most 255: the cast cannot truncate.
                Some((h, l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                None => {
                    out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
                    i += 1;
                }
            }
        }
        out
    }
    raw.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (n, v) = (decode(name), decode(value));
        (std::str::from_utf8(&n).is_err() || std::str::from_utf8(&v).is_err())
            .then(|| String::from_utf8_lossy(&n).into_owned())
    })
}

/// The parameters of the as-of queries (`as_of` and the recorded axis).
const AS_OF: [&str; 3] = ["as_of", "known_at", "known_version"];

/// The query check of a route that takes no parameters, as an extractor placed before the body:
/// a parameter is refused (400, naming it) before the body is read, so that `?dry_run=1` on a
/// command is reported for what it is even when the body has a problem of its own.
struct NoQuery;

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for NoQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Params::parse(parts.uri.query().map(str::to_owned), &[])?;
        Ok(Self)
    }
}

impl Params {
    /// Decodes `raw`, refusing (400, naming it) a parameter the route does not take or one
    /// given twice: a misspelt `knownat` silently answered as known now, or the second of two
    /// `as_of`s silently won, and the client took a different question's answer for its own.
    fn parse(raw: Option<String>, accepted: &[&str]) -> Result<Self, ApiError> {
        let raw = raw.unwrap_or_default();
        if let Some(name) = not_utf8(&raw) {
            return Err(ApiError::BadRequest {
                detail: format!(
                    "query parameter `{name}` is not UTF-8 once percent-decoded (encode text as \
                     UTF-8 before percent-encoding it)"
                ),
                field: Some(name),
            });
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw)
            .map_err(|e| ApiError::bad_request(format!("malformed query string: {e}")))?;
        if let Some((k, _)) = pairs
            .iter()
            .find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::invalid(k.replace('\0', "\\0"), NUL_REASON));
        }
        let mut params = HashMap::with_capacity(pairs.len());
        for (name, value) in pairs {
            if !accepted.contains(&name.as_str()) {
                let takes = if accepted.is_empty() {
                    "this route takes no query parameters".to_owned()
                } else {
                    format!("this route takes {}", accepted.join(", "))
                };
                return Err(ApiError::BadRequest {
                    detail: format!(
                        "unknown query parameter `{name}` (check its spelling): {takes}"
                    ),
                    field: Some(name),
                });
            }
            if params.contains_key(&name) {
                return Err(ApiError::BadRequest {
                    detail: format!("query parameter `{name}` is given more than once"),
                    field: Some(name),
                });
            }
            params.insert(name, value);
        }
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn date(&self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        self.get(name)
            .map(|s| {
                let d = omorg_domain::date::parse_date(s)
                    .map_err(|e| ApiError::invalid(name, e.to_string()))?;
                crate::service::check_date_range(name, d)
            })
            .transpose()
    }

    fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|s| {
                // Digits only: `u64`'s parser also takes a leading `+`.
                if !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ApiError::invalid(
                        name,
                        format!("{s:?} is not a non-negative integer"),
                    ));
                }
                // All digits and still not a u64: too large, which is what to say.
                s.parse::<u64>()
                    .map_err(|_| ApiError::invalid(name, format!("must be at most {}", i64::MAX)))
            })
            .transpose()
    }

    /// A non-negative integer the database stores as a signed 64-bit one (a version, a
    /// position): a larger one names nothing that can exist, so it is invalid rather than an
    /// empty page whose `next` could not be stored either.
    fn stored_number(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.number(name)?
            .map(|n| {
                i64::try_from(n)
                    .map_err(|_| ApiError::invalid(name, format!("must be at most {}", i64::MAX)))
            })
            .transpose()
    }

    /// A date (end of that day, UTC) or an RFC 3339 instant.
    fn instant(&self, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
        let Some(s) = self.get(name) else {
            return Ok(None);
        };
        // Without a time part it must be a date, and is refused as one (saying the form).
        let dated = omorg_domain::date::parse_date(s);
        if let Err(e) = &dated {
            if !s.contains(['T', 't', ' ']) {
                return Err(ApiError::invalid(
                    name,
                    format!("{e} (or an RFC 3339 time)"),
                ));
            }
        }
        if let Ok(d) = dated {
            let d = crate::service::check_date_range(name, d)?;
            return Ok(Some(
                d.and_time(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap_or_default())
                    .and_utc(),
            ));
        }
        let t = DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::invalid(
                    name,
                    format!("{s:?} is neither a date nor an RFC 3339 time"),
                )
            })?;
        // Compared in UTC, which may be another day than the one written: say so.
        if crate::service::check_date_range(name, t.date_naive()).is_err() {
            return Err(ApiError::invalid(
                name,
                format!(
                    "{s:?} is {} in UTC, outside the supported range 0001-01-01 to 9999-12-31",
                    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ),
            ));
        }
        Ok(Some(t))
    }

    fn format(&self, allowed: &[Format]) -> Result<Format, ApiError> {
        let Some(s) = self.get("format") else {
            return Ok(Format::Json);
        };
        let f = match s {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "dot" => Format::Dot,
            "mermaid" => Format::Mermaid,
            _ => Format::Json,
        };
        if allowed.contains(&f) && (s == "json" || f != Format::Json) {
            Ok(f)
        } else {
            let names: Vec<&str> = allowed
                .iter()
                .map(|f| match f {
                    Format::Json => "json",
                    Format::Csv => "csv",
                    Format::Dot => "dot",
                    Format::Mermaid => "mermaid",
                })
                .collect();
            Err(ApiError::invalid(
                "format",
                format!("{s:?} is not one of {}", names.join(", ")),
            ))
        }
    }

    /// `as_of` (default today) and the recorded axis: `known_at` or `known_version`.
    fn as_of(&self) -> Result<AsOf, ApiError> {
        let date = self.date("as_of")?.unwrap_or_else(crate::service::today);
        let (known_at, known_version) = (self.instant("known_at")?, self.number("known_version")?);
        if known_at.is_some() && known_version.is_some() {
            return Err(ApiError::invalid(
                "known_at",
                "give known_at or known_version, not both",
            ));
        }
        Ok(AsOf {
            date,
            known_version,
            known_at,
        })
    }

    /// A required parameter.
    fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .ok_or_else(|| ApiError::invalid(name, "is required"))
    }

    /// A required date.
    fn required_date(&self, name: &str) -> Result<NaiveDate, ApiError> {
        self.required(name)?;
        self.date(name)?
            .ok_or_else(|| ApiError::invalid(name, "is required"))
    }
}

fn text(format: Format, body: String) -> Response {
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// `value` as CSV rendered by `csv` when the caller asked for CSV, else as JSON: the two forms
/// every tabular query offers.
fn json_or_csv<T: serde::Serialize>(
    format: Format,
    value: T,
    csv: fn(&T) -> Result<String, csv::Error>,
) -> Result<Response, ApiError> {
    Ok(match format {
        Format::Csv => text(format, csv(&value).map_err(ApiError::internal)?),
        _ => Json(value).into_response(),
    })
}

/// Start a baseline timeline.
#[utoipa::path(post, path = "/timelines", request_body = CreateTimelineRequest,
    responses((status = 201, body = Created), (status = 400, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(name = "http.create_timeline", skip_all, fields(caller = %caller.name))]
async fn create_timeline(
    State(state): State<AppState>,
    Writer(caller): Writer,
    _: NoQuery,
    JsonBody(req): JsonBody<CreateTimelineRequest>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let (timeline, result) = state.app.create_timeline(req, &caller.name).await?;
    state.queries.nudge();
    Ok((StatusCode::CREATED, Json(Created { timeline, result })))
}

/// List timelines (baselines and scenarios).
#[utoipa::path(get, path = "/timelines", responses((status = 200, body = Vec<TimelineSummary>)))]
#[tracing::instrument(name = "http.list_timelines", skip_all)]
async fn list_timelines(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<TimelineSummary>>, ApiError> {
    caller.require(Permission::Query)?;
    Params::parse(query, &[])?;
    Ok(Json(state.app.list_timelines().await?))
}

/// One timeline.
#[utoipa::path(get, path = "/timelines/{id}", params(("id" = String, Path, description = "Timeline id")),
    responses((status = 200, body = TimelineSummary), (status = 404, body = Problem)))]
#[tracing::instrument(name = "http.show_timeline", skip(state, caller))]
async fn show_timeline(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<TimelineSummary>, ApiError> {
    caller.require(Permission::Query)?;
    Params::parse(query, &[])?;
    Ok(Json(state.app.summary(&id).await?))
}

/// Fork a scenario from a timeline at a version (default: its current one).
#[utoipa::path(post, path = "/timelines/{id}/fork", request_body = ForkRequest,
    params(("id" = String, Path, description = "Parent timeline id")),
    responses((status = 201, body = Created), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(name = "http.fork_timeline", skip(state, caller, req))]
async fn fork_timeline(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParams(id): PathParams<String>,
    _: NoQuery,
    JsonBody(req): JsonBody<ForkRequest>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let (timeline, result) = state.app.fork(&id, req, &caller.name).await?;
    state.queries.nudge();
    Ok((StatusCode::CREATED, Json(Created { timeline, result })))
}

/// Adopt a scenario into the timeline it was forked from: its own changes, applied all or
/// nothing under the adopting decision.
#[utoipa::path(post, path = "/timelines/{id}/adopt", request_body = AdoptRequest,
    params(("id" = String, Path, description = "The timeline the scenario was forked from")),
    responses((status = 200, body = CommandResult), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(name = "http.adopt_scenario", skip(state, caller, req))]
async fn adopt_scenario(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParams(id): PathParams<String>,
    _: NoQuery,
    JsonBody(req): JsonBody<AdoptRequest>,
) -> Result<Json<CommandResult>, ApiError> {
    let result = state.app.adopt(&id, req, &caller.name).await?;
    state.queries.nudge();
    Ok(Json(result))
}

/// Submit one command (JSON shape: `TimelineCommand` of the domain; see docs/api.md).
#[utoipa::path(post, path = "/timelines/{id}/commands", request_body(content = crate::schemas::Command, description = "A command: command_id, effective_from, decision, actor, rationale, action {type, …}"),
    params(("id" = String, Path, description = "Timeline id")),
    responses((status = 200, body = CommandResult), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(name = "http.submit_command", skip_all, fields(timeline = %id, command_id = tracing::field::Empty))]
async fn submit_command(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParams(id): PathParams<String>,
    _: NoQuery,
    CommandBody(command): CommandBody,
) -> Result<Json<CommandResult>, ApiError> {
    tracing::Span::current().record("command_id", command.context.command_id.as_str());
    let result = state
        .app
        .execute(&id, vec![command], false, &caller.name)
        .await?;
    state.queries.nudge();
    Ok(Json(result))
}

/// Submit several commands, applied all or nothing in one transaction.
#[utoipa::path(post, path = "/timelines/{id}/batch", request_body = BatchRequest,
    params(("id" = String, Path, description = "Timeline id")),
    responses((status = 200, body = CommandResult), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(name = "http.submit_batch", skip_all, fields(timeline = %id))]
async fn submit_batch(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathParams(id): PathParams<String>,
    _: NoQuery,
    RawJson(body): RawJson,
) -> Result<Json<CommandResult>, ApiError> {
    let Some(serde_json::Value::Array(items)) = body.get("commands").cloned() else {
        return Err(ApiError::BadRequest {
            detail: "a batch is {\"commands\": [ … ]}".into(),
            field: Some("commands".into()),
        });
    };
    // A batch has nothing but its commands: another member is a mistake, not a setting.
    if let Some(other) = body
        .as_object()
        .and_then(|members| members.keys().find(|k| *k != "commands"))
    {
        return Err(ApiError::BadRequest {
            detail: format!(
                "the body does not match the expected shape: unknown field `{other}` (a batch is {{\"commands\": [ … ]}})"
            ),
            field: Some(other.clone()),
        });
    }
    let commands = items
        .into_iter()
        .enumerate()
        .map(|(i, c)| batch_command_from_value(c, i))
        .collect::<Result<Vec<_>, _>>()?;
    let result = state.app.execute(&id, commands, true, &caller.name).await?;
    state.queries.nudge();
    Ok(Json(result))
}

/// The org chart on an effective date, optionally as known on a recorded date.
#[utoipa::path(get, path = "/timelines/{id}/org-chart",
    params(("id" = String, Path, description = "Timeline id"),
        ("as_of" = Option<String>, Query, description = "Effective date YYYY-MM-DD (default: today)"),
        ("known_at" = Option<String>, Query, description = "Recorded date or RFC 3339 time: what was known then"),
        ("known_version" = Option<u64>, Query, description = "Alternatively: only the first N events"),
        ("format" = Option<Format>, Query, description = "json (default), csv, dot or mermaid")),
    responses((status = 200, description = "The org chart in the requested format", content((OrgChart = "application/json"), (String = "text/csv"), (String = "text/vnd.graphviz"), (String = "text/plain"))), (status = 404, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(name = "http.org_chart", skip(state, caller, query))]
async fn org_chart(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Permission::Query)?;
    let params = Params::parse(query, &[AS_OF[0], AS_OF[1], AS_OF[2], "format"])?;
    let format = params.format(&[Format::Json, Format::Csv, Format::Dot, Format::Mermaid])?;
    let at = params.as_of()?;
    let chart = state.queries.org_chart(&id, at).await?;
    Ok(match format {
        Format::Json => Json(chart).into_response(),
        Format::Csv => text(
            format,
            render::org_chart_csv(&chart).map_err(ApiError::internal)?,
        ),
        Format::Dot => text(format, render::org_chart_dot(&chart)),
        Format::Mermaid => text(format, render::org_chart_mermaid(&chart)),
    })
}

/// Who is responsible for which service in which area on an effective date.
#[utoipa::path(get, path = "/timelines/{id}/responsibilities",
    params(("id" = String, Path, description = "Timeline id"),
        ("as_of" = Option<String>, Query, description = "Effective date YYYY-MM-DD (default: today)"),
        ("known_at" = Option<String>, Query, description = "Recorded date or RFC 3339 time: what was known then"),
        ("known_version" = Option<u64>, Query, description = "Alternatively: only the first N events"),
        ("format" = Option<Format>, Query, description = "json (default) or csv")),
    responses((status = 200, description = "The responsibility matrix in the requested format", content((Responsibilities = "application/json"), (String = "text/csv"))), (status = 404, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(name = "http.responsibilities", skip(state, caller, query))]
async fn responsibilities(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Permission::Query)?;
    let params = Params::parse(query, &[AS_OF[0], AS_OF[1], AS_OF[2], "format"])?;
    let format = params.format(&[Format::Json, Format::Csv])?;
    let at = params.as_of()?;
    let r = state.queries.responsibilities(&id, at).await?;
    json_or_csv(format, r, render::responsibilities_csv)
}

/// A unit's versions (as known now) and its lineage through merges and splits, both ways.
#[utoipa::path(get, path = "/timelines/{id}/units/{unit}/history",
    params(("id" = String, Path, description = "Timeline id"), ("unit" = String, Path, description = "Unit id")),
    responses((status = 200, body = UnitHistory), (status = 404, body = Problem, description = "Unknown timeline, or a unit the timeline never had"),
        (status = 422, body = Problem, description = "An id that breaks the id rules (field `id` or `unit`)"), (status = 503, body = Problem)))]
#[tracing::instrument(name = "http.unit_history", skip(state, caller))]
async fn unit_history(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, unit)): PathParams<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Json<UnitHistory>, ApiError> {
    caller.require(Permission::Query)?;
    Params::parse(query, &[])?;
    Ok(Json(state.queries.unit_history(&id, &unit).await?))
}

/// A service's names over time and who was responsible for it where, when.
#[utoipa::path(get, path = "/timelines/{id}/services/{code}/history",
    params(("id" = String, Path, description = "Timeline id"), ("code" = String, Path, description = "Service code"),
        ("format" = Option<Format>, Query, description = "json (default) or csv (the responsibility versions)")),
    responses((status = 200, description = "The service history in the requested format", content((ServiceHistory = "application/json"), (String = "text/csv"))), (status = 404, body = Problem, description = "Unknown timeline, or a service the timeline never had"),
        (status = 422, body = Problem, description = "An id that breaks the id rules (field `id` or `code`), or a bad `format`"), (status = 503, body = Problem)))]
#[tracing::instrument(name = "http.service_history", skip(state, caller, query))]
async fn service_history(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((id, code)): PathParams<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Permission::Query)?;
    let format = Params::parse(query, &["format"])?.format(&[Format::Json, Format::Csv])?;
    let h = state.queries.service_history(&id, &code).await?;
    json_or_csv(format, h, render::service_history_csv)
}

/// The decision log: every event with the decision behind it, in recorded order, with
/// `revoked_at` for decisions a later one revoked.
#[utoipa::path(get, path = "/timelines/{id}/decisions",
    params(("id" = String, Path, description = "Timeline id"),
        ("case_number" = Option<String>, Query, description = "Exact case number"),
        ("body" = Option<String>, Query, description = "Exact deciding body"),
        ("decided_from" = Option<String>, Query, description = "Decision date on or after (YYYY-MM-DD)"),
        ("decided_to" = Option<String>, Query, description = "Decision date on or before (YYYY-MM-DD)"),
        ("format" = Option<Format>, Query, description = "json (default) or csv")),
    responses((status = 200, description = "The decision log in the requested format", content((DecisionLog = "application/json"), (String = "text/csv"))), (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
#[tracing::instrument(name = "http.decisions", skip(state, caller, query))]
async fn decisions(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Permission::Query)?;
    let params = Params::parse(
        query,
        &[
            "case_number",
            "body",
            "decided_from",
            "decided_to",
            "format",
        ],
    )?;
    let format = params.format(&[Format::Json, Format::Csv])?;
    let filter = DecisionFilter {
        case_number: params.get("case_number").map(str::to_owned),
        body: params.get("body").map(str::to_owned),
        decided_from: params.date("decided_from")?,
        decided_to: params.date("decided_to")?,
    };
    let log = state.queries.decisions(&id, &filter).await?;
    json_or_csv(format, log, render::decisions_csv)
}

/// What changed between two effective dates (as known now): the decisions taking effect in
/// `(from, to]` and the net differences in responsibilities and units.
#[utoipa::path(get, path = "/timelines/{id}/changes",
    params(("id" = String, Path, description = "Timeline id"),
        ("from" = String, Query, description = "Exclusive start date (YYYY-MM-DD)"),
        ("to" = String, Query, description = "Inclusive end date (YYYY-MM-DD), not before `from`")),
    responses((status = 200, body = Changes), (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
#[tracing::instrument(name = "http.changes", skip(state, caller, query))]
async fn changes(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Changes>, ApiError> {
    caller.require(Permission::Query)?;
    let params = Params::parse(query, &["from", "to"])?;
    let (from, to) = (params.required_date("from")?, params.required_date("to")?);
    Ok(Json(state.queries.changes(&id, from, to).await?))
}

/// A timeline's change feed: every event as projected, with a one-line summary, paged by
/// global position.
#[utoipa::path(get, path = "/timelines/{id}/change-feed",
    params(("id" = String, Path, description = "Timeline id"),
        ("after_position" = Option<u64>, Query, description = "Entries after this global position (default 0; at most 2^63 - 1); a page's `next`"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, max 1000)"),
        ("format" = Option<Format>, Query, description = "json (default) or csv")),
    responses((status = 200, description = "A page of the change feed in the requested format", content((FeedPage = "application/json"), (String = "text/csv"))), (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
#[tracing::instrument(name = "http.change_feed", skip(state, caller, query))]
async fn change_feed(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Permission::Query)?;
    let params = Params::parse(query, &["after_position", "limit", "format"])?;
    let format = params.format(&[Format::Json, Format::Csv])?;
    let after = params.stored_number("after_position")?.unwrap_or(0);
    let page = state
        .queries
        .change_feed(&id, after, limit(&params)?)
        .await?;
    json_or_csv(format, page, render::change_feed_csv)
}

/// Two timelines side by side on a date (typically a baseline and a scenario): the
/// responsibilities and units that differ.
#[utoipa::path(get, path = "/compare",
    params(("a" = String, Query, description = "First timeline id"),
        ("b" = String, Query, description = "Second timeline id"),
        ("as_of" = Option<String>, Query, description = "Effective date YYYY-MM-DD (default: today)"),
        ("known_at" = Option<String>, Query, description = "Recorded date or RFC 3339 time: both timelines as known then"),
        ("a_known_version" = Option<u64>, Query, description = "Timeline a as known after its first N events (e.g. a scenario's forked_at_version: what the scenario itself changes)"),
        ("b_known_version" = Option<u64>, Query, description = "Timeline b as known after its first N events")),
    responses((status = 200, body = Comparison), (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
#[tracing::instrument(name = "http.compare", skip(state, caller, query))]
async fn compare(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Comparison>, ApiError> {
    caller.require(Permission::Query)?;
    let params = Params::parse(
        query,
        &[
            "a",
            "b",
            "a_known_version",
            "b_known_version",
            "known_version",
            AS_OF[0],
            AS_OF[1],
        ],
    )?;
    let (a, b) = (params.required("a")?, params.required("b")?);
    if params.get("known_version").is_some() {
        // A version counts one timeline's own events: it means nothing for the other one.
        return Err(ApiError::invalid(
            "known_version",
            "counts one timeline's events; use a_known_version and b_known_version, or \
             known_at for an instant",
        ));
    }
    let (a_known, b_known) = (
        params.number("a_known_version")?,
        params.number("b_known_version")?,
    );
    Ok(Json(
        state
            .queries
            .compare((a, a_known), (b, b_known), params.as_of()?)
            .await?,
    ))
}

/// A timeline's events after a version, in version order (auditor).
#[utoipa::path(get, path = "/timelines/{id}/events",
    params(("id" = String, Path, description = "Timeline id"),
        ("after_version" = Option<u64>, Query, description = "Return events after this version (default 0; at most 2^63 - 1)"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, max 1000)")),
    responses((status = 200, body = StreamEventPage), (status = 403, body = Problem), (status = 404, body = Problem)))]
#[tracing::instrument(name = "http.timeline_events", skip(state, caller, query))]
async fn timeline_events(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<StreamEventPage>, ApiError> {
    caller.require(Permission::Audit)?;
    let params = Params::parse(query, &["after_version", "limit"])?;
    let after = params.stored_number("after_version")?.unwrap_or(0);
    let limit = limit(&params)?;
    Ok(Json(
        state
            .app
            .stream_events(&id, after.unsigned_abs(), limit)
            .await?,
    ))
}

/// Every timeline's events after a checkpoint, in the global order (auditor).
#[utoipa::path(get, path = "/events",
    params(("after" = Option<String>, Query, description = "Checkpoint `<tx>-<position>` from a previous page's `next` (default: the start); on SQLite always `0-<position>`"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, max 1000)")),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 403, body = Problem)))]
#[tracing::instrument(name = "http.all_events", skip(state, caller, query))]
async fn all_events(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<EventPage>, ApiError> {
    caller.require(Permission::Audit)?;
    let params = Params::parse(query, &["after", "limit"])?;
    let limit = limit(&params)?;
    let after = params.get("after").unwrap_or("");
    Ok(Json(state.app.all_events(after, limit).await?))
}

fn limit(params: &Params) -> Result<u32, ApiError> {
    match params.number("limit")? {
        None => Ok(100),
        Some(n) if (1..=u64::from(crate::service::MAX_PAGE)).contains(&n) => Ok(n as u32),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {}", crate::service::MAX_PAGE),
        )),
    }
}

/// Replay a timeline's decision history a step at a time: each event with its decision and the
/// organisation just before and just after it.
#[utoipa::path(get, path = "/timelines/{id}/replay",
    params(("id" = String, Path, description = "Timeline id"),
        ("after_version" = Option<u64>, Query, description = "Steps after this version (default 0; at most 2^63 - 1); a page's `next`"),
        ("limit" = Option<u32>, Query, description = "At most this many steps (default 100, max 1000)")),
    responses((status = 200, body = Replay), (status = 404, body = Problem), (status = 422, body = Problem), (status = 503, body = Problem)))]
#[tracing::instrument(name = "http.replay", skip(state, caller, query))]
async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Replay>, ApiError> {
    caller.require(Permission::Query)?;
    let params = Params::parse(query, &["after_version", "limit"])?;
    let after = params.stored_number("after_version")?.unwrap_or(0);
    let limit = limit(&params)?;
    Ok(Json(
        state
            .queries
            .replay(&id, after.unsigned_abs(), limit)
            .await?,
    ))
}

/// Walk a timeline's hash chain and report the first altered or missing event (auditor).
#[utoipa::path(get, path = "/timelines/{id}/verify", params(("id" = String, Path, description = "Timeline id"),
        ("head_version" = Option<u64>, Query, description = "With head_hash: the head of an earlier verification, which the chain must still reach (a deleted tail is caught)"),
        ("head_hash" = Option<String>, Query, description = "The hash at head_version (64 hex digits)")),
    responses((status = 200, body = crate::schemas::VerifyReport, description = "Verification: events_checked, head, first_break (null when intact)"), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
#[tracing::instrument(name = "http.verify", skip(state, caller, query))]
async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(id): PathParams<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.require(Permission::Audit)?;
    let params = Params::parse(query, &["head_version", "head_hash"])?;
    let head = match (params.number("head_version")?, params.get("head_hash")) {
        (None, None) => None,
        (Some(0), _) => return Err(ApiError::invalid("head_version", "must be at least 1")),
        (Some(version), Some(hash)) => {
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::invalid(
                    "head_hash",
                    "must be 64 hexadecimal digits",
                ));
            }
            Some((version, hash.to_ascii_lowercase()))
        }
        (Some(_), None) => {
            return Err(ApiError::invalid(
                "head_hash",
                "is required with head_version",
            ))
        }
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "head_version",
                "is required with head_hash",
            ))
        }
    };
    let v = state.app.verify(&id, head.as_ref()).await?;
    let intact = v.is_intact();
    let mut body = serde_json::to_value(&v).map_err(ApiError::internal)?;
    if let Some(o) = body.as_object_mut() {
        o.insert("intact".into(), intact.into());
    }
    Ok(Json(body).into_response())
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, description = "ok")))]
#[tracing::instrument(name = "http.healthz")]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers and the projector has caught up with the events committed
/// before the server started (until then queries would wait and answer 503).
#[utoipa::path(get, path = "/readyz", security(()), responses((status = 200, description = "ready"), (status = 503, body = Problem, description = "the database does not answer (`unavailable`), or the read models are still catching up (`projection-catching-up`)")))]
#[tracing::instrument(name = "http.readyz", skip(state))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    let ok = match state.app.db() {
        omorg_store::Database::Postgres(pool) => {
            sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
        }
        omorg_store::Database::Sqlite(pool) => {
            sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
        }
    };
    ok.map_err(|e| ApiError::Unavailable(e.into()))?;
    if !state.queries.caught_up() {
        return Err(ApiError::CatchingUp);
    }
    Ok("ready\n")
}

/// Prometheus metrics (request counts by route and status, commands accepted and refused).
#[utoipa::path(get, path = "/metrics", security(()), responses((status = 200, description = "Prometheus text format")))]
#[tracing::instrument(name = "http.metrics")]
async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// The OpenAPI 3.1 document.
#[tracing::instrument(name = "http.openapi")]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// A known route with the wrong method: 405 as a problem document (axum adds `Allow`).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

/// Unknown routes answer a problem document too.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound {
        what: "route",
        id: uri.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener as _;

    #[tokio::test]
    async fn accepted_connections_have_no_delay() {
        let mut listener = super::listen("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay().unwrap(), "the server's side");
        drop(client);
    }
}
