//! Cross-site request protection for forms.
//!
//! Session cookies are SameSite=Lax, which already keeps them off cross-site POSTs in
//! current browsers; this check also refuses such a POST outright, judged by the
//! `Origin` header browsers send with every POST, or `Sec-Fetch-Site` when Origin is
//! missing. Requests from non-browser clients carry neither and pass.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

pub async fn reject_cross_site_posts(request: Request, next: Next) -> Response {
    let unsafe_method = !matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if unsafe_method && is_cross_site(request.headers()) {
        tracing::info!(origin = ?request.headers().get(header::ORIGIN), "cross-site post refused");
        return AppError::Forbidden("cross-site form posts are refused").into_response();
    }
    next.run(request).await
}

fn is_cross_site(headers: &HeaderMap) -> bool {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());

    if let Some(origin) = text(header::ORIGIN) {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        return match text(header::HOST) {
            Some(host) => !origin_host.eq_ignore_ascii_case(host),
            None => true,
        };
    }
    matches!(
        text(header::HeaderName::from_static("sec-fetch-site")),
        Some("cross-site")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn same_origin_passes_and_foreign_origin_does_not() {
        let same = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "http://127.0.0.1:8000"),
        ]);
        assert!(!is_cross_site(&same));

        let foreign = headers(&[
            ("host", "127.0.0.1:8000"),
            ("origin", "https://evil.example"),
        ]);
        assert!(is_cross_site(&foreign));

        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!is_cross_site(&headers(&[])));
    }
}
