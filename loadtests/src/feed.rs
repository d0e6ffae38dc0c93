//! The feed under measurement: accounts for the followers, and a driver that posts at a
//! steady rate texts taken from the bundled Mastodon recording, some mentioning a
//! follower, through the app's own form as a person would.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::header::{COOKIE, SET_COOKIE};
use reqwest::redirect::Policy;
use tokio::time::{Instant, MissedTickBehavior};

const PASSWORD: &str = "load test password";

/// The longest post the app takes.
const MAX_CHARS: usize = 480;

/// Signs up `handle` and returns its session cookie (`name=value`).
pub async fn sign_up(base: &str, handle: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()?;
    let email = format!("{handle}@load.test");
    let answer = client
        .post(format!("{base}/accounts/signup"))
        .form(&[
            ("email", email.as_str()),
            ("handle", handle),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .with_context(|| format!("signing up {handle}"))?;
    if !answer.status().is_redirection() {
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        bail!(
            "signing up {handle}: {status}: {}",
            body.chars().take(300).collect::<String>()
        );
    }
    answer
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("switchyard_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .with_context(|| format!("signing up {handle}: no session cookie"))
}

/// Plain texts of the recorded statuses, tags and entities removed.
pub fn texts() -> Vec<String> {
    let recording = include_str!("../../data/mastodon-sample.sse");
    let mut texts: Vec<String> = recording
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .filter_map(|status| status.get("content")?.as_str().map(plain))
        .filter(|text| !text.trim().is_empty())
        .collect();
    if texts.is_empty() {
        texts.push("a post from the load test".into());
    }
    texts
}

fn plain(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    let words: Vec<&str> = text.split_whitespace().collect();
    words.join(" ").chars().take(MAX_CHARS).collect()
}

/// What the driver did.
#[derive(Debug, Default)]
pub struct Driven {
    pub posted: AtomicU64,
    pub failed: AtomicU64,
}

/// Posts `rate` times a second until `until`, every `mention_every`-th post mentioning
/// one of `mentioned` in turn.
pub async fn drive(
    base: String,
    cookie: String,
    rate: f64,
    until: Instant,
    mentioned: Vec<String>,
    driven: Arc<Driven>,
) {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let texts = texts();
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.01)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut n = 0usize;
    while Instant::now() < until {
        ticks.tick().await;
        let mut body = texts[n % texts.len()].clone();
        if !mentioned.is_empty() && n.is_multiple_of(2) {
            body = format!("@{} {body}", mentioned[(n / 2) % mentioned.len()]);
        }
        let body: String = body.chars().take(MAX_CHARS).collect();
        n += 1;

        let answer = client
            .post(format!("{base}/posts/create/"))
            .header(COOKIE, &cookie)
            .header("hx-request", "true")
            .form(&[("body", body.as_str())])
            .send()
            .await;
        match answer {
            Ok(a) if a.status().is_success() => driven.posted.fetch_add(1, Ordering::Relaxed),
            Ok(a) => {
                note_failure(&format!("a post failed: {}", a.status()));
                driven.failed.fetch_add(1, Ordering::Relaxed)
            }
            Err(error) => {
                note_failure(&format!("a post failed: {error}"));
                driven.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// The first few failures are worth a line; a flood of them is counted, not printed.
fn note_failure(message: &str) {
    static PRINTED: AtomicU64 = AtomicU64::new(0);
    if PRINTED.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("runfeed: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_statuses_become_plain_posts() {
        let texts = texts();
        assert!(texts.len() > 100, "{}", texts.len());
        assert!(texts.iter().all(|t| !t.contains('<') || !t.contains("</")));
        assert!(texts.iter().all(|t| t.chars().count() <= MAX_CHARS));
    }

    #[test]
    fn tags_go_and_entities_are_read() {
        assert_eq!(
            plain("<p>fish &amp; <a href=\"x\">chips</a></p>"),
            "fish & chips"
        );
    }
}
