//! `/metrics` is scraped like Prometheus would, after real traffic.

mod support;

use std::time::Duration;

use support::{Backend, TestApp, control_cursor};

/// The value of the sample whose line starts with `series`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_streams_events_polls_and_delay() {
    let app = TestApp::start(Backend::Sqlite).await;
    let fresh = app.client().text("/metrics").await;
    for transport in ["poll", "sse"] {
        let series = format!(r#"switchyard_bytes_sent_total{{transport="{transport}"}}"#);
        assert_eq!(
            sample(&fresh, &series),
            0.0,
            "both transports from the start"
        );
    }

    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let cursor = control_cursor(&bob.text("/posts/lobby/").await, "lobby");

    let mut stream = bob
        .stream(&format!("/posts/lobby/stream?after={cursor}"), None)
        .await;
    assert_eq!(
        bob.get(&format!("/posts/lobby/poll?after={cursor}"))
            .await
            .status(),
        204
    );
    ada.post("measured @bob").await;
    stream
        .next_event(Duration::from_secs(10))
        .await
        .expect("the mention");
    assert_eq!(
        bob.get(&format!("/posts/lobby/poll?after={cursor}"))
            .await
            .status(),
        200
    );

    let response = app.client().get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics")
    );
    let text = response.text().await.unwrap();

    assert_eq!(
        sample(
            &text,
            r#"switchyard_open_streams{route="/posts/lobby/stream"}"#
        ),
        1.0
    );
    let sent = r#"switchyard_sse_events_sent_total{route="/posts/lobby/stream"}"#;
    assert_eq!(sample(&text, sent), 1.0);
    let empty = r#"switchyard_poll_answers_total{route="/posts/lobby/poll",outcome="nothing_new"}"#;
    assert_eq!(sample(&text, empty), 1.0);
    let fresh = r#"switchyard_poll_answers_total{route="/posts/lobby/poll",outcome="new"}"#;
    assert_eq!(sample(&text, fresh), 1.0);
    assert!(sample(&text, r#"switchyard_bytes_sent_total{transport="sse"}"#) > 100.0);
    assert!(sample(&text, r#"switchyard_bytes_sent_total{transport="poll"}"#) > 100.0);
    assert_eq!(
        sample(&text, "switchyard_delivery_delay_seconds_count"),
        1.0
    );
    assert_eq!(sample(&text, "switchyard_bus_backlog"), 0.0);
    assert!(text.trim_end().ends_with("# EOF"), "complete exposition");

    drop(stream);
    support::eventually(Duration::from_secs(10), "the stream to close", || async {
        let text = app.client().text("/metrics").await;
        sample(
            &text,
            r#"switchyard_open_streams{route="/posts/lobby/stream"}"#,
        ) == 0.0
    })
    .await;
}
