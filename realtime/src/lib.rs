//! The Server-Sent Events transport: an event bus with a bounded, resumable history per
//! topic, SSE responses that resume after `Last-Event-ID`, and presence tracking.
//!
//! Nothing here knows what an item is. A view renders its items to HTML once, publishes
//! them as [`BusEvent`]s and hands subscriptions to [`stream::sse_response`]; the same
//! markup serves a polling answer elsewhere.

pub mod bus;
pub mod presence;
mod redis_request;
pub mod stream;

pub use bus::{
    Bus, BusEvent, EventId, MemoryBus, RedisBus, RedisBusConfig, Resume, Subscription, Topic,
};
pub use presence::{Presence, PresenceGuard};
pub use stream::{OnSent, StreamOptions, sse_response};
