//! The Mastodon mirror: reading the streaming wire format, the sources that feed it,
//! storing sanitized statuses and showing them live.

pub mod sanitize;
pub mod source;
pub mod status;
pub mod wire;

pub mod ingest;
pub mod record;
pub mod store;
pub mod views;
