//! SSE responses for bus subscriptions.
//!
//! A stream starts with a `retry:` hint, then sends what the subscriber missed (or a
//! `reset` event when that cannot be known), then live events. Ids never go backwards:
//! a live event already sent from the history is skipped, so a resume has no overlap.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use crate::bus::{BusEvent, EventId, Resume, Subscription};

/// How many sent ids a stream remembers to recognise repeats.
const RECENT: usize = 512;

/// The name of the event that tells a client to reload the region from scratch.
pub const RESET_EVENT: &str = "reset";

/// Timing of a stream's housekeeping.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// How often an idle stream sends a `:` comment, so that proxies and browsers keep
    /// the connection and a dead peer is noticed.
    pub keep_alive: Duration,
    /// The reconnect delay suggested to the browser with `retry:`.
    pub retry: Duration,
    /// Streams end when this turns true, so a shutting-down server is not held open
    /// by idle streams; browsers reconnect (elsewhere) and resume by `Last-Event-ID`.
    pub shutdown: Option<watch::Receiver<bool>>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            keep_alive: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            shutdown: None,
        }
    }
}

enum Phase {
    Hint,
    Backlog(VecDeque<Arc<BusEvent>>),
    Live,
    Done,
}

struct State<G> {
    phase: Phase,
    sub: Subscription,
    last_sent: Option<EventId>,
    /// The resume point: the client had everything up to it before this stream.
    after: Option<EventId>,
    /// Ids sent lately, to tell a repeat from an event that arrives late.
    /// Grows as events are sent rather than up front: most streams of a quiet topic
    /// never send hundreds of events, and 4 KiB each adds up at 20,000 streams.
    recent: VecDeque<EventId>,
    retry: Duration,
    shutdown: Option<watch::Receiver<bool>>,
    on_sent: OnSent,
    /// Dropped when the client goes away: presence and open-stream counts hang on it.
    _guard: G,
}

/// Called with every event a stream sends, for counting and delay measurements.
pub type OnSent = Box<dyn Fn(&BusEvent) + Send + Sync>;

/// Turns a subscription into an SSE response. `guard` lives as long as the stream.
pub fn sse_response<G: Send + 'static>(
    sub: Subscription,
    options: &StreamOptions,
    guard: G,
    on_sent: OnSent,
) -> Sse<impl Stream<Item = Result<Event, Infallible>> + Send + 'static> {
    let stream = event_stream(sub, options, guard, on_sent);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(options.keep_alive).text(""))
}

/// The events of a subscription as SSE frames, without keep-alive.
pub fn event_stream<G: Send + 'static>(
    mut sub: Subscription,
    options: &StreamOptions,
    guard: G,
    on_sent: OnSent,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let resume = std::mem::replace(&mut sub.resume, Resume::Events(Vec::new()));
    let backlog = match resume {
        Resume::Events(events) => Some(VecDeque::from(events)),
        Resume::Reset => None,
    };
    let after = sub.after;
    let state = State {
        phase: Phase::Hint,
        sub,
        // Never send what the client has: a live event at or below its resume point
        // (published between its page's render and this subscription) is skipped.
        last_sent: after,
        after,
        recent: VecDeque::new(),
        retry: options.retry,
        shutdown: options.shutdown.clone(),
        on_sent,
        _guard: guard,
    };

    futures_util::stream::unfold((state, backlog), |(mut state, mut backlog)| async move {
        let event = next_event(&mut state, &mut backlog).await?;
        Some((Ok(event), (state, backlog)))
    })
}

async fn next_event<G>(
    state: &mut State<G>,
    backlog: &mut Option<VecDeque<Arc<BusEvent>>>,
) -> Option<Event> {
    loop {
        match &mut state.phase {
            Phase::Hint => {
                state.phase = match backlog.take() {
                    Some(events) => Phase::Backlog(events),
                    None => {
                        state.phase = Phase::Done;
                        return Some(reset_event(state.retry));
                    }
                };
                return Some(Event::default().retry(state.retry).comment("hello"));
            }
            Phase::Backlog(events) => match events.pop_front() {
                Some(event) => return Some(state.sent(&event)),
                None => state.phase = Phase::Live,
            },
            Phase::Live => match next_live(&mut state.sub, &mut state.shutdown).await {
                Err(RecvError::Closed) if state.stopping() => {
                    state.phase = Phase::Done;
                    return Some(goodbye_event(state.retry));
                }
                Ok(event) if state.last_sent.is_some_and(|last| event.id <= last) => {
                    if state.already_has(event.id) {
                        continue;
                    }
                    // An older event arriving after newer ones (an instance flushing
                    // what it queued while Redis was away): the browser's cursor has
                    // moved past it, so only a reload from the database shows it.
                    tracing::info!(topic = %state.sub.topic, id = %event.id, "late event reset");
                    state.phase = Phase::Done;
                    return Some(reset_event(state.retry));
                }
                Ok(event) => return Some(state.sent(&event)),
                Err(RecvError::Lagged(missed)) => {
                    // The queue is bounded so one slow reader cannot hold memory; it
                    // starts over from the database instead.
                    tracing::info!(topic = %state.sub.topic, missed, "slow subscriber reset");
                    state.phase = Phase::Done;
                    return Some(reset_event(state.retry));
                }
                Err(RecvError::Closed) => state.phase = Phase::Done,
            },
            Phase::Done => return None,
        }
    }
}

/// The next live event, or `Closed` once the server shuts down.
async fn next_live(
    sub: &mut Subscription,
    shutdown: &mut Option<watch::Receiver<bool>>,
) -> Result<Arc<BusEvent>, RecvError> {
    let Some(shutdown) = shutdown else {
        return sub.live.recv().await;
    };
    tokio::select! {
        event = sub.live.recv() => event,
        _ = shutdown.wait_for(|stopping| *stopping) => Err(RecvError::Closed),
    }
}

impl<G> State<G> {
    fn stopping(&self) -> bool {
        self.shutdown.as_ref().is_some_and(|stop| *stop.borrow())
    }

    /// Whether the client has `id`: sent on this stream, or covered by its resume point.
    fn already_has(&self, id: EventId) -> bool {
        self.after.is_some_and(|after| id <= after) || self.recent.contains(&id)
    }

    fn sent(&mut self, event: &BusEvent) -> Event {
        self.last_sent = Some(event.id);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(event.id);
        (self.on_sent)(event);
        encode(event)
    }
}

/// The SSE frame of a bus event.
pub fn encode(event: &BusEvent) -> Event {
    Event::default()
        .id(event.id.to_string())
        .event(&event.name)
        .data(&event.data)
}

/// The last frame of a stream whose server is stopping: reconnect after a random part
/// of a few retry intervals, so that thousands of clients do not all come back to the
/// remaining instances in the same millisecond. Their `Last-Event-ID` resumes them.
fn goodbye_event(retry: Duration) -> Event {
    let spread = retry.as_millis().max(1) as u64 * 2;
    let delay = retry + Duration::from_millis(rand::random_range(0..spread));
    Event::default().retry(delay).comment("server restarting")
}

/// Browsers drop events whose data is empty, so the reset says what it asks for.
fn reset_event(retry: Duration) -> Event {
    Event::default()
        .event(RESET_EVENT)
        .retry(retry)
        .data("reload")
}
