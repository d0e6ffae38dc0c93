//! Switchyard behind real nginx (deploy/nginx.conf): two instances on one PostgreSQL
//! and one Redis, reached only through nginx, as in production. Streams pass through
//! unbuffered, and a rolling restart of both instances loses no event.

mod support;

#[path = "support/nginx.rs"]
mod nginx_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nginx_support::{Nginx, fail_timeout, free_ports};
use support::sse::Frame;
use support::{Backend, Client, SseClient, TestApp, TestDb, control_cursor, post_ids, test_config};
use switchyard::Config;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(10);

/// An app configuration listening on a given loopback port, so that a restarted
/// instance comes back where nginx expects it.
fn config_on(db: &TestDb, port: u16) -> Config {
    let mut config = test_config(db);
    config.listen = SocketAddr::from(([127, 0, 0, 1], port));
    config
}

/// A browser of the site behind nginx, signed up and logged in.
async fn browser(nginx: &Nginx, handle: &str) -> Client {
    let client = Client {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("client"),
        base: nginx.base.clone(),
    };
    client.sign_up(handle).await;
    client
}

/// Posts the way a browser's form does, with the page's `Origin`: the app refuses the
/// post as cross-site unless nginx passes the Host the browser used.
async fn post(client: &Client, body: &str) -> reqwest::StatusCode {
    let request = client
        .http
        .post(format!("{}/posts/create/", client.base))
        .header("origin", &client.base)
        .form(&[("body", body)]);
    match tokio::time::timeout(WAIT, request.send()).await {
        Ok(Ok(response)) => response.status(),
        Ok(Err(error)) => panic!("posting {body:?} through nginx: {error}"),
        Err(_) => panic!("posting {body:?} through nginx took over {WAIT:?}"),
    }
}

/// Opens an SSE stream as an EventSource does, with `Last-Event-ID` on a reconnect.
async fn open_stream(
    client: &Client,
    path: &str,
    last_event_id: Option<u64>,
) -> Result<reqwest::Response, String> {
    let mut request = client
        .http
        .get(format!("{}{path}", client.base))
        .header("accept", "text/event-stream");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    match tokio::time::timeout(WAIT, request.send()).await {
        Ok(Ok(response)) if response.status() == 200 => Ok(response),
        Ok(Ok(response)) => Err(format!("status {}", response.status())),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {WAIT:?}")),
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("(missing)")
}

fn event_id(frame: &Frame) -> u64 {
    frame
        .id
        .as_deref()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("an event without a numeric id: {frame:?}"))
}

/// Two instances on one database and Redis, behind nginx, on ports fixed up front.
async fn start_pair(ports: [u16; 2]) -> (TestApp, TestApp, Nginx) {
    let db = TestDb::new(Backend::PostgresRedis).await;
    let second = db.shared();
    let (config_a, config_b) = (config_on(&db, ports[0]), config_on(&db, ports[1]));
    let a = TestApp::start_with(db, config_a).await;
    let b = TestApp::start_with(second, config_b).await;
    let nginx = Nginx::start(ports).await;
    (a, b, nginx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_through_nginx_are_unbuffered_and_live() {
    let (a, b, nginx) = start_pair(free_ports()).await;
    let ada = browser(&nginx, "ada").await;
    let bob = browser(&nginx, "bob").await;

    let cursor = control_cursor(&bob.text("/posts/lobby/").await, "lobby");
    let path = format!("/posts/lobby/stream?after={cursor}");
    let response = open_stream(&bob, &path, None)
        .await
        .unwrap_or_else(|error| panic!("stream through nginx: {error}"));
    // Only nginx says `Server: nginx`: the stream did go through it.
    assert_eq!(header(&response, "server"), "nginx");
    assert_eq!(header(&response, "content-type"), "text/event-stream");
    assert_eq!(header(&response, "x-accel-buffering"), "no");
    assert_eq!(header(&response, "cache-control"), "no-store");
    let mut stream = SseClient::new(response.bytes_stream().boxed());

    // The opening frame (retry hint and hello comment) is a few bytes: it arrives at
    // once only when nothing between the app and the client buffers.
    let opened = Instant::now();
    let hello = stream
        .next_frame(tokio::time::Instant::now() + WAIT)
        .await
        .expect("the stream's opening frame, through nginx");
    assert!(hello.retry.is_some(), "{hello:?}");
    println!("opening frame through nginx after {:?}", opened.elapsed());

    let mut delays = Vec::new();
    let mut last_id = cursor;
    for n in 1..=5 {
        let sent = Instant::now();
        let status = post(&ada, &format!("live through nginx {n}, @bob")).await;
        assert_eq!(status, 303, "post {n} through nginx");
        let frame = stream
            .next_event(WAIT)
            .await
            .unwrap_or_else(|| panic!("mention {n} on the stream through nginx"));
        delays.push(sent.elapsed());
        assert!(
            frame.data.contains(&format!("live through nginx {n},")),
            "{frame:?}"
        );
        last_id = event_id(&frame);
    }
    let slowest = delays.iter().max().copied().unwrap_or_default();
    println!("post to event through nginx: {delays:?}, slowest {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "an event took {slowest:?} to come through nginx"
    );

    // The polling transport through the same nginx: nothing new, then the new post.
    let answer = bob.get(&format!("/posts/lobby/poll?after={last_id}")).await;
    assert_eq!(answer.status(), 204, "an empty poll through nginx");
    assert_eq!(post(&ada, "polled through nginx, @bob").await, 303);
    let answer = bob.get(&format!("/posts/lobby/poll?after={last_id}")).await;
    assert_eq!(answer.status(), 200, "a poll with news through nginx");
    let body = answer.text().await.expect("poll body");
    assert!(body.contains("polled through nginx,"), "{body}");
    assert_eq!(post_ids(&body).len(), 1, "{body}");

    drop(stream);
    drop(nginx);
    b.stop().await;
    a.stop().await;
}

/// One event as the following browser saw it.
struct Seen {
    id: u64,
    data: String,
    at: Instant,
}

/// What a browser following a stream across restarts went through.
#[derive(Default)]
struct Followed {
    events: Vec<Seen>,
    /// Streams that ended (or fell silent) and were opened again.
    reconnects: usize,
    /// Reconnects that were refused, with the reason: an EventSource gives up on those.
    refused: Vec<String>,
    /// `reset` events: the resume point was not accepted.
    resets: usize,
    /// The longest time from a stream's end to the next one's opening.
    longest_outage: Duration,
}

/// Follows `path` like an EventSource: whenever the stream ends it waits the last
/// `retry:` hint, then opens the same address again with `Last-Event-ID`, until
/// `stop` turns true.
async fn follow(
    client: Client,
    path: String,
    followed: Arc<Mutex<Followed>>,
    mut stop: watch::Receiver<bool>,
) {
    // A stream sends a keep-alive every second in tests: silence this long means dead.
    const SILENCE: Duration = Duration::from_secs(5);
    let mut retry = Duration::from_secs(2);
    let mut ended_at: Option<Instant> = None;
    loop {
        let last_id = followed.lock().unwrap().events.last().map(|seen| seen.id);
        let opened = tokio::select! {
            opened = open_stream(&client, &path, last_id) => opened,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let mut stream = match opened {
            Ok(response) => SseClient::new(response.bytes_stream().boxed()),
            Err(error) => {
                followed.lock().unwrap().refused.push(error);
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        if let Some(ended) = ended_at.take() {
            let mut followed = followed.lock().unwrap();
            followed.longest_outage = followed.longest_outage.max(ended.elapsed());
        }
        loop {
            let frame = tokio::select! {
                frame = stream.next_frame(tokio::time::Instant::now() + SILENCE) => frame,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let Some(frame) = frame else { break };
            if let Some(millis) = frame.retry {
                retry = Duration::from_millis(millis);
            }
            let mut followed = followed.lock().unwrap();
            if frame.event == "reset" {
                followed.resets += 1;
            } else if frame.id.is_some() {
                followed.events.push(Seen {
                    id: event_id(&frame),
                    data: frame.data,
                    at: Instant::now(),
                });
            }
        }
        followed.lock().unwrap().reconnects += 1;
        ended_at = Some(Instant::now());
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Stops an instance gracefully and, after a pause, starts a new one on the same port
/// and data.
async fn restart(app: TestApp, port: u16, name: &str) -> TestApp {
    let began = Instant::now();
    let db = app.stop().await;
    let stopped = began.elapsed();
    // A new release takes a moment to start: meanwhile nginx finds the port closed and
    // must move requests to the other instance.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let config = config_on(&db, port);
    let app = TestApp::start_with(db, config).await;
    let health = app.client().get("/healthz").await;
    assert_eq!(health.status(), 200, "the new instance {name} answers");
    println!(
        "restarted {name}: stopped in {stopped:?}, serving again after {:?}",
        began.elapsed()
    );
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_behind_nginx_loses_nothing() {
    const POSTS: usize = 60;
    const POST_EVERY: Duration = Duration::from_millis(100);

    let ports = free_ports();
    let (a, b, nginx) = start_pair(ports).await;
    let ada = browser(&nginx, "ada").await;
    let bob = browser(&nginx, "bob").await;

    let cursor = control_cursor(&bob.text("/posts/lobby/").await, "lobby");
    let followed = Arc::new(Mutex::new(Followed::default()));
    let (stop, stopping) = watch::channel(false);
    let reader = tokio::spawn(follow(
        bob.clone(),
        format!("/posts/lobby/stream?after={cursor}"),
        followed.clone(),
        stopping,
    ));

    let started = Instant::now();
    let poster = tokio::spawn({
        let ada = ada.clone();
        async move {
            let mut statuses = Vec::new();
            for n in 1..=POSTS {
                statuses.push(post(&ada, &format!("restart post {n} for @bob")).await);
                tokio::time::sleep(POST_EVERY).await;
            }
            statuses
        }
    });

    // A rolling restart: one instance at a time, the next only once nginx may send
    // traffic to the new one again (it skips a failed instance for fail_timeout).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let a = restart(a, ports[0], "A").await;
    tokio::time::sleep(fail_timeout() + Duration::from_secs(1)).await;
    let b = restart(b, ports[1], "B").await;

    let statuses = tokio::time::timeout(Duration::from_secs(60), poster)
        .await
        .expect("posting ends")
        .expect("poster task");
    let posting_took = started.elapsed();
    let failed: Vec<_> = statuses.iter().filter(|status| **status != 303).collect();
    assert!(
        failed.is_empty(),
        "posts refused: {failed:?}\n{}",
        nginx.logs()
    );

    let db = &a.state.db;
    let head = switchyard::posts::store::head(db).await.expect("head");
    let mut stored = switchyard::posts::store::all_between(db, cursor, head, 1000)
        .await
        .expect("stored posts");
    stored.reverse();
    let stored_ids: Vec<u64> = stored.iter().map(|post| post.id as u64).collect();
    let bodies: Vec<String> = stored.iter().map(|post| post.body.clone()).collect();
    let expected: Vec<String> = (1..=POSTS)
        .map(|n| format!("restart post {n} for @bob"))
        .collect();
    assert_eq!(bodies, expected, "the posts, in the database, in order");

    let deadline = Instant::now() + Duration::from_secs(30);
    while followed.lock().unwrap().events.len() < POSTS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A moment more, so an event delivered twice would show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stop.send(true);
    tokio::time::timeout(WAIT, reader)
        .await
        .expect("the reader stops")
        .expect("reader task");

    let followed = std::mem::take(&mut *followed.lock().unwrap());
    let seen_ids: Vec<u64> = followed.events.iter().map(|seen| seen.id).collect();
    let longest_gap = followed
        .events
        .windows(2)
        .map(|pair| pair[1].at - pair[0].at)
        .max()
        .unwrap_or_default();
    let access_log = nginx.access_log();
    let failovers = access_log
        .lines()
        .filter(|line| line.contains("upstream=") && line.contains(", "))
        .count();
    println!(
        "rolling restart: {POSTS} posts in {posting_took:?}; {} events seen, {} reconnects, \
         longest gap between events {longest_gap:?}, longest outage {:?}, \
         {failovers} requests moved to the other instance by nginx",
        seen_ids.len(),
        followed.reconnects,
        followed.longest_outage,
    );

    assert!(
        followed.refused.is_empty(),
        "reconnects refused through nginx: {:?}",
        followed.refused
    );
    assert_eq!(
        followed.resets, 0,
        "a resume through nginx was answered with a reset"
    );
    assert!(
        followed.reconnects >= 1,
        "the stream never ended: was a restarted instance serving it?"
    );
    assert_eq!(
        seen_ids, stored_ids,
        "every post exactly once, in order, across the restarts"
    );
    for (seen, post) in followed.events.iter().zip(&stored) {
        let text = post.body.trim_end_matches("@bob");
        assert!(
            seen.data.contains(text),
            "event {} is {:?}",
            seen.id,
            seen.data
        );
    }
    let bad_gateway = access_log
        .lines()
        .filter(|line| line.contains("\" 502 ") || line.contains("\" 504 "))
        .collect::<Vec<_>>();
    assert!(bad_gateway.is_empty(), "nginx answered: {bad_gateway:#?}");

    // And the region a reloading page would show agrees: the newest page of posts.
    let region = bob.text("/posts/lobby/region").await;
    let newest: Vec<u64> = stored_ids.iter().rev().take(50).copied().collect();
    assert_eq!(post_ids(&region), newest, "the lobby region through nginx");

    drop(nginx);
    b.stop().await;
    a.stop().await;
}
