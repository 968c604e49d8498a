//! [`Store`]: loads aggregates (cache → snapshot + tail → full replay), runs commands, appends
//! their events exactly once, and implements cqrs-es's `EventStore` on top.

use crate::committer::{Committer, OwnedAppend};
use crate::db::{AppendError, Database, NewEvent};
use crate::error::{CommandError, StoreError};
use crate::hash::{canonical_json, event_hash, HashInput, GENESIS_HASH};
use crate::model::{Checkpoint, CommandMetadata, Committed, Outcome, RecordedEvent};
use crate::upcast::Upcasters;
use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, DomainEvent, EventEnvelope};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Tuning knobs of a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreConfig {
    /// Take a snapshot once this many events were appended since the last one; 0 disables
    /// snapshots.
    pub snapshot_every: u64,
    /// How many aggregates the in-process cache keeps (least recently used are evicted);
    /// 0 disables the cache.
    pub cache_capacity: usize,
    /// PostgreSQL: how many appends may be in flight at once, each on a connection of its own
    /// (outside the pool). Appends that arrive while all are busy are written together, in one
    /// statement, by the next one free (group commit; see `committer.rs`).
    pub append_connections: usize,
    /// The aggregate recognises retries itself: it answers a command whose id it already applied
    /// with no events when the request is the same, and refuses it when the request differs.
    /// Its refusals then stand as they are. When false (the default), a refused command whose
    /// id was applied on the stream is answered with that original outcome, because a plain
    /// aggregate refuses a retry as it would any repeat ("already open"), and a retry must get
    /// its original answer; the price is that a *different* command reusing the id is answered
    /// as a duplicate too, which only an aggregate that knows its commands can tell apart.
    pub refusals_are_final: bool,
}

impl StoreConfig {
    /// Default [`StoreConfig::append_connections`]: two appends in flight let two commands
    /// commit side by side (PostgreSQL flushes their commits together); more commands than that
    /// at once are grouped.
    pub const DEFAULT_APPEND_CONNECTIONS: usize = 2;
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            snapshot_every: 100,
            cache_capacity: 1024,
            append_connections: Self::DEFAULT_APPEND_CONNECTIONS,
            refusals_are_final: false,
        }
    }
}

/// What [`Store::execute_linked`] did on its two streams, in the order of its arguments.
pub type Linked<E> = (Outcome<E>, Outcome<E>);

/// How often commands found their aggregate in the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Commands whose aggregate came from the cache (no database read).
    pub hits: u64,
    /// Commands that loaded their aggregate from the database.
    pub misses: u64,
}

/// A loaded aggregate with what the next append needs: cqrs-es's `AggregateContext`.
///
/// Because cqrs-es 0.5 applies events as the handler writes them, after a command the
/// aggregate in here already includes that command's events.
#[derive(Debug)]
pub struct StoreContext<A> {
    stream_id: String,
    aggregate: A,
    /// Version of the last event applied to `aggregate` (0: empty stream).
    version: u64,
    /// Hash of that event: the `prev_hash` of the next one.
    last_hash: String,
    /// Version the stored snapshot holds, to know when the next one is due.
    snapshot_version: u64,
}

impl<A> StoreContext<A> {
    /// The stream this aggregate was loaded from.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// The version of the last event the aggregate includes.
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl<A: Aggregate> AggregateContext<A> for StoreContext<A> {
    fn aggregate(&mut self) -> &mut A {
        &mut self.aggregate
    }
}

/// An event store for aggregates of type `A` on PostgreSQL or SQLite.
///
/// Cheap to clone: clones share the pool, the cache and the services. Use one `Store` per
/// aggregate type per process; several processes (or `Store`s) may write the same database,
/// the unique (stream, version) key keeps them consistent.
pub struct Store<A: Aggregate> {
    db: Database,
    services: Arc<A::Services>,
    config: StoreConfig,
    upcasters: Arc<Upcasters>,
    /// Recently used aggregates by stream id. A std mutex, not a tokio one: it is held only to
    /// take or put an entry, never across an await.
    cache: Arc<Mutex<Cache<A>>>,
    /// One async lock per stream that [`Store::execute`] holds for a whole command, so that
    /// commands on one stream in this process queue instead of failing each other with
    /// conflicts (and reloading). Weak: a lock lives only while a command holds or awaits it.
    stream_locks: Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
    /// PostgreSQL's group committer, made on the first append (with the configuration then).
    committer: Arc<OnceLock<Committer>>,
}

impl<A: Aggregate> Clone for Store<A> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            services: Arc::clone(&self.services),
            config: self.config,
            upcasters: Arc::clone(&self.upcasters),
            cache: Arc::clone(&self.cache),
            stream_locks: Arc::clone(&self.stream_locks),
            hits: Arc::clone(&self.hits),
            misses: Arc::clone(&self.misses),
            committer: Arc::clone(&self.committer),
        }
    }
}

impl<A: Aggregate> std::fmt::Debug for Store<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("aggregate", &A::TYPE)
            .field("backend", &self.db.backend())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<A: Aggregate> Store<A> {
    /// A store on `db` (already migrated) whose commands get `services`.
    pub fn new(db: Database, services: A::Services) -> Self {
        Self {
            db,
            services: Arc::new(services),
            config: StoreConfig::default(),
            upcasters: Arc::new(Upcasters::new()),
            cache: Arc::new(Mutex::new(Cache::default())),
            stream_locks: Arc::default(),
            hits: Arc::default(),
            misses: Arc::default(),
            committer: Arc::default(),
        }
    }

    /// Replaces the configuration.
    pub fn with_config(mut self, config: StoreConfig) -> Self {
        self.config = config;
        self
    }

    /// Replaces the upcasters applied to stored payloads before deserialising.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// The database, for readers ([`Database::read_all_after`], [`Database::verify`]).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The upcasters in use (to decode [`RecordedEvent`]s the same way the store does).
    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    /// Cache hit/miss counters since this store was created.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Runs `command` on stream `stream_id` exactly once per `metadata.command_id`.
    ///
    /// Loads the aggregate (from the cache when possible), lets it handle the command, appends
    /// the resulting events together with the command id in one atomic write, and returns them
    /// with their global positions. If the command id was already applied to this stream, returns
    /// that original outcome (`duplicate: true`) and writes nothing. Command ids are scoped to
    /// their stream: the same id on another stream is another command. Commands on one stream through this
    /// `Store` (and its clones) run one at a time; if another process or `Store` appended to the
    /// stream meanwhile, fails with [`StoreError::Conflict`] and writes nothing: retry.
    #[tracing::instrument(
        name = "store.execute",
        level = "debug",
        skip(self, command, metadata),
        fields(aggregate = A::TYPE, command_id = %metadata.command_id)
    )]
    pub async fn execute(
        &self,
        stream_id: &str,
        command: A::Command,
        metadata: CommandMetadata,
    ) -> Result<Outcome<A::Event>, CommandError<A::Error>> {
        if metadata.command_id.is_empty() {
            return Err(StoreError::MissingCommandId.into());
        }
        let lock = self.stream_lock(stream_id);
        let _serialised = lock.lock().await;
        self.execute_locked(stream_id, command, metadata).await
    }

    /// Runs `first` on `first_stream` and then the command `follow` makes on `second_stream`,
    /// and writes the events of both in **one** transaction: a reader never sees one without the
    /// other, and a failure leaves neither. `follow` gets the version `first_stream` reaches
    /// and the second stream's aggregate as it stands, so the second command can record
    /// where the first one took its stream (and find an earlier record of itself); its error
    /// refuses the pair like a refusal of the second command.
    ///
    /// Exactly once, as [`Store::execute`]: if `first`'s command id was already applied, its
    /// original outcome stands and the second command runs on its own, so a retry of a pair
    /// written before the two were linked completes it. A refusal of either writes nothing.
    /// The streams must differ (one command per stream per write).
    #[tracing::instrument(
        name = "store.execute_linked",
        level = "debug",
        skip(self, first, first_metadata, follow),
        fields(aggregate = A::TYPE, command_id = %first_metadata.command_id)
    )]
    pub async fn execute_linked<F>(
        &self,
        first_stream: &str,
        first: A::Command,
        first_metadata: CommandMetadata,
        second_stream: &str,
        follow: F,
    ) -> Result<Linked<A::Event>, CommandError<A::Error>>
    where
        F: Fn(u64, &A) -> Result<(A::Command, CommandMetadata), A::Error>,
    {
        if first_metadata.command_id.is_empty() {
            return Err(StoreError::MissingCommandId.into());
        }
        if first_stream == second_stream {
            return Err(StoreError::LinkedSameStream(first_stream.to_owned()).into());
        }
        // Both stream locks, always in the same order, so that two linked commands on the same
        // pair of streams cannot each hold one and wait for the other.
        let (a, b) = if first_stream < second_stream {
            (first_stream, second_stream)
        } else {
            (second_stream, first_stream)
        };
        let (lock_a, lock_b) = (self.stream_lock(a), self.stream_lock(b));
        let _serialised_a = lock_a.lock().await;
        let _serialised_b = lock_b.lock().await;

        let mut context = self.load_context(first_stream).await?;
        let sink = EventSink::default();
        let handled = context.aggregate.handle(first, &self.services, &sink).await;
        let events = sink.collect().await;
        if handled.is_err() || events.is_empty() {
            // Nothing to write for the first stream (refused, a no-op, or a retry): it is
            // answered as alone, and the second command, if any, runs alone after it.
            let outcome = self
                .settle(first_stream, context, handled, events, &first_metadata)
                .await?;
            let (command, metadata) = self
                .with_context(second_stream, |a| follow(outcome.version, a))
                .await?
                .map_err(CommandError::Rejected)?;
            let second = self
                .execute_locked(second_stream, command, metadata)
                .await?;
            return Ok((outcome, second));
        }
        let expected_first = context.version;
        let reached = expected_first + events.len() as u64;

        let mut second_context = self.load_context(second_stream).await?;
        let (command, second_metadata) = match follow(reached, &second_context.aggregate) {
            Ok(made) => made,
            Err(rejection) => {
                self.cache_put(second_context);
                return Err(CommandError::Rejected(rejection));
            }
        };
        if second_metadata.command_id.is_empty() {
            self.cache_put(second_context);
            return Err(StoreError::MissingCommandId.into());
        }
        let sink = EventSink::default();
        let handled = second_context
            .aggregate
            .handle(command, &self.services, &sink)
            .await;
        let second_events = sink.collect().await;
        if let Err(rejection) = handled {
            // The first stream's aggregate holds events that will not be stored: dropped.
            if second_events.is_empty() {
                self.cache_put(second_context);
            }
            return Err(CommandError::Rejected(rejection));
        }
        if second_events.is_empty() {
            // The second command asks for nothing new: the first is written alone.
            let second_version = second_context.version;
            self.cache_put(second_context);
            let outcome = self.append(events, context, &first_metadata).await?;
            return Ok((
                outcome,
                Outcome {
                    stream_id: second_stream.to_owned(),
                    version: second_version,
                    events: Vec::new(),
                    duplicate: false,
                },
            ));
        }
        let expected_second = second_context.version;
        let first_append = self.prepare(&events, &context, &first_metadata)?;
        let second_append = self.prepare(&second_events, &second_context, &second_metadata)?;
        match self
            .db
            .append_all(&[first_append.view(), second_append.view()])
            .await
        {
            Ok(checkpoints) => {
                let mut checkpoints = checkpoints.into_iter();
                let (Some(first_checkpoints), Some(second_checkpoints)) =
                    (checkpoints.next(), checkpoints.next())
                else {
                    return Err(StoreError::Corrupt("a linked write lost a command".into()).into());
                };
                let first = self
                    .complete(events, context, first_append, first_checkpoints)
                    .await?;
                let second = self
                    .complete(
                        second_events,
                        second_context,
                        second_append,
                        second_checkpoints,
                    )
                    .await?;
                Ok((first, second))
            }
            Err(AppendError::UniqueViolation) => {
                // Neither was written. A retry racing its original finds the first command
                // applied: its outcome stands and the second runs alone (both contexts were
                // taken out of the cache and are reloaded). Otherwise a stream moved on.
                if let Some(outcome) = self
                    .original_outcome(first_stream, &first_metadata.command_id)
                    .await?
                {
                    let (command, metadata) = self
                        .with_context(second_stream, |a| follow(outcome.version, a))
                        .await?
                        .map_err(CommandError::Rejected)?;
                    let second = self
                        .execute_locked(second_stream, command, metadata)
                        .await?;
                    return Ok((outcome, second));
                }
                let moved = self
                    .db
                    .stream_events(first_stream, expected_first + 1, expected_first + 1)
                    .await?;
                Err(if moved.is_empty() {
                    StoreError::Conflict {
                        stream: second_stream.to_owned(),
                        expected_version: expected_second,
                    }
                } else {
                    StoreError::Conflict {
                        stream: first_stream.to_owned(),
                        expected_version: expected_first,
                    }
                }
                .into())
            }
            Err(AppendError::Store(e)) => Err(e.into()),
        }
    }

    /// [`Store::execute`] with the stream's lock already held.
    async fn execute_locked(
        &self,
        stream_id: &str,
        command: A::Command,
        metadata: CommandMetadata,
    ) -> Result<Outcome<A::Event>, CommandError<A::Error>> {
        let mut context = self.load_context(stream_id).await?;
        let sink = EventSink::default();
        let handled = context
            .aggregate
            .handle(command, &self.services, &sink)
            .await;
        let events = sink.collect().await;
        self.settle(stream_id, context, handled, events, &metadata)
            .await
    }

    /// What a handled command comes to: refused (or, for a retry, its original outcome), a
    /// no-op, or its events appended.
    async fn settle(
        &self,
        stream_id: &str,
        context: StoreContext<A>,
        handled: Result<(), A::Error>,
        events: Vec<A::Event>,
        metadata: &CommandMetadata,
    ) -> Result<Outcome<A::Event>, CommandError<A::Error>> {
        match handled {
            Err(rejection) => {
                // A handler changes its aggregate only through the sink (cqrs-es applies what
                // it writes), so a refusal that wrote nothing left the aggregate as loaded and
                // it stays cached: a mistyped command on a long timeline must not cost the next
                // command a full reload. If events were written before the failure, the
                // aggregate holds changes that were never stored, and it is dropped.
                if events.is_empty() {
                    self.cache_put(context);
                }
                if self.config.refusals_are_final {
                    return Err(CommandError::Rejected(rejection));
                }
                // A retry of an applied command is often refused by the domain ("already
                // exists"): answer it with its original outcome instead.
                match self
                    .original_outcome(stream_id, &metadata.command_id)
                    .await?
                {
                    Some(outcome) => Ok(outcome),
                    None => Err(CommandError::Rejected(rejection)),
                }
            }
            Ok(()) if events.is_empty() => {
                match self
                    .original_outcome(stream_id, &metadata.command_id)
                    .await?
                {
                    Some(outcome) => Ok(outcome),
                    None => {
                        let version = context.version;
                        self.cache_put(context);
                        Ok(Outcome {
                            stream_id: stream_id.to_owned(),
                            version,
                            events: Vec::new(),
                            duplicate: false,
                        })
                    }
                }
            }
            Ok(()) => Ok(self.append(events, context, metadata).await?),
        }
    }

    /// Runs `read` on the aggregate of `stream_id` (whose lock the caller holds) and keeps it
    /// cached.
    async fn with_context<R>(
        &self,
        stream_id: &str,
        read: impl FnOnce(&A) -> R,
    ) -> Result<R, StoreError> {
        let context = self.load_context(stream_id).await?;
        let result = read(&context.aggregate);
        self.cache_put(context);
        Ok(result)
    }

    /// Applies to `context` the events stored after its version, in order.
    async fn apply_tail(&self, context: &mut StoreContext<A>) -> Result<(), StoreError> {
        let tail = self
            .db
            .stream_events(&context.stream_id, context.version + 1, i64::MAX as u64)
            .await?;
        for record in tail {
            if record.stream_version != context.version + 1 {
                return Err(StoreError::Corrupt(format!(
                    "stream {} jumps from version {} to {}",
                    context.stream_id, context.version, record.stream_version
                )));
            }
            let event: A::Event = record.decode(&self.upcasters)?;
            context.aggregate.apply(event);
            context.version = record.stream_version;
            context.last_hash = record.hash;
        }
        Ok(())
    }

    /// Loads the aggregate of `stream_id` as of its last event (cache, else snapshot + tail,
    /// else full replay), handing it over: its cache entry, if any, is taken out (the caller may
    /// change the aggregate). To only read, use [`Store::with_aggregate`], which keeps the entry.
    #[tracing::instrument(name = "store.load", level = "debug", skip(self), fields(aggregate = A::TYPE))]
    pub async fn load_context(&self, stream_id: &str) -> Result<StoreContext<A>, StoreError> {
        if let Some(context) = self.cache_take(stream_id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(context);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut context = StoreContext {
            stream_id: stream_id.to_owned(),
            aggregate: A::default(),
            version: 0,
            last_hash: GENESIS_HASH.to_owned(),
            snapshot_version: 0,
        };
        let mut rewrite_snapshot = false;
        if let Some(snapshot) = self.db.load_snapshot(stream_id).await? {
            match serde_json::from_value::<A>(snapshot.state) {
                Ok(aggregate) => {
                    context.aggregate = aggregate;
                    context.version = snapshot.version;
                    context.last_hash = snapshot.last_hash;
                    context.snapshot_version = snapshot.version;
                }
                Err(error) => {
                    // The aggregate type changed: replay everything, then overwrite the row.
                    tracing::warn!(stream_id, %error, "snapshot no longer deserialises; replaying");
                    rewrite_snapshot = true;
                }
            }
        }
        self.apply_tail(&mut context).await?;
        if rewrite_snapshot && context.version > 0 {
            self.snapshot(&mut context).await;
        }
        Ok(context)
    }

    /// Runs `read` on the aggregate of `stream_id` as of its last event, with that version (0 for
    /// an empty stream), and keeps the aggregate in the cache for the next command. Waits for a
    /// command running on the stream through this `Store` to finish.
    #[tracing::instrument(name = "store.with_aggregate", level = "debug", skip(self, read), fields(aggregate = A::TYPE))]
    pub async fn with_aggregate<R>(
        &self,
        stream_id: &str,
        read: impl FnOnce(&A, u64) -> R,
    ) -> Result<R, StoreError> {
        let lock = self.stream_lock(stream_id);
        let _serialised = lock.lock().await;
        let mut context = self.load_context(stream_id).await?;
        // The cache is this process's: another process (a CLI import beside the server, a
        // second server) may have appended since. A read answers what is stored, so it catches
        // the entry up, at one indexed query that finds nothing when it is current. (Commands
        // do not pay it: a stale entry fails their append on the version key, and the entry
        // is then dropped and reloaded.)
        self.apply_tail(&mut context).await?;
        let result = read(&context.aggregate, context.version);
        self.cache_put(context);
        Ok(result)
    }

    /// Catches this process's cached aggregate of `stream_id` up with what is stored, and says
    /// whether anything was added. A caller whose command was *refused* calls it: the refusal
    /// may come from a cache another process overtook (the append never ran, so no version
    /// conflict told), and then the command deserves a decision on the current stream. One
    /// indexed query, paid only by refusals.
    #[tracing::instrument(name = "store.catch_up", level = "debug", skip(self))]
    pub async fn catch_up(&self, stream_id: &str) -> Result<bool, StoreError> {
        let lock = self.stream_lock(stream_id);
        let _serialised = lock.lock().await;
        let mut context = self.load_context(stream_id).await?;
        let before = context.version;
        self.apply_tail(&mut context).await?;
        let moved = context.version != before;
        self.cache_put(context);
        Ok(moved)
    }

    /// Every event of `stream_id`, decoded, in version order.
    #[tracing::instrument(name = "store.load_stream", skip(self), fields(aggregate = A::TYPE))]
    pub async fn load_stream(
        &self,
        stream_id: &str,
    ) -> Result<Vec<Committed<A::Event>>, StoreError> {
        self.load_stream_range(stream_id, 1, i64::MAX as u64).await
    }

    /// The events of `stream_id` with `from <= version <= to`, decoded, in version order: a
    /// page of a long stream without reading (and decoding) the rest of it.
    #[tracing::instrument(name = "store.load_stream_range", skip(self), fields(aggregate = A::TYPE))]
    pub async fn load_stream_range(
        &self,
        stream_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<Committed<A::Event>>, StoreError> {
        // Versions are stored as i64: none lies beyond.
        let to = to.min(i64::MAX as u64);
        if from > to {
            return Ok(Vec::new());
        }
        let records = self.db.stream_events(stream_id, from, to).await?;
        self.decode_all(records)
    }

    /// Appends the events a command produced; `context` already has them applied.
    async fn append(
        &self,
        events: Vec<A::Event>,
        context: StoreContext<A>,
        metadata: &CommandMetadata,
    ) -> Result<Outcome<A::Event>, StoreError> {
        let expected_version = context.version;
        let append = self.prepare(&events, &context, metadata)?;
        match self.write(append).await {
            Ok((append, checkpoints)) => self.complete(events, context, append, checkpoints).await,
            Err(AppendError::UniqueViolation) => {
                // Either the version was taken (another writer, or our cached state was stale)
                // or the command id was used (a retry racing its original). The cached entry
                // was already taken out; the next command reloads from the database.
                match self
                    .original_outcome(&context.stream_id, &metadata.command_id)
                    .await?
                {
                    Some(outcome) => Ok(outcome),
                    None => Err(StoreError::Conflict {
                        stream: context.stream_id,
                        expected_version,
                    }),
                }
            }
            Err(AppendError::Store(e)) => Err(e),
        }
    }

    /// The rows a command's events become: numbered after the context's version, each hashed
    /// onto the one before.
    fn prepare(
        &self,
        events: &[A::Event],
        context: &StoreContext<A>,
        metadata: &CommandMetadata,
    ) -> Result<OwnedAppend, StoreError> {
        let stream_id = &context.stream_id;
        // The context's version is still the one loaded: events were applied, not yet counted.
        let expected_version = context.version;
        let metadata_json = metadata.to_json();
        // Each value is serialised once, canonically: the hash covers that text and the
        // database stores it.
        let metadata_text = canonical_json(&metadata_json);
        let recorded_at = now_micros();
        let mut prev_hash = context.last_hash.clone();
        let mut rows = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let payload =
                serde_json::to_value(event).map_err(|source| StoreError::Serialization {
                    what: format!("event {} of {stream_id}", event.event_type()),
                    source,
                })?;
            let version = expected_version + 1 + i as u64;
            let event_type = event.event_type();
            let event_version = event.event_version();
            let payload_text = canonical_json(&payload);
            let hash = event_hash(&HashInput {
                stream_id,
                stream_version: version,
                event_type: &event_type,
                event_version: &event_version,
                payload: &payload_text,
                metadata: &metadata_text,
                recorded_at: &recorded_at,
                prev_hash: &prev_hash,
            });
            rows.push(NewEvent {
                version,
                event_type,
                event_version,
                payload,
                payload_text,
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            });
        }
        Ok(OwnedAppend {
            stream_id: stream_id.clone(),
            command_id: metadata.command_id.clone(),
            events: rows,
            metadata: metadata_json,
            metadata_text,
            recorded_at,
        })
    }

    /// After a write: the committed records, and the context moved on to them (cached, and
    /// snapshotted when one is due).
    async fn complete(
        &self,
        events: Vec<A::Event>,
        mut context: StoreContext<A>,
        append: OwnedAppend,
        checkpoints: Vec<Checkpoint>,
    ) -> Result<Outcome<A::Event>, StoreError> {
        let stream_id = context.stream_id.clone();
        let OwnedAppend {
            events: rows,
            metadata: metadata_json,
            recorded_at,
            ..
        } = append;
        if checkpoints.len() != rows.len() {
            return Err(StoreError::Corrupt(format!(
                "append to {stream_id} stored {} of {} events",
                checkpoints.len(),
                rows.len()
            )));
        }
        // Every record carries the command's metadata: clones for all but the last, which takes
        // it (a command is usually one event).
        let mut metadata_json = Some(metadata_json);
        let last = rows.len().saturating_sub(1);
        let committed: Vec<Committed<A::Event>> = rows
            .into_iter()
            .zip(checkpoints)
            .zip(events)
            .enumerate()
            .map(|(i, ((row, checkpoint), event))| Committed {
                record: RecordedEvent {
                    checkpoint,
                    position: checkpoint.position(),
                    stream_id: stream_id.clone(),
                    stream_version: row.version,
                    event_type: row.event_type,
                    event_version: row.event_version,
                    payload: row.payload,
                    metadata: if i == last {
                        metadata_json.take().unwrap_or_default()
                    } else {
                        metadata_json.clone().unwrap_or_default()
                    },
                    recorded_at,
                    prev_hash: row.prev_hash,
                    hash: row.hash,
                    command_events: (i == 0).then_some(last as u32 + 1),
                },
                event,
            })
            .collect();
        if let Some(last) = committed.last() {
            context.version = last.record.stream_version;
            context.last_hash.clone_from(&last.record.hash);
        }
        if self.config.snapshot_every > 0
            && context.version - context.snapshot_version >= self.config.snapshot_every
        {
            self.snapshot(&mut context).await;
        }
        let version = context.version;
        self.cache_put(context);
        Ok(Outcome {
            stream_id,
            version,
            events: committed,
            duplicate: false,
        })
    }

    /// Writes one command's events: on PostgreSQL through the group committer, on SQLite in a
    /// transaction of its own (SQLite has one writer at a time anyway). Gives the append back
    /// (its rows go on into the outcome) with the rows' checkpoints.
    async fn write(
        &self,
        append: OwnedAppend,
    ) -> Result<(OwnedAppend, Vec<Checkpoint>), AppendError> {
        let Database::Postgres(pool) = &self.db else {
            let checkpoints = self.db.append(&append.view()).await?;
            return Ok((append, checkpoints));
        };
        let committer = self.committer.get_or_init(|| {
            Committer::new(
                (*pool.connect_options()).clone(),
                self.config.append_connections,
            )
        });
        let (append, result) = committer.append(append).await.map_err(|_| {
            // The task writing the group was stopped (its runtime shut down) before it answered:
            // the outcome is unknown (a retry under the same command id is safe).
            AppendError::Store(StoreError::Database(sqlx::Error::WorkerCrashed))
        })?;
        Ok((append, result?))
    }

    /// Writes a snapshot of the context's aggregate as it is (events already applied). A failure
    /// is logged, not returned: the events are committed and a snapshot is only a cache.
    async fn snapshot(&self, context: &mut StoreContext<A>) {
        let state = match serde_json::to_value(&context.aggregate) {
            Ok(state) => state,
            Err(error) => {
                tracing::warn!(stream_id = context.stream_id, %error, "aggregate does not serialise; no snapshot");
                return;
            }
        };
        match self
            .db
            .save_snapshot(
                &context.stream_id,
                A::TYPE,
                context.version,
                &context.last_hash,
                &state,
            )
            .await
        {
            Ok(()) => context.snapshot_version = context.version,
            Err(error) => {
                tracing::warn!(stream_id = context.stream_id, %error, "snapshot not saved")
            }
        }
    }

    /// The outcome of an already-applied command id, if it was applied to `stream_id`.
    async fn original_outcome(
        &self,
        stream_id: &str,
        command_id: &str,
    ) -> Result<Option<Outcome<A::Event>>, StoreError> {
        let Some((first, last)) = self.db.find_command(stream_id, command_id).await? else {
            return Ok(None);
        };
        let records = self.db.stream_events(stream_id, first, last).await?;
        if records.len() as u64 != last - first + 1 {
            return Err(StoreError::Corrupt(format!(
                "command {command_id} claims {stream_id}@{first}..={last} but {} events are there",
                records.len()
            )));
        }
        Ok(Some(Outcome {
            stream_id: stream_id.to_owned(),
            version: last,
            events: self.decode_all(records)?,
            duplicate: true,
        }))
    }

    fn decode_all(
        &self,
        records: Vec<RecordedEvent>,
    ) -> Result<Vec<Committed<A::Event>>, StoreError> {
        records
            .into_iter()
            .map(|record| {
                let event = record.decode(&self.upcasters)?;
                Ok(Committed { record, event })
            })
            .collect()
    }

    /// The stream's command lock, shared by every command on it that is running or waiting.
    fn stream_lock(&self, stream_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.stream_locks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = locks.get(stream_id).and_then(Weak::upgrade) {
            return lock;
        }
        // Forget locks nobody holds any more, now and then, so the map stays small.
        if locks.len() >= 1024 {
            locks.retain(|_, weak| weak.strong_count() > 0);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(stream_id.to_owned(), Arc::downgrade(&lock));
        lock
    }

    fn cache_take(&self, stream_id: &str) -> Option<StoreContext<A>> {
        if self.config.cache_capacity == 0 {
            return None;
        }
        // A poisoned lock only means another thread panicked mid-update of a plain map;
        // the map is still consistent (each operation is a single insert/remove).
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.entries.remove(stream_id).map(|(context, _)| context)
    }

    fn cache_put(&self, context: StoreContext<A>) {
        if self.config.cache_capacity == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.put(context, self.config.cache_capacity);
    }
}

/// The in-process aggregate cache: stream id → (context, last use tick).
struct Cache<A> {
    entries: HashMap<String, (StoreContext<A>, u64)>,
    tick: u64,
}

impl<A> Default for Cache<A> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            tick: 0,
        }
    }
}

impl<A> Cache<A> {
    /// Keeps `context` unless a newer version of the stream is already cached (two commands on
    /// one stream can finish in either order); evicts the least recently used entry when full.
    fn put(&mut self, context: StoreContext<A>, capacity: usize) {
        self.tick += 1;
        if let Some((existing, _)) = self.entries.get(&context.stream_id) {
            if existing.version >= context.version {
                return;
            }
        }
        if self.entries.len() >= capacity && !self.entries.contains_key(&context.stream_id) {
            // O(n) scan, but only when full, and n is small (hundreds of streams).
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, tick))| *tick)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        let tick = self.tick;
        self.entries
            .insert(context.stream_id.clone(), (context, tick));
    }
}

/// Now, truncated to microseconds: what both databases store, so the hash computed before the
/// insert matches the one recomputed from the row.
fn now_micros() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

impl<A: Aggregate> cqrs_es::EventStore<A> for Store<A> {
    type AC = StoreContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let committed = self
            .load_stream(aggregate_id)
            .await
            .map_err(StoreError::into_aggregate_error)?;
        Ok(committed.into_iter().map(envelope).collect())
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<StoreContext<A>, AggregateError<A::Error>> {
        self.load_context(aggregate_id)
            .await
            .map_err(StoreError::into_aggregate_error)
    }

    /// cqrs-es's commit. The metadata map may carry `command_id`, `actor`, `correlation_id`
    /// and `decision` (see [`CommandMetadata::from_map`]); with a known command id, a retry
    /// returns the original events.
    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: StoreContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        if events.is_empty() {
            self.cache_put(context);
            return Ok(Vec::new());
        }
        let metadata = CommandMetadata::from_map(&metadata);
        let outcome = self
            .append(events, context, &metadata)
            .await
            .map_err(StoreError::into_aggregate_error)?;
        Ok(outcome.events.into_iter().map(envelope).collect())
    }
}

fn envelope<A: Aggregate>(committed: Committed<A::Event>) -> EventEnvelope<A> {
    EventEnvelope {
        aggregate_id: committed.record.stream_id.clone(),
        sequence: usize::try_from(committed.record.stream_version).unwrap_or(usize::MAX),
        metadata: committed.record.command_metadata().to_map(),
        payload: committed.event,
    }
}

#[cfg(test)]
mod tests {
    use super::{Cache, StoreContext};

    fn context(stream: &str, version: u64) -> StoreContext<u64> {
        StoreContext {
            stream_id: stream.to_owned(),
            aggregate: version,
            version,
            last_hash: String::new(),
            snapshot_version: 0,
        }
    }

    #[test]
    fn the_cache_evicts_the_least_recently_used_and_keeps_the_newest_version() {
        let mut cache = Cache::default();
        cache.put(context("a", 1), 2);
        cache.put(context("b", 1), 2);
        cache.put(context("a", 2), 2); // a is now the most recently used
        cache.put(context("c", 1), 2); // evicts b
        assert!(cache.entries.contains_key("a"));
        assert!(!cache.entries.contains_key("b"));
        assert!(cache.entries.contains_key("c"));
        // A command that finished later with an older state does not overwrite a newer one.
        cache.put(context("a", 1), 2);
        assert_eq!(cache.entries["a"].0.version, 2);
    }
}
