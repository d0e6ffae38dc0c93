//! Switchyard: the same live views over htmx polling and Server-Sent Events, switchable
//! in the browser, with the numbers to compare them.
//!
//! The transports live in their own crates (`polling`, `realtime`) and know nothing of
//! posts or Mastodon; the modules here are the app's features, each with its router.

pub mod accounts;
pub mod app;
pub mod assets;
pub mod compare;
pub mod config;
pub mod db;
pub mod error;
pub mod heads;
pub mod hello;
pub mod input;
pub mod live;
pub mod mastodon;
pub mod memo;
pub mod metrics;
pub mod pages;
pub mod posts;
pub mod security;

pub use app::{AppState, Application, router};
pub use config::Config;
