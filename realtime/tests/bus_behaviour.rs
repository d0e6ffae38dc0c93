//! The bus's promises, checked on both backends: the in-process bus and Redis Streams
//! (the Redis on 127.0.0.1:6379, or `TEST_REDIS_URL`; each test uses its own keys and
//! deletes them).

use std::sync::Arc;
use std::time::Duration;

use realtime::{Bus, BusEvent, EventId, RedisBus, RedisBusConfig, Resume, Topic};
use tokio::sync::broadcast::error::RecvError;

const WAIT: Duration = Duration::from_secs(5);

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Memory,
    Redis,
}

/// A bus for one test; a Redis bus gets a key prefix of its own, removed on drop.
struct TestBus {
    bus: Bus,
    prefix: Option<String>,
}

impl TestBus {
    async fn new(backend: Backend, history: usize, queue: usize, head: u64) -> TestBus {
        match backend {
            Backend::Memory => TestBus {
                bus: Bus::memory(history, queue, EventId(head)),
                prefix: None,
            },
            Backend::Redis => {
                let prefix = format!("switchyard-test:{:016x}", rand::random::<u64>());
                let config = RedisBusConfig {
                    prefix: prefix.clone(),
                    maxlen: history,
                    queue,
                    block: Duration::from_millis(500),
                };
                let bus = RedisBus::connect(&redis_url(), config, EventId(head))
                    .await
                    .expect("Redis must run on 127.0.0.1:6379 (see the README)");
                TestBus {
                    bus: Bus::Redis(bus),
                    prefix: Some(prefix),
                }
            }
        }
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        let Some(prefix) = self.prefix.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let Ok(client) = redis::Client::open(redis_url()) else {
                return;
            };
            let Ok(mut conn) = client.get_connection() else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}:*"))
                .query(&mut conn)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: redis::RedisResult<()> = redis::cmd("DEL").arg(keys).query(&mut conn);
            }
        })
        .join();
    }
}

fn event(id: u64) -> BusEvent {
    BusEvent {
        id: EventId(id),
        name: "item".into(),
        data: format!("<li>{id}</li>\n<li>second line</li>"),
        published_ms: 1_700_000_000_000 + id,
    }
}

fn ids(resume: &Resume) -> Vec<u64> {
    match resume {
        Resume::Events(events) => events.iter().map(|e| e.id.0).collect(),
        Resume::Reset => panic!("unexpected reset"),
    }
}

async fn next(live: &mut tokio::sync::broadcast::Receiver<Arc<BusEvent>>) -> BusEvent {
    let event = tokio::time::timeout(WAIT, live.recv())
        .await
        .expect("an event in time");
    event.expect("open channel").as_ref().clone()
}

macro_rules! on_both_buses {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Backend::Memory).await }
            )*
        }
        mod redis_streams {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name(super::Backend::Redis).await }
            )*
        }
    };
}

on_both_buses!(
    live_events_arrive_whole_and_in_order,
    resume_returns_exactly_the_missed_events,
    resume_points_it_cannot_vouch_for_reset,
    a_quiet_topic_resumes_from_the_page_cursor,
    one_id_may_go_to_several_topics,
    slow_subscriber_is_cut_off_not_waited_for,
);

async fn live_events_arrive_whole_and_in_order(backend: Backend) {
    let test = TestBus::new(backend, 16, 64, 0).await;
    let topic = Topic::new("mentions:1");
    let mut sub = test.bus.subscribe(&topic, None, EventId(0)).await;

    for id in 1..=5 {
        test.bus.publish(&topic, event(id)).await;
    }
    test.bus.publish(&Topic::new("mentions:2"), event(6)).await;
    test.bus.publish(&topic, event(7)).await;

    for id in [1, 2, 3, 4, 5, 7] {
        assert_eq!(next(&mut sub.live).await, event(id), "{backend:?}");
    }
    assert_eq!(test.bus.subscribers(&topic), 1);
}

async fn resume_returns_exactly_the_missed_events(backend: Backend) {
    let test = TestBus::new(backend, 50, 64, 10).await;
    let topic = Topic::new("posts");
    for id in 11..=14 {
        test.bus.publish(&topic, event(id)).await;
    }

    let head = EventId(14);
    let resumed = test.bus.subscribe(&topic, Some(EventId(12)), head).await;
    assert_eq!(ids(&resumed.resume), [13, 14]);
    let resumed = test.bus.subscribe(&topic, Some(EventId(10)), head).await;
    assert_eq!(ids(&resumed.resume), [11, 12, 13, 14]);
    let mut current = test.bus.subscribe(&topic, Some(EventId(14)), head).await;
    assert_eq!(ids(&current.resume), Vec::<u64>::new());

    test.bus.publish(&topic, event(15)).await;
    assert_eq!(next(&mut current.live).await.id, EventId(15), "then live");
}

async fn resume_points_it_cannot_vouch_for_reset(backend: Backend) {
    // Redis trims approximately, whole blocks of about 100 entries at a time, so
    // publish enough for the oldest to go on both backends.
    let test = TestBus::new(backend, 4, 64, 100).await;
    let topic = Topic::new("posts");
    for id in 101..=400 {
        test.bus.publish(&topic, event(id)).await;
    }
    let head = EventId(400);

    // Before the bus's start, trimmed away, or not reached yet.
    for after in [50, 101, 401] {
        let sub = test.bus.subscribe(&topic, Some(EventId(after)), head).await;
        assert!(
            matches!(sub.resume, Resume::Reset),
            "{backend:?} after {after}: {:?}",
            sub.resume
        );
    }
    let recent = test.bus.subscribe(&topic, Some(EventId(398)), head).await;
    assert_eq!(ids(&recent.resume), [399, 400]);
}

async fn a_quiet_topic_resumes_from_the_page_cursor(backend: Backend) {
    let test = TestBus::new(backend, 8, 64, 100).await;
    let quiet = Topic::new("mentions:9");
    test.bus.publish(&Topic::new("posts"), event(101)).await;
    test.bus.publish(&Topic::new("posts"), event(102)).await;

    // A page rendered at head 102 shows every mention up to it; nothing was missed.
    let page = test
        .bus
        .subscribe(&quiet, Some(EventId(102)), EventId(102))
        .await;
    assert_eq!(ids(&page.resume), Vec::<u64>::new());

    test.bus.publish(&quiet, event(103)).await;
    let later = test
        .bus
        .subscribe(&quiet, Some(EventId(102)), EventId(103))
        .await;
    assert_eq!(ids(&later.resume), [103]);
}

async fn one_id_may_go_to_several_topics(backend: Backend) {
    let test = TestBus::new(backend, 8, 64, 0).await;
    let (a, b) = (Topic::new("statuses"), Topic::new("firehose"));
    test.bus.publish(&a, event(1)).await;
    test.bus.publish(&b, event(1)).await;

    assert_eq!(
        ids(&test
            .bus
            .subscribe(&a, Some(EventId(0)), EventId(1))
            .await
            .resume),
        [1]
    );
    assert_eq!(
        ids(&test
            .bus
            .subscribe(&b, Some(EventId(0)), EventId(1))
            .await
            .resume),
        [1]
    );
}

async fn slow_subscriber_is_cut_off_not_waited_for(backend: Backend) {
    let test = TestBus::new(backend, 256, 4, 0).await;
    let topic = Topic::new("posts");
    let mut slow = test.bus.subscribe(&topic, None, EventId(0)).await;
    let mut fast = test.bus.subscribe(&topic, None, EventId(0)).await;

    for id in 1..=40 {
        test.bus.publish(&topic, event(id)).await;
        assert_eq!(
            next(&mut fast.live).await.id,
            EventId(id),
            "the fast one keeps up"
        );
    }

    let mut lagged = false;
    while let Ok(result) = tokio::time::timeout(Duration::from_millis(200), slow.live.recv()).await
    {
        if let Err(RecvError::Lagged(_)) = result {
            lagged = true;
            break;
        }
    }
    assert!(
        lagged,
        "{backend:?}: a full queue reports the loss instead of growing"
    );
}

/// Under a long publish loop a topic's stream stays near its MAXLEN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_streams_stay_bounded() {
    let test = TestBus::new(Backend::Redis, 100, 64, 0).await;
    let topic = Topic::new("posts");
    for id in 1..=5_000 {
        test.bus.publish(&topic, event(id)).await;
    }

    let prefix = test.prefix.clone().unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let len: usize = redis::cmd("XLEN")
        .arg(format!("{prefix}:t:posts"))
        .query_async(&mut conn)
        .await
        .unwrap();
    println!("stream length after 5000 publishes with MAXLEN ~ 100: {len}");
    assert!((100..=300).contains(&len), "bounded near MAXLEN, got {len}");
}
