//! The hello-world of live views: the server's clock, pushed every second over SSE or
//! fetched by polling. No database, no bus; the smallest thing that shows the switch.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::response::sse::Event;
use axum::routing::get;
use maud::{Markup, html};
use polling::{Answer, Cursor, PollQuery};

use crate::accounts::MaybeUser;
use crate::app::AppState;
use crate::db::now_ms;
use crate::error::AppResult;
use crate::live::{self, Chosen, ControlSpec, Region, StreamGuard};
use crate::pages::{Frame, layout};
use crate::posts::views::clock;

pub const HELLO: Region = Region {
    name: "hello",
    poll_url: "/hello/poll",
    stream_url: "/hello/stream",
    region_url: "/hello/region",
    control_url: "/hello/control",
    swap: "innerHTML",
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/hello/", get(hello))
        .route("/hello/poll", get(poll_hello))
        .route("/hello/stream", get(stream_hello))
        .route("/hello/region", get(hello_region))
        .route("/hello/control", get(hello_control))
}

fn greeting(ms: i64) -> Markup {
    html! { p.hello data-published-ms=(ms) { "Hello! The server's clock says " (clock(ms)) " UTC." } }
}

/// The cursor of the clock: whole seconds since the epoch.
fn second() -> u64 {
    (now_ms() / 1000).max(0) as u64
}

fn render(state: &AppState, transport: Chosen) -> Markup {
    let spec = ControlSpec {
        transport: transport.0,
        cursor: Cursor(second()),
        every: state.config.poll_interval(),
    };
    HELLO.render(spec, greeting(now_ms()))
}

async fn hello(State(state): State<AppState>, user: MaybeUser, transport: Chosen) -> Markup {
    let region = render(&state, Chosen(transport.0));
    let frame = Frame::new("Hello", &user, transport);
    layout(&frame, html! { h1 { "Hello, live world" } (region) })
}

async fn hello_region(State(state): State<AppState>, transport: Chosen) -> Markup {
    render(&state, transport)
}

async fn hello_control(
    State(state): State<AppState>,
    transport: Chosen,
    Query(query): Query<PollQuery>,
) -> Markup {
    let cursor = query.cursor().ok().flatten().unwrap_or(Cursor(second()));
    HELLO.control(ControlSpec {
        transport: transport.0,
        cursor,
        every: state.config.poll_interval(),
    })
}

/// A new greeting whenever the second has moved on since the client's cursor.
async fn poll_hello(State(state): State<AppState>, Query(query): Query<PollQuery>) -> Response {
    let now = second();
    let after = query.cursor().ok().flatten().unwrap_or_default();
    let answer = if after.0 >= now {
        Answer::NothingNew
    } else {
        let control = HELLO.poll_control(Cursor(now), state.config.poll_interval());
        Answer::Fresh {
            items: greeting(now_ms()),
            control: control.render_oob(),
        }
    };
    live::poll_response(&state, HELLO.poll_url, answer)
}

async fn stream_hello(State(state): State<AppState>) -> AppResult<Response> {
    let guard = StreamGuard::new(&state, HELLO.stream_url, None)?;
    let shutdown = state.stream_options.shutdown.clone();
    let ticks = futures_util::stream::unfold(
        (tokio::time::interval(Duration::from_secs(1)), guard),
        move |(mut tick, guard)| {
            // Every tick watches for shutdown, not only the first.
            let mut shutdown = shutdown.clone();
            async move {
                if let Some(stop) = shutdown.as_mut() {
                    tokio::select! {
                        _ = tick.tick() => {},
                        _ = stop.wait_for(|s| *s) => return None,
                    }
                } else {
                    tick.tick().await;
                }
                let ms = now_ms();
                let event = Event::default()
                    .id(second().to_string())
                    .event("item")
                    .data(greeting(ms).into_string());
                Some((Ok::<_, Infallible>(event), (tick, guard)))
            }
        },
    );
    Ok(live::sse(&state, ticks))
}
