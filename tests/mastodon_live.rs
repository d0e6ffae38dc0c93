//! The live, recording and replay sources against a loopback stand-in for an instance.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{StreamExt, stream};
use switchyard::mastodon::source::{AccessToken, Backoff, LiveSource, ReplaySource, record};
use switchyard::mastodon::status::StreamMessage;
use switchyard::mastodon::wire::{WireEvent, WireReader};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::timeout;

const TOKEN: &str = "loopback-token";
const LIMIT: Duration = Duration::from_secs(20);

/// What the stand-in does on one connection.
#[derive(Clone)]
enum Reply {
    /// Answers with this status and no stream.
    Status(u16),
    /// Streams these chunks, then closes the stream.
    Close(Vec<String>),
    /// Streams these chunks, then keeps the connection open and silent.
    Hang(Vec<String>),
}

struct Instance {
    script: Mutex<VecDeque<Reply>>,
    last: Reply,
    connections: AtomicUsize,
}

async fn streaming(State(instance): State<Arc<Instance>>, headers: HeaderMap) -> Response {
    instance.connections.fetch_add(1, Ordering::SeqCst);

    let authorized = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        == Some(format!("Bearer {TOKEN}").as_str());
    if !authorized {
        return (
            StatusCode::UNAUTHORIZED,
            "{\"error\":\"The access token is invalid\"}",
        )
            .into_response();
    }

    let reply = {
        let mut script = instance.script.lock().unwrap_or_else(|e| e.into_inner());
        script.pop_front().unwrap_or_else(|| instance.last.clone())
    };
    let (chunks, hang) = match reply {
        Reply::Status(code) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (code, [(header::RETRY_AFTER, "0")], "try later").into_response();
        }
        Reply::Close(chunks) => (chunks, false),
        Reply::Hang(chunks) => (chunks, true),
    };

    let sent = stream::iter(chunks).map(|chunk| Ok::<_, std::io::Error>(Bytes::from(chunk)));
    let body = if hang {
        Body::from_stream(sent.chain(stream::pending()))
    } else {
        Body::from_stream(sent)
    };
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Serves the script on 127.0.0.1; once it runs out, every connection gets `last`.
async fn serve(script: Vec<Reply>, last: Reply) -> (String, Arc<Instance>) {
    let instance = Arc::new(Instance {
        script: Mutex::new(script.into()),
        last,
        connections: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/api/v1/streaming/public", get(streaming))
        .with_state(instance.clone());

    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(error) => panic!("binding a loopback port: {error}"),
    };
    let addr: SocketAddr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(error) => panic!("{error}"),
    };
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), instance)
}

fn status_json(id: &str) -> String {
    serde_json::json!({
        "id": id,
        "created_at": "2025-03-14T09:00:00.000Z",
        "in_reply_to_id": null,
        "sensitive": false,
        "spoiler_text": "",
        "visibility": "public",
        "language": "en",
        "uri": format!("https://example.com/users/ana/statuses/{id}"),
        "url": format!("https://example.com/@ana/{id}"),
        "content": "<p>hello from the loopback</p>",
        "reblog": null,
        "account": {
            "id": "1", "username": "ana", "acct": "ana", "display_name": "Ana",
            "url": "https://example.com/@ana", "avatar": "https://example.com/a.png"
        },
        "media_attachments": [], "mentions": [], "tags": [], "emojis": [],
        "replies_count": 0, "reblogs_count": 0, "favourites_count": 0
    })
    .to_string()
}

fn update(id: &str) -> String {
    format!("event: update\ndata: {}\n\n", status_json(id))
}

/// An update cut into three chunks, so reassembly across network reads is exercised.
fn split_update(id: &str) -> Vec<String> {
    let whole = update(id);
    let (head, rest) = whole.split_at(9);
    let (middle, tail) = rest.split_at(rest.len() / 2);
    vec![head.to_owned(), middle.to_owned(), tail.to_owned()]
}

fn chunks(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| (*part).to_owned()).collect()
}

fn live(base: &str, token: &str) -> LiveSource {
    let mut source = LiveSource::new(base, Some(AccessToken::new(token)));
    source.backoff = Backoff::new(Duration::from_millis(5), Duration::from_millis(40));
    source.connect_timeout = Duration::from_secs(5);
    source
}

fn spawn_live(
    source: LiveSource,
) -> (
    mpsc::Receiver<StreamMessage>,
    watch::Sender<bool>,
    JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = mpsc::channel(64);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(source.run(tx, stop_rx));
    (rx, stop_tx, task)
}

/// Collects status ids (updates, edits, deletes) until `count` have arrived.
async fn next_ids(rx: &mut mpsc::Receiver<StreamMessage>, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let collect = async {
        while ids.len() < count {
            match rx.recv().await {
                Some(StreamMessage::Update(status)) => ids.push(status.id),
                Some(StreamMessage::StatusUpdate(status)) => {
                    ids.push(format!("edit:{}", status.id))
                }
                Some(StreamMessage::Delete(id)) => ids.push(format!("delete:{id}")),
                Some(StreamMessage::Heartbeat) => {}
                None => break,
            }
        }
    };
    if timeout(LIMIT, collect).await.is_err() {
        panic!("timed out with {ids:?}");
    }
    ids
}

async fn finish(task: JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    match timeout(LIMIT, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => panic!("source task failed: {join}"),
        Err(_) => panic!("source did not stop"),
    }
}

#[tokio::test]
async fn live_source_reconnects_after_the_stream_closes() {
    let mut first = chunks(&[":)\n"]);
    first.extend(split_update("1001"));
    first.push(":thump\n".into());
    first.push(update("1002"));
    let mut second = chunks(&[":)\n", "event: delete\ndata: 1001\n\n"]);
    second.extend(split_update("1003"));
    let (base, instance) = serve(vec![Reply::Close(first)], Reply::Hang(second)).await;

    let source = live(&base, TOKEN);
    let reconnects = source.reconnects.clone();
    let (mut rx, stop, task) = spawn_live(source);

    let ids = next_ids(&mut rx, 4).await;
    assert_eq!(ids, ["1001", "1002", "delete:1001", "1003"]);
    assert_eq!(reconnects.load(Ordering::SeqCst), 1);
    assert_eq!(instance.connections.load(Ordering::SeqCst), 2);

    let _ = stop.send(true);
    assert!(finish(task).await.is_ok());
}

#[tokio::test]
async fn live_source_retries_server_errors_and_silent_connections() {
    let silent = Reply::Hang(chunks(&[":)\n", &update("2001")]));
    let script = vec![Reply::Status(503), silent, Reply::Status(502)];
    let healthy = Reply::Hang(chunks(&[&update("2002"), ":thump\n"]));
    let (base, instance) = serve(script, healthy).await;

    let mut source = live(&base, TOKEN);
    source.idle_timeout = Duration::from_millis(300);
    let (mut rx, stop, task) = spawn_live(source);

    assert_eq!(next_ids(&mut rx, 2).await, ["2001", "2002"]);
    assert!(instance.connections.load(Ordering::SeqCst) >= 4);

    let _ = stop.send(true);
    assert!(finish(task).await.is_ok());
}

#[tokio::test]
async fn refused_token_is_fatal_with_a_clear_error() {
    let (base, instance) = serve(vec![], Reply::Hang(vec![update("1")])).await;
    let (_rx, _stop, task) = spawn_live(live(&base, "wrong-token"));

    let error = match finish(task).await {
        Ok(()) => panic!("a refused token must stop the source"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("refused the token"), "{error}");
    assert!(error.contains("401"), "{error}");
    assert!(!error.contains("wrong-token"), "{error}");
    assert_eq!(instance.connections.load(Ordering::SeqCst), 1);

    let anonymous = LiveSource::new(base.as_str(), None);
    let (_rx, _stop, task) = spawn_live(anonymous);
    let error = finish(task).await.map_err(|e| e.to_string());
    assert!(
        matches!(&error, Err(text) if text.contains("access token")),
        "{error:?}"
    );
}

#[tokio::test]
async fn dropping_the_receiver_stops_the_live_source() {
    let endless = Reply::Hang((0..200).map(|n| update(&format!("{}", 5000 + n))).collect());
    let (base, _instance) = serve(vec![], endless).await;
    let (mut rx, _stop, task) = spawn_live(live(&base, TOKEN));

    assert_eq!(next_ids(&mut rx, 1).await, ["5000"]);
    drop(rx);
    assert!(finish(task).await.is_ok());
}

#[tokio::test]
async fn record_writes_a_replayable_file() {
    let mut first = chunks(&[":)\n"]);
    first.extend(split_update("3001"));
    first.extend(chunks(&[":thump\n", "event: delete\ndata: 2999\n\n"]));
    first.push(format!(
        "event: status.update\ndata: {}\n\n",
        status_json("3001")
    ));
    first.push("event: notification\r\ndata: {}\r\n\r\n".into());
    let second = vec![":)\n".to_owned(), update("3002"), update("3003")];
    let served: String = first.iter().chain(&second).map(String::as_str).collect();
    let (base, _instance) = serve(vec![Reply::Close(first)], Reply::Hang(second)).await;

    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("{error}"),
    };
    let out = dir.path().join("recording.sse");
    let (_stop_tx, stop_rx) = watch::channel(false);
    let recorded = timeout(
        LIMIT,
        record(live(&base, TOKEN), &out, Some(6), None, stop_rx),
    )
    .await;
    let written = match recorded {
        Ok(Ok(written)) => written,
        Ok(Err(error)) => panic!("{error:#}"),
        Err(_) => panic!("record did not stop after six events"),
    };
    assert_eq!(written, 6);

    let file = std::fs::read(&out).unwrap_or_default();
    let mut reader = WireReader::new();
    let mut replayed = reader.feed(&file);
    replayed.extend(reader.finish());
    let mut reader = WireReader::new();
    let expected: Vec<WireEvent> = reader.feed(served.as_bytes());
    assert_eq!(replayed, expected);
    assert_eq!(
        replayed
            .iter()
            .filter(|ev| matches!(ev, WireEvent::Event { .. }))
            .count(),
        6
    );
}

#[tokio::test]
async fn record_stops_at_its_deadline() {
    let (base, _instance) = serve(vec![], Reply::Hang(vec![update("4001")])).await;
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("{error}"),
    };
    let out = dir.path().join("short.sse");
    let (_stop_tx, stop_rx) = watch::channel(false);
    let limit = Some(Duration::from_millis(400));
    let recorded = timeout(
        LIMIT,
        record(live(&base, TOKEN), &out, None, limit, stop_rx),
    )
    .await;
    assert!(matches!(recorded, Ok(Ok(n)) if n <= 1), "{recorded:?}");
}

fn write_replay(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("replay.sse");
    if let Err(error) = std::fs::write(&path, text) {
        panic!("{error}");
    }
    path
}

fn spawn_replay(
    source: ReplaySource,
) -> (
    mpsc::Receiver<StreamMessage>,
    watch::Sender<bool>,
    JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = mpsc::channel(16);
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(source.run(tx, stop_rx));
    (rx, stop_tx, task)
}

async fn next_message(rx: &mut mpsc::Receiver<StreamMessage>) -> StreamMessage {
    match timeout(LIMIT, rx.recv()).await {
        Ok(Some(message)) => message,
        Ok(None) => panic!("replay ended early"),
        Err(_) => panic!("replay stalled"),
    }
}

fn id_of(message: &StreamMessage) -> u64 {
    let id = match message {
        StreamMessage::Update(status) | StreamMessage::StatusUpdate(status) => &status.id,
        StreamMessage::Delete(id) => id,
        StreamMessage::Heartbeat => panic!("heartbeat has no id"),
    };
    id.parse().unwrap_or_else(|_| panic!("non-numeric id {id}"))
}

#[tokio::test]
async fn looping_replay_gives_fresh_increasing_ids_each_pass() {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("{error}"),
    };
    let mut text = String::from(":)\n");
    for id in ["100", "101", "102"] {
        text.push_str(&update(id));
    }
    text.push_str(&format!(
        "event: status.update\ndata: {}\n\n",
        status_json("101")
    ));
    text.push_str("event: delete\ndata: 100\n\nevent: update\ndata: {broken\n\n");
    let path = write_replay(&dir, &text);

    let rate = 200.0;
    let source = ReplaySource {
        path,
        rate_per_sec: rate,
        looping: true,
    };
    let started = tokio::time::Instant::now();
    let (mut rx, _stop, task) = spawn_replay(source);

    let passes = 3;
    let per_pass = 6;
    let mut previous_top = 0;
    for pass in 0..passes {
        assert_eq!(
            next_message(&mut rx).await,
            StreamMessage::Heartbeat,
            "pass {pass}"
        );
        let posted = [
            next_message(&mut rx).await,
            next_message(&mut rx).await,
            next_message(&mut rx).await,
        ];
        let ids: Vec<u64> = posted.iter().map(id_of).collect();
        assert!(
            ids[0] > previous_top,
            "pass {pass} reuses ids: {ids:?} <= {previous_top}"
        );
        assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
        assert!(posted.iter().all(|m| matches!(m, StreamMessage::Update(_))));

        let edit = next_message(&mut rx).await;
        assert!(matches!(edit, StreamMessage::StatusUpdate(_)), "{edit:?}");
        assert_eq!(id_of(&edit), ids[1], "the edit must follow its status");
        let delete = next_message(&mut rx).await;
        assert_eq!(delete, StreamMessage::Delete(ids[0].to_string()));
        previous_top = ids[2];
    }

    let least = Duration::from_secs_f64((passes * per_pass - 1) as f64 / rate * 0.9);
    assert!(
        started.elapsed() >= least,
        "rate not applied: {:?}",
        started.elapsed()
    );

    drop(rx);
    assert!(finish(task).await.is_ok());
}

#[tokio::test]
async fn replay_of_the_bundled_sample_runs_to_its_end() {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mastodon-sample.sse");
    let expected = {
        let bytes = std::fs::read(&path).unwrap_or_default();
        let mut reader = WireReader::new();
        let mut events = reader.feed(&bytes);
        events.extend(reader.finish());
        events.len()
    };
    assert!(expected >= 400);

    let source = ReplaySource {
        path,
        rate_per_sec: 0.0,
        looping: false,
    };
    let (mut rx, _stop, task) = spawn_replay(source);
    let mut received = 0;
    let drain = async {
        while rx.recv().await.is_some() {
            received += 1;
        }
    };
    assert!(timeout(LIMIT, drain).await.is_ok(), "replay did not end");
    assert_eq!(received, expected);
    assert!(finish(task).await.is_ok());
}

#[tokio::test]
async fn replay_stops_on_shutdown_and_reports_missing_files() {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(error) => panic!("{error}"),
    };
    let path = write_replay(&dir, &update("7"));
    let slow = ReplaySource {
        path,
        rate_per_sec: 0.5,
        looping: true,
    };
    let (mut rx, stop, task) = spawn_replay(slow);
    assert!(matches!(
        next_message(&mut rx).await,
        StreamMessage::Update(_)
    ));
    let _ = stop.send(true);
    assert!(finish(task).await.is_ok());

    let missing = ReplaySource {
        path: dir.path().join("absent.sse"),
        rate_per_sec: 0.0,
        looping: false,
    };
    let (_rx, _stop, task) = spawn_replay(missing);
    let error = finish(task).await.map_err(|e| format!("{e:#}"));
    assert!(
        matches!(&error, Err(text) if text.contains("absent.sse")),
        "{error:?}"
    );

    let empty = ReplaySource {
        path: write_replay(&dir, "event: update\n\nid: 3\n\n"),
        rate_per_sec: 0.0,
        looping: true,
    };
    let (_rx, _stop, task) = spawn_replay(empty);
    let error = finish(task).await.map_err(|e| e.to_string());
    assert!(
        matches!(&error, Err(text) if text.contains("no stream events")),
        "{error:?}"
    );
}
