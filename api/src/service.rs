//! [`Omorg`]: the application layer shared by the HTTP handlers and the CLI.
//!
//! It turns requests (create a timeline, fork it, run commands, read the log) into store calls
//! and domain values, and store/domain failures into [`ApiError`]s. Nothing here knows HTTP.

use crate::adoption::{self, Plan};
use crate::batch::{BatchRefusal, Commands, TimelineBatch};
use crate::error::ApiError;
use chrono::{Datelike, NaiveDate, Utc};
use omorg_domain::{
    Action, Adoption, Change, ChangeContext, CommandId, DecisionRef, DomainError, Fork, Timeline,
    TimelineCommand, TimelineDef, TimelineEvent, TimelineId,
};
use omorg_store::{
    Checkpoint, CommandError, CommandMetadata, Database, Outcome, RecordedEvent, Store,
    StoreConfig, Verification,
};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

/// The columns of the timeline-listing query (same order on both backends).
type ListingRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// Reads a [`ListingRow`] out of a row of either backend.
macro_rules! listing_row {
    ($row:expr) => {
        (|| -> Result<ListingRow, sqlx::Error> {
            Ok((
                $row.try_get(0)?,
                $row.try_get(1)?,
                $row.try_get(2)?,
                $row.try_get(3)?,
                $row.try_get(4)?,
                $row.try_get(5)?,
                $row.try_get(6)?,
                $row.try_get(7)?,
                $row.try_get(8)?,
                $row.try_get(9)?,
            ))
        })()
        .map_err(|e| ApiError::from(omorg_store::StoreError::from(e)))
    };
}

/// The running application: the store and the database behind it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Omorg {
    /// The event store, commanded in batches (a single command is a batch of one).
    pub store: Store<TimelineBatch>,
}

/// Request to start a baseline timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateTimelineRequest {
    /// The new timeline's id (a slug such as `oslo`); generated when absent. Give it to make a
    /// retry safe.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "oslo")]
    pub id: Option<TimelineId>,
    /// Name, e.g. "Oslo kommune".
    #[schema(example = "Oslo kommune")]
    pub name: String,
    /// Free description.
    #[serde(default, deserialize_with = "omorg_domain::null_as_default")]
    pub description: String,
    /// Command id; defaults to `create:<id>`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub command_id: Option<CommandId>,
    /// Effective date of the timeline's start; defaults to today.
    #[serde(default, deserialize_with = "omorg_domain::date::strict_option")]
    pub effective_from: Option<NaiveDate>,
    /// The decision behind it; a neutral "omorg" reference when absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::Decision>)]
    pub decision: Option<DecisionRef>,
    /// Free text: why.
    #[serde(default, deserialize_with = "omorg_domain::null_as_default")]
    pub rationale: String,
}

/// Request to adopt a scenario into the timeline it was forked from.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AdoptRequest {
    /// The scenario: a timeline forked from this one.
    #[schema(value_type = String, example = "oslo-alt-1")]
    pub scenario: TimelineId,
    /// The decision that adopts it (e.g. the city council's): every adopted change rests on it.
    #[schema(value_type = crate::schemas::Decision)]
    pub decision: DecisionRef,
    /// Command id of the adoption; defaults to `adopt:<scenario>`. The adopted changes get
    /// `<command_id>/<version>`, `<version>` being the change's version in the scenario.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub command_id: Option<CommandId>,
    /// Free text: why this alternative; prefixed to each adopted change's own rationale.
    #[serde(default, deserialize_with = "omorg_domain::null_as_default")]
    pub rationale: String,
}

/// Request to fork a scenario from a timeline.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ForkRequest {
    /// The scenario's id; generated when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "oslo-alt-1")]
    pub id: Option<TimelineId>,
    /// Name, e.g. "Alternative 1".
    pub name: String,
    /// How many of the parent's events to start from; defaults to all of them.
    #[serde(default)]
    pub version: Option<u64>,
    /// Command id; defaults to `fork:<id>`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub command_id: Option<CommandId>,
    /// Effective date recorded on the fork event; defaults to today.
    #[serde(default, deserialize_with = "omorg_domain::date::strict_option")]
    pub effective_from: Option<NaiveDate>,
    /// The decision behind it; a neutral "omorg" reference when absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::schemas::Decision>)]
    pub decision: Option<DecisionRef>,
    /// Free text: why.
    #[serde(default, deserialize_with = "omorg_domain::null_as_default")]
    pub rationale: String,
}

/// A timeline as listed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TimelineSummary {
    /// Id (the event stream).
    pub id: String,
    /// Name.
    pub name: String,
    /// Free description (a scenario has none).
    pub description: String,
    /// `baseline` or `scenario`.
    pub kind: String,
    /// The effective date of its creation or fork: where its own history starts. (Changes
    /// dated earlier are accepted: a timeline created today can record the history before.)
    #[schema(value_type = String, format = Date)]
    pub effective_from: NaiveDate,
    /// For a scenario: the parent timeline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forked_from: Option<String>,
    /// For a scenario: the parent's version it starts from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forked_at_version: Option<u64>,
    /// Number of events in the timeline's own stream.
    pub version: u64,
    /// For a scenario whose changes were adopted: the timeline they went into (its parent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted_into: Option<String>,
    /// That timeline's version after the last adoption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adopted_into_version: Option<u64>,
}

/// One event as reported after a command.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventRef {
    /// Version in the timeline's stream.
    pub version: u64,
    /// Global checkpoint, usable as `GET /events?after=`.
    pub checkpoint: String,
    /// Event type, e.g. `UnitEstablished`.
    pub event_type: String,
    /// The command that produced it.
    pub command_id: String,
}

/// What running commands did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandResult {
    /// The timeline.
    pub timeline: String,
    /// The timeline's version after the commands.
    pub version: u64,
    /// True when every command had already been applied (a retry): nothing new was written.
    pub duplicate: bool,
    /// The events written (or, for a retry of a whole request, the original ones).
    pub events: Vec<EventRef>,
}

impl CommandResult {
    fn from_outcome(outcome: Outcome<TimelineEvent>) -> Self {
        Self {
            timeline: outcome.stream_id,
            version: outcome.version,
            duplicate: outcome.duplicate || outcome.events.is_empty(),
            events: outcome.events.into_iter().map(EventRef::from).collect(),
        }
    }
}

impl From<omorg_store::Committed<TimelineEvent>> for EventRef {
    fn from(c: omorg_store::Committed<TimelineEvent>) -> Self {
        Self {
            version: c.record.stream_version,
            checkpoint: c.record.checkpoint.to_string(),
            command_id: c.event.context.command_id.to_string(),
            event_type: c.record.event_type,
        }
    }
}

/// A page of the global event log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventPage {
    /// The events, oldest first.
    #[schema(value_type = Vec<crate::schemas::RecordedEvent>)]
    pub events: Vec<RecordedEvent>,
    /// Where to continue: pass as `after`. Equal to the request's when the page is empty.
    pub next: String,
}

/// A page of one timeline's events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamEventPage {
    /// The events, in version order.
    #[schema(value_type = Vec<crate::schemas::RecordedEvent>)]
    pub events: Vec<RecordedEvent>,
    /// The last version on this page: pass it as `after_version` for the next (the request's
    /// when the page is empty). A number, as on the other version- and position-paged routes
    /// (`/replay`, `/change-feed`).
    pub next: u64,
}

/// How the service's store is tuned. Snapshots are off: a timeline's aggregate is its whole
/// history (every as-of question needs it), so a snapshot is as large as the log and costs that
/// much to write, every `snapshot_every` events, on the command path. Measured on a
/// 100 000-event timeline: writing one took ~1.4 s, while it saved ~0.9 s of a cold load that
/// happens once per process (the cache spares the rest); with a snapshot every 100 events,
/// commands through HTTP ran at ~60 % of the rate without. ADR 0003, amendment.
///
/// Refusals are final: the timeline answers a retry (same command id, same request) with no
/// events, which the store turns into the original outcome, and refuses a command id reused for
/// a different request (`command-id-reused`), which must reach the client as a 409, not as a
/// "duplicate" that silently drops the new request.
pub const TIMELINE_STORE: StoreConfig = StoreConfig {
    snapshot_every: 0,
    cache_capacity: 1024,
    append_connections: StoreConfig::DEFAULT_APPEND_CONNECTIONS,
    refusals_are_final: true,
};

/// An error of a command the service built from a create or fork request, with its field named
/// as the client wrote it: the request's `name` is the command's `action.name`.
fn request_fields(e: ApiError) -> ApiError {
    match e {
        ApiError::Invalid {
            field,
            reason,
            index,
        } => ApiError::Invalid {
            field: field
                .strip_prefix("action.")
                .map_or(field.clone(), str::to_owned),
            reason,
            index,
        },
        other => other,
    }
}

/// The largest page of events served at once.
pub const MAX_PAGE: u32 = 1000;

impl Omorg {
    /// The application on a connected, migrated database.
    pub fn new(db: Database) -> Self {
        Self {
            store: Store::new(db, ())
                .with_config(TIMELINE_STORE)
                .with_upcasters(timeline_upcasters()),
        }
    }

    /// The database.
    pub fn db(&self) -> &Database {
        self.store.database()
    }

    /// Starts a baseline timeline.
    #[tracing::instrument(name = "omorg.create_timeline", skip(self, req), fields(id))]
    pub async fn create_timeline(
        &self,
        req: CreateTimelineRequest,
        actor: &str,
    ) -> Result<(TimelineSummary, CommandResult), ApiError> {
        let (id, command) = self.creation(req, actor).await?;
        tracing::Span::current().record("id", id.as_str());
        let result = match self.run(id.as_str(), vec![command], false, actor).await {
            Ok(result) => result,
            Err(e) => return Err(self.already_started(id.as_str(), request_fields(e)).await),
        };
        let summary = self.summary(id.as_str()).await?;
        Ok((summary, result))
    }

    /// The command that starts timeline `req.id` (generated when absent), with the defaults a
    /// retry takes from the event it is retrying.
    async fn creation(
        &self,
        req: CreateTimelineRequest,
        actor: &str,
    ) -> Result<(TimelineId, TimelineCommand), ApiError> {
        let id = req.id.clone().unwrap_or_else(generated_id);
        let command_id = match req.command_id {
            Some(c) => c,
            None => derived_command_id("create", id.as_str(), 0)?,
        };
        let earlier = self.started_by(id.as_str(), &command_id).await?;
        let effective_from = req
            .effective_from
            .or(earlier.as_ref().map(|e| e.context.effective_from))
            .unwrap_or_else(today);
        let decision = req
            .decision
            .unwrap_or_else(|| neutral_decision(effective_from, &format!("Create {}", req.name)));
        let command = TimelineCommand {
            context: ChangeContext {
                command_id,
                effective_from,
                decision,
                actor: actor.to_owned(),
                rationale: req.rationale,
            },
            action: Action::CreateTimeline(TimelineDef {
                name: req.name,
                description: req.description,
            }),
        };
        Ok((id, command))
    }

    /// Starts a baseline timeline (as [`Omorg::create_timeline`]) and applies `commands` to it
    /// in the same all-or-nothing batch: if any is refused, the timeline is not created either
    /// (`omorg import --create`). Errors name the commands' indexes in `commands`.
    #[tracing::instrument(name = "omorg.create_with", skip(self, req, commands), fields(id = tracing::field::Empty, commands = commands.len()))]
    pub async fn create_with(
        &self,
        req: CreateTimelineRequest,
        commands: Vec<TimelineCommand>,
        actor: &str,
    ) -> Result<CommandResult, ApiError> {
        let (id, create) = self.creation(req, actor).await?;
        tracing::Span::current().record("id", id.as_str());
        let batch = std::iter::once(create).chain(commands).collect();
        // Index 0 is the creation; the caller's command i is i + 1 in the batch.
        self.run(id.as_str(), batch, true, actor)
            .await
            .map_err(|e| match e {
                ApiError::Refused { source, index } => ApiError::Refused {
                    source,
                    index: index.and_then(|i| i.checked_sub(1)),
                },
                ApiError::Invalid {
                    field,
                    reason,
                    index,
                } => ApiError::Invalid {
                    field: renumbered(&field),
                    reason,
                    index: index.and_then(|i| i.checked_sub(1)),
                },
                other => other,
            })
    }

    /// A create or fork refused because timeline `id` exists (under another request, or with
    /// the same command id and another body): said as that, with what the timeline is, instead
    /// of as a command id the client may never have given.
    async fn already_started(&self, id: &str, e: ApiError) -> ApiError {
        let started = matches!(
            &e,
            ApiError::Refused {
                source: DomainError::TimelineAlreadyStarted | DomainError::CommandIdReused { .. },
                ..
            }
        );
        if !started {
            return e;
        }
        let Ok(existing) = self.summary(id).await else {
            return e;
        };
        let what = match (&existing.forked_from, existing.forked_at_version) {
            (Some(parent), Some(v)) => {
                format!("a scenario forked from {parent} at version {v}")
            }
            _ => "a baseline".to_owned(),
        };
        ApiError::Conflict {
            rule: "timeline-already-started",
            detail: format!(
                "timeline {id} already exists ({what} named {:?}, at version {}); only a retry \
                 of the request that made it (the same name, description, date, decision, \
                 rationale, parent and `command_id`) is answered as a duplicate",
                existing.name, existing.version
            ),
        }
    }

    /// Forks a scenario from `parent` at `req.version` (default: its current version).
    #[tracing::instrument(name = "omorg.fork", skip(self, req), fields(id))]
    pub async fn fork(
        &self,
        parent: &str,
        req: ForkRequest,
        actor: &str,
    ) -> Result<(TimelineSummary, CommandResult), ApiError> {
        let parent_id = timeline_id(parent)?;
        let parent_events = self.store.load_stream(parent).await?;
        if parent_events.is_empty() {
            return Err(ApiError::timeline_not_found(parent));
        }
        let current = parent_events.len() as u64;
        let id = req.id.clone().unwrap_or_else(generated_id);
        tracing::Span::current().record("id", id.as_str());
        let command_id = match req.command_id {
            Some(c) => c,
            None => derived_command_id("fork", id.as_str(), 0)?,
        };
        // A retry takes the defaults the original request was given (the parent's version and
        // the date then), so that it is the same command even after the parent moved on.
        let earlier = match self.started_by(id.as_str(), &command_id).await? {
            Some(TimelineEvent {
                context,
                change: Change::TimelineForked(f),
            }) if f.parent == parent_id => Some((f.parent_version, context.effective_from)),
            _ => None,
        };
        let version = req.version.or(earlier.map(|(v, _)| v)).unwrap_or(current);
        if version == 0 || version > current {
            return Err(ApiError::invalid(
                "version",
                format!("must be between 1 and the parent's version {current}"),
            ));
        }
        let base: Vec<TimelineEvent> = parent_events
            .into_iter()
            .take(usize::try_from(version).unwrap_or(usize::MAX))
            .map(|c| c.event)
            .collect();
        let effective_from = req
            .effective_from
            .or(earlier.map(|(_, d)| d))
            .unwrap_or_else(today);
        let decision = req.decision.unwrap_or_else(|| {
            neutral_decision(effective_from, &format!("Fork {} from {parent}", req.name))
        });
        let command = TimelineCommand {
            context: ChangeContext {
                command_id,
                effective_from,
                decision,
                actor: actor.to_owned(),
                rationale: req.rationale,
            },
            action: Action::ForkTimeline(Fork {
                name: req.name,
                parent: parent_id,
                parent_version: version,
                base,
            }),
        };
        let result = match self.run(id.as_str(), vec![command], false, actor).await {
            Ok(result) => result,
            Err(e) => return Err(self.already_started(id.as_str(), request_fields(e)).await),
        };
        let summary = self.summary(id.as_str()).await?;
        Ok((summary, result))
    }

    /// Adopts scenario `req.scenario` into `timeline`, the timeline it was forked from: the
    /// scenario's own changes (those after its fork), in their order and with their effective
    /// dates, are applied to `timeline` as one batch, all or nothing, each resting on the
    /// adopting decision. They are checked against `timeline` as it stands now, including what
    /// was recorded on it after the fork: a change that no longer fits is refused with its rule,
    /// and nothing is written. The ids are derived from the adoption's command id, so a retry is
    /// a no-op and adopting again after the scenario went on adds only its new changes.
    ///
    /// As with a command, a conflict on a cache another process overtook is met by planning
    /// and deciding once more on the reloaded timelines (see [`Omorg::run`]).
    #[tracing::instrument(name = "omorg.adopt", skip(self, req), fields(scenario = %req.scenario))]
    pub async fn adopt(
        &self,
        timeline: &str,
        req: AdoptRequest,
        actor: &str,
    ) -> Result<CommandResult, ApiError> {
        match self.adopt_once(timeline, req.clone(), actor).await {
            Err(ApiError::Conflict {
                rule: "concurrent-modification",
                ..
            }) => self.adopt_once(timeline, req, actor).await,
            result => result,
        }
    }

    /// One attempt of [`Omorg::adopt`].
    async fn adopt_once(
        &self,
        timeline: &str,
        req: AdoptRequest,
        actor: &str,
    ) -> Result<CommandResult, ApiError> {
        // An unknown timeline is 404 (as everywhere), not a scenario "forked from another one".
        // The aggregate stays cached for the batch below.
        self.read(timeline, |_| ()).await?;
        // The adopting decision is checked before anything else: a repeated adoption answers
        // without deciding a command, and must not accept what a first one would refuse.
        let adopting = ChangeContext {
            command_id: command_id("adopt")?,
            effective_from: req.decision.decision_date,
            decision: req.decision.clone(),
            actor: actor.to_owned(),
            rationale: req.rationale.clone(),
        };
        check_date_range("decision.decision_date", req.decision.decision_date)?;
        Timeline::check_context(&adopting).map_err(|e| ApiError::from_domain(e, None))?;
        let scenario = req.scenario.as_str();
        let recorded = self.store.load_stream(scenario).await?;
        let Some(first) = recorded.first() else {
            return Err(ApiError::NotFound {
                what: "scenario",
                id: scenario.to_owned(),
            });
        };
        match &first.event.change {
            Change::TimelineForked(f) if f.parent.as_str() == timeline => {}
            Change::TimelineForked(f) => {
                return Err(ApiError::invalid(
                    "scenario",
                    format!("was forked from {}, not from {timeline}", f.parent),
                ))
            }
            _ => {
                return Err(ApiError::invalid(
                    "scenario",
                    "is not a scenario: it was not forked from another timeline",
                ))
            }
        }
        // The scenario's own changes; its records of earlier adoptions are not changes.
        let own: Vec<_> = recorded[1..]
            .iter()
            .filter(|c| !matches!(c.event.change, Change::ScenarioAdopted(_)))
            .collect();
        if own.is_empty() {
            return Err(ApiError::invalid(
                "scenario",
                "has no changes of its own to adopt",
            ));
        }
        // The adoption ids this scenario was adopted into `timeline` under before (each record's
        // id is `<adoption>/adopted-<version>`). Copies are found by their ids, so adopting again
        // under another id would copy every change a second time: the default is the earlier
        // id, and another one is refused.
        let earlier: Vec<&str> =
            earlier_adoptions(recorded[1..].iter().map(|c| &c.event), timeline).collect();
        let adoption = match (&req.command_id, earlier.last()) {
            (Some(c), _) if earlier.contains(&c.as_str()) => c.clone(),
            (Some(_), Some(before)) => {
                return Err(ApiError::invalid(
                    "command_id",
                    format!(
                        "{scenario} was adopted into {timeline} under the command id {before}: \
                         adopt it again under that id (or without one), which adds only its \
                         new changes; another id would copy its changes a second time"
                    ),
                ))
            }
            (None, Some(before)) => command_id(before)?,
            (Some(c), None) => c.clone(),
            // Room for the ids derived from it: `/<version>` and `/adopted-<version>`.
            (None, None) => derived_command_id("adopt", scenario, ADOPTION_SUFFIX_ROOM)?,
        };
        // Planned against the parent as it stands (its aggregate, cached for the batch below).
        let Plan { commands, places } = self
            .store
            .with_aggregate(timeline, |t, _| {
                adoption::plan(&t.0, scenario, &own, &adoption, &req, actor)
            })
            .await??;
        let into = TimelineId::new(timeline).map_err(|e| ApiError::invalid("id", e.to_string()))?;
        let (mut batch, metadata) = prepare(commands, true, actor)?;
        batch.adopted = true;
        // Every event this adoption writes rests on the adopting decision: the changes adopted
        // before are in the batch only to be recognised, and write nothing. So the metadata
        // names it even when those earlier changes rest on an earlier adoption's decision.
        let metadata = metadata
            .with_decision(serde_json::to_value(&req.decision).map_err(ApiError::internal)?);
        // The parent's changes and the scenario's record of them are written in one
        // transaction (`execute_linked`): nobody sees the parent changed and the scenario not
        // marked, or the other way round. The record's id follows from the adoption's and the
        // version the changes reach, so a resent adoption finds both written and is a no-op.
        let decision = req.decision;
        let rationale = req.rationale;
        let record = |into_version: u64, recorder: &TimelineBatch| {
            let refused = |field: String, reason: String| BatchRefusal {
                index: None,
                error: DomainError::InvalidInput { field, reason },
            };
            // Checked again under the streams' locks: an adoption under another id that was
            // written since the check above (a concurrent request) would be copied twice.
            let events = recorder.0.records().iter().filter(|r| r.version > 0);
            if let Some(before) = earlier_adoptions(events.map(|r| &r.event), timeline)
                .find(|before| *before != adoption.as_str())
            {
                return Err(refused(
                    "command_id".into(),
                    format!(
                        "{scenario} was adopted into {timeline} under the command id {before} \
                         meanwhile: adopt it again under that id (or without one)"
                    ),
                ));
            }
            // Too long for an id: the pair is refused (422), nothing is written.
            let id = CommandId::new(format!("{adoption}/adopted-{into_version}"))
                .map_err(|e| refused("command_id".into(), e.to_string()))?;
            // Written before (a resent adoption): asked for again as it was, a no-op. Asked for
            // under another decision or rationale, it would be answered as done while what it
            // asks to record is not: refused, naming the decision the adoption rests on.
            let context = match recorder.0.record_of(&id) {
                Some(r)
                    if r.event.context.decision != decision
                        || r.event.context.rationale != rationale =>
                {
                    let on = &r.event.context.decision;
                    let what = if r.event.context.decision != decision {
                        "this request's decision"
                    } else {
                        "this request's rationale"
                    };
                    return Err(BatchRefusal {
                        index: None,
                        error: DomainError::NothingToChange {
                            reason: format!(
                                "every change of {scenario} was adopted into {timeline} already, \
                                 under decision {} ({}, {}); {what} would not be recorded",
                                on.case_number, on.body, on.decision_date
                            ),
                        },
                    });
                }
                Some(r) => r.event.context.clone(),
                None => ChangeContext {
                    command_id: id,
                    effective_from: decision.decision_date,
                    decision: decision.clone(),
                    actor: actor.to_owned(),
                    rationale: rationale.clone(),
                },
            };
            let command = TimelineCommand {
                context,
                action: Action::RecordAdoption(Adoption {
                    into: into.clone(),
                    into_version,
                }),
            };
            prepare(vec![command], false, actor).map_err(|e| match e {
                ApiError::Invalid { field, reason, .. } => refused(field, reason),
                other => refused("scenario".into(), other.to_string()),
            })
        };
        let linked = self
            .store
            .execute_linked(timeline, batch, metadata, scenario, record)
            .await;
        let place = |index: Option<usize>| index.and_then(|i| places.get(i).copied());
        let (parent, recorded) = linked.map_err(|e| match refusal(timeline, e) {
            ApiError::Refused { source, index } => ApiError::Refused {
                source,
                index: place(index),
            },
            ApiError::Invalid {
                field,
                reason,
                index,
            } => ApiError::Invalid {
                // The adopt request has no `commands`: the change is named by `index`.
                field: ApiError::field_in_command(field, index),
                reason,
                index: place(index),
            },
            other => other,
        })?;
        crate::metrics::COMMANDS.accepted(parent.events.len());
        crate::metrics::COMMANDS.accepted(recorded.events.len());
        Ok(CommandResult::from_outcome(parent))
    }

    /// The first event of timeline `id` when the command `command_id` wrote it: the request that
    /// started the timeline is being retried. Its defaults (today's date, the parent's current
    /// version) are taken from that event, so that a retry on another day or after the parent
    /// moved on is answered as the duplicate it is, not refused as a reused command id.
    async fn started_by(
        &self,
        id: &str,
        command_id: &CommandId,
    ) -> Result<Option<TimelineEvent>, ApiError> {
        let first = self.store.load_stream_range(id, 1, 1).await?;
        Ok(first
            .into_iter()
            .next()
            .map(|c| c.event)
            .filter(|e| e.context.command_id == *command_id))
    }

    /// Runs commands on an existing timeline, all or nothing: every command is decided against
    /// the state the earlier ones leave, and their events are appended in one transaction.
    ///
    /// `CreateTimeline`/`ForkTimeline`/`RecordAdoption` are refused here (422): use
    /// [`Omorg::create_timeline`], [`Omorg::fork`] and [`Omorg::adopt`], which build those
    /// commands.
    // At `debug`: a request's command already has its `http.submit_*` span (with the timeline and
    // the command id) at `info`; a second and a third nested span cost every command ~4 % of the
    // server's instructions (callgrind) and told the log nothing new.
    #[tracing::instrument(name = "omorg.execute", level = "debug", skip(self, commands), fields(count = commands.len()))]
    pub async fn execute(
        &self,
        timeline: &str,
        commands: Vec<TimelineCommand>,
        is_batch: bool,
        actor: &str,
    ) -> Result<CommandResult, ApiError> {
        timeline_id(timeline)?;
        if commands.is_empty() {
            return Err(ApiError::invalid(
                "commands",
                "must hold at least one command",
            ));
        }
        for (i, c) in commands.iter().enumerate() {
            let reason = match c.action {
                Action::CreateTimeline(_) => RESERVED_TIMELINE,
                Action::ForkTimeline(_) => RESERVED_TIMELINE,
                Action::RecordAdoption(_) => RESERVED_ADOPTION,
                _ => continue,
            };
            return Err(ApiError::Invalid {
                field: if is_batch {
                    format!("commands[{i}].action.type")
                } else {
                    "action.type".into()
                },
                reason: reason.into(),
                index: is_batch.then_some(i),
            });
        }
        self.run(timeline, commands, is_batch, actor).await
    }

    /// Runs commands (including timeline-starting ones) as one store command.
    async fn run(
        &self,
        timeline: &str,
        commands: Vec<TimelineCommand>,
        is_batch: bool,
        actor: &str,
    ) -> Result<CommandResult, ApiError> {
        let (batch, metadata) = prepare(commands, is_batch, actor)?;
        // A client sends no expected version: its command is meant for the timeline as it
        // stands. A conflict on the version key means this process decided it against a stale
        // cache (another process appended meanwhile: a CLI import beside the server, a second
        // server) or lost a race; the entry is dropped by then, so deciding once more against
        // the reloaded timeline is what the client asked for. A second conflict is a genuine
        // race and goes back as 409.
        //
        // A refusal can come from a stale cache too (the command was decided against a
        // timeline that had moved on, and never reached the append): if the stored timeline is
        // ahead of the cache, the command is decided once more on it.
        let retry = (batch.clone(), metadata.clone());
        let ids: Vec<CommandId> = batch
            .commands
            .iter()
            .map(|c| c.context.command_id.clone())
            .collect();
        let result = match self.store.execute(timeline, batch, metadata).await {
            Err(CommandError::Store(omorg_store::StoreError::Conflict { .. })) => {
                tracing::debug!(
                    timeline,
                    "version conflict; deciding once more on the reloaded timeline"
                );
                let outcome = self.store.execute(timeline, retry.0, retry.1).await;
                settled(timeline, outcome)
            }
            Err(CommandError::Rejected(refusal)) => {
                if self.store.catch_up(timeline).await? {
                    tracing::debug!(
                        timeline,
                        "refused on a stale cache; deciding once more on the stored timeline"
                    );
                    let outcome = self.store.execute(timeline, retry.0, retry.1).await;
                    settled(timeline, outcome)
                } else {
                    settled(timeline, Err(CommandError::Rejected(refusal)))
                }
            }
            outcome => settled(timeline, outcome),
        };
        let mut result = result?;
        if result.duplicate && result.events.is_empty() {
            // A retry of commands applied under another request (a batch member resent alone,
            // a command an import applied): answered with their events as recorded, as a
            // retry of the whole request is.
            result.events = self.recorded_events(timeline, &ids).await?;
        }
        Ok(result)
    }

    /// The events timeline `timeline` recorded for the commands `ids` (those it applied
    /// itself: a scenario's inherited ones have none of its own).
    async fn recorded_events(
        &self,
        timeline: &str,
        ids: &[CommandId],
    ) -> Result<Vec<EventRef>, ApiError> {
        let versions: Vec<u64> = self
            .store
            .with_aggregate(timeline, |t, _| {
                ids.iter()
                    .filter_map(|id| t.0.record_of(id))
                    .map(|r| r.version)
                    .filter(|v| *v > 0)
                    .collect()
            })
            .await?;
        let mut events = Vec::with_capacity(versions.len());
        for v in versions {
            let recorded = self.store.load_stream_range(timeline, v, v).await?;
            events.extend(recorded.into_iter().map(EventRef::from));
        }
        Ok(events)
    }

    /// The timeline's aggregate as of its last event (a copy); 404 when it has no events.
    #[tracing::instrument(name = "omorg.load", skip(self))]
    pub async fn load(&self, timeline: &str) -> Result<Timeline, ApiError> {
        self.read(timeline, |t| t.0.clone()).await
    }

    /// Runs `read` on the timeline's aggregate as of its last event, leaving it cached for the
    /// next command (taking it out would cost that command a reload of the whole history);
    /// 404 when the timeline has no events.
    async fn read<R>(
        &self,
        timeline: &str,
        read: impl FnOnce(&TimelineBatch) -> R,
    ) -> Result<R, ApiError> {
        timeline_id(timeline)?;
        let (result, version) = self
            .store
            .with_aggregate(timeline, |t, version| (read(t), version))
            .await?;
        if version == 0 {
            return Err(ApiError::timeline_not_found(timeline));
        }
        Ok(result)
    }

    /// One timeline's summary; 404 when unknown.
    #[tracing::instrument(name = "omorg.summary", skip(self))]
    pub async fn summary(&self, timeline: &str) -> Result<TimelineSummary, ApiError> {
        let (info, version, effective_from) = self
            .read(timeline, |t| {
                // The timeline's own first event (a fork's base events come before it).
                let start =
                    t.0.records()
                        .iter()
                        .find(|r| r.version == 1)
                        .map(|r| r.event.context.effective_from);
                (t.0.info().cloned(), t.0.version(), start)
            })
            .await?;
        let effective_from = effective_from.ok_or_else(|| {
            ApiError::internal(omorg_store::StoreError::Corrupt(format!(
                "timeline {timeline} has no first event"
            )))
        })?;
        let forked = info.as_ref().and_then(|i| i.forked_from.clone());
        let adopted = info.as_ref().and_then(|i| i.adopted_into.clone());
        Ok(TimelineSummary {
            id: timeline.to_owned(),
            description: info
                .as_ref()
                .map(|i| i.description.clone())
                .unwrap_or_default(),
            name: info.map(|i| i.name).unwrap_or_default(),
            effective_from,
            kind: if forked.is_some() {
                "scenario"
            } else {
                "baseline"
            }
            .into(),
            forked_from: forked.as_ref().map(|(p, _)| p.to_string()),
            forked_at_version: forked.map(|(_, v)| v),
            version,
            adopted_into: adopted.as_ref().map(|(t, _)| t.to_string()),
            adopted_into_version: adopted.map(|(_, v)| v),
        })
    }

    /// Every timeline, in creation order.
    #[tracing::instrument(name = "omorg.list_timelines", skip(self))]
    pub async fn list_timelines(&self) -> Result<Vec<TimelineSummary>, ApiError> {
        // The first event of each stream names the timeline; reading the name and parent out of
        // the JSON in SQL avoids shipping a fork's (large) base to the server.
        let rows: Vec<ListingRow> = match self.db() {
            Database::Postgres(pool) => sqlx::query(
                "SELECT e.stream_id, e.event_type, e.payload->'change'->>'name', \
                            e.payload->'change'->>'parent', \
                            (e.payload->'change'->>'parent_version')::bigint, v.version, \
                            ad.payload->'change'->>'into', \
                            (ad.payload->'change'->>'into_version')::bigint, \
                            e.payload->'change'->>'description', e.payload->>'effective_from' \
                     FROM events e \
                     LEFT JOIN LATERAL (SELECT a.payload FROM events a \
                                        WHERE a.stream_id = e.stream_id \
                                          AND e.event_type = 'TimelineForked' \
                                          AND a.event_type = 'ScenarioAdopted' \
                                        ORDER BY a.stream_version DESC LIMIT 1) ad ON true \
                     JOIN (SELECT stream_id, MAX(stream_version) AS version \
                                         FROM events GROUP BY stream_id) v \
                       ON v.stream_id = e.stream_id \
                     WHERE e.stream_version = 1 \
                       AND e.event_type IN ('TimelineCreated', 'TimelineForked') \
                     ORDER BY e.position",
            )
            .fetch_all(pool)
            .await
            .map_err(omorg_store::StoreError::from)?
            .iter()
            .map(|r| listing_row!(r))
            .collect::<Result<_, _>>()?,
            Database::Sqlite(pool) => sqlx::query(
                "SELECT e.stream_id, e.event_type, json_extract(e.payload, '$.change.name'), \
                            json_extract(e.payload, '$.change.parent'), \
                            json_extract(e.payload, '$.change.parent_version'), v.version, \
                            json_extract(ad.payload, '$.change.into'), \
                            json_extract(ad.payload, '$.change.into_version'), \
                            json_extract(e.payload, '$.change.description'), \
                            json_extract(e.payload, '$.effective_from') \
                     FROM events e \
                     LEFT JOIN events ad ON ad.stream_id = e.stream_id \
                       AND e.event_type = 'TimelineForked' \
                       AND ad.stream_version = (SELECT MAX(a.stream_version) FROM events a \
                                                WHERE a.stream_id = e.stream_id \
                                                  AND a.event_type = 'ScenarioAdopted') \
                     JOIN (SELECT stream_id, MAX(stream_version) AS version \
                                         FROM events GROUP BY stream_id) v \
                       ON v.stream_id = e.stream_id \
                     WHERE e.stream_version = 1 \
                       AND e.event_type IN ('TimelineCreated', 'TimelineForked') \
                     ORDER BY e.position",
            )
            .fetch_all(pool)
            .await
            .map_err(omorg_store::StoreError::from)?
            .iter()
            .map(|r| listing_row!(r))
            .collect::<Result<_, _>>()?,
        };
        rows.into_iter()
            .map(
                |(
                    id,
                    event_type,
                    name,
                    parent,
                    parent_version,
                    version,
                    into,
                    into_version,
                    description,
                    effective_from,
                )| {
                    let scenario = event_type == "TimelineForked";
                    // Written by omorg as an ISO date; anything else is a row edited behind its back.
                    let effective_from = effective_from
                        .as_deref()
                        .and_then(|d| d.parse::<NaiveDate>().ok())
                        .ok_or_else(|| {
                            ApiError::internal(omorg_store::StoreError::Corrupt(format!(
                                "timeline {id}'s first event has no effective date"
                            )))
                        })?;
                    Ok(TimelineSummary {
                        name: name.unwrap_or_default(),
                        description: description.unwrap_or_default(),
                        effective_from,
                        kind: if scenario { "scenario" } else { "baseline" }.into(),
                        forked_from: parent.filter(|_| scenario),
                        forked_at_version: parent_version
                            .filter(|_| scenario)
                            .and_then(|v| u64::try_from(v).ok()),
                        version: u64::try_from(version).unwrap_or(0),
                        adopted_into: into,
                        adopted_into_version: into_version.and_then(|v| u64::try_from(v).ok()),
                        id,
                    })
                },
            )
            .collect()
    }

    /// Up to `limit` events of one timeline after `after_version`, in version order.
    #[tracing::instrument(name = "omorg.stream_events", skip(self))]
    pub async fn stream_events(
        &self,
        timeline: &str,
        after_version: u64,
        limit: u32,
    ) -> Result<StreamEventPage, ApiError> {
        timeline_id(timeline)?;
        // Versions run 1, 2, 3, … without gaps, so a page is a range of them: read just that,
        // not the whole timeline (auditors page through timelines of any length).
        let from = after_version.saturating_add(1);
        let to = after_version.saturating_add(u64::from(limit.clamp(1, MAX_PAGE)));
        // As stored, not decoded: the log shows an event that no longer decodes (an edit behind
        // the store's back) for the auditor to see, where decoding would fail the whole page.
        // Versions are stored as i64: none lies beyond.
        let to = to.min(i64::MAX as u64);
        let page: Vec<RecordedEvent> = if from > to {
            Vec::new()
        } else {
            self.db()
                .stream_events(timeline, from, to)
                .await
                .map_err(unreadable)?
        };
        if page.is_empty() {
            if self.db().stream_events(timeline, 1, 1).await?.is_empty() {
                return Err(ApiError::timeline_not_found(timeline));
            }
            // Beyond the last version: a mistyped cursor would otherwise read as "nothing new".
            if after_version > 0
                && self
                    .db()
                    .stream_events(timeline, after_version, after_version)
                    .await
                    .map_err(unreadable)?
                    .is_empty()
            {
                let events = self.store.with_aggregate(timeline, |_, v| v).await?;
                return Err(ApiError::invalid(
                    "after_version",
                    format!("{timeline} has {events} events, not {after_version}"),
                ));
            }
        }
        let next = page.last().map_or(after_version, |r| r.stream_version);
        Ok(StreamEventPage { events: page, next })
    }

    /// Up to `limit` events of every timeline after `after`, in the global order.
    #[tracing::instrument(name = "omorg.all_events", skip(self))]
    pub async fn all_events(&self, after: &str, limit: u32) -> Result<EventPage, ApiError> {
        let checkpoint: Checkpoint = if after.is_empty() {
            Checkpoint::START
        } else {
            after.parse()?
        };
        if !self.db().could_have_issued(&checkpoint) {
            return Err(ApiError::invalid(
                "after",
                format!(
                    "{after:?} is no checkpoint of this event log (on SQLite every checkpoint is \
                     0-<position>, on PostgreSQL only the start 0-0 is): pass the `next` of an \
                     earlier page"
                ),
            ));
        }
        let events = self
            .db()
            .read_all_after(&checkpoint, limit.clamp(1, MAX_PAGE))
            .await
            .map_err(unreadable)?;
        if events.is_empty() && !self.db().issued(&checkpoint).await? {
            return Err(ApiError::invalid(
                "after",
                format!(
                    "{after:?} is beyond the end of this event log (no event has it): pass the \
                     `next` of an earlier page"
                ),
            ));
        }
        let next = events
            .last()
            .map_or(checkpoint, |e| e.checkpoint)
            .to_string();
        Ok(EventPage { events, next })
    }

    /// Walks the timeline's hash chain; 404 when the timeline is unknown.
    #[tracing::instrument(name = "omorg.verify", skip(self))]
    pub async fn verify(
        &self,
        timeline: &str,
        head: Option<&(u64, String)>,
    ) -> Result<Verification, ApiError> {
        timeline_id(timeline)?;
        let v = match head {
            Some(head) => self.db().verify_against(timeline, head).await?,
            None => self.db().verify(timeline).await?,
        };
        if v.events_checked == 0 && v.is_intact() {
            return Err(ApiError::timeline_not_found(timeline));
        }
        Ok(v)
    }
}

/// A page of the log with a row that does not parse as stored names that row (500
/// `event-unreadable`) rather than answering a bare internal error.
fn unreadable(e: omorg_store::StoreError) -> ApiError {
    match e {
        omorg_store::StoreError::Corrupt(row) => ApiError::EventUnreadable(row),
        other => other.into(),
    }
}

/// Validates a timeline id from a URL or argument (422 on `id` when invalid).
pub fn timeline_id(s: &str) -> Result<TimelineId, ApiError> {
    TimelineId::new(s).map_err(|e| ApiError::invalid("id", e.to_string()))
}

/// `commands[i].…` of a batch whose first command was added in front of the caller's, as
/// `commands[i-1].…`; the creation itself (`commands[0].…`) loses the prefix.
fn renumbered(field: &str) -> String {
    let Some((index, rest)) = field
        .strip_prefix("commands[")
        .and_then(|f| f.split_once("]."))
    else {
        return field.to_owned();
    };
    match index.parse::<usize>() {
        Ok(0) => rest.to_owned(),
        Ok(i) => format!("commands[{}].{rest}", i - 1),
        Err(_) => field.to_owned(),
    }
}

/// The adoption ids under which a scenario (its `events`) was adopted into `into`: each record's
/// id is `<adoption>/adopted-<version>`. Copies in the parent are known by these ids, which is
/// why a scenario is adopted again under the same one.
fn earlier_adoptions<'a>(
    events: impl Iterator<Item = &'a TimelineEvent>,
    into: &'a str,
) -> impl Iterator<Item = &'a str> {
    events.filter_map(move |e| match &e.change {
        Change::ScenarioAdopted(a) if a.into.as_str() == into => e
            .context
            .command_id
            .as_str()
            .rsplit_once("/adopted-")
            .map(|(adoption, _)| adoption),
        _ => None,
    })
}

/// The longest suffix an adoption appends to its command id: `/adopted-` and a version.
const ADOPTION_SUFFIX_ROOM: usize = "/adopted-".len() + 20;

fn command_id(s: &str) -> Result<CommandId, ApiError> {
    CommandId::new(s).map_err(|e| ApiError::invalid("command_id", e.to_string()))
}

fn generated_id() -> TimelineId {
    // A UUID's text is always a valid id.
    TimelineId::new(uuid::Uuid::now_v7().simple().to_string())
        .unwrap_or_else(|_| unreachable!("a uuid is a valid id"))
}

/// Returns `date` when it lies within 0001-01-01..=9999-12-31; otherwise a 422 on `field`.
///
/// Dates outside that range cannot be stored or compared alike on both backends: PostgreSQL's
/// `date` ends before 4714 BC (such an event would stop the projector), and SQLite compares
/// ISO text, which breaks for years beyond 9999.
pub fn check_date_range(field: &str, date: NaiveDate) -> Result<NaiveDate, ApiError> {
    if (1..=9999).contains(&date.year()) {
        Ok(date)
    } else {
        Err(ApiError::invalid(
            field,
            format!("{date} is outside the supported range 0001-01-01 to 9999-12-31"),
        ))
    }
}

/// Why a client cannot submit a `CreateTimeline` or `ForkTimeline` action itself.
const RESERVED_TIMELINE: &str = "timelines are created with POST /timelines (or `omorg import \
     --create`) and forked with POST /timelines/{id}/fork";

/// Why a client cannot submit a `RecordAdoption` action itself.
const RESERVED_ADOPTION: &str = "an adoption is recorded by POST /timelines/{id}/adopt (or \
     `omorg adopt`), with the changes it adopts";

/// The reason an action type (as written in a body) is omorg's own and refused on the command
/// routes, whatever else the action holds: said before the action's fields are read, so that a
/// partial one is refused for what it is (422) rather than for a missing field (400).
pub fn reserved_action(type_name: &str) -> Option<&'static str> {
    match type_name {
        "CreateTimeline" | "ForkTimeline" => Some(RESERVED_TIMELINE),
        "RecordAdoption" => Some(RESERVED_ADOPTION),
        _ => None,
    }
}

/// Today's date (UTC): the default effective date of timeline creation and forks.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The decision recorded when a client creates or forks a timeline without naming one.
fn neutral_decision(date: NaiveDate, title: &str) -> DecisionRef {
    DecisionRef {
        case_number: "omorg".into(),
        body: "omorg".into(),
        decision_date: date,
        // "Create <name>" may pass the length a title may have although the name does not:
        // cut, since the client did not write this title.
        title: title
            .chars()
            .take(omorg_domain::rules::MAX_NAME_LEN)
            .collect(),
        link: None,
    }
}

/// The upcasters stored timeline events are read with (none yet: every event type is at its
/// first version). A restore checks a file's events with the same, before any database is open.
pub fn timeline_upcasters() -> omorg_store::Upcasters {
    omorg_store::Upcasters::new()
}

/// How every batch id starts; refused in a client's command ids.
const BATCH_ID_PREFIX: &str = "batch:";

/// The store command id of a batch: derived from its commands' ids, so that resending the same
/// batch is recognised as a retry. (Each command id is also exactly-once on its own: the
/// timeline remembers every command id it applied.)
pub fn batch_command_id(commands: &[TimelineCommand]) -> String {
    let hash = fnv1a(
        commands
            .iter()
            .flat_map(|c| c.context.command_id.as_str().bytes().chain([0u8])),
    );
    format!("{BATCH_ID_PREFIX}{}:{hash:016x}", commands.len())
}

/// FNV-1a: stable across Rust versions and platforms, unlike `DefaultHasher`.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// `id` when it has at most `max` characters, else its beginning and a hash of all of it: a
/// stable stand-in (the same id always gives the same one, so a retry is still recognised) that
/// two long ids with one beginning do not share.
pub fn shortened(id: &str, max: usize) -> String {
    if id.chars().count() <= max {
        return id.to_owned();
    }
    let hash = format!("~{:016x}", fnv1a(id.bytes()));
    let head: String = id.chars().take(max.saturating_sub(hash.len())).collect();
    format!("{}{hash}", head.trim_end())
}

/// The command id the server derives for a request that names none: `prefix:id`, shortened
/// ([`shortened`]) to leave `room` characters of the id limit free for suffixes derived from it
/// in turn, so that every valid timeline id gets a valid command id.
fn derived_command_id(prefix: &str, id: &str, room: usize) -> Result<CommandId, ApiError> {
    command_id(&shortened(
        &format!("{prefix}:{id}"),
        omorg_domain::MAX_ID_LEN - room,
    ))
}

/// Checks a command or batch's dates and makes the store's command and metadata: a batch is
/// one command for the store, under an id derived from its commands' ids.
fn prepare(
    commands: Vec<TimelineCommand>,
    is_batch: bool,
    actor: &str,
) -> Result<(Commands, CommandMetadata), ApiError> {
    for (i, c) in commands.iter().enumerate() {
        let index = is_batch.then_some(i);
        let field = |f: &str| match index {
            Some(i) => format!("commands[{i}].{f}"),
            None => f.to_owned(),
        };
        // The store records a batch under an id of this form: a command of a client's under
        // one could be taken for that batch (and answered with its events).
        if c.context.command_id.as_str().starts_with(BATCH_ID_PREFIX) {
            return Err(ApiError::Invalid {
                field: field("command_id"),
                reason: format!(
                    "ids that start with `{BATCH_ID_PREFIX}` are the server's own (a batch's \
                     record in the log); choose another"
                ),
                index,
            });
        }
        for (name, date) in [
            ("effective_from", c.context.effective_from),
            ("decision.decision_date", c.context.decision.decision_date),
        ] {
            check_date_range(&field(name), date).map_err(|e| match e {
                ApiError::Invalid { field, reason, .. } => ApiError::Invalid {
                    field,
                    reason,
                    index,
                },
                other => other,
            })?;
        }
    }
    let command_id = if is_batch {
        batch_command_id(&commands)
    } else {
        commands
            .first()
            .map(|c| c.context.command_id.to_string())
            .unwrap_or_default()
    };
    // The metadata speaks for every event the store command writes, so it names a decision only
    // when every command rests on the same one; a batch under several decisions leaves it null,
    // and each event's own decision is in its payload (which is what the read models use).
    let shared = commands
        .first()
        .map(|c| &c.context.decision)
        .filter(|first| commands.iter().all(|c| c.context.decision == **first));
    let decision = shared
        .and_then(|d| serde_json::to_value(d).ok())
        .unwrap_or_default();
    let metadata = CommandMetadata::new(command_id)
        .with_actor(actor)
        .with_decision(decision);
    Ok((
        Commands {
            commands,
            is_batch,
            adopted: false,
        },
        metadata,
    ))
}

/// The API's answer to what the store made of a command on `timeline`, counted.
fn settled(
    timeline: &str,
    outcome: Result<Outcome<TimelineEvent>, CommandError<BatchRefusal>>,
) -> Result<CommandResult, ApiError> {
    match outcome {
        Ok(outcome) => {
            crate::metrics::COMMANDS.accepted(outcome.events.len());
            Ok(CommandResult::from_outcome(outcome))
        }
        Err(e) => Err(refusal(timeline, e)),
    }
}

/// The API's error for a command on `timeline` the store did not apply, counted.
fn refusal(timeline: &str, error: CommandError<BatchRefusal>) -> ApiError {
    crate::metrics::COMMANDS.refused();
    match error {
        CommandError::Rejected(r) if r.error == DomainError::TimelineNotStarted => {
            ApiError::timeline_not_found(timeline)
        }
        e => e.into(),
    }
}
