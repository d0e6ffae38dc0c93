//! Posts and mentions arriving live, over SSE and over polling, on both databases.

mod support;

use std::time::Duration;

use support::{Backend, TestApp, control_cursor, eventually, post_ids};
use switchyard::db;

const WAIT: Duration = Duration::from_secs(10);

on_both_databases!(
    mention_reaches_every_tab_over_sse,
    polling_answers_new_items_then_204,
    last_event_id_resumes_exactly,
    unusable_resume_points_get_a_reset,
    switching_transport_continues_without_gap,
    presence_follows_the_last_tab,
    posts_are_checked_and_bad_cursors_refused,
    empty_polls_of_a_logged_in_user_read_no_database,
);

async fn mention_reaches_every_tab_over_sse(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let lobby = bob.text("/posts/lobby/").await;
    let cursor = control_cursor(&lobby, "lobby");

    let path = format!("/posts/lobby/stream?after={cursor}");
    let mut tab1 = bob.stream(&path, None).await;
    let mut tab2 = bob.stream(&path, None).await;
    ada.post("hello @bob, and a note for nobody").await;
    ada.post("not for bob").await;
    ada.post("by email: @bob@example.com").await;

    for tab in [&mut tab1, &mut tab2] {
        let first = tab.next_event(WAIT).await.expect("first mention");
        let second = tab.next_event(WAIT).await.expect("second mention");
        assert_eq!(first.event, "item");
        assert!(
            first
                .data
                .contains("hello <span class=\"mention\">@bob</span>"),
            "{first:?}"
        );
        assert!(second.data.contains("@bob@example.com"), "{second:?}");
        let ids: Vec<u64> = [&first, &second]
            .iter()
            .map(|f| f.id.as_deref().unwrap().parse().unwrap())
            .collect();
        assert!(ids[0] < ids[1], "ids increase: {ids:?}");
        assert_eq!(
            post_ids(&first.data),
            [ids[0]],
            "event id is the item's cursor"
        );
        assert!(
            tab.next_event(Duration::from_millis(300)).await.is_none(),
            "no extra"
        );
    }
}

async fn polling_answers_new_items_then_204(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let cursor = control_cursor(&bob.text("/posts/lobby/").await, "lobby");

    let empty = bob.get(&format!("/posts/lobby/poll?after={cursor}")).await;
    assert_eq!(empty.status(), 204);

    ada.post("one for @bob").await;
    ada.post("two for @bob").await;
    let answer = bob.get(&format!("/posts/lobby/poll?after={cursor}")).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let html = answer.text().await.unwrap();
    let ids = post_ids(&html);
    assert_eq!(ids.len(), 2, "{html}");
    assert!(ids[0] > ids[1], "newest first for afterbegin: {ids:?}");
    assert!(
        html.contains(r#"hx-swap-oob="true""#),
        "control swapped out of band: {html}"
    );
    let next = control_cursor(&html, "lobby");
    assert_eq!(next, ids[0]);

    let again = bob.get(&format!("/posts/lobby/poll?after={next}")).await;
    assert_eq!(again.status(), 204, "nothing new after the advanced cursor");

    // The timeline shows everyone's posts and is public.
    let anonymous = app.client();
    let all = anonymous
        .get(&format!("/posts/all/poll?after={cursor}"))
        .await;
    assert_eq!(post_ids(&all.text().await.unwrap()).len(), 2);
}

async fn last_event_id_resumes_exactly(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let cursor = control_cursor(&bob.text("/posts/lobby/").await, "lobby");

    let mut stream = bob
        .stream(&format!("/posts/lobby/stream?after={cursor}"), None)
        .await;
    ada.post("first @bob").await;
    let seen = stream.next_event(WAIT).await.expect("first");
    drop(stream);

    ada.post("second @bob").await;
    ada.post("third @bob").await;
    let last_id = seen.id.clone().unwrap();
    // The page's ?after= is older; the header must win.
    let path = format!("/posts/lobby/stream?after={cursor}");
    let mut resumed = bob.stream(&path, Some(&last_id)).await;
    let missed = [
        resumed.next_event(WAIT).await.expect("second"),
        resumed.next_event(WAIT).await.expect("third"),
    ];
    assert!(missed[0].data.contains("second"), "{missed:?}");
    assert!(missed[1].data.contains("third"), "{missed:?}");

    ada.post("fourth @bob").await;
    let live = resumed.next_event(WAIT).await.expect("live after backlog");
    assert!(live.data.contains("fourth"));
    assert!(
        resumed
            .next_event(Duration::from_millis(300))
            .await
            .is_none()
    );
}

async fn unusable_resume_points_get_a_reset(backend: Backend) {
    let db = support::TestDb::new(backend).await;
    let mut config = support::test_config(&db);
    config.history = 2;
    let app = TestApp::start_with(db, config).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let cursor = control_cursor(&bob.text("/posts/lobby/").await, "lobby");
    // Redis trims streams approximately, a block of about 100 entries at a time.
    let posts = if backend == Backend::PostgresRedis {
        250
    } else {
        4
    };
    for n in 0..posts {
        ada.post(&format!("post {n} for @bob")).await;
    }

    for bad in ["not-a-number", "999999", &cursor.to_string()] {
        let mut stream = bob.stream("/posts/lobby/stream", Some(bad)).await;
        let frame = stream.next_event(WAIT).await.expect("reset");
        assert_eq!(frame.event, "reset", "Last-Event-ID {bad}");
        assert!(
            stream
                .next_event(Duration::from_millis(300))
                .await
                .is_none()
        );
    }

    // A poller whose cursor is from the future is told to reload the region.
    let answer = bob.get("/posts/lobby/poll?after=999999").await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["hx-retarget"], "#lobby-region");
    assert_eq!(answer.headers()["hx-reswap"], "outerHTML");
}

/// The toggle hands the cursor from one transport to the other; whichever way it goes,
/// every post arrives once.
async fn switching_transport_continues_without_gap(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let mut cursor = control_cursor(&bob.text("/posts/lobby/").await, "lobby");
    let mut received = Vec::new();

    for round in 0..3 {
        // SSE leg, started from the cursor polling reached.
        let mut stream = bob
            .stream(&format!("/posts/lobby/stream?after={cursor}"), None)
            .await;
        ada.post(&format!("sse {round} a @bob")).await;
        ada.post(&format!("sse {round} b @bob")).await;
        for _ in 0..2 {
            let frame = stream.next_event(WAIT).await.expect("sse item");
            received.extend(post_ids(&frame.data));
            cursor = frame.id.unwrap().parse().unwrap();
        }
        // Posted while switching: the old stream is gone, the poll must pick it up.
        drop(stream);
        ada.post(&format!("between {round} @bob")).await;

        let control = bob
            .text(&format!("/posts/lobby/control?after={cursor}"))
            .await;
        assert!(
            control.contains("sse-connect"),
            "cookie still says SSE: {control}"
        );
        let switched = bob.post_form("/transport", &[("transport", "poll")]).await;
        assert_eq!(switched.status(), 303);
        let control = bob
            .text(&format!("/posts/lobby/control?after={cursor}"))
            .await;
        assert!(
            control.contains(&format!("/posts/lobby/poll?after={cursor}")),
            "{control}"
        );

        ada.post(&format!("poll {round} @bob")).await;
        let answer = bob.get(&format!("/posts/lobby/poll?after={cursor}")).await;
        let html = answer.text().await.unwrap();
        let mut ids = post_ids(&html);
        ids.reverse();
        received.extend(&ids);
        cursor = control_cursor(&html, "lobby");
        bob.post_form("/transport", &[("transport", "sse")]).await;
    }

    let all_mentions = bob.text("/posts/lobby/region").await;
    let mut expected = post_ids(&all_mentions);
    expected.reverse();
    assert_eq!(received.len(), 12);
    assert_eq!(received, expected, "every post once, in order");
}

async fn presence_follows_the_last_tab(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let online = |client: support::Client| async move {
        client
            .text("/posts/presence/region")
            .await
            .contains(r#"data-handle="bob""#)
    };
    assert!(!online(ada.clone()).await, "bob has no open stream yet");

    let tab1 = bob.stream("/posts/lobby/stream", None).await;
    let tab2 = bob.stream("/posts/presence/stream", None).await;
    eventually(WAIT, "bob online", || online(ada.clone())).await;

    // Ada watches the presence region live while bob closes his tabs.
    let mut watch = ada.stream("/posts/presence/stream", None).await;
    let first = watch.next_event(WAIT).await.expect("current list");
    assert!(first.data.contains(r#"data-handle="bob""#), "{first:?}");

    drop(tab1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(online(ada.clone()).await, "one tab still open");

    drop(tab2);
    let offline = watch.next_event(WAIT).await.expect("presence change");
    assert!(
        !offline.data.contains(r#"data-handle="bob""#),
        "{offline:?}"
    );
    assert!(
        offline.data.contains(r#"data-handle="ada""#),
        "ada's own stream counts"
    );
}

async fn posts_are_checked_and_bad_cursors_refused(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;

    let long = "x".repeat(501);
    let refused = ada.post_form("/posts/create/", &[("body", &long)]).await;
    assert_eq!(refused.status(), 422);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains("at most 500 characters; this one has 501"),
        "{page}"
    );
    assert!(page.contains(&long), "the text is kept for editing");

    let empty = ada.post_form("/posts/create/", &[("body", "   ")]).await;
    assert_eq!(empty.status(), 422);

    let bad = ada.get("/posts/lobby/poll?after=abc").await;
    assert_eq!(bad.status(), 422);
    assert!(bad.text().await.unwrap().contains("not a cursor"));

    let anonymous = app.client();
    let lobby = anonymous.get("/posts/lobby/").await;
    assert_eq!(lobby.status(), 303, "the lobby needs a login");
    let posting = anonymous
        .post_form("/posts/create/", &[("body", "hi")])
        .await;
    assert_eq!(posting.status(), 303);
}

/// At one poll a second per client, the empty polls are the load: they are answered
/// from memory. The tables they would read are renamed away to prove it.
async fn empty_polls_of_a_logged_in_user_read_no_database(backend: Backend) {
    let app = TestApp::start(backend).await;
    let ada = app.user("ada").await;
    let bob = app.user("bob").await;
    let lobby = control_cursor(&bob.text("/posts/lobby/").await, "lobby");
    ada.post("not for bob").await;

    // A post for others moves Bob's mentions cursor past it, with no items.
    let answer = bob.get(&format!("/posts/lobby/poll?after={lobby}")).await;
    assert_eq!(answer.status(), 200);
    let html = answer.text().await.unwrap();
    assert!(post_ids(&html).is_empty(), "{html}");
    let head = control_cursor(&html, "lobby");
    assert!(head > lobby, "cursor advanced: {lobby} -> {head}");
    let all = format!("/posts/all/poll?after={head}");
    let mentions = format!("/posts/lobby/poll?after={head}");
    assert_eq!(bob.get(&mentions).await.status(), 204);

    let renames: &[&str] = match app.state.db.backend {
        db::Backend::Sqlite => &[
            "ALTER TABLE tower_sessions RENAME TO sessions_away",
            "ALTER TABLE users RENAME TO users_away",
            "ALTER TABLE posts RENAME TO posts_away",
        ],
        db::Backend::Postgres => &[
            "ALTER TABLE tower_sessions.session RENAME TO session_away",
            "ALTER TABLE users RENAME TO users_away",
            "ALTER TABLE posts RENAME TO posts_away",
        ],
    };
    for sql in renames {
        sqlx::query(sql).execute(&app.state.db.pool).await.unwrap();
    }

    for path in [&mentions, &all] {
        let answer = bob.get(path).await;
        assert_eq!(
            answer.status(),
            204,
            "{path}: {}",
            answer.text().await.unwrap()
        );
    }
    let behind = bob.get(&format!("/posts/all/poll?after={lobby}")).await;
    assert_eq!(
        behind.status(),
        500,
        "a poll behind the head does read the database"
    );
}
