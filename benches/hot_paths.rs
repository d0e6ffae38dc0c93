//! The hot paths of both transports, measured with criterion (`cargo bench`; reports in
//! target/criterion). Figures, not pass/fail: see docs/results.md for a run.

use std::hint::black_box;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use realtime::{Bus, BusEvent, EventId, Topic};
use switchyard::mastodon::sanitize::sanitize_status_html;
use switchyard::posts::store::PostRow;
use switchyard::posts::views::{post_item, post_items};
use switchyard::{AppState, Config};
use tower::ServiceExt;

fn post(id: i64) -> PostRow {
    PostRow {
        id,
        author: "ada".into(),
        body: format!("Post {id} for @bob and @carol@example.com: a line of ordinary text."),
        created_ms: 1_796_400_000_000 + id,
    }
}

fn rendering(c: &mut Criterion) {
    let one = post(1);
    let page: Vec<PostRow> = (1..=50).rev().map(post).collect();
    c.bench_function("render/item", |b| {
        b.iter(|| post_item(black_box(&one)).into_string())
    });
    c.bench_function("render/page_of_50", |b| {
        b.iter(|| post_items(black_box(&page)).into_string())
    });
}

fn encoding(c: &mut Criterion) {
    let event = BusEvent {
        id: EventId(42),
        name: "item".into(),
        data: post_item(&post(42)).into_string(),
        published_ms: 0,
    };
    c.bench_function("sse/encode_event", |b| {
        b.iter(|| realtime::stream::encode(black_box(&event)))
    });
}

/// A status as an instance renders one: mentions, a hashtag, a link, an emoji
/// shortcode, and some markup that must go.
const STATUS_HTML: &str = concat!(
    r#"<p><span class="h-card"><a href="https://example.com/@ann" class="u-url mention">"#,
    r#"@<span>ann</span></a></span> the garden meets on Saturday; bring gloves :blobcat: "#,
    r#"<a href="https://example.org/tags/gardening" class="mention hashtag" rel="tag">"#,
    r#"#<span>gardening</span></a></p><p>Notes: <a href="https://example.net/notes/2026" "#,
    r#"rel="nofollow noopener noreferrer" target="_blank"><span class="invisible">https://"#,
    r#"</span><span class="ellipsis">example.net/notes/20</span><span class="invisible">26"#,
    r#"</span></a> <script>alert(1)</script><img src=x onerror=alert(2)></p>"#,
);

fn sanitizing(c: &mut Criterion) {
    c.bench_function("mastodon/sanitize_status", |b| {
        b.iter(|| sanitize_status_html(black_box(STATUS_HTML)))
    });
}

fn fan_out(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("bus/fan_out");
    for subscribers in [1_000usize, 10_000] {
        let bus = Bus::memory(256, 16, EventId(0));
        let topic = Topic::new("posts");
        let mut receivers: Vec<_> = runtime.block_on(async {
            let mut all = Vec::with_capacity(subscribers);
            for _ in 0..subscribers {
                all.push(bus.subscribe(&topic, None, EventId(0)).await.live);
            }
            all
        });
        let mut id = 0u64;
        group.bench_function(format!("{subscribers}_subscribers"), |b| {
            b.iter(|| {
                id += 1;
                let event = BusEvent {
                    id: EventId(id),
                    name: "item".into(),
                    data: "<article>x</article>".into(),
                    published_ms: 0,
                };
                runtime.block_on(bus.publish(&topic, event));
                for receiver in &mut receivers {
                    black_box(receiver.try_recv().expect("delivered"));
                }
            })
        });
    }
    group.finish();
}

/// Polls answered by the real router, without a network: nothing new (204), and ten
/// new posts.
fn polls(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::defaults();
    config.database_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    config.no_ingest = true;
    let (shutdown, _) = tokio::sync::watch::channel(false);
    let state: AppState = runtime
        .block_on(AppState::build(config, &shutdown))
        .expect("app state");

    let head = runtime.block_on(seed_posts(&state, 10));
    let app = switchyard::router(state);
    let ask = |after: u64, expect: StatusCode| {
        let app = app.clone();
        async move {
            let request = Request::get(format!("/posts/all/poll?after={after}"))
                .body(Body::empty())
                .expect("request");
            let response = app.oneshot(request).await.expect("answer");
            assert_eq!(response.status(), expect);
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await;
            black_box(body.expect("body"));
        }
    };

    c.bench_function("poll/nothing_new", |b| {
        b.to_async(&runtime)
            .iter(|| ask(head, StatusCode::NO_CONTENT))
    });
    c.bench_function("poll/10_new_items", |b| {
        b.to_async(&runtime).iter_batched(
            || (),
            |()| ask(head - 10, StatusCode::OK),
            BatchSize::SmallInput,
        )
    });
}

/// Stores `count` posts by a fresh user; returns the newest id.
async fn seed_posts(state: &AppState, count: usize) -> u64 {
    use switchyard::accounts::store as accounts;
    use switchyard::posts::store as posts;

    let user = accounts::create(&state.db, "ada@example.com", "ada", "not-a-real-hash")
        .await
        .expect("user")
        .expect("new user");
    let mut lock = posts::writer_lock(&state.db).await.expect("lock");
    for n in 0..count {
        let body = format!("seeded post {n}");
        posts::create(&mut lock.conn, user.id, &body, 0, &[])
            .await
            .expect("post");
    }
    lock.release().await;
    posts::head(&state.db).await.expect("head")
}

criterion_group! {
    name = hot_paths;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = rendering, encoding, sanitizing, fan_out, polls
}
criterion_main!(hot_paths);
