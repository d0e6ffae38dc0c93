//! The in-process bus: one process, history in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::{BusEvent, EventId, Resume, Subscription, Topic};

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
pub struct MemoryBus {
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

impl MemoryBus {
    /// A bus keeping `history` events per topic and queueing up to `queue` events per
    /// subscriber. `head` is the sequence's position when the process started: the bus
    /// cannot answer for anything at or below it, so such resume points get a reset.
    pub fn new(history: usize, queue: usize, head: EventId) -> Self {
        MemoryBus {
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

    /// Subscribes to a topic, resuming after `after` when given. `head` is the
    /// sequence's newest id as the caller's database knows it.
    pub fn subscribe(&self, topic: &Topic, after: Option<EventId>, head: EventId) -> Subscription {
        let mut state = self.lock();
        let head = state.head.max(head);
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
            after,
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
        let bus = MemoryBus::new(4, 16, EventId(10));
        let topic = Topic::new("t");
        for id in 11..=13 {
            bus.publish(&topic, event(id));
        }

        assert_eq!(
            ids(&bus.subscribe(&topic, Some(EventId(11)), EventId(0)).resume),
            [12, 13]
        );
        assert_eq!(
            ids(&bus.subscribe(&topic, Some(EventId(10)), EventId(0)).resume),
            [11, 12, 13]
        );
        assert_eq!(
            ids(&bus.subscribe(&topic, Some(EventId(13)), EventId(0)).resume),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn resume_older_than_history_or_ahead_of_head_resets() {
        let bus = MemoryBus::new(2, 16, EventId(0));
        let topic = Topic::new("t");
        for id in 1..=5 {
            bus.publish(&topic, event(id));
        }

        assert!(matches!(
            bus.subscribe(&topic, Some(EventId(2)), EventId(0)).resume,
            Resume::Reset
        ));
        assert_eq!(
            ids(&bus.subscribe(&topic, Some(EventId(3)), EventId(0)).resume),
            [4, 5]
        );
        assert!(matches!(
            bus.subscribe(&topic, Some(EventId(9)), EventId(0)).resume,
            Resume::Reset
        ));
    }

    #[test]
    fn resume_before_process_start_resets_but_a_quiet_topic_does_not() {
        let bus = MemoryBus::new(8, 16, EventId(100));
        let quiet = Topic::new("quiet");

        assert!(matches!(
            bus.subscribe(&quiet, Some(EventId(99)), EventId(0)).resume,
            Resume::Reset
        ));
        assert_eq!(
            ids(&bus.subscribe(&quiet, Some(EventId(100)), EventId(0)).resume),
            Vec::<u64>::new()
        );

        // Other topics move the head; a quiet topic's subscriber at that head missed nothing.
        bus.publish(&Topic::new("busy"), event(150));
        assert_eq!(
            ids(&bus.subscribe(&quiet, Some(EventId(150)), EventId(0)).resume),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn one_id_may_go_to_several_topics() {
        let bus = MemoryBus::new(8, 16, EventId(0));
        let (a, b) = (Topic::new("a"), Topic::new("b"));
        bus.publish(&a, event(1));
        bus.publish(&b, event(1));

        assert_eq!(
            ids(&bus.subscribe(&a, Some(EventId(0)), EventId(0)).resume),
            [1]
        );
        assert_eq!(
            ids(&bus.subscribe(&b, Some(EventId(0)), EventId(0)).resume),
            [1]
        );
    }

    #[tokio::test]
    async fn live_subscribers_receive_published_events() {
        let bus = MemoryBus::new(8, 16, EventId(0));
        let topic = Topic::new("t");
        let mut sub = bus.subscribe(&topic, None, EventId(0));

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
