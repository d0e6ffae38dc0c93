//! Where stream messages come from: a live instance, a replay file, or a recording session.
//!
//! Every source pushes [`StreamMessage`]s into an `mpsc` channel and stops, returning
//! `Ok(())`, when the receiver is dropped or the shutdown flag turns true. Downstream code can
//! therefore swap sources without knowing which one it is reading.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use rand::Rng;
use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::status::{Status, StreamMessage};
use super::wire::{WireEvent, WireReader};

/// How long to wait for a TCP (and TLS) connection before counting the attempt as failed.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection may stay silent before it is presumed dead.
///
/// Mastodon sends a heartbeat comment every 15 seconds, so three missed heartbeats mean the
/// peer or something in between has gone away without closing the socket.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// A bearer token for the instance.
///
/// Wrapped so that logging a source, an error or a debug dump cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token; surrounding whitespace (a newline from a secrets file) is dropped.
    pub fn new(token: impl Into<String>) -> Self {
        let token = token.into();
        Self(token.trim().to_owned())
    }

    /// The token itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the random part of a [`Backoff`] delay is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// Uniform between zero and the exponential ceiling `base * 2^(attempt - 1)`.
    Full,
    /// Uniform between `base` and three times the previous delay; never below `base`.
    Decorrelated,
}

/// Capped exponential backoff with jitter.
///
/// Jitter keeps many mirrors (or many restarts of one) from reconnecting in lockstep after an
/// instance restarts; the cap keeps an outage of hours from turning into waits of hours once
/// the instance is back.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    jitter: Jitter,
    healthy_after: Duration,
    attempt: u32,
    last: Duration,
}

impl Default for Backoff {
    /// One second growing to a minute, decorrelated jitter.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl Backoff {
    /// Delays start near `base` and never exceed `cap`; decorrelated jitter.
    pub fn new(base: Duration, cap: Duration) -> Self {
        let base = base.max(Duration::from_millis(1));
        Self {
            base,
            cap: cap.max(base),
            jitter: Jitter::Decorrelated,
            healthy_after: Duration::from_secs(30),
            attempt: 0,
            last: base,
        }
    }

    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// How long a connection must stay up before its failure starts a fresh series of
    /// delays; shorter-lived connections keep growing the delay, so a server that accepts
    /// and at once drops connections is not hammered.
    pub fn with_healthy_after(mut self, healthy_after: Duration) -> Self {
        self.healthy_after = healthy_after;
        self
    }

    pub fn base(&self) -> Duration {
        self.base
    }

    pub fn cap(&self) -> Duration {
        self.cap
    }

    pub fn healthy_after(&self) -> Duration {
        self.healthy_after
    }

    /// Consecutive failures so far (the number of the attempt the last delay preceded).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let mut rng = rand::rng();

        let delay = match self.jitter {
            Jitter::Full => {
                let factor = 1u32.checked_shl(self.attempt - 1).unwrap_or(u32::MAX);
                let ceiling = self.base.saturating_mul(factor).min(self.cap);
                Duration::from_nanos(rng.random_range(0..=nanos(ceiling)))
            }
            Jitter::Decorrelated => {
                let ceiling = self.last.saturating_mul(3).clamp(self.base, self.cap);
                Duration::from_nanos(rng.random_range(nanos(self.base)..=nanos(ceiling)))
            }
        };

        self.last = delay.max(self.base);
        delay
    }

    /// Forgets past failures after a healthy connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.last = self.base;
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The public federated timeline of a live instance, over HTTP streaming.
#[derive(Debug, Clone)]
pub struct LiveSource {
    /// Base URL such as `https://mastodon.example`; `https://` is assumed without a scheme.
    pub instance: String,
    pub token: Option<AccessToken>,
    pub backoff: Backoff,
    /// Counts reconnection attempts (not the first connection), for status pages.
    pub reconnects: Arc<AtomicU64>,
    pub connect_timeout: Duration,
    /// Silence longer than this (no event, no heartbeat) drops and reopens the connection.
    pub idle_timeout: Duration,
}

impl LiveSource {
    /// A source with default backoff and timeouts and a fresh reconnect counter.
    pub fn new(instance: impl Into<String>, token: Option<AccessToken>) -> Self {
        Self {
            instance: instance.into(),
            token,
            backoff: Backoff::default(),
            reconnects: Arc::new(AtomicU64::new(0)),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }

    /// The streaming endpoint for the public timeline.
    pub fn stream_url(&self) -> anyhow::Result<Url> {
        let trimmed = self.instance.trim().trim_end_matches('/');
        let absolute = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("https://{trimmed}")
        };

        let mut url = Url::parse(&absolute)
            .with_context(|| format!("the instance {:?} is not a valid URL", self.instance))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!(
                "the instance {:?} must be an http or https URL",
                self.instance
            );
        }

        let path = format!(
            "{}/api/v1/streaming/public",
            url.path().trim_end_matches('/')
        );
        url.set_path(&path);
        url.set_query(None);
        url.set_fragment(None);
        Ok(url)
    }

    /// Streams the public timeline into `tx` until shutdown, reconnecting on failure.
    ///
    /// Returns an error only for what retrying cannot fix: an invalid instance URL, or an
    /// instance that refuses the token (HTTP 401 or 403).
    pub async fn run(
        mut self,
        tx: mpsc::Sender<StreamMessage>,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut stop = Stop::new(shutdown.clone(), None);
        let mut sink = MessageSink { tx, shutdown };
        self.drive(&mut sink, &mut stop).await
    }

    /// Connects, reads and reconnects until `stop` fires or the sink asks to stop.
    async fn drive<S: EventSink>(&mut self, sink: &mut S, stop: &mut Stop) -> anyhow::Result<()> {
        let url = self.stream_url()?;
        let client = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .build()
            .context("building the HTTP client")?;

        loop {
            if stop.is_set() {
                return Ok(());
            }

            let outcome = self.session(&client, &url, sink, stop).await;
            let (error, retry_after, healthy) = match outcome {
                Outcome::Stop => return Ok(()),
                Outcome::Fatal(error) => return Err(error),
                Outcome::Retry {
                    error,
                    retry_after,
                    healthy,
                } => (error, retry_after, healthy),
            };

            if healthy {
                self.backoff.reset();
            }
            let mut delay = self.backoff.next_delay();
            if let Some(asked) = retry_after {
                delay = delay.max(asked.min(self.backoff.cap()));
            }

            let attempt = self.backoff.attempt();
            let delay_ms = millis(delay);
            let error = format!("{error:#}");
            tracing::info!(attempt, delay_ms, error = %error, "mastodon stream reconnecting");

            tokio::select! {
                biased;
                _ = stop.wait() => return Ok(()),
                _ = tokio::time::sleep(delay) => {}
            }
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One connection, from request to whatever ends it.
    async fn session<S: EventSink>(
        &self,
        client: &reqwest::Client,
        url: &Url,
        sink: &mut S,
        stop: &mut Stop,
    ) -> Outcome {
        let mut request = client
            .get(url.clone())
            .header(ACCEPT, "text/event-stream")
            .header(CACHE_CONTROL, "no-cache");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }

        // The header wait is bounded too: a peer that accepts and never answers would
        // otherwise hold the source forever.
        let sent = tokio::select! {
            biased;
            _ = stop.wait() => return Outcome::Stop,
            sent = tokio::time::timeout(self.idle_timeout, request.send()) => sent,
        };
        let response = match sent {
            Err(_) => {
                let secs = self.idle_timeout.as_secs_f64();
                return Outcome::retry(anyhow!("no response headers within {secs:.1} s"));
            }
            Ok(Err(error)) if error.is_builder() => {
                return Outcome::Fatal(anyhow!(error).context("building the stream request"));
            }
            Ok(Err(error)) => return Outcome::retry(anyhow!(error)),
            Ok(Ok(response)) => response,
        };

        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let reason = if self.token.is_some() {
                format!("the instance refused the token (HTTP {status})")
            } else {
                format!(
                    "the instance refused an anonymous connection (HTTP {status}); \
                     its public stream needs an access token"
                )
            };
            return Outcome::Fatal(anyhow!(reason));
        }
        if !status.is_success() {
            return Outcome::Retry {
                error: anyhow!("the instance answered HTTP {status}"),
                retry_after: retry_after(&response),
                healthy: false,
            };
        }

        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if !content_type.starts_with("text/event-stream") {
            tracing::warn!(content_type, "the stream is not labelled text/event-stream");
        }
        tracing::info!(url = %url, "mastodon stream connected");

        let connected = Instant::now();
        let healthy = || connected.elapsed() >= self.backoff.healthy_after();
        let mut reader = WireReader::new();
        let mut body = std::pin::pin!(response.bytes_stream());

        loop {
            let next = tokio::select! {
                biased;
                _ = stop.wait() => return Outcome::Stop,
                next = tokio::time::timeout(self.idle_timeout, body.next()) => next,
            };

            let chunk = match next {
                Ok(Some(Ok(chunk))) => chunk,
                ended => {
                    let error = match ended {
                        Err(_) => {
                            let secs = self.idle_timeout.as_secs_f64();
                            anyhow!("nothing received for {secs:.1} s, not even a heartbeat")
                        }
                        Ok(Some(Err(error))) => anyhow!(error).context("reading the stream"),
                        _ => anyhow!("the instance closed the stream"),
                    };
                    return Outcome::Retry {
                        error,
                        retry_after: None,
                        healthy: healthy(),
                    };
                }
            };

            for event in reader.feed(&chunk) {
                match sink.accept(event).await {
                    Ok(true) => {}
                    Ok(false) => return Outcome::Stop,
                    Err(error) => return Outcome::Fatal(error),
                }
            }
        }
    }
}

/// Reads a `Retry-After` given in seconds (the form instances use for 429 and 503).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// How one connection ended.
enum Outcome {
    /// Shutdown, deadline, or the sink is done: stop without error.
    Stop,
    /// Retrying cannot help.
    Fatal(anyhow::Error),
    Retry {
        error: anyhow::Error,
        retry_after: Option<Duration>,
        /// The connection lived long enough that its end starts a fresh backoff series.
        healthy: bool,
    },
}

impl Outcome {
    fn retry(error: anyhow::Error) -> Self {
        Outcome::Retry {
            error,
            retry_after: None,
            healthy: false,
        }
    }
}

/// Where a live connection's events go.
trait EventSink {
    /// Takes one event; `Ok(false)` asks the source to stop, an error ends it.
    async fn accept(&mut self, event: WireEvent) -> anyhow::Result<bool>;
}

struct MessageSink {
    tx: mpsc::Sender<StreamMessage>,
    shutdown: watch::Receiver<bool>,
}

impl EventSink for MessageSink {
    async fn accept(&mut self, event: WireEvent) -> anyhow::Result<bool> {
        match StreamMessage::from_wire(event) {
            Ok(Some(message)) => Ok(send(&self.tx, message, &mut self.shutdown).await),
            Ok(None) => Ok(true),
            Err(error) => {
                tracing::warn!(error = %error, "skipping an undecodable mastodon event");
                Ok(true)
            }
        }
    }
}

struct RecordSink {
    file: tokio::fs::File,
    max_events: Option<u64>,
    written: u64,
}

impl EventSink for RecordSink {
    async fn accept(&mut self, event: WireEvent) -> anyhow::Result<bool> {
        let counts = matches!(event, WireEvent::Event { .. });

        self.file
            .write_all(event.to_wire().as_bytes())
            .await
            .context("appending to the recording")?;
        self.file.flush().await.context("flushing the recording")?;

        if counts {
            self.written += 1;
        }
        Ok(self.max_events.is_none_or(|max| self.written < max))
    }
}

/// Sends unless shutdown comes first; `false` means stop (shutdown or receiver gone).
async fn send(
    tx: &mpsc::Sender<StreamMessage>,
    message: StreamMessage,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        biased;
        _ = wait_shutdown(shutdown) => false,
        sent = tx.send(message) => {
            if sent.is_err() {
                tracing::debug!("stream receiver dropped, stopping the source");
            }
            sent.is_ok()
        }
    }
}

/// Resolves once the flag is true; never, if its sender is gone without setting it.
async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|&stop| stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The shutdown flag, plus an optional deadline for recordings.
struct Stop {
    shutdown: watch::Receiver<bool>,
    deadline: Option<Instant>,
}

impl Stop {
    fn new(shutdown: watch::Receiver<bool>, deadline: Option<Instant>) -> Self {
        Self { shutdown, deadline }
    }

    fn is_set(&self) -> bool {
        *self.shutdown.borrow() || self.deadline.is_some_and(|at| Instant::now() >= at)
    }

    async fn wait(&mut self) {
        match self.deadline {
            Some(at) => tokio::select! {
                _ = wait_shutdown(&mut self.shutdown) => {}
                _ = tokio::time::sleep_until(at) => {}
            },
            None => wait_shutdown(&mut self.shutdown).await,
        }
    }
}

/// Connects like [`LiveSource::run`] and appends every event and heartbeat to `out`.
///
/// Events are written back in Mastodon's own wire format (`event:`/`data:` lines, comment
/// lines for heartbeats), one flush per event, so a recording cut short at any moment is a
/// valid replay file up to its last event. The count returned, and `max_events`, cover
/// events only, not heartbeats.
pub async fn record(
    mut live: LiveSource,
    out: &Path,
    max_events: Option<u64>,
    max_duration: Option<Duration>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<u64> {
    if max_events == Some(0) {
        return Ok(0);
    }

    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .await
        .with_context(|| format!("opening {} for recording", out.display()))?;

    let deadline = max_duration.and_then(|limit| Instant::now().checked_add(limit));
    let mut stop = Stop::new(shutdown, deadline);
    let mut sink = RecordSink {
        file,
        max_events,
        written: 0,
    };

    live.drive(&mut sink, &mut stop).await?;

    let path = out.display().to_string();
    tracing::info!(events = sink.written, path, "mastodon recording finished");
    Ok(sink.written)
}

/// A recorded stream played back from a file in the wire format.
///
/// Each pass gives statuses fresh ids (see [`ReplaySource::run`]), so a looping replay keeps
/// looking like new traffic to storage that deduplicates by id.
#[derive(Debug, Clone)]
pub struct ReplaySource {
    pub path: PathBuf,
    /// Messages per second; zero, negative or NaN means as fast as the receiver takes them.
    pub rate_per_sec: f64,
    /// Start over at the end of the file instead of returning.
    pub looping: bool,
}

impl ReplaySource {
    /// Plays the file into `tx` until its end (or forever when looping) or shutdown.
    ///
    /// Ids of `update` statuses are moved, pass by pass, into a window that starts at the
    /// current time in Mastodon's snowflake layout (milliseconds shifted left by 16 bits) and
    /// always lies above the previous pass. Their relative order is kept, and `delete`,
    /// `status.update` and `in_reply_to_id` references to them move the same way, so edits
    /// and deletes hit the right status of the same pass. Ids the file never posted are left
    /// alone; non-numeric ids get a `-{pass}` suffix. Undecodable events are skipped.
    pub async fn run(
        self,
        tx: mpsc::Sender<StreamMessage>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let range = scan_posted_ids(&self.path).await?;
        let mut ids = IdRewriter::new(range);
        let mut pacer = Pacer::new(self.rate_per_sec);

        for pass in 0u64.. {
            ids.begin_pass(pass);
            let emitted = match self.play_pass(&ids, &mut pacer, &tx, &mut shutdown).await? {
                Some(emitted) => emitted,
                None => return Ok(()),
            };

            if emitted == 0 && pass == 0 {
                bail!(
                    "the replay file {} holds no stream events",
                    self.path.display()
                );
            }
            if emitted == 0 || !self.looping {
                return Ok(());
            }
            tracing::info!(pass, emitted, "mastodon replay starting over");
        }
        Ok(())
    }

    /// Plays the file once; `None` when told to stop, else the number of messages sent.
    async fn play_pass(
        &self,
        ids: &IdRewriter,
        pacer: &mut Pacer,
        tx: &mpsc::Sender<StreamMessage>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> anyhow::Result<Option<u64>> {
        let mut file = open_replay(&self.path).await?;
        let mut reader = WireReader::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut emitted = 0u64;

        loop {
            let n = file
                .read(&mut buf)
                .await
                .with_context(|| format!("reading {}", self.path.display()))?;
            let events = match n {
                0 => reader.finish(),
                n => reader.feed(&buf[..n]),
            };

            for event in events {
                let message = match StreamMessage::from_wire(event) {
                    Ok(Some(message)) => message,
                    Ok(None) => continue,
                    Err(error) => {
                        // Every pass meets the same broken events; say so once.
                        if ids.pass == 0 {
                            tracing::warn!(error = %error, "skipping an undecodable replay event");
                        }
                        continue;
                    }
                };

                if !pacer.wait(shutdown).await {
                    return Ok(None);
                }
                if !send(tx, ids.rewrite(message), shutdown).await {
                    return Ok(None);
                }
                emitted += 1;
            }

            if n == 0 {
                return Ok(Some(emitted));
            }
        }
    }
}

async fn open_replay(path: &Path) -> anyhow::Result<tokio::fs::File> {
    tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening the replay file {}", path.display()))
}

/// Spaces messages out to the configured rate.
struct Pacer {
    interval: Option<Interval>,
}

impl Pacer {
    /// Above a million messages a second the timer would only add overhead.
    const MIN_PERIOD: Duration = Duration::from_micros(1);
    const MAX_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);

    fn new(rate_per_sec: f64) -> Self {
        let period = if rate_per_sec > 0.0 {
            Duration::try_from_secs_f64(1.0 / rate_per_sec).unwrap_or(Self::MAX_PERIOD)
        } else {
            Duration::ZERO
        };

        let interval = (period >= Self::MIN_PERIOD).then(|| {
            let mut interval = tokio::time::interval(period.min(Self::MAX_PERIOD));
            // After a slow receiver, carry on at the rate instead of bursting to catch up.
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        Self { interval }
    }

    /// Waits for the next slot; `false` when shutdown came first.
    async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        match &mut self.interval {
            None => !*shutdown.borrow(),
            Some(interval) => tokio::select! {
                biased;
                _ = wait_shutdown(shutdown) => false,
                _ = interval.tick() => true,
            },
        }
    }
}

/// The lowest and highest numeric ids of statuses the file posts with `update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IdRange {
    lo: u64,
    hi: u64,
}

/// Reads the file once for the ids its `update` events post.
async fn scan_posted_ids(path: &Path) -> anyhow::Result<Option<IdRange>> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: String,
    }

    let mut file = open_replay(path).await?;
    let mut reader = WireReader::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut range: Option<IdRange> = None;

    loop {
        let n = file
            .read(&mut buf)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        let events = match n {
            0 => reader.finish(),
            n => reader.feed(&buf[..n]),
        };

        for event in events {
            let WireEvent::Event { name, data } = event else {
                continue;
            };
            if name != "update" {
                continue;
            }
            let Some(id) = serde_json::from_str::<IdOnly>(&data)
                .ok()
                .and_then(|status| numeric_id(&status.id))
            else {
                continue;
            };
            range = Some(match range {
                None => IdRange { lo: id, hi: id },
                Some(r) => IdRange {
                    lo: r.lo.min(id),
                    hi: r.hi.max(id),
                },
            });
        }

        if n == 0 {
            return Ok(range);
        }
    }
}

fn numeric_id(id: &str) -> Option<u64> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

/// Mastodon's id for "now": Unix milliseconds shifted left by 16 bits.
fn now_snowflake() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0);
    ms.saturating_mul(1 << 16)
}

/// Maps the ids of one replay pass.
#[derive(Debug)]
struct IdRewriter {
    range: Option<IdRange>,
    pass: u64,
    /// Where the range's lowest id lands in this pass.
    base: u64,
}

impl IdRewriter {
    fn new(range: Option<IdRange>) -> Self {
        Self {
            range,
            pass: 0,
            base: 0,
        }
    }

    fn begin_pass(&mut self, pass: u64) {
        self.pass = pass;
        let Some(range) = self.range else {
            return;
        };

        let span = range.hi - range.lo + 1;
        let floor = if pass == 0 {
            range.hi.saturating_add(1)
        } else {
            self.base.saturating_add(span)
        };
        self.base = now_snowflake().max(floor);
    }

    fn map(&self, id: &str) -> String {
        match (numeric_id(id), self.range) {
            (Some(n), Some(range)) if (range.lo..=range.hi).contains(&n) => {
                self.base.saturating_add(n - range.lo).to_string()
            }
            (Some(_), _) => id.to_owned(),
            (None, _) => format!("{id}-{}", self.pass),
        }
    }

    fn rewrite_status(&self, mut status: Status) -> Status {
        status.id = self.map(&status.id);
        if let Some(parent) = status.in_reply_to_id.take() {
            status.in_reply_to_id = Some(self.map(&parent));
        }
        status
    }

    fn rewrite(&self, message: StreamMessage) -> StreamMessage {
        match message {
            StreamMessage::Update(status) => StreamMessage::Update(self.rewrite_status(status)),
            StreamMessage::StatusUpdate(status) => {
                StreamMessage::StatusUpdate(self.rewrite_status(status))
            }
            StreamMessage::Delete(id) => StreamMessage::Delete(self.map(&id)),
            StreamMessage::Heartbeat => StreamMessage::Heartbeat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_never_prints() {
        let token = AccessToken::new(" s3cret\n");
        assert_eq!(token.expose(), "s3cret");
        assert_eq!(format!("{token} {token:?}"), "[redacted] [redacted]");
        let live = LiveSource::new("https://example.com", Some(token));
        assert!(!format!("{live:?}").contains("s3cret"));
    }

    #[test]
    fn stream_url_forms() {
        let url = |instance: &str| LiveSource::new(instance, None).stream_url();
        let expect = "https://example.com/api/v1/streaming/public";
        for instance in ["https://example.com", "https://example.com/", "example.com"] {
            assert_eq!(
                url(instance).map(|u| u.to_string()).ok().as_deref(),
                Some(expect)
            );
        }
        let sub = url("http://127.0.0.1:8080/social/").map(|u| u.to_string());
        assert_eq!(
            sub.ok().as_deref(),
            Some("http://127.0.0.1:8080/social/api/v1/streaming/public")
        );
        assert!(url("ftp://example.com").is_err());
        assert!(url("https://exa mple.com").is_err());
    }

    #[test]
    fn decorrelated_backoff_stays_in_bounds_and_resets() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(2);
        let mut backoff = Backoff::new(base, cap);
        let mut last = base;
        for attempt in 1..=50 {
            let delay = backoff.next_delay();
            assert!(delay >= base && delay <= cap, "{delay:?}");
            assert!(delay <= (last * 3).min(cap), "{delay:?} after {last:?}");
            assert_eq!(backoff.attempt(), attempt);
            last = delay;
        }
        backoff.reset();
        assert_eq!(backoff.attempt(), 0);
        assert!(backoff.next_delay() <= base * 3);
    }

    #[test]
    fn full_jitter_ceiling_doubles_up_to_cap() {
        let base = Duration::from_millis(10);
        let cap = Duration::from_millis(500);
        let mut backoff = Backoff::new(base, cap).with_jitter(Jitter::Full);
        for attempt in 1..=40u32 {
            let ceiling = base.saturating_mul(1u32 << (attempt - 1).min(20)).min(cap);
            assert!(backoff.next_delay() <= ceiling);
        }
    }

    fn status(id: &str) -> Status {
        let json = format!(
            r#"{{"id":"{id}","created_at":"2024-01-01T00:00:00Z","account":{{"id":"1"}}}}"#
        );
        match serde_json::from_str(&json) {
            Ok(status) => status,
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn id_rewriter_moves_posted_ids_above_the_previous_pass() {
        let mut ids = IdRewriter::new(Some(IdRange { lo: 100, hi: 110 }));
        let mut previous_top = 0u64;
        for pass in 0..3 {
            ids.begin_pass(pass);
            let low: u64 = ids.map("100").parse().unwrap_or(0);
            let high: u64 = ids.map("110").parse().unwrap_or(0);
            assert!(
                low > previous_top && high == low + 10,
                "pass {pass}: {low} {high}"
            );
            assert_eq!(ids.map("99"), "99");
            assert_eq!(ids.map("abc"), format!("abc-{pass}"));
            previous_top = high;
        }

        let mut reply = status("105");
        reply.in_reply_to_id = Some("100".into());
        let StreamMessage::StatusUpdate(reply) = ids.rewrite(StreamMessage::StatusUpdate(reply))
        else {
            panic!("kind changed");
        };
        assert_eq!(reply.id, ids.map("105"));
        assert_eq!(reply.in_reply_to_id, Some(ids.map("100")));
        assert_eq!(
            ids.rewrite(StreamMessage::Delete("100".into())),
            StreamMessage::Delete(ids.map("100"))
        );
    }

    #[tokio::test]
    async fn pacer_treats_odd_rates_as_unlimited_or_bounded() {
        assert!(Pacer::new(0.0).interval.is_none());
        assert!(Pacer::new(-3.0).interval.is_none());
        assert!(Pacer::new(f64::NAN).interval.is_none());
        assert!(Pacer::new(f64::INFINITY).interval.is_none());
        assert!(Pacer::new(1e-300).interval.is_some());
        assert!(Pacer::new(10.0).interval.is_some());
    }
}
