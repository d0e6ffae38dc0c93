//! Two instances on one PostgreSQL and one Redis: what happens on one is live on the
//! other.

mod support;

use std::time::Duration;

use support::{Backend, Client, TestApp, TestDb, control_cursor, post_ids, test_config};

const WAIT: Duration = Duration::from_secs(10);

/// A client of instance `app` carrying the cookies of `user` (sessions live in the
/// shared database, so a log-in on one instance holds on the other).
fn on(app: &TestApp, user: &Client) -> Client {
    Client {
        http: user.http.clone(),
        base: app.base.clone(),
    }
}

/// Two instances on one fresh PostgreSQL database and one Redis key prefix.
async fn two_instances() -> (TestApp, TestApp) {
    let db = TestDb::new(Backend::PostgresRedis).await;
    let second_db = db.shared();
    let config = test_config(&db);
    let a = TestApp::start_with(db, config.clone()).await;
    let b = TestApp::start_with(second_db, config).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_posted_on_one_instance_is_live_on_the_other() {
    let (a, b) = two_instances().await;

    let ada = a.user("ada").await;
    let bob_on_a = a.user("bob").await;
    let bob = on(&b, &bob_on_a);

    let cursor = control_cursor(&bob.text("/posts/lobby/").await, "lobby");
    let mut stream = bob
        .stream(&format!("/posts/lobby/stream?after={cursor}"), None)
        .await;
    ada.post("across instances, @bob").await;

    let frame = stream
        .next_event(WAIT)
        .await
        .expect("the mention, on instance B");
    assert!(frame.data.contains("across instances"), "{frame:?}");
    let id: u64 = frame.id.unwrap().parse().unwrap();

    let answer = bob.get(&format!("/posts/lobby/poll?after={cursor}")).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        post_ids(&answer.text().await.unwrap()),
        [id],
        "and in B's poll answer"
    );

    // And the other way round, on the all-posts timeline.
    let mut timeline = on(&a, &ada)
        .stream(&format!("/posts/all/stream?after={id}"), None)
        .await;
    on(&b, &bob).post("from B to everyone").await;
    let frame = timeline
        .next_event(WAIT)
        .await
        .expect("B's post, on instance A");
    assert!(frame.data.contains("from B to everyone"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_instances_until_the_last_tab_closes() {
    let (a, b) = two_instances().await;

    let ada = a.user("ada").await;
    let bob_on_a = a.user("bob").await;
    let bob_on_b = on(&b, &bob_on_a);
    let online_on = |app: &TestApp| {
        let viewer = on(app, &ada);
        async move {
            viewer
                .text("/posts/presence/region")
                .await
                .contains(r#"data-handle="bob""#)
        }
    };

    let tab_a = bob_on_a.stream("/posts/lobby/stream", None).await;
    let tab_b = bob_on_b.stream("/posts/presence/stream", None).await;
    for app in [&a, &b] {
        assert!(online_on(app).await, "bob online as seen from {}", app.base);
    }

    // Ada watches from instance B while bob closes his tab on A: he stays online.
    let mut watch = on(&b, &ada).stream("/posts/presence/stream", None).await;
    assert!(
        watch
            .next_event(WAIT)
            .await
            .expect("list")
            .data
            .contains("bob")
    );
    drop(tab_a);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        online_on(&a).await && online_on(&b).await,
        "his tab on B is still open"
    );

    // The last tab closes on B: both instances see him go, and B's watcher is told.
    drop(tab_b);
    let mut gone = false;
    while let Some(frame) = watch.next_event(WAIT).await {
        if !frame.data.contains(r#"data-handle="bob""#) {
            gone = true;
            break;
        }
    }
    assert!(gone, "the watcher on B saw bob go offline");
    assert!(!online_on(&a).await, "offline as seen from A");
}

/// Posts made on two instances at once reach a stream in id order, with none missing:
/// the order a resuming client relies on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_posts_on_two_instances_stream_in_order() {
    let (a, b) = two_instances().await;
    let ada = a.user("ada").await;
    let bob = on(&b, &b.user("bob").await);

    let mut stream = ada.stream("/posts/all/stream?after=0", None).await;
    let writers: Vec<_> = [ada.clone(), bob.clone()]
        .into_iter()
        .map(|author| {
            tokio::spawn(async move {
                for n in 0..20 {
                    author.post(&format!("concurrent {n}")).await;
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }

    let mut ids = Vec::new();
    while ids.len() < 40 {
        let frame = stream.next_event(WAIT).await.expect("every post");
        ids.extend(post_ids(&frame.data));
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "in id order, each once");
    assert_eq!(ids.len(), 40);
}
