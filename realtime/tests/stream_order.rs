//! What a stream sends when the bus delivers events out of order: a repeat is skipped,
//! an older event it never sent resets the client, who reloads from the database.

use std::time::Duration;

use axum::response::IntoResponse;
use axum::response::sse::Sse;
use futures_util::StreamExt;
use realtime::stream::{StreamOptions, event_stream};
use realtime::{Bus, BusEvent, EventId, Topic};

fn event(id: u64) -> BusEvent {
    BusEvent {
        id: EventId(id),
        name: "item".into(),
        data: format!("post {id}"),
        published_ms: 0,
    }
}

/// The SSE body as text, until it ends or goes quiet.
async fn body_text(body: axum::body::Body) -> String {
    let mut chunks = body.into_data_stream();
    let mut text = String::new();
    while let Ok(Some(Ok(chunk))) =
        tokio::time::timeout(Duration::from_millis(300), chunks.next()).await
    {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn repeats_are_skipped_and_late_events_reset() {
    let bus = Bus::memory(16, 16, EventId(0));
    let topic = Topic::new("posts");
    let sub = bus.subscribe(&topic, Some(EventId(1)), EventId(1)).await;
    let stream = event_stream(sub, &StreamOptions::default(), (), Box::new(|_| {}));
    let response = Sse::new(stream).into_response();

    for id in [2, 4, 4, 1, 3, 5] {
        bus.publish(&topic, event(id)).await;
    }
    let text = body_text(response.into_body()).await;

    assert!(
        text.contains("data: post 2") && text.contains("data: post 4"),
        "{text}"
    );
    assert_eq!(
        text.matches("data: post 4").count(),
        1,
        "a repeat is skipped: {text}"
    );
    assert!(
        !text.contains("post 1"),
        "at or below the resume point: {text}"
    );
    assert!(
        text.contains("event: reset"),
        "3 came after 4 and was never sent: {text}"
    );
    assert!(
        !text.contains("post 5"),
        "the stream ends at the reset: {text}"
    );
}
