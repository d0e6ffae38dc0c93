//! Load generators for Switchyard. `runfeed` compares polling and SSE on one feed
//! with goose; `streams` finds how many SSE streams one instance holds.

pub mod procstat;
pub mod sse;
pub mod stats;
