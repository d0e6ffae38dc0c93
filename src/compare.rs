//! `/compare`: the mirror's feed twice on one page, one pane polling and one on SSE,
//! each with counters of what its transport costs and how late items arrive.
//!
//! The panes are the mirror's status list under two region names, each pinned to its
//! transport whatever the browser chose. The SSE pane reads the mirror's own stream;
//! the polling pane has a poll endpoint whose answers carry its own control, and its
//! items take DOM ids of their own so that an edit or deletion lands in one pane only.
//! The counting and the charts are static/compare.js.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use maud::{Markup, html};
use polling::PollQuery;

use crate::accounts::MaybeUser;
use crate::app::AppState;
use crate::assets;
use crate::error::{AppError, AppResult};
use crate::live::{Chosen, Region, Transport};
use crate::mastodon::views::{self, CONTENT, STATUS_IDS, StatusList};
use crate::pages::{Frame, layout};

/// The polling pane.
pub const POLLING: StatusList = StatusList {
    region: Region {
        name: "cmp-poll",
        poll_url: "/compare/polling/poll",
        stream_url: CONTENT.stream_url,
        region_url: "/compare/polling/region",
        control_url: "/compare/polling/control",
        swap: "afterbegin",
    },
    ids: "cmp-poll-status-",
    pinned: Some(Transport::Poll),
};

/// The SSE pane. Its items come rendered from the mirror's stream, so they keep the
/// stream's DOM ids.
pub const SSE: StatusList = StatusList {
    region: Region {
        name: "cmp-sse",
        poll_url: "/compare/sse/poll",
        stream_url: CONTENT.stream_url,
        region_url: "/compare/sse/region",
        control_url: "/compare/sse/control",
        swap: "afterbegin",
    },
    ids: STATUS_IDS,
    pinned: Some(Transport::Sse),
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/compare", get(compare))
        .route("/compare/{pane}/poll", get(poll_pane))
        .route("/compare/{pane}/region", get(pane_region))
        .route("/compare/{pane}/control", get(pane_control))
}

/// The pane named in a path: `polling` or `sse`.
fn pane(name: &str) -> AppResult<StatusList> {
    match name {
        "polling" => Ok(POLLING),
        "sse" => Ok(SSE),
        _ => Err(AppError::NotFound),
    }
}

async fn compare(
    State(state): State<AppState>,
    user: MaybeUser,
    transport: Chosen,
) -> AppResult<Markup> {
    // Both panes start from the same cursor with the same statuses.
    let (head, latest) = views::latest(&state).await?;
    let every = state.config.poll_interval();
    let every_ms = every.as_millis();
    let panes = [
        (
            POLLING,
            "Polling",
            html! {
                "Asks every " output #cmp-interval data-value=(every_ms) { (every_ms) " ms" }
                " (the server's setting); an empty answer is a 204."
            },
        ),
        (
            SSE,
            "Server-Sent Events",
            html! {
                "Keeps one stream open; the server sends each change as it happens."
            },
        ),
    ];
    let panes = panes.map(|(list, title, how)| {
        let region = views::list_markup(&state, list, transport.0, head, &latest);
        pane_markup(list, title, how, region)
    });
    let frame = Frame::new("Polling and SSE compared", &user, transport);
    Ok(layout(
        &frame,
        html! {
            h1 { "Polling and SSE, side by side" }
            p.lede {
                "The same feed, statuses from " (state.ingest.describe_publicly())
                ", in two panes. The counters start when this page loads. An item's delay "
                "runs from the moment the server stored it to the moment this page shows "
                "it, by this computer's clock against the server's. The Polling / SSE "
                "switch at the top leaves these panes as they are."
            }
            div.compare { @for pane in panes { (pane) } }
            script src=(assets::COMPARE_JS) defer {}
        },
    ))
}

/// One pane: its heading, counters, chart and the live list.
fn pane_markup(list: StatusList, title: &str, how: Markup, region: Markup) -> Markup {
    let name = list.region.name;
    let transport = list.pinned.map_or("", Transport::as_str);
    let (requests, second) = match list.pinned {
        Some(Transport::Sse) => ("Connections opened", ("events", "Events received")),
        _ => ("Polls made", ("empty", "Empty answers")),
    };
    let counters = [
        ("requests", requests),
        second,
        ("bytes", "Bytes received"),
        ("shown", "New items shown"),
        ("p50", "Delay p50"),
        ("p95", "Delay p95"),
    ];
    html! {
        section.pane id={ (name) "-pane" } data-pane=(transport)
            aria-labelledby={ (name) "-title" } {
            h2 id={ (name) "-title" } { (title) }
            p.how { (how) }
            div.counters {
                @for (key, label) in counters {
                    div.counter {
                        label for={ (name) "-" (key) } { (label) }
                        @let delay = key.starts_with('p');
                        output id={ (name) "-" (key) } data-counter=(key)
                            data-value=(if delay { "" } else { "0" }) {
                            (if delay { "–" } else { "0" })
                        }
                    }
                }
            }
            figure.chart {
                svg id={ (name) "-chart" } role="img" viewBox="0 0 300 70"
                    aria-labelledby={ (name) "-caption" } {}
                figcaption id={ (name) "-caption" } {
                    span.key.p50 { "p50" } " and " span.key.p95 { "p95" }
                    " delay of the last 50 items, over the last minute"
                }
            }
            (region)
        }
    }
}

async fn poll_pane(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<PollQuery>,
) -> AppResult<Response> {
    views::poll_list(&state, pane(&name)?, &query).await
}

async fn pane_region(
    State(state): State<AppState>,
    Path(name): Path<String>,
    transport: Chosen,
) -> AppResult<Markup> {
    views::render_list(&state, pane(&name)?, transport.0).await
}

async fn pane_control(
    State(state): State<AppState>,
    Path(name): Path<String>,
    transport: Chosen,
    Query(query): Query<PollQuery>,
) -> AppResult<Markup> {
    views::list_control(&state, pane(&name)?, transport.0, &query)
}
