//! The mirror's pages: latest statuses (`/posts/content/`), the raw firehose, and
//! their polling and SSE endpoints.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, PreEscaped, html};
use polling::{Answer, Cursor, PollQuery};
use tracing::instrument;

use super::ingest::{firehose_topic, statuses_topic};
use super::store::{self, Change, StoredStatus};
use crate::accounts::MaybeUser;
use crate::app::AppState;
use crate::assets;
use crate::error::{AppError, AppResult};
use crate::live::{self, Chosen, ControlSpec, Region, StreamGuard, Transport};
use crate::pages::{Frame, layout};

/// Statuses on a page, and the most changes one poll answer carries.
const PAGE: i64 = 50;

pub const CONTENT: Region = Region {
    name: "content",
    poll_url: "/posts/content/poll",
    stream_url: "/realtime/content/stream/",
    region_url: "/posts/content/region",
    control_url: "/posts/content/control",
    swap: "afterbegin",
};

/// The prefix of a status's DOM id in the mirror's stream (`status-ID`).
pub const STATUS_IDS: &str = "status-";

/// A list of statuses on a page: its region, the prefix of its items' DOM ids and,
/// when it always uses one transport, that transport. Two lists on one page need
/// different prefixes, or an edit or deletion meant for one would land in both.
#[derive(Clone, Copy, Debug)]
pub struct StatusList {
    pub region: Region,
    pub ids: &'static str,
    pub pinned: Option<Transport>,
}

/// The mirror's own page: the browser's transport, the stream's DOM ids.
pub const CONTENT_LIST: StatusList = StatusList {
    region: CONTENT,
    ids: STATUS_IDS,
    pinned: None,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/posts/content/", get(content))
        .route("/posts/content/poll", get(poll_content))
        .route("/posts/content/stream", get(stream_content))
        .route("/realtime/content/stream/", get(stream_content))
        .route("/posts/content/region", get(content_region))
        .route("/posts/content/control", get(content_control))
        .route("/firehose/", get(firehose))
        .route("/firehose/stream", get(stream_firehose))
        .route("/firehose/poll", get(poll_firehose))
}

/// One status as shown everywhere: page, poll answer and SSE event. `ids` prefixes
/// its DOM id (see [`StatusList`]).
pub fn status_item(
    ids: &str,
    seq: u64,
    status: &StoredStatus,
    received_ms: i64,
    oob: bool,
) -> Markup {
    let hidden = status.sensitive || !status.spoiler_text.is_empty();
    html! {
        article id={ (ids) (status.id) } class="item status" data-cursor=(seq)
            data-published-ms=(received_ms) lang=[status.language.as_deref()]
            hx-swap-oob=[oob.then_some("true")] {
            header {
                a.author href=(status.author_url) rel="nofollow noopener noreferrer"
                    target="_blank" {
                    strong dir="auto" { (display_name(status)) }
                    " @" (status.author_acct)
                }
                " "
                @if let Some(url) = &status.url {
                    a.when href=(url) rel="nofollow noopener noreferrer" target="_blank" {
                        time datetime=(status.created_at) { (short_time(&status.created_at)) }
                    }
                }
                @if status.edited_at.is_some() { " " span.edited { "(edited)" } }
                @if let Some(booster) = &status.boosted_by {
                    p.boost { "Boosted by @" (booster) }
                }
            }
            @if hidden {
                details.cw {
                    summary {
                        @if status.spoiler_text.is_empty() { "Sensitive content" }
                        @else { "CW: " (status.spoiler_text) }
                    }
                    (status_body(status))
                }
            } @else {
                (status_body(status))
            }
        }
    }
}

fn status_body(status: &StoredStatus) -> Markup {
    html! {
        // Sanitized when stored; see store::StoredStatus::from_status.
        div.content dir="auto" { (PreEscaped(&status.content_html)) }
        @if !status.media.is_empty() {
            ul.media {
                @for media in &status.media {
                    li {
                        // Links, not images: the page never fetches from strangers' hosts.
                        @if let Some(url) = &media.url {
                            a href=(url) rel="nofollow noopener noreferrer" target="_blank" {
                                (media.kind) ": " (media.description.as_deref().unwrap_or("no description"))
                            }
                        } @else {
                            (media.kind)
                        }
                    }
                }
            }
        }
    }
}

fn display_name(status: &StoredStatus) -> &str {
    if status.author_name.trim().is_empty() {
        &status.author_acct
    } else {
        &status.author_name
    }
}

/// `HH:MM` of an ISO 8601 time, or the text as given when it is not one.
fn short_time(iso: &str) -> &str {
    iso.get(11..16).unwrap_or(iso)
}

/// A change as a client at cursor `after` needs it: a new status, an edit replacing
/// the shown one, or a deletion removing it.
pub fn change_fragment(ids: &str, change: &Change, after: u64) -> Markup {
    match &change.status {
        None => html! { div id={ (ids) (change.status_id) } hx-swap-oob="delete" {} },
        Some(status) => {
            let is_new = change.first_seq > after;
            status_item(ids, change.seq, status, change.received_ms, !is_new)
        }
    }
}

/// A change as the firehose shows it: the event kind and the stored status as JSON.
pub fn firehose_json(change: &Change, kind: &str) -> String {
    serde_json::json!({
        "event": kind,
        "seq": change.seq,
        "id": change.status_id,
        "status": change.status,
    })
    .to_string()
}

/// A list's region at `head`, showing `latest`, with the list's transport if it is
/// pinned, else `transport`.
pub fn list_markup(
    state: &AppState,
    list: StatusList,
    transport: Transport,
    head: u64,
    latest: &[Change],
) -> Markup {
    let transport = list.pinned.unwrap_or(transport);
    let spec = ControlSpec {
        transport,
        cursor: Cursor(head),
        every: state.config.poll_interval(),
    };
    let items = html! {
        @for change in latest {
            @if let Some(status) = &change.status {
                (status_item(list.ids, change.seq, status, change.received_ms, false))
            }
        }
        @if latest.is_empty() { p.empty { "Waiting for the first statuses…" } }
    };
    match list.pinned {
        Some(_) => list.region.render_pinned(spec, items),
        None => list.region.render(spec, items),
    }
}

/// The head of the mirror and the latest statuses up to it, for rendering lists.
pub async fn latest(state: &AppState) -> AppResult<(u64, Vec<Change>)> {
    let head = store::head(&state.db).await?;
    let latest = store::latest(&state.db, head, PAGE).await?;
    Ok((head, latest))
}

/// A list's region, rendered afresh.
pub async fn render_list(
    state: &AppState,
    list: StatusList,
    transport: Transport,
) -> AppResult<Markup> {
    let (head, latest) = latest(state).await?;
    Ok(list_markup(state, list, transport, head, &latest))
}

async fn content(
    State(state): State<AppState>,
    user: MaybeUser,
    transport: Chosen,
) -> AppResult<Markup> {
    let region = render_list(&state, CONTENT_LIST, transport.0).await?;
    let frame = Frame::new("Mastodon mirror", &user, transport);
    Ok(layout(
        &frame,
        html! {
            h1 { "Mastodon mirror" }
            p.lede {
                "Public statuses from " (state.ingest.describe_publicly())
                ", newest first. Edits update in place; deletions disappear."
            }
            (region)
        },
    ))
}

async fn content_region(State(state): State<AppState>, transport: Chosen) -> AppResult<Markup> {
    render_list(&state, CONTENT_LIST, transport.0).await
}

async fn content_control(
    State(state): State<AppState>,
    transport: Chosen,
    Query(query): Query<PollQuery>,
) -> AppResult<Markup> {
    list_control(&state, CONTENT_LIST, transport.0, &query)
}

async fn poll_content(
    State(state): State<AppState>,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    poll_list(&state, CONTENT_LIST, &query).await
}

/// A list's control at the asked cursor, for the list's pinned transport or else the
/// browser's.
pub fn list_control(
    state: &AppState,
    list: StatusList,
    transport: Transport,
    query: &PollQuery,
) -> AppResult<Markup> {
    let after = live::required_cursor(query)?;
    Ok(list.region.control(ControlSpec {
        transport: list.pinned.unwrap_or(transport),
        cursor: after,
        every: state.config.poll_interval(),
    }))
}

/// A poll of a list: the changes after the cursor with the list's own control, 204
/// when there are none, the whole region when the cursor cannot be continued from.
#[instrument(skip_all, fields(region = list.region.name))]
pub async fn poll_list(
    state: &AppState,
    list: StatusList,
    query: &PollQuery,
) -> AppResult<Response> {
    // A list pinned to SSE never polls: answering would turn the caller into a poller.
    if list.pinned == Some(Transport::Sse) {
        return Err(AppError::NotFound);
    }
    let region = list.region;
    let after = live::required_cursor(query)?;
    if state.statuses_head.is_at(after.0) {
        return Ok(live::poll_response(
            state,
            region.poll_url,
            Answer::NothingNew,
        ));
    }

    let head = store::head(&state.db).await?;
    state.statuses_head.raise(head);
    let changes = if after.0 < head {
        store::changes_between(&state.db, after.0, head, PAGE + 1).await?
    } else {
        Vec::new()
    };

    let answer = if after.0 > head || changes.len() as i64 > PAGE {
        Answer::Reset {
            region_id: region.region_id(),
            region: render_list(state, list, Transport::Poll).await?,
        }
    } else if changes.is_empty() {
        Answer::NothingNew
    } else {
        let control = region.poll_control(Cursor(head), state.config.poll_interval());
        let items =
            html! { @for change in &changes { (change_fragment(list.ids, change, after.0)) } };
        Answer::Fresh {
            items,
            control: control.render_oob(),
        }
    };
    Ok(live::poll_response(state, region.poll_url, answer))
}

#[instrument(skip_all)]
async fn stream_content(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    let guard = StreamGuard::new(&state, CONTENT.stream_url, None)?;
    let head = store::head(&state.db).await?;
    let sub = live::subscribe(
        &state.statuses_bus,
        &statuses_topic(),
        &headers,
        &query,
        head,
    )
    .await?;
    Ok(live::stream_response(&state, sub, guard))
}

async fn firehose(State(state): State<AppState>, user: MaybeUser, transport: Chosen) -> Markup {
    let frame = Frame::new("Firehose", &user, transport);
    layout(
        &frame,
        html! {
            h1 { "Firehose" }
            p.lede {
                "Every change of the mirror as raw JSON, logged to the browser console "
                "(open the developer tools). Events so far: "
                output #firehose-count { "0" }
            }
            pre #firehose-last aria-live="off" data-poll-ms=(state.config.poll_ms) {}
            script src=(assets::FIREHOSE_JS) defer {}
        },
    )
}

async fn stream_firehose(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    let guard = StreamGuard::new(&state, "/firehose/stream", None)?;
    let head = store::head(&state.db).await?;
    let sub = live::subscribe(
        &state.statuses_bus,
        &firehose_topic(),
        &headers,
        &query,
        head,
    )
    .await?;
    Ok(live::stream_response(&state, sub, guard))
}

/// Raw changes after the cursor as a JSON array, `204` when there are none. Without
/// `after` it answers the current cursor only, as `{"cursor": N}`.
async fn poll_firehose(
    State(state): State<AppState>,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    let head = store::head(&state.db).await?;
    let Some(after) = query
        .cursor()
        .map_err(|e| AppError::BadInput(e.to_string()))?
    else {
        let body = serde_json::json!({ "cursor": head }).to_string();
        return Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response());
    };
    if after.0 >= head {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }

    // A console that fell more than a page behind skips ahead to the newest changes.
    let mut changes = store::changes_between(&state.db, after.0, head, PAGE).await?;
    changes.reverse();
    let events: Vec<String> = changes
        .iter()
        .map(|change| {
            let kind = match (&change.status, change.first_seq == change.seq) {
                (None, _) => "delete",
                (Some(_), true) => "update",
                (Some(_), false) => "status.update",
            };
            firehose_json(change, kind)
        })
        .collect();
    let cursor = changes.last().map_or(head, |c| c.seq);
    let body = format!("{{\"cursor\":{cursor},\"events\":[{}]}}", events.join(","));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
