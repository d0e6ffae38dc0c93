//! The event bus: topics of rendered events with a bounded, resumable history.
//!
//! Ids are the views' own cursors (positions in one increasing sequence per bus), which
//! is what lets a browser switch between polling and SSE without a gap: both speak the
//! same cursor. Two backends behave alike: in-process for one instance, Redis Streams
//! for several instances sharing their events.

use std::fmt;
use std::sync::Arc;

use tokio::sync::broadcast;

mod memory;
mod redis;

pub use self::memory::MemoryBus;
pub use self::redis::{RedisBus, RedisBusConfig};

/// A position in a bus's sequence; the SSE `id:` of an event and a view's cursor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u64);

impl EventId {
    /// Parses a `Last-Event-ID` or `after` value; `None` for anything but a decimal.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().map(EventId)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The name of a stream of events, such as `posts` or `mentions:42`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Topic(pub String);

impl Topic {
    pub fn new(name: impl Into<String>) -> Self {
        Topic(name.into())
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One event as it goes on the wire: SSE `event:` name, `id:` and rendered `data:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusEvent {
    pub id: EventId,
    pub name: String,
    pub data: String,
    /// Publish time in Unix milliseconds, for delivery-delay measurements.
    pub published_ms: u64,
}

/// What a subscriber resuming after an id gets before the live events.
#[derive(Debug)]
pub enum Resume {
    /// The events it missed, oldest first (empty when it missed nothing).
    Events(Vec<Arc<BusEvent>>),
    /// Its resume point is older than the history or not a point this bus has reached:
    /// the client must reload the region from the database.
    Reset,
}

/// A live subscription plus what the subscriber missed.
pub struct Subscription {
    pub topic: Topic,
    /// The resume point: the subscriber has every event up to it already.
    pub after: Option<EventId>,
    pub resume: Resume,
    pub live: broadcast::Receiver<Arc<BusEvent>>,
}

/// A bus of either backend.
pub enum Bus {
    Memory(MemoryBus),
    Redis(RedisBus),
}

impl Bus {
    /// An in-process bus; see [`MemoryBus::new`].
    pub fn memory(history: usize, queue: usize, head: EventId) -> Bus {
        Bus::Memory(MemoryBus::new(history, queue, head))
    }

    /// Sends an event to the topic's subscribers, here and, with Redis, everywhere.
    pub async fn publish(&self, topic: &Topic, event: BusEvent) {
        match self {
            Bus::Memory(bus) => bus.publish(topic, event),
            Bus::Redis(bus) => bus.publish(topic, event).await,
        }
    }

    /// Subscribes to a topic, resuming after `after` when given. `head` is the newest
    /// id of the sequence as the database knows it: a resume point above it is not one
    /// this sequence has reached, and gets a reset.
    pub async fn subscribe(
        &self,
        topic: &Topic,
        after: Option<EventId>,
        head: EventId,
    ) -> Subscription {
        match self {
            Bus::Memory(bus) => bus.subscribe(topic, after, head),
            Bus::Redis(bus) => bus.subscribe(topic, after, head).await,
        }
    }

    /// Live subscribers on a topic in this process.
    pub fn subscribers(&self, topic: &Topic) -> usize {
        match self {
            Bus::Memory(bus) => bus.subscribers(topic),
            Bus::Redis(bus) => bus.subscribers(topic),
        }
    }
}
