//! The live views in a real browser: headless Chromium runs the pages' htmx, the SSE
//! extension and app.js against the real app, and the tests watch the DOM the way a
//! person watches the screen.

mod support;

#[path = "support/browser.rs"]
mod browser_support;

use std::collections::HashSet;
use std::time::Duration;

use browser_support::{Browser, Driver, WAIT, bounded, picture_dir};
use serde_json::{Value, json};
use support::{Backend, TestApp};

/// The most one browser test may take, Chromium's start-up included.
const LIMIT: Duration = Duration::from_secs(120);

const PASSWORD: &str = "correct horse battery";

/// How long a list must stay as it is to count as settled.
const SETTLE: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mention_arrives_live_over_sse_then_polling_and_the_toggle_never_reloads() {
    bounded(LIMIT, async {
        let app = TestApp::start(Backend::Sqlite).await;
        let driver = Driver::start().await;
        let ada = driver.browser().await;
        let bob = driver.browser().await;
        sign_up(&ada, &app, "ada").await;
        sign_up(&bob, &app, "bob").await;

        // Ada writes from a page without live regions, so every stream the server holds
        // from here on is Bob's.
        ada.goto(&app.url("/posts/create/")).await;
        assert_transport(&bob, "sse").await;
        wait_open(&bob, &["lobby", "presence"]).await;
        wait_streams(&app, 2, "Bob's two streams and none of Ada's").await;
        bob.wait_for("bob in his own online list", &online("bob"))
            .await;
        mark_page(&bob, "lobby-items").await;

        post_through_form(&ada, "hello @bob (sse)").await;
        wait_mention(&bob, "hello @bob (sse)").await;

        bob.click(r#"[data-transport-choice="poll"]"#).await;
        assert_transport(&bob, "poll").await;
        wait_streams(&app, 0, "Bob's event sources to close").await;
        post_through_form(&ada, "hello @bob (poll)").await;
        wait_mention(&bob, "hello @bob (poll)").await;

        bob.click(r#"[data-transport-choice="sse"]"#).await;
        assert_transport(&bob, "sse").await;
        wait_streams(&app, 2, "Bob's streams to reopen").await;
        bob.wait_for("bob online again over SSE", &online("bob"))
            .await;
        post_through_form(&ada, "hello @bob (sse again)").await;
        wait_mention(&bob, "hello @bob (sse again)").await;

        let ids = settled_ids(&bob, "#lobby-items article.post").await;
        assert_eq!(ids.len(), 3, "three mentions, each shown once: {ids:?}");
        let texts = bob
            .js(
                "return [...document.querySelectorAll('#lobby-items article.post .body')]\
                 .map(p => p.textContent)",
            )
            .await;
        assert_eq!(
            texts,
            json!([
                "hello @bob (sse again)",
                "hello @bob (poll)",
                "hello @bob (sse)"
            ]),
            "newest first"
        );
        assert_still_marked(&bob, "lobby-items").await;
        assert_eq!(flash(&bob).await, "", "no error shown");

        ada.close().await;
        bob.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mastodon_mirror_updates_live_in_both_modes() {
    bounded(LIMIT, async {
        let app = TestApp::replaying(Backend::Sqlite, 20.0, None).await;
        let driver = Driver::start().await;
        let reader = driver.browser().await;

        reader.goto(&app.url("/posts/content/")).await;
        assert_transport(&reader, "sse").await;
        wait_open(&reader, &["content"]).await;
        mark_page(&reader, "content-items").await;
        let before = status_ids(&reader).await;
        wait_growth(&reader, &before, "statuses over SSE").await;

        reader.click(r#"[data-transport-choice="poll"]"#).await;
        assert_transport(&reader, "poll").await;
        wait_streams(&app, 0, "the mirror's event source to close").await;
        assert_still_marked(&reader, "content-items").await;
        let switched = status_ids(&reader).await;
        wait_growth(&reader, &switched, "statuses over polling").await;

        assert_still_marked(&reader, "content-items").await;
        assert_eq!(flash(&reader).await, "", "no error shown");
        reader.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_keeps_one_request_in_flight_per_region_and_photographs_the_lobby() {
    bounded(LIMIT, async {
        let app = TestApp::start(Backend::Sqlite).await;
        let driver = Driver::start().await;
        let bob = driver.browser().await;
        sign_up(&bob, &app, "bob").await;
        let ada = app.user("ada").await;

        bob.click(r#"[data-transport-choice="poll"]"#).await;
        assert_transport(&bob, "poll").await;
        bob.js(COUNT_REQUESTS).await;

        // Mentions make poll answers carry items and a new control, which is where a
        // control could be left polling beside its replacement.
        for n in 1..=3 {
            let body = format!("mention {n} for @bob");
            ada.post(&body).await;
            wait_mention(&bob, &body).await;
        }

        // A round trip through SSE while polls run: the switch aborts a poll in flight.
        bob.click(r#"[data-transport-choice="sse"]"#).await;
        assert_transport(&bob, "sse").await;
        bob.click(r#"[data-transport-choice="poll"]"#).await;
        assert_transport(&bob, "poll").await;
        ada.post("mention 4 for @bob").await;
        wait_mention(&bob, "mention 4 for @bob").await;
        bob.wait_for(
            "a dozen lobby polls",
            "return (window.__requests.sent['/posts/lobby/poll'] ?? 0) >= 12",
        )
        .await;

        let requests = bob.js("return window.__requests").await;
        let interval_ms = app.state.config.poll_ms as f64;
        for path in ["/posts/lobby/poll", "/posts/presence/poll"] {
            let most = &requests["most"][path];
            assert_eq!(
                most,
                &json!(1),
                "polls of {path} in flight at once: {requests}"
            );

            // A control left polling beside its replacement would not overlap a quick
            // poll, but it would poll more often than the interval.
            let sent = requests["sent"][path].as_f64().unwrap_or(0.0);
            let elapsed_ms = requests["elapsed"].as_f64().unwrap_or(0.0);
            let expected = elapsed_ms / interval_ms;
            assert!(
                sent <= expected * 1.5 + 2.0,
                "{sent} polls of {path} in {elapsed_ms} ms at one per {interval_ms} ms"
            );
        }
        let ids = settled_ids(&bob, "#lobby-items article.post").await;
        assert_eq!(ids.len(), 4, "four mentions, each shown once: {ids:?}");

        let picture = picture_dir().join("lobby.png");
        bob.screenshot(&picture).await;
        println!("lobby screenshot: {}", picture.display());
        let note = bob
            .js(
                "const note = document.querySelector('#lobby-items .empty'); \
                 return note === null || note.offsetParent === null",
            )
            .await;
        assert_eq!(
            note,
            json!(true),
            "'Nobody has mentioned you yet.' beside four mentions"
        );
        bob.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_left_behind_release_their_streams() {
    bounded(LIMIT, async {
        let app = TestApp::start(Backend::Sqlite).await;
        let driver = Driver::start().await;
        let bob = driver.browser().await;
        sign_up(&bob, &app, "bob").await;
        let ada = app.user("ada").await;
        wait_open(&bob, &["lobby", "presence"]).await;
        wait_streams(&app, 2, "the lobby's two streams").await;

        // Browsers allow six connections to a host; pages that keep their streams after
        // being left soon take them all, and the next page hangs.
        for round in 1..=4 {
            bob.click(r#"header.top nav a[href="/posts/"]"#).await;
            wait_page(&bob, "/posts/", &["all"]).await;
            wait_streams(
                &app,
                1,
                &format!("round {round}: the timeline's stream only"),
            )
            .await;

            // A mark on the page being left tells the kept page from a fresh one later.
            bob.js("window.__kept = 1; return true").await;
            bob.click(r#"header.top nav a[href="/posts/lobby/"]"#).await;
            wait_page(&bob, "/posts/lobby/", &["lobby", "presence"]).await;
            wait_streams(&app, 2, &format!("round {round}: the lobby's streams only")).await;
        }

        // Back to the timeline the browser kept whole in its back/forward cache (the
        // mark set on it survives): it must be live again.
        bob.client.back().await.expect("going back");
        let kept = "return location.pathname === '/posts/' && window.__kept === 1";
        bob.wait_for("the kept timeline", kept).await;
        wait_streams(&app, 1, "the timeline's stream after going back").await;
        ada.post("after going back").await;
        bob.wait_for(
            "a post made after going back",
            "return [...document.querySelectorAll('#all-items article.post .body')]\
             .some(p => p.textContent === 'after going back')",
        )
        .await;
        unique_ids(&bob, "#all-items article.post").await;
        bob.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_page_counts_both_transports_live_without_login() {
    bounded(LIMIT, async {
        let app = TestApp::replaying(Backend::Sqlite, 20.0, None).await;
        let driver = Driver::start().await;
        let reader = driver.browser().await;

        reader.goto(&app.url("/compare")).await;
        wait_open(&reader, &["cmp-sse"]).await;
        wait_streams(&app, 1, "the SSE pane's stream").await;
        let figures = reader
            .wait_for(
                "live items, requests, bytes, delays and a chart in both panes",
                COMPARE_READY,
            )
            .await;
        println!("compare figures: {figures}");
        unique_ids(&reader, "article.status").await;

        // The toggle switches other pages; here each pane keeps its transport.
        let cursor = "return document.getElementById('cmp-sse-ctl').dataset.cursor";
        let before = reader.js(cursor).await;
        reader.click(r#"[data-transport-choice="poll"]"#).await;
        reader
            .wait_for(
                "the toggle to take the choice",
                "return document.body.dataset.transport === 'poll'",
            )
            .await;
        let later = format!("return Number({}) > {}", &cursor[7..], before);
        reader.wait_for("more events on the SSE pane", &later).await;
        let controls = reader
            .js("return ['cmp-poll', 'cmp-sse'].map(name =>
                     document.getElementById(name + '-ctl').dataset.transport)")
            .await;
        assert_eq!(controls, json!(["poll", "sse"]), "each pane keeps its own");
        wait_streams(&app, 1, "the SSE pane's stream, still open").await;
        assert_eq!(flash(&reader).await, "", "no error shown");

        let picture = picture_dir().join("compare.png");
        reader.screenshot(&picture).await;
        println!("compare screenshot: {}", picture.display());
        reader.close().await;
    })
    .await;
}

/// Answers the figures of both panes of `/compare` once each shows items that came in
/// after the page loaded, has made requests and received bytes, shows its delays as
/// numbers and has drawn its chart; `null` until then.
const COMPARE_READY: &str = r#"
    const figures = {};
    for (const name of ['cmp-poll', 'cmp-sse']) {
        const value = key => document.getElementById(`${name}-${key}`).dataset.value;
        const chart = document.getElementById(`${name}-chart`);
        const pane = {
            requests: Number(value('requests')),
            bytes: Number(value('bytes')),
            shown: Number(value('shown')),
            p50: value('p50'),
            p95: value('p95'),
            lines: chart.querySelectorAll('polyline[points]').length,
            points: Number(chart.dataset.points),
            marked: document.querySelectorAll(`#${name}-items > .status[data-delay-ms]`).length,
        };
        const number = text => text !== '' && Number.isFinite(Number(text));
        const ready = pane.requests > 0 && pane.bytes > 0 && pane.shown >= 3
            && number(pane.p50) && number(pane.p95) && pane.lines === 2 && pane.points > 0
            && pane.marked > 0;
        if (!ready) return null;
        figures[name] = pane;
    }
    return figures;
"#;

/// Counts the page's XMLHttpRequests per path: how many were sent, how many are in
/// flight, and the most that ever were at once. htmx polls through XMLHttpRequest;
/// app.js's own fetches for switching are not counted.
const COUNT_REQUESTS: &str = r#"
    const requests = window.__requests = {
        sent: {}, open: {}, most: {}, started: performance.now(), elapsed: 0,
    };
    const open = XMLHttpRequest.prototype.open;
    const send = XMLHttpRequest.prototype.send;
    XMLHttpRequest.prototype.open = function (method, url) {
        this.__path = new URL(url, location.href).pathname;
        return open.apply(this, arguments);
    };
    XMLHttpRequest.prototype.send = function () {
        const path = this.__path;
        requests.sent[path] = (requests.sent[path] ?? 0) + 1;
        requests.open[path] = (requests.open[path] ?? 0) + 1;
        requests.most[path] = Math.max(requests.most[path] ?? 0, requests.open[path]);
        requests.elapsed = performance.now() - requests.started;
        this.addEventListener('loadend', () => { requests.open[path] -= 1; });
        return send.apply(this, arguments);
    };
    return true;
"#;

/// Signs up through the home page's form, which logs in and opens the lobby.
async fn sign_up(browser: &Browser, app: &TestApp, handle: &str) {
    browser.goto(&app.url("/")).await;
    let email = format!("{handle}@example.com");
    browser
        .type_into("#signup-form input[name=email]", &email)
        .await;
    browser
        .type_into("#signup-form input[name=handle]", handle)
        .await;
    browser
        .type_into("#signup-form input[name=password]", PASSWORD)
        .await;
    browser.click("#signup-form button[type=submit]").await;

    browser
        .wait_for(
            &format!("{handle} to land in the lobby"),
            "return location.pathname === '/posts/lobby/' \
             && document.readyState === 'complete' \
             && document.querySelector('#lobby-ctl') !== null",
        )
        .await;
}

/// Posts through the form, which htmx submits and renders again with a note.
async fn post_through_form(browser: &Browser, body: &str) {
    // The form is replaced by its answer; the mark tells the old one from the new.
    browser
        .js("document.querySelector('#post-form').dataset.sent = 'yes'; return true")
        .await;
    browser
        .type_into("#post-form textarea[name=body]", body)
        .await;
    browser.click("#post-form button[type=submit]").await;

    let note = browser
        .wait_for(
            &format!("the form to confirm {body:?}"),
            "const form = document.querySelector('#post-form'); \
             return form && !form.dataset.sent \
                 && form.querySelector('p.note')?.textContent || null",
        )
        .await;
    assert_eq!(note, json!("Posted; 1 mentioned."), "posting {body:?}");
    let rest = browser
        .js("return document.querySelector('#post-form textarea').value")
        .await;
    assert_eq!(rest, json!(""), "the form is emptied after posting");
}

/// Waits until the lobby lists a post with exactly this text.
async fn wait_mention(browser: &Browser, body: &str) {
    let script = format!(
        "return [...document.querySelectorAll('#lobby-items article.post .body')]\
         .some(p => p.textContent === {})",
        json!(body)
    );
    browser
        .wait_for(&format!("{body:?} in the lobby"), &script)
        .await;
}

/// A script that answers whether `handle` is in the online list.
fn online(handle: &str) -> String {
    let css = format!("#presence-items li[data-handle={}]", json!(handle));
    browser_support::exists(&css)
}

/// Checks that the page's toggle and every live region run `transport`, waiting for
/// the controls that app.js swaps in.
async fn assert_transport(browser: &Browser, transport: &str) {
    let script = format!(
        "const want = {};
         const controls = [...document.querySelectorAll('[data-live] > .live-ctl')];
         return controls.length > 0 && controls.every(c => c.dataset.transport === want)
             && document.body.dataset.transport === want",
        json!(transport)
    );
    browser
        .wait_for(&format!("every region to use {transport}"), &script)
        .await;

    let pressed = browser
        .js(
            "return Object.fromEntries([...document.querySelectorAll('[data-transport-choice]')]\
             .map(b => [b.dataset.transportChoice, b.getAttribute('aria-pressed')]))",
        )
        .await;
    let other = if transport == "sse" { "poll" } else { "sse" };
    assert_eq!(
        pressed[transport],
        json!("true"),
        "{transport} pressed: {pressed}"
    );
    assert_eq!(
        pressed[other],
        json!("false"),
        "{other} not pressed: {pressed}"
    );

    let attribute = if transport == "sse" {
        "sse-connect"
    } else {
        "hx-get"
    };
    let wired = format!(
        "return [...document.querySelectorAll('[data-live] > .live-ctl')]\
         .every(c => c.hasAttribute({}))",
        json!(attribute)
    );
    assert_eq!(
        browser.js(&wired).await,
        json!(true),
        "controls carry {attribute}"
    );
}

/// Marks the page and its list with a property that only lives as long as the very
/// same window and element: a reload, or a region rendered afresh, loses it.
async fn mark_page(browser: &Browser, list_id: &str) {
    let script = format!(
        "window.__noReload = 42; document.getElementById({}).__kept = 42; return true",
        json!(list_id)
    );
    browser.js(&script).await;
}

/// Checks that neither the page nor the list was replaced since [`mark_page`].
async fn assert_still_marked(browser: &Browser, list_id: &str) {
    let script = format!(
        "return [window.__noReload ?? null, document.getElementById({})?.__kept ?? null]",
        json!(list_id)
    );
    let marks = browser.js(&script).await;
    assert_eq!(marks[0], json!(42), "the page was reloaded");
    assert_eq!(marks[1], json!(42), "#{list_id} was replaced, not added to");
}

/// Waits until the named regions' event sources are open.
async fn wait_open(browser: &Browser, regions: &[&str]) {
    for region in regions {
        let css = format!("#{region}-region[data-state=open]");
        browser
            .wait_for(
                &format!("the {region} stream to open"),
                &browser_support::exists(&css),
            )
            .await;
    }
}

/// Waits until a freshly opened page at `path` has the named regions' streams open.
async fn wait_page(browser: &Browser, path: &str, regions: &[&str]) {
    let script = format!(
        "return location.pathname === {} && document.readyState === 'complete'",
        json!(path)
    );
    browser.wait_for(&format!("{path} to open"), &script).await;
    wait_open(browser, regions).await;
}

/// Waits until the server holds exactly `count` SSE streams.
async fn wait_streams(app: &TestApp, count: usize, what: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let open = app.state.streams.open();
        if open == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {open} streams open, not {count}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn flash(browser: &Browser) -> String {
    let text = browser
        .js("return document.getElementById('flash').textContent")
        .await;
    text.as_str().unwrap_or_default().to_owned()
}

/// The ids of the elements matching `css`, in page order, checked to be distinct.
async fn unique_ids(browser: &Browser, css: &str) -> Vec<String> {
    let script = format!(
        "return [...document.querySelectorAll({})].map(e => e.id)",
        json!(css)
    );
    let ids: Vec<String> = match browser.js(&script).await {
        Value::Array(ids) => ids
            .into_iter()
            .map(|id| id.as_str().unwrap_or_default().to_owned())
            .collect(),
        other => panic!("ids of {css}: {other}"),
    };
    let mut seen = HashSet::new();
    let twice: Vec<&String> = ids.iter().filter(|id| !seen.insert(*id)).collect();
    assert!(twice.is_empty(), "shown twice in {css}: {twice:?}");
    ids
}

/// The distinct ids of `css` once they have stayed the same for [`SETTLE`], so that
/// an item arriving late, a second time, is seen.
async fn settled_ids(browser: &Browser, css: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut ids = unique_ids(browser, css).await;
    let mut since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = unique_ids(browser, css).await;
        if now != ids {
            ids = now;
            since = tokio::time::Instant::now();
        } else if since.elapsed() >= SETTLE {
            return ids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{css} kept changing: {ids:?}"
        );
    }
}

async fn status_ids(browser: &Browser) -> Vec<String> {
    unique_ids(browser, "#content-items article.status").await
}

/// Waits until statuses that were not in `before` appear and the list has grown (or
/// reached the length app.js trims it to), checking each look for duplicates.
async fn wait_growth(browser: &Browser, before: &[String], what: &str) {
    const TRIMMED_AT: usize = 200;
    let known: HashSet<&String> = before.iter().collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = status_ids(browser).await;
        let fresh = now.iter().filter(|id| !known.contains(id)).count();
        let longer = now.len() > before.len() || now.len() >= TRIMMED_AT;
        if fresh >= 5 && longer {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {} before, {} now, {fresh} new",
            before.len(),
            now.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
