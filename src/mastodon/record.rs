//! `switchyard record`: saves a live instance's public stream as a replay file.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use super::source::{AccessToken, LiveSource, record};
use crate::config::{Config, RecordArgs};

pub async fn run(config: &Config, args: &RecordArgs) -> anyhow::Result<()> {
    let instance = config
        .mastodon_instance
        .clone()
        .context("recording needs --mastodon-instance URL (or MASTODON_INSTANCE)")?;
    let live = LiveSource::new(
        instance.clone(),
        config.mastodon_token.clone().map(AccessToken::new),
    );

    // Ctrl-C ends the recording cleanly; what was written stays valid.
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });

    tracing::info!(%instance, out = %args.out.display(), "recording");
    let written = record(
        live,
        &args.out,
        args.max_events,
        args.max_seconds.map(Duration::from_secs),
        shutdown,
    )
    .await?;
    tracing::info!(events = written, out = %args.out.display(), "recording finished");
    Ok(())
}
