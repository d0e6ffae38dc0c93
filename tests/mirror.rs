//! The Mastodon mirror end to end: a replayed stream is stored, sanitized and shown
//! live, with edits and deletes, over SSE and polling, on both databases.

mod support;

use std::time::Duration;

use support::{Backend, TestApp};

const WAIT: Duration = Duration::from_secs(15);

on_both_databases!(replayed_changes_reach_both_transports);

/// A status as Mastodon sends it; `extra` holds further fields, such as a content
/// warning or an edit time.
fn status(id: &str, content: &str, extra: &str) -> String {
    format!(r#"{{"id":"{id}","created_at":"2026-01-02T03:04:05.000Z","#)
        + &format!(r#""uri":"https://example.com/s/{id}","url":"https://example.com/@ann/{id}","#)
        + &format!(r#""content":"{content}","visibility":"public","language":"en","#)
        + r#""account":{"id":"1","username":"ann","acct":"ann@example.com","#
        + r#""display_name":"Ann","url":"https://example.com/@ann","avatar":""},"#
        + r#""media_attachments":[],"mentions":[],"tags":[],"emojis":[]"#
        + extra
        + "}"
}

fn recording() -> String {
    let mut wire = String::new();
    let mut event = |name: &str, data: &str| {
        wire.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    event(
        "update",
        &status("1001", "<p>first <script>alert(1)</script></p>", ""),
    );
    event(
        "update",
        &status("1002", "<p onclick=\\\"x()\\\">second</p>", ""),
    );
    event(
        "update",
        &status(
            "1003",
            "<p>third</p>",
            r#","sensitive":true,"spoiler_text":"spoilers""#,
        ),
    );
    event(
        "status.update",
        &status(
            "1001",
            "<p>first, edited</p>",
            r#","edited_at":"2026-01-02T03:05:00.000Z""#,
        ),
    );
    event("delete", "1002");
    wire.push_str(":thump\n");
    wire
}

async fn replayed_changes_reach_both_transports(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recording.sse");
    std::fs::write(&file, recording()).unwrap();

    let app = TestApp::replaying(backend, 20.0, Some(file)).await;
    let visitor = app.client();

    // From cursor 0 the stream sends what was published before it connected, then live.
    let mut stream = visitor
        .stream("/realtime/content/stream/?after=0", None)
        .await;
    let mut frames = Vec::new();
    while frames.len() < 5 {
        let frame = stream
            .next_event(WAIT)
            .await
            .expect("a change of the mirror");
        frames.push(frame);
    }
    let ids: Vec<u64> = frames
        .iter()
        .map(|f| f.id.as_ref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3, 4, 5], "one cursor per change");
    assert!(frames[0].data.contains("first"));
    assert!(
        frames[2]
            .data
            .contains("<details class=\"cw\"><summary>CW: spoilers")
    );
    assert!(
        frames[3].data.contains(r#"hx-swap-oob="true""#),
        "edit replaces in place"
    );
    assert!(frames[3].data.contains("first, edited") && frames[3].data.contains("(edited)"));
    assert!(
        frames[4].data.contains(r#"hx-swap-oob="delete""#),
        "delete removes"
    );
    for frame in &frames {
        assert!(
            !frame.data.contains("<script") && !frame.data.contains("onclick"),
            "{frame:?}"
        );
    }

    // A poller that had seen the first three statuses gets the edit and the delete.
    let answer = visitor.get("/posts/content/poll?after=3").await;
    assert_eq!(answer.status(), 200);
    let html = answer.text().await.unwrap();
    assert!(
        html.contains("first, edited") && html.contains(r#"hx-swap-oob="delete""#),
        "{html}"
    );
    assert_eq!(
        visitor.get("/posts/content/poll?after=5").await.status(),
        204
    );

    // A fresh page shows what is left: the edit, not the deleted one.
    let page = visitor.text("/posts/content/").await;
    assert!(page.contains("first, edited") && page.contains("third"));
    assert!(!page.contains("second"), "deleted statuses are gone");
    assert!(!page.contains("alert(1)"), "sanitized before it was stored");

    let firehose = visitor
        .get("/firehose/poll?after=0")
        .await
        .text()
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::from_str(&firehose).unwrap();
    assert_eq!(json["cursor"], 5);
    let kinds: Vec<&str> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    // The database keeps each status's latest change, oldest first: the third status as
    // posted, the first as edited, the second as deleted.
    assert_eq!(kinds, ["update", "status.update", "delete"]);
}

/// The bundled recording plays by default and keeps the mirror moving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_replay_plays_by_default() {
    let app = TestApp::replaying(Backend::Sqlite, 200.0, None).await;
    app.wait_stored(100).await;
    let page = app.client().text("/posts/content/").await;
    assert_eq!(
        page.matches("class=\"item status\"").count(),
        50,
        "a page of statuses"
    );
    assert!(
        page.contains("the bundled sample recording"),
        "the page says where statuses come from"
    );
    assert!(!page.contains("/data/"), "without the server's file paths");
}

/// `/compare` and its panes' endpoints: each pane keeps its own transport whatever the
/// browser chose, and the polling pane's answers carry its own control and item ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_panes_answer_with_their_own_controls() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("recording.sse");
    std::fs::write(&file, recording()).unwrap();

    let app = TestApp::replaying(Backend::Sqlite, 50.0, Some(file)).await;
    app.wait_stored(5).await;

    let visitor = app.client();
    let get = |path: &str, cookie: &str| {
        visitor
            .http
            .get(app.url(path))
            .header("cookie", format!("transport={cookie}"))
            .send()
    };

    for chosen in ["poll", "sse"] {
        let page = get("/compare", chosen).await.unwrap().text().await.unwrap();
        assert!(
            page.contains(r#"id="cmp-poll-ctl" class="live-ctl" data-transport="poll""#)
                && page.contains(r#"hx-get="/compare/polling/poll?after=5""#),
            "the polling pane polls with {chosen} chosen: {page}"
        );
        assert!(
            page.contains(r#"id="cmp-sse-ctl" class="live-ctl" data-transport="sse""#)
                && page.contains(r#"sse-connect="/realtime/content/stream/?after=5""#),
            "the SSE pane streams with {chosen} chosen: {page}"
        );
        assert!(page.contains(r#"data-pinned="poll""#) && page.contains(r#"data-pinned="sse""#));
        // The replay gives statuses ids of its own; two statuses are left, in each pane.
        assert_eq!(
            (
                page.matches(r#"<article id="cmp-poll-status-"#).count(),
                page.matches(r#"<article id="status-"#).count(),
            ),
            (2, 2),
            "each pane shows the statuses under ids of its own: {page}"
        );
        assert!(
            !page.contains("content-ctl"),
            "not the mirror page's region"
        );
        assert!(
            page.contains(r#"id="cmp-interval" data-value="500""#),
            "the poll interval is shown"
        );
        assert!(page.contains(r#"href="/compare""#), "linked from the nav");
    }

    // A poller of the left pane that had seen the first three statuses.
    let answer = get("/compare/polling/poll?after=3", "sse").await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let html = answer.text().await.unwrap();
    assert!(
        html.contains(r#"<div id="cmp-poll-ctl" class="live-ctl" data-transport="poll""#)
            && html.contains(r#"hx-get="/compare/polling/poll?after=5""#)
            && html.contains(r##"hx-target="#cmp-poll-items""##)
            && html.contains(r#"hx-swap-oob="true""#),
        "the answer carries the pane's own control, advanced: {html}"
    );
    let edit = html.find(r#"<article id="cmp-poll-status-"#);
    let delete = html.find(r#"<div id="cmp-poll-status-"#);
    assert!(
        edit.is_some() && delete.is_some() && html.contains(r#"hx-swap-oob="delete""#),
        "the edit and the deletion name the pane's own items: {html}"
    );
    assert!(
        !html.contains("content-ctl") && !html.contains(r#"id="status-"#),
        "nothing for the other pane or the mirror page: {html}"
    );

    let nothing = get("/compare/polling/poll?after=5", "poll").await.unwrap();
    assert_eq!(nothing.status(), 204, "nothing new");
    assert_eq!(nothing.text().await.unwrap(), "");
    let bare = get("/compare/polling/poll", "poll").await.unwrap();
    assert_eq!(bare.status(), 422, "a poll needs its cursor");
    let unknown = get("/compare/carrier-pigeon/poll?after=1", "poll")
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let sse_poll = get("/compare/sse/poll?after=1", "poll").await.unwrap();
    assert_eq!(sse_poll.status(), 404, "the SSE pane never polls");

    // Controls and regions for app.js keep each pane's transport too.
    let sse_control = get("/compare/sse/control?after=4", "poll").await.unwrap();
    let sse_control = sse_control.text().await.unwrap();
    assert!(
        sse_control.contains(r#"id="cmp-sse-ctl""#)
            && sse_control.contains(r#"sse-connect="/realtime/content/stream/?after=4""#)
            && sse_control.contains(r##"hx-target="#cmp-sse-items""##),
        "{sse_control}"
    );
    let poll_control = get("/compare/polling/control?after=4", "sse")
        .await
        .unwrap();
    let poll_control = poll_control.text().await.unwrap();
    assert!(
        poll_control.contains(r#"hx-get="/compare/polling/poll?after=4""#),
        "{poll_control}"
    );
    let region = get("/compare/sse/region", "poll").await.unwrap();
    let region = region.text().await.unwrap();
    assert!(
        region.contains(r#"id="cmp-sse-region""#)
            && region.contains(r#"data-pinned="sse""#)
            && region.matches(r#"<article id="status-"#).count() == 2
            && !region.contains("second"),
        "{region}"
    );
}
