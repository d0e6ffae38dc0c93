//! Redis goes away and comes back while streams are open and posts are being made:
//! afterwards every subscriber has every post exactly once, in order.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{Backend, TestApp, TestDb, control_cursor, post_ids, test_config};

/// A Redis server of the test's own, on its own port, so it can be stopped.
struct OwnRedis {
    port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (Debian package redis-server)");
        let redis = OwnRedis {
            port,
            child: Some(child),
        };
        redis.wait_ready();
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// An app on a fresh database whose bus and presence use a Redis of the test's own.
async fn app_on_own_redis() -> (OwnRedis, TestApp) {
    let redis = OwnRedis::start(free_port());
    let db = TestDb::new(Backend::PostgresRedis).await;
    let mut config = test_config(&db);
    config.redis_url = Some(redis.url());
    (redis, TestApp::start_with(db, config).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_catch_up_after_redis_restarts() {
    let (mut redis, app) = app_on_own_redis().await;

    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let cursor = control_cursor(&bob.text("/posts/lobby/").await, "lobby");
    let path = format!("/posts/lobby/stream?after={cursor}");

    // Each tab reads in its own task and notes when each post arrived.
    let mut readers = Vec::new();
    for tab in 0..2 {
        let mut stream = bob.stream(&path, None).await;
        readers.push(tokio::spawn(async move {
            let mut got: Vec<(u64, Instant)> = Vec::new();
            while got.len() < 30 {
                let Some(frame) = stream.next_event(Duration::from_secs(20)).await else {
                    panic!("tab {tab} stalled after {} posts", got.len());
                };
                assert_eq!(frame.event, "item", "tab {tab}: {frame:?}");
                got.extend(
                    post_ids(&frame.data)
                        .into_iter()
                        .map(|id| (id, Instant::now())),
                );
            }
            got
        }));
    }

    // Posts before, during and after the outage.
    let mut restarted_at = None;
    for n in 0..30 {
        if n == 10 {
            redis.kill();
        }
        if n == 20 {
            redis = OwnRedis::start(redis.port);
            restarted_at = Some(Instant::now());
        }
        let response = ada
            .post_form("/posts/create/", &[("body", &format!("@bob n{n}"))])
            .await;
        assert_eq!(
            response.status(),
            303,
            "posting works with Redis away (post {n})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let restarted_at = restarted_at.expect("restarted");

    let expected: Vec<u64> = {
        let mut ids = post_ids(&bob.text("/posts/lobby/region").await);
        ids.reverse();
        ids
    };
    assert_eq!(expected.len(), 30);

    for (tab, reader) in readers.into_iter().enumerate() {
        let got = reader.await.expect("reader");
        let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, expected, "tab {tab}: every post once, in order");

        // The posts queued during the outage reach the tab once Redis is back.
        let queued_arrival = got[10].1;
        let recovery = queued_arrival.saturating_duration_since(restarted_at);
        println!(
            "tab {tab}: all 30 posts, in order; the queued ones arrived {recovery:?} after Redis restarted"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_and_fresh_streams_work_while_redis_is_away() {
    let (mut redis, app) = app_on_own_redis().await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;

    redis.kill();
    let started = Instant::now();
    ada.post("while redis is away, @bob").await;
    let lobby = bob.text("/posts/lobby/").await;
    println!("post and page with Redis away: {:?}", started.elapsed());
    assert!(
        lobby.contains("while redis is away"),
        "pages come from the database"
    );

    // A page's stream at the database's head has missed nothing: no reset loop.
    let cursor = control_cursor(&lobby, "lobby");
    let started = Instant::now();
    let mut stream = bob
        .stream(&format!("/posts/lobby/stream?after={cursor}"), None)
        .await;
    println!("stream opened with Redis away: {:?}", started.elapsed());
    assert!(
        stream
            .next_event(Duration::from_millis(500))
            .await
            .is_none(),
        "no reset"
    );

    redis = OwnRedis::start(redis.port);
    let started = Instant::now();
    ada.post("and now it is back, @bob").await;
    let frame = stream
        .next_event(Duration::from_secs(10))
        .await
        .expect("live again");
    println!("live again {:?} after Redis restarted", started.elapsed());
    assert!(frame.data.contains("now it is back"), "{frame:?}");
    drop(redis);
}
