//! The followers: goose users that follow the all-posts timeline by polling at an
//! interval or over one SSE stream, and record each post's publish-to-arrival delay.
//!
//! One process runs one phase (one transport) so the server's CPU and memory can be
//! told apart per transport; its tally goes to a JSON file the orchestrator reads.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::*;
use reqwest::header::{COOKIE, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::items;
use crate::now_ms;
use crate::sse::SseParser;
use crate::stats::Delays;

/// How a worker process follows the feed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub phase: String,
    /// Poll interval in milliseconds; `None` follows over SSE.
    pub poll_ms: Option<u64>,
    pub host: String,
    pub users: usize,
    pub run_secs: u64,
    /// Session cookies of the follower accounts; user `i` is logged in as `i % len`.
    pub cookies: Vec<String>,
    /// First of the 127.0.0.x source addresses this worker's users spread over.
    pub first_source: u8,
    /// Unix ms after which streams are closed and polls stop.
    pub end_ms: u64,
    pub report_file: String,
    pub tally_file: String,
}

/// What one worker saw.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    pub delays: Delays,
    pub requests: u64,
    pub errors: u64,
    /// Bytes received: status line, headers and body (no TCP or chunk framing).
    pub bytes: u64,
    pub first_error: Option<String>,
}

static SPEC: OnceLock<WorkerSpec> = OnceLock::new();
static TALLY: Mutex<Tally> = Mutex::new(Tally {
    delays: Delays { ms: Vec::new() },
    requests: 0,
    errors: 0,
    bytes: 0,
    first_error: None,
});

/// Source addresses users spread over, so many connections to one port stay within
/// the ephemeral port range.
const SOURCES: u8 = 50;

/// Runs the goose attack of one worker, then writes its tally.
pub async fn run_worker(spec: WorkerSpec) -> anyhow::Result<()> {
    let _ = SPEC.set(spec.clone());
    let mut config = GooseConfiguration::default();
    config.host = Some(spec.host.clone());
    config.users = Some(spec.users);
    let ramp = (spec.users / 2).clamp(1, 500);
    config.increase_rate = Some(ramp.to_string());
    config.run_time = Some(format!("{}s", spec.run_secs));
    config.report_file = vec![spec.report_file.clone()];
    config.no_telnet = true;
    config.no_websocket = true;
    config.running_metrics = None;
    // Goose would start its counts afresh once all users run; the tally counts from the
    // first request, and the two should agree.
    config.no_reset_metrics = true;

    let scenario = match spec.poll_ms {
        Some(ms) => scenario!("poll")
            .register_transaction(transaction!(prepare_poll).set_on_start())
            .register_transaction(transaction!(poll).set_name("poll"))
            .set_wait_time(Duration::from_millis(ms), Duration::from_millis(ms))?,
        None => scenario!("sse")
            .register_transaction(transaction!(prepare_sse).set_on_start())
            .register_transaction(transaction!(stream).set_name("stream"))
            .set_wait_time(Duration::from_millis(500), Duration::from_millis(500))?,
    };
    GooseAttack::initialize_with_config(config)?
        .register_scenario(scenario)
        .execute()
        .await?;

    let tally = TALLY.lock().unwrap_or_else(PoisonError::into_inner).clone();
    std::fs::write(&spec.tally_file, serde_json::to_vec(&tally)?)?;
    Ok(())
}

fn spec() -> &'static WorkerSpec {
    SPEC.get()
        .expect("the worker's spec is set before goose starts")
}

/// Per user: where its poll cursor is and which posts it already has.
#[derive(Clone, Default)]
struct Follower {
    cursor: u64,
    seen: HashSet<u64>,
}

async fn prepare_poll(user: &mut GooseUser) -> TransactionResult {
    client_for(user, true).await?;
    let region = user.get_named("/posts/all/region", "region").await?;
    let response = region.response?;
    let html = response.text().await?;
    let Some(cursor) = items::control_cursor(&html, "all") else {
        return Err(custom("the timeline region has no poll control"));
    };
    user.set_session_data(Follower {
        cursor,
        seen: HashSet::new(),
    });
    Ok(())
}

async fn prepare_sse(user: &mut GooseUser) -> TransactionResult {
    client_for(user, false).await?;
    user.set_session_data(Follower::default());
    Ok(())
}

/// Each user its own client: its own connection, cookie and source address.
async fn client_for(user: &mut GooseUser, poll: bool) -> TransactionResult {
    let spec = spec();
    let index = user.weighted_users_index;
    let cookie = &spec.cookies[index % spec.cookies.len()];
    let transport = if poll { "poll" } else { "sse" };
    let mut headers = HeaderMap::new();
    let value = format!("{cookie}; transport={transport}");
    headers.insert(
        COOKIE,
        HeaderValue::from_str(&value).map_err(|e| custom(&e.to_string()))?,
    );

    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(1)
        .connect_timeout(Duration::from_secs(10));
    if poll {
        builder = builder.timeout(Duration::from_secs(10));
    }
    if user
        .base_url
        .host_str()
        .is_some_and(|h| h.starts_with("127."))
    {
        let last = spec
            .first_source
            .saturating_add((index % SOURCES as usize) as u8);
        builder = builder.local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)));
    }
    user.set_client_builder(builder).await.map_err(Box::new)
}

async fn poll(user: &mut GooseUser) -> TransactionResult {
    if now_ms() >= spec().end_ms {
        return Ok(());
    }
    let cursor = user.get_session_data::<Follower>().map_or(0, |f| f.cursor);
    let answer = user
        .get_named(&format!("/posts/all/poll?after={cursor}"), "poll")
        .await?;
    let response = match answer.response {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => return failed(format!("poll answered {}", response.status())),
        Err(error) => return failed(format!("poll failed: {error}")),
    };
    let head = header_bytes(&response);
    let html = response.text().await?;
    let arrived = now_ms();
    count_request(head + html.len());

    let Some(follower) = user.get_session_data_mut::<Follower>() else {
        return Err(custom("poll before prepare"));
    };
    if let Some(next) = items::control_cursor(&html, "all") {
        follower.cursor = next;
    }
    let fresh = record(&mut follower.seen, &html, arrived);
    deliver(user, &fresh).await
}

async fn stream(user: &mut GooseUser) -> TransactionResult {
    let end_ms = spec().end_ms;
    if now_ms() >= end_ms {
        tokio::time::sleep(Duration::from_millis(200)).await;
        return Ok(());
    }
    let answer = user.get_named("/posts/all/stream", "stream").await?;
    let mut response = match answer.response {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => return failed(format!("stream answered {}", response.status())),
        Err(error) => return failed(format!("stream failed: {error}")),
    };
    count_request(header_bytes(&response));

    let mut parser = SseParser::default();
    loop {
        let left = end_ms.saturating_sub(now_ms());
        let chunk = tokio::time::timeout(Duration::from_millis(left), response.chunk()).await;
        let chunk = match chunk {
            Err(_) => return Ok(()),
            Ok(Ok(Some(chunk))) => chunk,
            // The server ended the stream; goose calls this transaction again.
            Ok(Ok(None)) => return Ok(()),
            Ok(Err(error)) => return failed(format!("stream broke: {error}")),
        };
        let arrived = now_ms();
        add_bytes(chunk.len());
        let mut data = String::new();
        parser.feed(&chunk, |_, event| {
            data.push_str(&String::from_utf8_lossy(event))
        });
        if data.is_empty() {
            continue;
        }
        let Some(follower) = user.get_session_data_mut::<Follower>() else {
            return Err(custom("stream before prepare"));
        };
        let fresh = record(&mut follower.seen, &data, arrived);
        deliver(user, &fresh).await?;
    }
}

/// Delays of the posts in `html` this user had not seen yet.
fn record(seen: &mut HashSet<u64>, html: &str, arrived_ms: u64) -> Vec<f64> {
    items::posts(html)
        .into_iter()
        .filter(|post| seen.insert(post.id))
        .map(|post| arrived_ms.saturating_sub(post.published_ms) as f64)
        .collect()
}

/// Adds delays to the tally and to goose's report, as `DELIVER` requests whose time is
/// the delay.
async fn deliver(user: &mut GooseUser, delays: &[f64]) -> TransactionResult {
    if delays.is_empty() {
        return Ok(());
    }
    {
        let mut tally = TALLY.lock().unwrap_or_else(PoisonError::into_inner);
        for &delay in delays {
            tally.delays.push(delay);
        }
    }
    let phase = &spec().phase;
    for &delay in delays {
        let delay = Duration::from_secs_f64(delay / 1000.0);
        user.record_custom_request_duration("DELIVER", phase, delay, true, None, None)
            .await?;
    }
    Ok(())
}

fn count_request(bytes: usize) {
    let mut tally = TALLY.lock().unwrap_or_else(PoisonError::into_inner);
    tally.requests += 1;
    tally.bytes += bytes as u64;
}

fn add_bytes(bytes: usize) {
    TALLY.lock().unwrap_or_else(PoisonError::into_inner).bytes += bytes as u64;
}

fn failed(message: String) -> TransactionResult {
    let mut tally = TALLY.lock().unwrap_or_else(PoisonError::into_inner);
    tally.errors += 1;
    tally.first_error.get_or_insert(message.clone());
    Err(custom(&message))
}

/// The status line and headers as they came over the wire, near enough.
fn header_bytes(response: &reqwest::Response) -> usize {
    let headers: usize = response
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    "HTTP/1.1 200 OK\r\n".len() + headers + 2
}

fn custom(message: &str) -> Box<TransactionError> {
    Box::new(TransactionError::Custom(message.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_post_counts_once_per_follower() {
        let mut seen = HashSet::new();
        let html = r#"<article id="post-3" data-published-ms="1000"></article>"#;
        assert_eq!(record(&mut seen, html, 1250), [250.0]);
        assert!(record(&mut seen, html, 1300).is_empty());
    }
}
