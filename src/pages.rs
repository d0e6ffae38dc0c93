//! The page layout shared by every view, the transport toggle and the health check.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::accounts::MaybeUser;
use crate::app::AppState;
use crate::assets;
use crate::error::{AppError, AppResult};
use crate::live::{Chosen, TRANSPORT_COOKIE, Transport};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/transport", post(choose_transport))
        .route("/healthz", get(healthz))
}

/// What every page's frame needs to know about the request.
pub struct Frame<'a> {
    pub title: &'a str,
    pub handle: Option<&'a str>,
    pub transport: Transport,
}

impl<'a> Frame<'a> {
    pub fn new(title: &'a str, user: &'a MaybeUser, transport: Chosen) -> Self {
        Frame {
            title,
            handle: user.0.as_ref().map(|u| u.handle.as_str()),
            transport: transport.0,
        }
    }
}

/// The frame around a page: scripts, navigation, the transport toggle.
pub fn layout(frame: &Frame<'_>, body: Markup) -> Markup {
    let pressed = |t: Transport| {
        if frame.transport == t {
            "true"
        } else {
            "false"
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " · Switchyard" }
                link rel="stylesheet" href=(assets::APP_CSS);
                script src=(assets::HTMX) {}
                script src=(assets::HTMX_SSE) {}
                script src=(assets::APP_JS) defer {}
            }
            body data-transport=(frame.transport.as_str()) {
                header.top {
                    a.brand href="/" { "Switchyard" }
                    nav {
                        a href="/posts/lobby/" { "Lobby" }
                        a href="/posts/" { "All posts" }
                        a href="/posts/content/" { "Mastodon" }
                        a href="/firehose/" { "Firehose" }
                        a href="/compare" { "Compare" }
                        a href="/hello/" { "Hello" }
                    }
                    form.toggle method="post" action="/transport" {
                        span { "Live updates:" }
                        button type="submit" name="transport" value="poll"
                            data-transport-choice="poll" aria-pressed=(pressed(Transport::Poll)) {
                            "Polling"
                        }
                        button type="submit" name="transport" value="sse"
                            data-transport-choice="sse" aria-pressed=(pressed(Transport::Sse)) {
                            "SSE"
                        }
                    }
                    @if let Some(handle) = frame.handle {
                        form.who method="post" action="/accounts/logout" {
                            span { "@" (handle) }
                            button type="submit" { "Log out" }
                        }
                    }
                }
                div #flash role="status" {}
                main { (body) }
            }
        }
    }
}

#[derive(Deserialize)]
struct TransportForm {
    transport: String,
}

/// Remembers the browser's transport. app.js then swaps each region's control in
/// place; without JavaScript the form post simply reloads the page.
async fn choose_transport(
    headers: HeaderMap,
    Form(form): Form<TransportForm>,
) -> AppResult<Response> {
    let transport = Transport::parse(&form.transport).ok_or_else(|| {
        AppError::BadInput(format!(
            "unknown transport '{}': use poll or sse",
            form.transport
        ))
    })?;
    let cookie = format!(
        "{TRANSPORT_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        transport.as_str()
    );

    if headers.contains_key("hx-request") {
        return Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response());
    }
    let back = same_site_path(&headers).unwrap_or_else(|| "/".to_owned());
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, back)],
    )
        .into_response())
}

/// The path of the Referer when it is this site, for redirecting back.
fn same_site_path(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let rest = referer.split_once("://")?.1;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    // "//host/x" is a path only in name: a browser reads it as another site.
    let local = path.starts_with('/') && !path.starts_with("//") && !path.contains('\\');
    (authority.eq_ignore_ascii_case(host) && local).then(|| path.to_owned())
}

/// Liveness and readiness: the database answers.
async fn healthz(State(state): State<AppState>) -> AppResult<&'static str> {
    sqlx::query("SELECT 1")
        .execute(&state.db.pool)
        .await
        .map_err(|_| AppError::Unavailable("database unreachable"))?;
    Ok("ok")
}
