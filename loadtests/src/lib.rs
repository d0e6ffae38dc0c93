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
