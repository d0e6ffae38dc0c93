//! Static files, compiled into the binary so the app runs from anywhere with no CDN.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::AppState;
use crate::error::AppError;

/// The pinned htmx and SSE-extension files; the versions are in the names so a
/// browser cache can keep them forever.
pub const HTMX: &str = "/static/htmx-2.0.11.min.js";
pub const HTMX_SSE: &str = "/static/htmx-ext-sse-2.2.4.min.js";
pub const APP_JS: &str = "/static/app.js";
pub const APP_CSS: &str = "/static/app.css";
pub const FIREHOSE_JS: &str = "/static/firehose.js";
pub const COMPARE_JS: &str = "/static/compare.js";

const FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx-2.0.11.min.js",
        JS,
        include_bytes!("../static/htmx-2.0.11.min.js"),
    ),
    (
        "htmx-ext-sse-2.2.4.min.js",
        JS,
        include_bytes!("../static/htmx-ext-sse-2.2.4.min.js"),
    ),
    ("app.js", JS, include_bytes!("../static/app.js")),
    ("firehose.js", JS, include_bytes!("../static/firehose.js")),
    ("compare.js", JS, include_bytes!("../static/compare.js")),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../static/app.css"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{file}", get(static_file))
}

async fn static_file(Path(file): Path<String>) -> Result<impl IntoResponse, AppError> {
    let (_, content_type, body) = FILES
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or(AppError::NotFound)?;

    // app.js and app.css change between releases under the same name; the pinned
    // library files never do.
    let cache = if file.starts_with("htmx") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, cache),
        ],
        *body,
    ))
}
