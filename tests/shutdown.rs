//! Stopping an instance with many idle streams open: it tells them to come back later
//! (with a spread-out `retry:`) and exits promptly instead of waiting on them.

mod support;

use std::time::{Duration, Instant};

use support::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_a_thousand_idle_streams_is_prompt() {
    const STREAMS: usize = 1000;
    let db = support::TestDb::new(Backend::Sqlite).await;
    let mut config = support::test_config(&db);
    config.keep_alive_secs = 60;
    let app = TestApp::start_with(db, config).await;
    let visitor = app.client();

    let mut streams = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        streams.push(visitor.stream("/posts/all/stream", None).await);
    }
    assert_eq!(app.state.streams.open(), STREAMS);

    let started = Instant::now();
    let _db = app.stop().await;
    let took = started.elapsed();
    println!("shutdown with {STREAMS} idle streams open took {took:?}");
    assert!(
        took < Duration::from_secs(10),
        "exited before the hard deadline: {took:?}"
    );

    // Every stream got a goodbye with its own reconnect delay, then ended.
    let mut delays = Vec::new();
    for stream in &mut streams {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut retry = None;
        while let Some(frame) = stream.next_frame(deadline).await {
            if frame.comments.iter().any(|c| c == "server restarting") {
                retry = frame.retry;
            }
        }
        delays.push(retry.expect("a goodbye frame with retry"));
    }
    delays.sort_unstable();
    delays.dedup();
    assert!(
        delays.len() > STREAMS / 4,
        "reconnect delays are spread: {}",
        delays.len()
    );
    println!(
        "distinct reconnect delays: {} from {} to {} ms",
        delays.len(),
        delays[0],
        delays[delays.len() - 1]
    );
}

/// Streams that are not bus subscriptions (the clock, the presence list) end at
/// shutdown too, instead of holding it until the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_clock_and_presence_streams() {
    let app = TestApp::start(Backend::Sqlite).await;
    let ada = app.user("ada").await;
    let _clock = ada.stream("/hello/stream", None).await;
    let _presence = ada.stream("/posts/presence/stream", None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let started = Instant::now();
    let _db = app.stop().await;
    let took = started.elapsed();
    println!("shutdown with a clock and a presence stream took {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "not held to the 10 s deadline: {took:?}"
    );
}
