//! Load generators for Switchyard. `runfeed` compares polling and SSE on one feed
//! with goose; `streams` finds how many SSE streams one instance holds.

pub mod feed;
pub mod follow;
pub mod items;
pub mod procstat;
pub mod report;
pub mod server;
pub mod sse;
pub mod stats;

/// Milliseconds since the Unix epoch: the clock the app stamps `data-published-ms` with.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
