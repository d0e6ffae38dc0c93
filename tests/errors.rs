//! What a visitor sees when things break: a plain message, never internal detail.

mod support;

use support::{Backend, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_failure_is_a_plain_500_and_health_says_unavailable() {
    let app = TestApp::start(Backend::Sqlite).await;
    let visitor = app.client();
    assert_eq!(visitor.text("/healthz").await, "ok");

    // The pool refuses every query from now on, as a vanished database would.
    app.state.db.pool.close().await;

    let page = visitor.get("/posts/").await;
    assert_eq!(page.status(), 500);
    let body = page.text().await.unwrap();
    assert!(body.contains("Something went wrong on our side"), "{body}");
    assert!(
        !body.to_lowercase().contains("pool"),
        "no internal detail: {body}"
    );

    let health = visitor.get("/healthz").await;
    assert_eq!(health.status(), 503);
    assert!(
        health
            .text()
            .await
            .unwrap()
            .contains("database unreachable")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pages_and_transports_get_clear_answers() {
    let app = TestApp::start(Backend::Sqlite).await;
    let visitor = app.client();

    let missing = visitor.get("/no/such/page").await;
    assert_eq!(missing.status(), 404);

    let bad = visitor
        .post_form("/transport", &[("transport", "pigeon")])
        .await;
    assert_eq!(bad.status(), 422);
    assert!(
        bad.text()
            .await
            .unwrap()
            .contains("unknown transport 'pigeon'")
    );

    let chosen = visitor
        .post_form("/transport", &[("transport", "poll")])
        .await;
    assert_eq!(chosen.status(), 303);
    let page = visitor.text("/posts/").await;
    assert!(
        page.contains(r#"data-transport="poll""#),
        "the cookie picks polling"
    );
    assert!(
        page.contains(r#"hx-trigger="every 500ms""#),
        "at the configured interval"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_get_503() {
    let db = support::TestDb::new(Backend::Sqlite).await;
    let mut config = support::test_config(&db);
    config.max_streams = 2;
    let app = TestApp::start_with(db, config).await;
    let visitor = app.client();

    let _one = visitor.stream("/posts/all/stream", None).await;
    let _two = visitor.stream("/hello/stream", None).await;
    let third = visitor.get("/realtime/content/stream/").await;
    assert_eq!(third.status(), 503);
    assert!(
        third
            .text()
            .await
            .unwrap()
            .contains("too many open streams")
    );
    assert_eq!(app.state.streams.open(), 2);
}
