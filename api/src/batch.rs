//! [`TimelineBatch`]: the timeline aggregate taking a *list* of commands as one store command.
//!
//! The store appends the events of one command atomically (one transaction; the command id on its
//! first event row).
//! Wrapping the domain's [`Timeline`] so that its command is a `Vec<TimelineCommand>` makes a
//! batch exactly that: every command is decided against the state left by the previous ones, and
//! either all their events are appended in one transaction or none are. A single command is a
//! batch of one. The wrapper is serialised exactly like `Timeline` (`serde(transparent)`) and has
//! the same `TYPE`, so snapshots and streams are shared with any `Store<Timeline>`.

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use omorg_domain::{DomainError, Timeline, TimelineCommand, TimelineEvent};
use serde::{Deserialize, Serialize};

/// The domain timeline, commanded in batches. See the module docs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimelineBatch(pub Timeline);

/// A refused batch: which command (0-based) and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("command {}: {error}", index.map_or_else(|| "?".to_string(), |i| i.to_string()))]
pub struct BatchRefusal {
    /// The index of the refused command in the batch; `None` for a single command.
    pub index: Option<usize>,
    /// The domain's reason.
    pub error: DomainError,
}

/// The commands of one store command, and whether they came as a batch (for error reporting).
#[derive(Debug, Clone)]
pub struct Commands {
    /// The commands, applied in order.
    pub commands: Vec<TimelineCommand>,
    /// True when the client sent a batch: refusals then name the index.
    pub is_batch: bool,
    /// True for the changes of a scenario being adopted: decided as copies
    /// ([`Timeline::decide_copy`]), so that one the baseline already made does not block the rest.
    pub adopted: bool,
}

impl Aggregate for TimelineBatch {
    const TYPE: &'static str = <Timeline as Aggregate>::TYPE;
    type Command = Commands;
    type Event = TimelineEvent;
    type Error = BatchRefusal;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let (is_batch, adopted) = (command.is_batch, command.adopted);
        for (i, cmd) in command.commands.into_iter().enumerate() {
            // `decide` sees the events of the earlier commands: `sink.write` applies them.
            let decided = if adopted {
                self.0.decide_copy(cmd)
            } else {
                self.0.decide(cmd)
            };
            let decided = decided.map_err(|error| BatchRefusal {
                index: is_batch.then_some(i),
                error,
            })?;
            if let Some(event) = decided {
                sink.write(event, self).await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        self.0.apply(event);
    }
}
