//! Live regions: one region of a page, kept fresh by polling or by SSE.
//!
//! A region is a list of items plus a *control* element that does the transport's
//! work. Switching transports swaps only the control, carrying the cursor over, so the
//! list never reloads and no item is shown twice or missed.

use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::{HeaderMap, HeaderValue, header, request::Parts};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use clap::ValueEnum;
use futures_util::StreamExt;
use maud::{Markup, html};
use polling::{Cursor, PollQuery};
use realtime::{Bus, EventId, PresenceGuard, Resume, Subscription, Topic};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tower_sessions::Session;

use crate::app::{AppState, StreamSlot};
use crate::error::AppError;
use crate::metrics::{Metrics, RouteLabel};

/// The cookie that remembers a browser's choice of transport.
pub const TRANSPORT_COOKIE: &str = "transport";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// htmx polling with `hx-trigger="every Ns"`.
    Poll,
    /// Server-Sent Events through the htmx SSE extension.
    Sse,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Poll => "poll",
            Transport::Sse => "sse",
        }
    }

    pub fn parse(text: &str) -> Option<Transport> {
        match text {
            "poll" => Some(Transport::Poll),
            "sse" => Some(Transport::Sse),
            _ => None,
        }
    }

    /// The transport chosen in the request's cookie, if any.
    pub fn from_cookie(headers: &HeaderMap) -> Option<Transport> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == TRANSPORT_COOKIE)
            .and_then(|(_, value)| Transport::parse(value.trim()))
    }
}

/// The transport for this request: the browser's cookie, else the server default.
pub struct Chosen(pub Transport);

impl<S> FromRequestParts<S> for Chosen
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        Ok(Chosen(
            Transport::from_cookie(&parts.headers).unwrap_or(state.config.transport),
        ))
    }
}

/// The addresses and DOM ids of one live region.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    /// Prefix of the region's DOM ids: `{name}-region`, `{name}-ctl`, `{name}-items`.
    pub name: &'static str,
    pub poll_url: &'static str,
    pub stream_url: &'static str,
    /// Renders the whole region afresh (after a reset).
    pub region_url: &'static str,
    /// Renders the control for the browser's transport at a given cursor.
    pub control_url: &'static str,
    /// How new items enter the list: `afterbegin` for newest-first, `innerHTML` for a
    /// region that is replaced whole, like the presence list.
    pub swap: &'static str,
}

/// How a region's control should be rendered.
#[derive(Clone, Copy, Debug)]
pub struct ControlSpec {
    pub transport: Transport,
    pub cursor: Cursor,
    pub every: Duration,
}

impl Region {
    pub fn region_id(&self) -> String {
        format!("{}-region", self.name)
    }

    pub fn control_id(&self) -> String {
        format!("{}-ctl", self.name)
    }

    pub fn items_id(&self) -> String {
        format!("{}-items", self.name)
    }

    /// The polling control with the given cursor (for the page and poll answers).
    pub fn poll_control(&self, cursor: Cursor, every: Duration) -> polling::Control {
        polling::Control {
            id: self.control_id(),
            url: self.poll_url.to_owned(),
            cursor,
            every,
            target: format!("#{}", self.items_id()),
            swap: self.swap,
        }
    }

    /// The element that runs the region's transport.
    pub fn control(&self, spec: ControlSpec) -> Markup {
        match spec.transport {
            Transport::Poll => self.poll_control(spec.cursor, spec.every).render(),
            Transport::Sse => {
                let url = format!("{}?after={}", self.stream_url, spec.cursor);
                html! {
                    div id=(self.control_id()) class="live-ctl" data-transport="sse"
                        data-cursor=(spec.cursor) hx-ext="sse" sse-connect=(url) {
                        div sse-swap="item" hx-target={ "#" (self.items_id()) }
                            hx-swap=(self.swap) {}
                        div sse-swap="reset" hx-swap="none" {}
                    }
                }
            }
        }
    }

    /// The whole region: control plus items.
    pub fn render(&self, spec: ControlSpec, items: Markup) -> Markup {
        self.section(spec, items, None)
    }

    /// The whole region, kept on `spec.transport` when the page's toggle switches the
    /// others: for pages that show the transports side by side.
    pub fn render_pinned(&self, spec: ControlSpec, items: Markup) -> Markup {
        self.section(spec, items, Some(spec.transport))
    }

    fn section(&self, spec: ControlSpec, items: Markup, pinned: Option<Transport>) -> Markup {
        html! {
            section id=(self.region_id()) class="live-region" data-live
                data-pinned=[pinned.map(Transport::as_str)]
                data-region-url=(self.region_url) data-control-url=(self.control_url) {
                (self.control(spec))
                div id=(self.items_id()) class="items" { (items) }
            }
        }
    }
}

/// The `after` cursor a poll or control request must carry.
pub fn required_cursor(query: &PollQuery) -> Result<Cursor, AppError> {
    query
        .cursor()
        .map_err(|e| AppError::BadInput(e.to_string()))?
        .ok_or_else(|| AppError::BadInput("add ?after=<cursor> to the address".into()))
}

/// Subscribes an SSE client where it left off: the `Last-Event-ID` its browser sends on
/// reconnect wins over the `?after=` cursor the page was rendered with. An id that is
/// not a number cannot be resumed from, so it gets a reset.
pub async fn subscribe(
    bus: &Bus,
    topic: &Topic,
    headers: &HeaderMap,
    query: &PollQuery,
    head: u64,
) -> Result<Subscription, AppError> {
    let head = EventId(head);
    let last_event_id = headers
        .get("last-event-id")
        .map(|value| value.to_str().unwrap_or("not text"));
    match last_event_id {
        Some(text) => match EventId::parse(text) {
            Some(id) => Ok(bus.subscribe(topic, Some(id), head).await),
            None => {
                let mut sub = bus.subscribe(topic, None, head).await;
                sub.resume = Resume::Reset;
                Ok(sub)
            }
        },
        None => {
            let after = query
                .cursor()
                .map_err(|e| AppError::BadInput(e.to_string()))?;
            Ok(bus
                .subscribe(topic, after.map(|c| EventId(c.0)), head)
                .await)
        }
    }
}

/// An SSE response for a subscription, holding `guard` while the stream is open. It
/// ends when the guard's session logs out.
pub fn stream_response(state: &AppState, sub: Subscription, guard: StreamGuard) -> Response {
    let (metrics, route) = (state.metrics.clone(), guard.route);
    let until = logged_out(state, guard.session.clone());
    let on_sent = Box::new(move |event: &realtime::BusEvent| metrics.sent(route, event));
    let events = realtime::stream::event_stream(sub, &state.stream_options, guard, on_sent);
    sse(state, events.take_until(until))
}

/// An SSE response with the app's keep-alive and stream headers.
pub fn sse<S>(state: &AppState, events: S) -> Response
where
    S: futures_util::Stream<Item = Result<Event, std::convert::Infallible>> + Send + 'static,
{
    let keep_alive = KeepAlive::new()
        .interval(state.stream_options.keep_alive)
        .text("");
    stream_headers(Sse::new(events).keep_alive(keep_alive).into_response())
}

/// Resolves when `session` logs out, and never for streams without a session: a
/// private stream must not outlive the log-in that opened it.
pub fn logged_out(
    state: &AppState,
    session: Option<String>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut logouts = state.logouts.subscribe();
    async move {
        let Some(mine) = session else {
            return std::future::pending().await;
        };
        loop {
            match logouts.recv().await {
                Ok(id) if id == mine => return,
                Ok(_) => continue,
                // Some log-outs went by unseen; ending is the safe side, and a session
                // that is still valid reconnects and resumes.
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending().await,
            }
        }
    }
}

/// A poll answer as a response, counted by route and outcome.
pub fn poll_response(state: &AppState, route: &'static str, answer: polling::Answer) -> Response {
    state
        .metrics
        .polled(route, answer.outcome(), answer.body_len());
    polling::no_store(answer.into_response())
}

/// Headers every stream carries: never cached, never buffered by a proxy.
pub fn stream_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What an open stream holds on to: its place under the stream limit, its count in
/// the metrics and, for a logged-in user, their presence.
pub struct StreamGuard {
    route: &'static str,
    /// The session of a logged-in stream, which ends at its log-out.
    pub session: Option<String>,
    metrics: Metrics,
    _slot: StreamSlot,
    _presence: Option<PresenceGuard>,
}

impl StreamGuard {
    pub fn new(
        state: &AppState,
        route: &'static str,
        handle: Option<&str>,
    ) -> Result<StreamGuard, AppError> {
        let slot = state.streams.acquire()?;
        state
            .metrics
            .open_streams
            .get_or_create(&RouteLabel { route })
            .inc();
        Ok(StreamGuard {
            route,
            session: None,
            metrics: state.metrics.clone(),
            _slot: slot,
            _presence: handle.map(|h| state.presence.connect(h)),
        })
    }
}

impl StreamGuard {
    /// Ties the stream to the session that opened it.
    pub fn for_session(mut self, session: &Session) -> Self {
        self.session = session.id().map(|id| id.to_string());
        self
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let route = self.route;
        self.metrics
            .open_streams
            .get_or_create(&RouteLabel { route })
            .dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn transport_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; transport=poll; b=2"),
        );
        assert_eq!(Transport::from_cookie(&headers), Some(Transport::Poll));

        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("transport=carrier-pigeon"),
        );
        assert_eq!(Transport::from_cookie(&headers), None);
    }
}
