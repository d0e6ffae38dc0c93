//! The ingest loop: messages from a source are stored, then published to live views.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use realtime::{BusEvent, EventId, Topic};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::source::{AccessToken, LiveSource, ReplaySource};
use super::status::StreamMessage;
use super::store::{self, Change, StoredStatus};
use super::views;
use crate::app::AppState;
use crate::db::now_ms;

/// The sample recording that plays when no instance is configured.
pub const BUNDLED_REPLAY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mastodon-sample.sse");

/// The same recording inside the binary, for a binary run away from its source tree.
const BUNDLED_BYTES: &[u8] = include_bytes!("../../data/mastodon-sample.sse");

/// The bundled recording's path: the source tree's copy, or the embedded one written
/// to the temporary folder when the binary runs elsewhere.
fn bundled_replay() -> std::io::Result<PathBuf> {
    let in_tree = PathBuf::from(BUNDLED_REPLAY);
    if in_tree.is_file() {
        return Ok(in_tree);
    }
    let copy = std::env::temp_dir().join("switchyard-mastodon-sample.sse");
    if std::fs::metadata(&copy).map(|m| m.len()).ok() != Some(BUNDLED_BYTES.len() as u64) {
        std::fs::write(&copy, BUNDLED_BYTES)?;
    }
    Ok(copy)
}

/// What visitors read when the source has stopped; the log has the reason.
const STOPPED: &str = "nowhere at the moment: the source stopped (the server log says why)";

/// Prune old statuses after this many inserts, not after each one.
const PRUNE_EVERY: u64 = 50;

/// What the ingest loop has done, for the pages and metrics.
#[derive(Default, Debug)]
pub struct IngestStatus {
    pub received: AtomicU64,
    pub stored: AtomicU64,
    pub reconnects: Arc<AtomicU64>,
    /// `replay <file>`, `live <instance>`, or the error that stopped the source.
    pub source: Mutex<String>,
    /// The same for visitors: no file paths, no error text.
    pub public: Mutex<String>,
}

impl IngestStatus {
    pub fn describe(&self) -> String {
        self.source.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// What pages may say about the source.
    pub fn describe_publicly(&self) -> String {
        self.public.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set_source(&self, text: String, public: &str) {
        if let Ok(mut source) = self.source.lock() {
            *source = text;
        }
        if let Ok(mut shown) = self.public.lock() {
            *shown = public.to_owned();
        }
    }
}

/// The topic of rendered status changes.
pub fn statuses_topic() -> Topic {
    Topic::new("statuses")
}

/// The topic of raw changes, as JSON, for the firehose page.
pub fn firehose_topic() -> Topic {
    Topic::new("firehose")
}

/// Runs the configured source and applies its messages until shutdown.
pub async fn run(state: AppState, shutdown: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::channel::<StreamMessage>(256);
    let config = state.config.clone();
    let status = state.ingest.clone();

    let source = match &config.mastodon_instance {
        Some(instance) => {
            let mut live = LiveSource::new(
                instance.clone(),
                config.mastodon_token.clone().map(AccessToken::new),
            );
            live.reconnects = status.reconnects.clone();
            let host = instance
                .split("://")
                .last()
                .unwrap_or(instance)
                .trim_end_matches('/');
            status.set_source(format!("live {instance}"), &format!("{host}, live"));
            tokio::spawn(live.run(tx, shutdown.clone()))
        }
        None => {
            let path = match config.replay_file.clone() {
                Some(path) => path,
                None => match bundled_replay() {
                    Ok(path) => path,
                    Err(error) => {
                        tracing::error!(%error, "writing out the bundled recording failed");
                        status.set_source(format!("stopped: {error}"), STOPPED);
                        return;
                    }
                },
            };
            let public = match &config.replay_file {
                None => "the bundled sample recording".to_owned(),
                Some(file) => {
                    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
                    format!("a recording ({})", name.unwrap_or_default())
                }
            };
            status.set_source(format!("replay {}", path.display()), &public);
            let replay = ReplaySource {
                path,
                rate_per_sec: config.replay_rate,
                looping: !config.replay_once,
            };
            tokio::spawn(replay.run(tx, shutdown.clone()))
        }
    };
    tracing::info!(source = status.describe(), "ingest started");

    let span = tracing::info_span!("ingest");
    async {
        let mut inserts = 0u64;
        while let Some(message) = rx.recv().await {
            status.received.fetch_add(1, Ordering::Relaxed);
            match apply(&state, message).await {
                Ok(Some(change)) => {
                    status.stored.fetch_add(1, Ordering::Relaxed);
                    if change.first_seq == change.seq {
                        inserts += 1;
                        if inserts.is_multiple_of(PRUNE_EVERY) {
                            prune(&state).await;
                        }
                    }
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "storing a status failed"),
            }
        }
    }
    .instrument(span)
    .await;

    // The channel closed: the source ended or failed.
    match source.await {
        Ok(Ok(())) => tracing::info!("ingest source finished"),
        Ok(Err(error)) => {
            tracing::error!(error = format!("{error:#}"), "ingest source stopped");
            status.set_source(format!("stopped: {error:#}"), STOPPED);
        }
        Err(error) => tracing::error!(%error, "ingest source task failed"),
    }
}

/// Stores one message and publishes the change it made, if any.
pub async fn apply(state: &AppState, message: StreamMessage) -> sqlx::Result<Option<Change>> {
    let (change, kind) = match &message {
        StreamMessage::Update(status) => (
            store::insert(&state.db, &StoredStatus::from_status(status)).await?,
            "update",
        ),
        StreamMessage::StatusUpdate(status) => (
            store::update(&state.db, &StoredStatus::from_status(status)).await?,
            "status.update",
        ),
        StreamMessage::Delete(id) => (store::delete(&state.db, id).await?, "delete"),
        StreamMessage::Heartbeat => return Ok(None),
    };
    if let Some(change) = &change {
        publish(state, change, kind).await;
    }
    Ok(change)
}

async fn publish(state: &AppState, change: &Change, kind: &str) {
    let published_ms = now_ms() as u64;
    let id = EventId(change.seq);
    state
        .statuses_bus
        .publish(
            &statuses_topic(),
            BusEvent {
                id,
                name: "item".into(),
                data: views::change_fragment(views::STATUS_IDS, change, change.seq - 1)
                    .into_string(),
                published_ms,
            },
        )
        .await;
    state
        .statuses_bus
        .publish(
            &firehose_topic(),
            BusEvent {
                id,
                name: kind.to_owned(),
                data: views::firehose_json(change, kind),
                published_ms,
            },
        )
        .await;
}

async fn prune(state: &AppState) {
    match store::prune(&state.db, state.config.retention).await {
        Ok(0) => {}
        Ok(removed) => tracing::debug!(removed, "old statuses pruned"),
        Err(error) => tracing::warn!(%error, "pruning statuses failed"),
    }
}
