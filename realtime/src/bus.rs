//! The in-process event bus.
//!
//! Every topic keeps the last `history` events so that a reconnecting client can be sent
//! exactly what it missed. Ids are the views' own cursors (positions in one increasing
//! sequence per bus), which is what lets a browser switch between polling and SSE
//! without a gap: both speak the same cursor.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

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
    pub resume: Resume,
    pub live: broadcast::Receiver<Arc<BusEvent>>,
}

struct TopicState {
    history: VecDeque<Arc<BusEvent>>,
    sender: broadcast::Sender<Arc<BusEvent>>,
    /// Every event of this topic with an id above `floor` is in `history`.
    floor: EventId,
}

/// An in-process bus for one id sequence.
///
/// Publishing and subscribing take the same lock per call, so a subscriber's history
/// and its live receiver meet without a gap or an overlap.
pub struct Bus {
    history: usize,
    queue: usize,
    inner: Mutex<BusState>,
}

struct BusState {
    topics: HashMap<Topic, TopicState>,
    /// Ids at or below this were published before this bus existed.
    start_floor: EventId,
    /// The highest id published or known; a resume point above it is invalid.
    head: EventId,
}

impl Bus {
    /// A bus keeping `history` events per topic and queueing up to `queue` events per
    /// subscriber. `head` is the sequence's position when the process started: the bus
    /// cannot answer for anything at or below it, so such resume points get a reset.
    pub fn new(history: usize, queue: usize, head: EventId) -> Self {
        Bus {
            history: history.max(1),
            queue: queue.max(1),
            inner: Mutex::new(BusState {
                topics: HashMap::new(),
                start_floor: head,
                head,
            }),
        }
    }

    /// Sends an event to the topic's subscribers and keeps it in the topic's history.
    ///
    /// Callers publish ids in increasing order per topic (several topics may carry the
    /// same id); an id out of order is still delivered live but not kept, so history
    /// stays ordered.
    pub fn publish(&self, topic: &Topic, event: BusEvent) {
        let event = Arc::new(event);
        let mut state = self.lock();
        state.head = state.head.max(event.id);
        let (history, queue, floor) = (self.history, self.queue, state.start_floor);
        let topic_state = state
            .topics
            .entry(topic.clone())
            .or_insert_with(|| TopicState::new(queue, floor));

        let in_order = topic_state
            .history
            .back()
            .is_none_or(|last| event.id > last.id)
            && event.id > topic_state.floor;
        if in_order {
            if topic_state.history.len() == history
                && let Some(evicted) = topic_state.history.pop_front()
            {
                topic_state.floor = evicted.id;
            }
            topic_state.history.push_back(event.clone());
        } else {
            tracing::warn!(%topic, id = %event.id, "event published out of order");
        }

        // No receivers is the common case for a quiet user's topic; not an error.
        let _ = topic_state.sender.send(event);
    }

    /// Subscribes to a topic, resuming after `after` when given.
    pub fn subscribe(&self, topic: &Topic, after: Option<EventId>) -> Subscription {
        let mut state = self.lock();
        let head = state.head;
        let (queue, floor) = (self.queue, state.start_floor);
        let topic_state = state
            .topics
            .entry(topic.clone())
            .or_insert_with(|| TopicState::new(queue, floor));

        let resume = match after {
            None => Resume::Events(Vec::new()),
            Some(after) if after < topic_state.floor || after > head => Resume::Reset,
            Some(after) => Resume::Events(
                topic_state
                    .history
                    .iter()
                    .filter(|event| event.id > after)
                    .cloned()
                    .collect(),
            ),
        };

        Subscription {
            topic: topic.clone(),
            resume,
            live: topic_state.sender.subscribe(),
        }
    }

    /// The highest id this bus has seen.
    pub fn head(&self) -> EventId {
        self.lock().head
    }

    /// Live subscribers on a topic.
    pub fn subscribers(&self, topic: &Topic) -> usize {
        self.lock()
            .topics
            .get(topic)
            .map_or(0, |t| t.sender.receiver_count())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BusState> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl TopicState {
    fn new(queue: usize, floor: EventId) -> Self {
        TopicState {
            history: VecDeque::new(),
            sender: broadcast::channel(queue).0,
            floor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64) -> BusEvent {
        BusEvent {
            id: EventId(id),
            name: "item".into(),
            data: format!("<li>{id}</li>"),
            published_ms: 0,
        }
    }

    fn ids(resume: &Resume) -> Vec<u64> {
        match resume {
            Resume::Events(events) => events.iter().map(|e| e.id.0).collect(),
            Resume::Reset => panic!("unexpected reset"),
        }
    }

    #[test]
    fn resume_returns_exactly_the_missed_events() {
        let bus = Bus::new(4, 16, EventId(10));
        let topic = Topic::new("t");
        for id in 11..=13 {
            bus.publish(&topic, event(id));
        }

        assert_eq!(
            ids(&bus.subscribe(&topic, Some(EventId(11))).resume),
            [12, 13]
        );
        assert_eq!(
            ids(&bus.subscribe(&topic, Some(EventId(10))).resume),
            [11, 12, 13]
        );
        assert_eq!(
            ids(&bus.subscribe(&topic, Some(EventId(13))).resume),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn resume_older_than_history_or_ahead_of_head_resets() {
        let bus = Bus::new(2, 16, EventId(0));
        let topic = Topic::new("t");
        for id in 1..=5 {
            bus.publish(&topic, event(id));
        }

        assert!(matches!(
            bus.subscribe(&topic, Some(EventId(2))).resume,
            Resume::Reset
        ));
        assert_eq!(ids(&bus.subscribe(&topic, Some(EventId(3))).resume), [4, 5]);
        assert!(matches!(
            bus.subscribe(&topic, Some(EventId(9))).resume,
            Resume::Reset
        ));
    }

    #[test]
    fn resume_before_process_start_resets_but_a_quiet_topic_does_not() {
        let bus = Bus::new(8, 16, EventId(100));
        let quiet = Topic::new("quiet");

        assert!(matches!(
            bus.subscribe(&quiet, Some(EventId(99))).resume,
            Resume::Reset
        ));
        assert_eq!(
            ids(&bus.subscribe(&quiet, Some(EventId(100))).resume),
            Vec::<u64>::new()
        );

        // Other topics move the head; a quiet topic's subscriber at that head missed nothing.
        bus.publish(&Topic::new("busy"), event(150));
        assert_eq!(
            ids(&bus.subscribe(&quiet, Some(EventId(150))).resume),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn one_id_may_go_to_several_topics() {
        let bus = Bus::new(8, 16, EventId(0));
        let (a, b) = (Topic::new("a"), Topic::new("b"));
        bus.publish(&a, event(1));
        bus.publish(&b, event(1));

        assert_eq!(ids(&bus.subscribe(&a, Some(EventId(0))).resume), [1]);
        assert_eq!(ids(&bus.subscribe(&b, Some(EventId(0))).resume), [1]);
    }

    #[tokio::test]
    async fn live_subscribers_receive_published_events() {
        let bus = Bus::new(8, 16, EventId(0));
        let topic = Topic::new("t");
        let mut sub = bus.subscribe(&topic, None);

        bus.publish(&topic, event(1));
        bus.publish(&Topic::new("other"), event(2));
        bus.publish(&topic, event(3));

        assert_eq!(sub.live.recv().await.unwrap().id, EventId(1));
        assert_eq!(sub.live.recv().await.unwrap().id, EventId(3));
        assert_eq!(bus.subscribers(&topic), 1);
    }

    #[test]
    fn event_id_parsing_rejects_anything_but_digits() {
        assert_eq!(EventId::parse(" 42 "), Some(EventId(42)));
        for bad in ["", "-1", "4x", "1e3", "99999999999999999999999"] {
            assert_eq!(EventId::parse(bad), None, "{bad}");
        }
    }
}
